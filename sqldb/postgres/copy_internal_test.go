package postgres

import (
	"strings"
	"testing"
)

// unescapeCopy reverses appendCopyEscaped (COPY text format's escapes).
func unescapeCopy(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// FuzzCopyEscape: an escaped value holds no field or row separator and
// reads back as itself.
func FuzzCopyEscape(f *testing.F) {
	for _, s := range []string{"", "plain", "a\tb\nc\rd", `\N`, `\.`, `\\x00`, "ü\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := string(appendCopyEscaped(nil, s))
		if strings.ContainsAny(e, "\t\n\r") {
			t.Fatalf("%q escaped to %q", s, e)
		}
		if e == `\N` {
			t.Fatalf("%q escaped to the NULL marker", s)
		}
		if got := unescapeCopy(e); got != s {
			t.Fatalf("%q escaped to %q, reads back %q", s, e, got)
		}
	})
}
