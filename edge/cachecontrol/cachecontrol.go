// Package cachecontrol parses HTTP cache directives: the Cache-Control
// field (RFC 9111 §5.2, list syntax of RFC 9110 §5.6.1) and targeted
// cache-control fields such as CDN-Cache-Control (RFC 9213), which are
// Structured Field Dictionaries (RFC 8941 §3.2).
//
// Parsing follows the RFCs' rules for odd input: directive names are
// case-insensitive; arguments are accepted in token and quoted-string form;
// a delta-seconds value too large to represent becomes 2^31 (RFC 9111
// §1.2.2); a directive whose argument is invalid, or that appears twice
// with different arguments, is marked invalid, which callers treat as
// "stale" (RFC 9111 §4.2.1). Unknown directives are ignored.
package cachecontrol

import (
	"net/http"
	"strconv"
	"strings"
)

// MaxDelta is the largest delta-seconds value kept: larger values, and
// overflows, become this (RFC 9111 §1.2.2).
const MaxDelta = 1 << 31

// Seconds is a directive with a delta-seconds argument.
type Seconds struct {
	// Present reports whether the directive appeared at all.
	Present bool
	// Valid reports whether its argument was a valid delta-seconds and
	// every occurrence agreed. An invalid directive is Present but not
	// Valid.
	Valid bool
	// Value is the argument in seconds (0..MaxDelta) when Valid.
	Value int64
}

// OK reports whether the directive is present with a valid value.
func (s Seconds) OK() bool { return s.Present && s.Valid }

// Directives are the cache directives of one message. The zero value means
// no directives.
type Directives struct {
	// Shared request and response directives.
	MaxAge      Seconds
	NoCache     bool
	NoStore     bool
	NoTransform bool
	// NoCacheFields are the field names of a qualified no-cache
	// (lower-case); empty when no-cache is unqualified.
	NoCacheFields []string

	// Response directives.
	SMaxAge         Seconds
	MustRevalidate  bool
	ProxyRevalidate bool
	MustUnderstand  bool
	Public          bool
	Private         bool
	// PrivateFields are the field names of a qualified private
	// (lower-case); empty when private is unqualified.
	PrivateFields []string
	Immutable     bool

	// RFC 5861 extensions (response and request).
	StaleWhileRevalidate Seconds
	StaleIfError         Seconds

	// Request directives.
	MaxStale     Seconds // Value is MaxDelta for max-stale without argument
	MinFresh     Seconds
	OnlyIfCached bool

	noCacheAll, privateAll bool // an unqualified occurrence was seen
}

// Parse parses the Cache-Control field lines of a header (which may be
// nil). Multiple lines are one comma-separated list.
func Parse(h http.Header) Directives {
	return ParseLines(h["Cache-Control"])
}

// ParseLines parses Cache-Control field values.
func ParseLines(lines []string) Directives {
	var d Directives
	var seen seenArgs
	for _, line := range lines {
		p := lexer{s: line}
		for !p.done() {
			name, arg, hasArg, ok := p.element()
			if name == "" {
				continue
			}
			name = strings.ToLower(name)
			key := arg
			if !ok {
				key = "\x00invalid"
			}
			prev, dup := seen.swap(name, key)
			d.set(name, arg, hasArg, ok, dup && prev != key)
		}
	}
	return d
}

// seenArgs maps the directives seen so far to their last argument: the
// first few in an array (no allocation for a usual field), the rest in a
// map.
type seenArgs struct {
	n     int
	small [8][2]string
	more  map[string]string
}

// swap records arg for name and returns the argument recorded before, if
// any.
func (s *seenArgs) swap(name, arg string) (prev string, ok bool) {
	for i := range s.n {
		if s.small[i][0] == name {
			prev, s.small[i][1] = s.small[i][1], arg
			return prev, true
		}
	}
	if s.n < len(s.small) {
		s.small[s.n] = [2]string{name, arg}
		s.n++
		return "", false
	}
	if s.more == nil {
		s.more = map[string]string{}
	}
	prev, ok = s.more[name]
	s.more[name] = arg
	return prev, ok
}

// set records one directive. ok is false when the element was malformed;
// conflict when an earlier occurrence had another argument.
func (d *Directives) set(name, arg string, hasArg, ok, conflict bool) {
	seconds := func(s *Seconds, optional bool) {
		first := !s.Present
		s.Present = true
		v, valid := delta(arg)
		if optional && !hasArg && ok {
			v, valid = MaxDelta, true
		}
		if !ok || (!hasArg && !optional) {
			v, valid = 0, false
		}
		switch {
		case first:
			s.Valid, s.Value = valid, v
		case conflict || !valid:
			s.Valid, s.Value = false, 0
		}
	}
	fields := func(dst *[]string) {
		if hasArg {
			for f := range strings.SplitSeq(arg, ",") {
				if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
					*dst = append(*dst, f)
				}
			}
		}
	}
	switch name {
	case "max-age":
		seconds(&d.MaxAge, false)
	case "s-maxage":
		seconds(&d.SMaxAge, false)
	case "max-stale":
		seconds(&d.MaxStale, true)
	case "min-fresh":
		seconds(&d.MinFresh, false)
	case "stale-while-revalidate":
		seconds(&d.StaleWhileRevalidate, false)
	case "stale-if-error":
		seconds(&d.StaleIfError, false)
	case "no-cache":
		// An unqualified occurrence wins: it is the most restrictive.
		d.NoCache = true
		if !hasArg || !ok {
			d.noCacheAll, d.NoCacheFields = true, nil
		} else if !d.noCacheAll {
			fields(&d.NoCacheFields)
		}
	case "private":
		d.Private = true
		if !hasArg || !ok {
			d.privateAll, d.PrivateFields = true, nil
		} else if !d.privateAll {
			fields(&d.PrivateFields)
		}
	case "no-store":
		d.NoStore = true
	case "no-transform":
		d.NoTransform = true
	case "must-revalidate":
		d.MustRevalidate = true
	case "proxy-revalidate":
		d.ProxyRevalidate = true
	case "must-understand":
		d.MustUnderstand = true
	case "public":
		d.Public = true
	case "immutable":
		d.Immutable = true
	case "only-if-cached":
		d.OnlyIfCached = true
	}
}

// delta parses delta-seconds (RFC 9111 §1.2.2): one or more digits.
func delta(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v < MaxDelta {
			v = v*10 + int64(c-'0')
		}
	}
	return min(v, MaxDelta), true
}

// lexer walks one field line of #cache-directive elements:
// token [ "=" ( token / quoted-string ) ], separated by commas with OWS.
type lexer struct {
	s string
	i int
}

func (p *lexer) done() bool { return p.i >= len(p.s) }

func (p *lexer) ows() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// element reads one list element and the comma after it. ok is false for
// a malformed element (its name, if any, is still returned so that the
// directive is known to be present but invalid).
func (p *lexer) element() (name, arg string, hasArg, ok bool) {
	p.ows()
	start := p.i
	for p.i < len(p.s) && isTchar(p.s[p.i]) {
		p.i++
	}
	name = p.s[start:p.i]
	beforeEq := p.i
	p.ows()
	ok = name != ""
	if p.i < len(p.s) && p.s[p.i] == '=' {
		// The grammar has no whitespace around "=" (RFC 9111 §5.2):
		// "max-age =60" and "max-age= 60" are malformed.
		ok = ok && p.i == beforeEq
		p.i++
		hasArg = true
		afterEq := p.i
		p.ows()
		ok = ok && p.i == afterEq
		if p.i < len(p.s) && p.s[p.i] == '"' {
			var qok bool
			arg, qok = p.quoted()
			ok = ok && qok
		} else {
			start := p.i
			for p.i < len(p.s) && isTchar(p.s[p.i]) {
				p.i++
			}
			arg = p.s[start:p.i]
			ok = ok && arg != ""
		}
		p.ows()
	}
	// Anything before the next comma makes the element malformed.
	if p.i < len(p.s) && p.s[p.i] != ',' {
		ok = false
		p.skip()
	}
	if p.i < len(p.s) && p.s[p.i] == ',' {
		p.i++
	}
	return name, arg, hasArg, ok
}

// quoted reads a quoted-string at p.i, unescaping quoted-pairs.
func (p *lexer) quoted() (string, bool) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), true
		case c == '\\' && p.i+1 < len(p.s):
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f):
			b.WriteByte(c)
			p.i++
		default:
			p.i++
			return b.String(), false
		}
	}
	return b.String(), false // unterminated
}

// skip moves to the next comma that is not inside a quoted string.
func (p *lexer) skip() {
	inQuote := false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case inQuote && c == '\\':
			p.i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			return
		}
		p.i++
	}
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// String renders the directives (for logs and tests), in a fixed order.
func (d Directives) String() string {
	var parts []string
	sec := func(name string, s Seconds) {
		switch {
		case !s.Present:
		case !s.Valid:
			parts = append(parts, name+"=invalid")
		default:
			parts = append(parts, name+"="+strconv.FormatInt(s.Value, 10))
		}
	}
	flag := func(name string, b bool) {
		if b {
			parts = append(parts, name)
		}
	}
	sec("max-age", d.MaxAge)
	sec("s-maxage", d.SMaxAge)
	flag("no-cache", d.NoCache && len(d.NoCacheFields) == 0)
	if len(d.NoCacheFields) > 0 {
		parts = append(parts, `no-cache="`+strings.Join(d.NoCacheFields, ",")+`"`)
	}
	flag("no-store", d.NoStore)
	flag("no-transform", d.NoTransform)
	flag("must-revalidate", d.MustRevalidate)
	flag("proxy-revalidate", d.ProxyRevalidate)
	flag("must-understand", d.MustUnderstand)
	flag("public", d.Public)
	flag("private", d.Private && len(d.PrivateFields) == 0)
	if len(d.PrivateFields) > 0 {
		parts = append(parts, `private="`+strings.Join(d.PrivateFields, ",")+`"`)
	}
	flag("immutable", d.Immutable)
	sec("stale-while-revalidate", d.StaleWhileRevalidate)
	sec("stale-if-error", d.StaleIfError)
	sec("max-stale", d.MaxStale)
	sec("min-fresh", d.MinFresh)
	flag("only-if-cached", d.OnlyIfCached)
	return strings.Join(parts, ", ")
}
