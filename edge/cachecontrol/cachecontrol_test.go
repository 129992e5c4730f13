package cachecontrol

import (
	"strings"
	"testing"
)

// TestParse covers RFC 9111 §5.2 parsing: case-insensitive names, token and
// quoted-string arguments, several field lines, duplicates and invalid
// arguments (§4.2.1), overflow (§1.2.2), qualified no-cache/private
// (§5.2.2.4, §5.2.2.7), request directives (§5.2.1) and RFC 5861.
func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"empty", nil, ""},
		{"simple", []string{"public, max-age=60"}, "max-age=60, public"},
		{"case", []string{"Max-Age=60, NO-STORE"}, "max-age=60, no-store"},
		{"quoted arg", []string{`max-age="60"`}, "max-age=60"},
		{"lines", []string{"max-age=5", "s-maxage=10, must-revalidate"}, "max-age=5, s-maxage=10, must-revalidate"},
		{"empty elements", []string{" , ,max-age=1,, "}, "max-age=1"},
		{"dup same", []string{"max-age=5, max-age=5"}, "max-age=5"},
		{"dup conflict", []string{"max-age=5", "max-age=6"}, "max-age=invalid"},
		{"dup conflict then same", []string{"max-age=5, max-age=6, max-age=5"}, "max-age=invalid"},
		{"invalid non-integer", []string{"max-age=abc"}, "max-age=invalid"},
		{"invalid negative", []string{"max-age=-1"}, "max-age=invalid"},
		{"invalid decimal", []string{"max-age=1.5"}, "max-age=invalid"},
		{"invalid missing arg", []string{"max-age"}, "max-age=invalid"},
		{"invalid empty arg", []string{"max-age="}, "max-age=invalid"},
		{"invalid junk after", []string{"max-age=5 6, public"}, "max-age=invalid, public"},
		{"overflow", []string{"max-age=99999999999999999999999"}, "max-age=2147483648"},
		{"big", []string{"s-maxage=2147483649"}, "s-maxage=2147483648"},
		{"no-cache fields", []string{`no-cache="Set-Cookie, X-Foo"`}, `no-cache="set-cookie,x-foo"`},
		{"no-cache unqualified wins", []string{`no-cache="a", no-cache`}, "no-cache"},
		{"no-cache unqualified first", []string{`no-cache, no-cache="a"`}, "no-cache"},
		{"private fields", []string{`private="Set-Cookie"`}, `private="set-cookie"`},
		{"private token form", []string{`private=Set-Cookie`}, `private="set-cookie"`},
		{"quoted comma", []string{`no-cache="a,b", max-age=3`}, `max-age=3, no-cache="a,b"`},
		{"escaped quote", []string{`ext="a\"b,c", max-age=3`}, "max-age=3"},
		{"unterminated quote", []string{`private="a, max-age=3`}, "private"},
		{"unknown", []string{"foo, bar=baz, max-age=1"}, "max-age=1"},
		{"request", []string{"max-stale, min-fresh=5, only-if-cached, no-cache"}, "no-cache, max-stale=2147483648, min-fresh=5, only-if-cached"},
		{"max-stale arg", []string{"max-stale=30"}, "max-stale=30"},
		{"5861", []string{"max-age=1, stale-while-revalidate=30, stale-if-error=600"}, "max-age=1, stale-while-revalidate=30, stale-if-error=600"},
		{"ows", []string{"\tmax-age=5 ,public"}, "max-age=5, public"},
		{"space before =", []string{"max-age =5, public"}, "max-age=invalid, public"},
		{"space after =", []string{"max-age= 5, public"}, "max-age=invalid, public"},
		{"flags", []string{"must-understand, no-store, immutable, proxy-revalidate, no-transform"}, "no-store, no-transform, proxy-revalidate, must-understand, immutable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseLines(tc.lines).String(); got != tc.want {
				t.Errorf("ParseLines(%q) = %q, want %q", tc.lines, got, tc.want)
			}
		})
	}
}

// TestParseTargeted covers RFC 9213 §2.2 (Structured Field Dictionary).
func TestParseTargeted(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		ok    bool
		want  string
	}{
		{"absent", nil, false, ""},
		{"empty", []string{""}, false, ""},
		{"spaces", []string{"   "}, false, ""},
		{"simple", []string{"max-age=60"}, true, "max-age=60"},
		{"booleans", []string{"no-store, must-revalidate"}, true, "no-store, must-revalidate"},
		{"explicit true", []string{"no-store=?1"}, true, "no-store"},
		{"false", []string{"no-store=?0, max-age=5"}, true, "max-age=5"},
		{"lines", []string{"max-age=5", "stale-if-error=30"}, true, "max-age=5, stale-if-error=30"},
		{"dup last wins", []string{"max-age=5, max-age=10"}, true, "max-age=10"},
		{"params ignored", []string{"max-age=5;foo=bar, public;x"}, true, "max-age=5, public"},
		{"string max-age invalid", []string{`max-age="5"`}, true, "max-age=invalid"},
		{"decimal max-age invalid", []string{"max-age=5.5"}, true, "max-age=invalid"},
		{"negative invalid", []string{"max-age=-5"}, true, "max-age=invalid"},
		{"no-cache string", []string{`no-cache="Set-Cookie"`}, true, `no-cache="set-cookie"`},
		{"private", []string{"private"}, true, "private"},
		{"unknown", []string{"foo=(a b), max-age=1"}, true, "max-age=1"},
		{"uppercase key fails", []string{"Max-Age=5"}, false, ""},
		{"trailing comma fails", []string{"max-age=5,"}, false, ""},
		{"bad string fails", []string{`no-cache="a`}, false, ""},
		{"junk fails", []string{"max-age=5 public"}, false, ""},
		{"integer too long fails", []string{"max-age=1234567890123456"}, false, ""},
		{"big integer capped", []string{"max-age=999999999999999"}, true, "max-age=2147483648"},
		{"tab after comma", []string{"max-age=5,\tpublic"}, true, "max-age=5, public"},
		{"leading tab fails", []string{"\tmax-age=5"}, false, ""},
		{"bytes", []string{"x=:aGk=:, max-age=2"}, true, "max-age=2"},
		{"token", []string{"x=foo/bar, max-age=2"}, true, "max-age=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := ParseTargeted(tc.lines)
			if ok != tc.ok || d.String() != tc.want {
				t.Errorf("ParseTargeted(%q) = %q, %v; want %q, %v", tc.lines, d.String(), ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParse checks that any input parses without panicking and that the
// parsed values keep their promises.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"max-age=5", `no-cache="a,b"`, `private="`, "max-age=99999999999999999999", "a=(1 2);x, b=?0", `x="\\"`, "max-stale"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, d := range []Directives{ParseLines([]string{s}), func() Directives { d, _ := ParseTargeted([]string{s}); return d }()} {
			for _, sec := range []Seconds{d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh, d.StaleIfError, d.StaleWhileRevalidate} {
				if sec.Value < 0 || sec.Value > MaxDelta || (!sec.Valid && sec.Value != 0) || (sec.Valid && !sec.Present) {
					t.Fatalf("%q: bad seconds %+v", s, sec)
				}
			}
			for _, fl := range append(append([]string(nil), d.NoCacheFields...), d.PrivateFields...) {
				if fl == "" || fl != strings.ToLower(fl) {
					t.Fatalf("%q: bad field name %q", s, fl)
				}
			}
		}
	})
}
