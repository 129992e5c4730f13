package ingest

// scanFlatObject reads line as one JSON object whose values are strings,
// numbers, true, false or null (no nesting), with no escape in a key and
// no key twice, and appends its members to r. It reports false, with r
// unchanged, for anything else (other values, a syntax error, trailing
// data): the caller then reads the line with encoding/json, which gives
// the same members for every line this accepts and the precise error for
// the others. line is valid UTF-8.
func scanFlatObject(line []byte, r *rawRecord) bool {
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	i = skipSpace(line, i+1)
	start := len(r.members)
	fail := func() bool { r.members = r.members[:start]; return false }
	if i < len(line) && line[i] == '}' {
		return skipSpace(line, i+1) == len(line)
	}
	for {
		// Key: a string without escapes.
		if i >= len(line) || line[i] != '"' {
			return fail()
		}
		j := i + 1
		for j < len(line) && line[j] != '"' {
			if line[j] == '\\' || line[j] < 0x20 {
				return fail()
			}
			j++
		}
		if j >= len(line) {
			return fail()
		}
		key := string(line[i+1 : j])
		for _, m := range r.members[start:] {
			if m.key == key {
				return fail()
			}
		}
		i = skipSpace(line, j+1)
		if i >= len(line) || line[i] != ':' {
			return fail()
		}
		i = skipSpace(line, i+1)
		end := scanScalar(line, i)
		if end < 0 {
			return fail()
		}
		r.members = append(r.members, member{key: key, raw: line[i:end:end]})
		i = skipSpace(line, end)
		if i >= len(line) {
			return fail()
		}
		switch line[i] {
		case ',':
			i = skipSpace(line, i+1)
		case '}':
			if skipSpace(line, i+1) != len(line) {
				return fail()
			}
			return true
		default:
			return fail()
		}
	}
}

// scanScalar returns the end of the JSON string, number, true, false or
// null starting at i, or -1.
func scanScalar(b []byte, i int) int {
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
		return scanNumber(b, i)
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

// scanNumber returns the end of the JSON number (RFC 8259 §6) at i, or -1.
func scanNumber(b []byte, i int) int {
	digits := func(j int) int {
		k := j
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		return k
	}
	if b[i] == '-' {
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
