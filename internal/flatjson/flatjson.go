// Package flatjson scans flat JSON objects: objects whose member values are
// strings, numbers, true, false or null (no nesting) and whose keys hold
// no escape, the shape of the records intercloud takes in and stores. It
// checks the syntax (RFC 8259) of what it accepts and declines everything
// else, so that its callers can take the common shape without
// encoding/json's reflection and validation passes and leave the rest,
// with the precise error, to encoding/json.
package flatjson

// Object calls fn with the key (the text between its quotes) and the raw
// value of each member of line in order, and reports whether line is one
// flat JSON object with nothing but whitespace around it. It stops and
// reports false as soon as fn returns false or the syntax is not that of
// a flat object; fn may then have been called for the members before.
// Keys that repeat are passed on, and UTF-8 is not checked: the caller
// decides. The slices fn gets
// alias line, and raw's capacity runs to the end of line's (so that
// cap(line)-cap(raw) is raw's offset in line).
func Object(line []byte, fn func(key, raw []byte) bool) bool {
	i := SkipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	i = SkipSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		return SkipSpace(line, i+1) == len(line)
	}
	for {
		// Key: a string without escapes.
		if i >= len(line) || line[i] != '"' {
			return false
		}
		j := i + 1
		for j < len(line) && line[j] != '"' {
			if line[j] == '\\' || line[j] < 0x20 {
				return false
			}
			j++
		}
		if j >= len(line) {
			return false
		}
		key := line[i+1 : j]
		i = SkipSpace(line, j+1)
		if i >= len(line) || line[i] != ':' {
			return false
		}
		i = SkipSpace(line, i+1)
		end := ScalarEnd(line, i)
		if end < 0 || !fn(key, line[i:end]) {
			return false
		}
		i = SkipSpace(line, end)
		if i >= len(line) {
			return false
		}
		switch line[i] {
		case ',':
			i = SkipSpace(line, i+1)
		case '}':
			return SkipSpace(line, i+1) == len(line)
		default:
			return false
		}
	}
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace (or len(b)).
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// ScalarEnd returns the end of the JSON string, number, true, false or
// null starting at i, or -1. A string's escapes are checked; its UTF-8 is
// not.
func ScalarEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		for j := i + 1; j < len(b); j++ {
			switch {
			case b[j] == '"':
				return j + 1
			case b[j] < 0x20:
				return -1
			case b[j] == '\\':
				j++
				if j >= len(b) {
					return -1
				}
				switch b[j] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				case 'u':
					if j+4 >= len(b) || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
						return -1
					}
					j += 4
				default:
					return -1
				}
			}
		}
		return -1
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return NumberEnd(b, i)
	}
	return -1
}

func literal(b []byte, i int, lit string) int {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// NumberEnd returns the end of the JSON number (RFC 8259 §6) starting at
// i, or -1.
func NumberEnd(b []byte, i int) int {
	digits := func(j int) int {
		k := j
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		return k
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		k := digits(i + 1)
		if k == i+1 {
			return -1
		}
		i = k
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		k := digits(i)
		if k == i {
			return -1
		}
		i = k
	}
	return i
}
