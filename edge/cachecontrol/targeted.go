package cachecontrol

import (
	"strings"
)

// ParseTargeted parses the lines of a targeted cache-control field such
// as CDN-Cache-Control (RFC 9213 §2.2): a Structured Field Dictionary
// whose members are cache directives. Directives without a value are
// Booleans, delta-seconds are Integers, field-name lists are Strings;
// parameters are ignored, and a later member overrides an earlier one with
// the same name. A directive whose value has the wrong type is present but
// invalid. ok is false when the field is absent, empty or fails to parse:
// the cache then ignores it and falls back to Cache-Control.
func ParseTargeted(lines []string) (d Directives, ok bool) {
	if len(lines) == 0 {
		return d, false
	}
	members, ok := parseDictionary(strings.Join(lines, ","))
	if !ok || len(members) == 0 {
		return Directives{}, false
	}
	for _, m := range members {
		d.setItem(m.key, m.value)
	}
	return d, true
}

// setItem records one dictionary member as a directive.
func (d *Directives) setItem(name string, v item) {
	seconds := func(s *Seconds) {
		s.Present = true
		s.Valid = v.kind == kindInteger && v.num >= 0
		s.Value = 0
		if s.Valid {
			s.Value = min(v.num, MaxDelta)
		}
	}
	boolean := func(b *bool) {
		// "?0" is false: as if the directive were absent. Any other
		// value type still names the directive: honour it.
		*b = !(v.kind == kindBoolean && !v.boolean)
	}
	fieldList := func(flag *bool, fields *[]string) {
		*fields = nil
		switch {
		case v.kind == kindBoolean && !v.boolean:
			*flag = false
		case v.kind == kindString:
			*flag = true
			for f := range strings.SplitSeq(v.str, ",") {
				if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
					*fields = append(*fields, f)
				}
			}
		default:
			*flag = true
		}
	}
	switch name {
	case "max-age":
		seconds(&d.MaxAge)
	case "s-maxage":
		seconds(&d.SMaxAge)
	case "stale-while-revalidate":
		seconds(&d.StaleWhileRevalidate)
	case "stale-if-error":
		seconds(&d.StaleIfError)
	case "no-cache":
		fieldList(&d.NoCache, &d.NoCacheFields)
	case "private":
		fieldList(&d.Private, &d.PrivateFields)
	case "no-store":
		boolean(&d.NoStore)
	case "no-transform":
		boolean(&d.NoTransform)
	case "must-revalidate":
		boolean(&d.MustRevalidate)
	case "proxy-revalidate":
		boolean(&d.ProxyRevalidate)
	case "must-understand":
		boolean(&d.MustUnderstand)
	case "public":
		boolean(&d.Public)
	case "immutable":
		boolean(&d.Immutable)
	}
}

type itemKind int

const (
	kindBoolean itemKind = iota
	kindInteger
	kindDecimal
	kindString
	kindToken
	kindBytes
	kindDate
	kindDisplay
	kindInnerList
)

// item is a parsed bare item (or inner list) without its parameters.
type item struct {
	kind    itemKind
	boolean bool
	num     int64
	str     string
}

type member struct {
	key   string
	value item
}

// sfParser implements the parsing algorithms of RFC 8941 §4.2 (with the
// Date and Display String items of RFC 9651).
type sfParser struct {
	s string
	i int
}

// parseDictionary parses a Dictionary field value; later duplicate keys
// replace earlier ones, keeping the first position.
func parseDictionary(s string) ([]member, bool) {
	p := &sfParser{s: s}
	p.sp()
	var out []member
	index := map[string]int{}
	for !p.eof() {
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		v := item{kind: kindBoolean, boolean: true}
		if p.peek() == '=' {
			p.i++
			if v, ok = p.itemOrList(); !ok {
				return nil, false
			}
		} else if !p.params() {
			return nil, false
		}
		if at, dup := index[key]; dup {
			out[at].value = v
		} else {
			index[key] = len(out)
			out = append(out, member{key, v})
		}
		p.ows()
		if p.eof() {
			break
		}
		if p.peek() != ',' {
			return nil, false
		}
		p.i++
		p.ows()
		if p.eof() {
			return nil, false // trailing comma
		}
	}
	p.sp()
	return out, p.eof()
}

func (p *sfParser) eof() bool { return p.i >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.i]
}

func (p *sfParser) sp() {
	for !p.eof() && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) ows() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || (c >= 'A' && c <= 'Z') }

func (p *sfParser) key() (string, bool) {
	c := p.peek()
	if !isLCAlpha(c) && c != '*' {
		return "", false
	}
	start := p.i
	for !p.eof() {
		c := p.s[p.i]
		if !isLCAlpha(c) && !isDigit(c) && !strings.ContainsRune("_-.*", rune(c)) {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

func (p *sfParser) itemOrList() (item, bool) {
	if p.peek() == '(' {
		return p.innerList()
	}
	v, ok := p.bareItem()
	return v, ok && p.params()
}

func (p *sfParser) innerList() (item, bool) {
	p.i++ // "("
	for !p.eof() {
		p.sp()
		if p.peek() == ')' {
			p.i++
			return item{kind: kindInnerList}, p.params()
		}
		if _, ok := p.bareItem(); !ok || !p.params() {
			return item{}, false
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return item{}, false
		}
	}
	return item{}, false
}

func (p *sfParser) params() bool {
	for p.peek() == ';' {
		p.i++
		p.sp()
		if _, ok := p.key(); !ok {
			return false
		}
		if p.peek() == '=' {
			p.i++
			if _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

func (p *sfParser) bareItem() (item, bool) {
	c := p.peek()
	switch {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || isAlpha(c):
		return p.token()
	case c == ':':
		return p.bytes()
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			v := item{kind: kindBoolean, boolean: p.s[p.i+1] == '1'}
			p.i += 2
			return v, true
		}
		return item{}, false
	case c == '@':
		p.i++
		v, ok := p.number()
		if !ok || v.kind != kindInteger {
			return item{}, false
		}
		return item{kind: kindDate, num: v.num}, true
	case c == '%':
		return p.display()
	}
	return item{}, false
}

func (p *sfParser) number() (item, bool) {
	neg := false
	if p.peek() == '-' {
		neg = true
		p.i++
	}
	if !isDigit(p.peek()) {
		return item{}, false
	}
	start := p.i
	dot := -1
	for !p.eof() {
		c := p.s[p.i]
		if isDigit(c) {
			p.i++
		} else if c == '.' && dot < 0 {
			dot = p.i
			p.i++
		} else {
			break
		}
		n := p.i - start
		if (dot < 0 && n > 15) || (dot >= 0 && n > 16) {
			return item{}, false
		}
	}
	if dot >= 0 {
		intPart, frac := dot-start, p.i-dot-1
		if intPart > 12 || frac == 0 || frac > 3 {
			return item{}, false
		}
		return item{kind: kindDecimal}, true
	}
	var v int64
	for _, c := range []byte(p.s[start:p.i]) {
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return item{kind: kindInteger, num: v}, true
}

func (p *sfParser) str() (item, bool) {
	p.i++ // opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.eof() {
				return item{}, false
			}
			n := p.s[p.i]
			if n != '"' && n != '\\' {
				return item{}, false
			}
			b.WriteByte(n)
			p.i++
		case c == '"':
			return item{kind: kindString, str: b.String()}, true
		case c < 0x20 || c > 0x7e:
			return item{}, false
		default:
			b.WriteByte(c)
		}
	}
	return item{}, false
}

func (p *sfParser) token() (item, bool) {
	start := p.i
	p.i++
	for !p.eof() {
		c := p.s[p.i]
		if !isTchar(c) && c != ':' && c != '/' {
			break
		}
		p.i++
	}
	return item{kind: kindToken, str: p.s[start:p.i]}, true
}

func (p *sfParser) bytes() (item, bool) {
	p.i++ // ":"
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == ':':
			return item{kind: kindBytes}, true
		case isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '=':
		default:
			return item{}, false
		}
	}
	return item{}, false
}

func (p *sfParser) display() (item, bool) {
	p.i++ // "%"
	if p.peek() != '"' {
		return item{}, false
	}
	p.i++
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return item{kind: kindDisplay}, true
		case c == '%':
			if p.i+2 > len(p.s) || !isLowerHex(p.s[p.i]) || !isLowerHex(p.s[p.i+1]) {
				return item{}, false
			}
			p.i += 2
		case c < 0x20 || c > 0x7e:
			return item{}, false
		}
	}
	return item{}, false
}

func isLowerHex(c byte) bool { return isDigit(c) || (c >= 'a' && c <= 'f') }
