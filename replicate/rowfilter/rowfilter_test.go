package rowfilter

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"status = 'paid' AND amount >= 10", "(status = 'paid' AND amount >= 10)"},
		{"a != 1", "a <> 1"},
		{"a <> -1.5e3", "a <> -1.5e3"},
		{"not a in (1, 2,3)", "NOT a IN (1, 2, 3)"},
		{"a NOT IN ('x')", "NOT a IN ('x')"},
		{"a is null or b IS NOT NULL", "(a IS NULL OR b IS NOT NULL)"},
		{"(a = 1 OR b = 2) AND c = TRUE", "((a = 1 OR b = 2) AND c = TRUE)"},
		{"a = 1 OR b = 2 AND c = false", "(a = 1 OR (b = 2 AND c = FALSE))"},
		{`"odd col" = 'it''s'`, `"odd col" = 'it''s'`},
		{`"select" = 1`, `select = 1`},
		{`"and" = 1`, `"and" = 1`},
		{"name = 'x''; DROP TABLE orders; --'", "name = 'x''; DROP TABLE orders; --'"},
		{"a = +5", "a = 5"},
		{"a=.5", "a = .5"},
	}
	for _, tt := range tests {
		f, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := f.String(); got != tt.want {
			t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
		}
		again, err := Parse(f.String())
		if err != nil || again.String() != f.String() {
			t.Errorf("round trip of %q: %v, %v", tt.in, again, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		pos  int
		want string
	}{
		{"", 1, "empty filter"},
		{"   ", 1, "empty filter"},
		{"status", 7, "expected a comparison"},
		{"status =", 9, "expected a literal"},
		{"status = paid", 10, "expected a literal"},
		{"status = 'paid", 10, "unterminated string"},
		{"a = 1 AND", 10, "expected a column name"},
		{"a = 1 b = 2", 7, `unexpected "b"`},
		{"(a = 1", 7, `expected ")"`},
		{"a = NULL", 5, "IS NULL"},
		{"a IN ()", 7, "expected a literal"},
		{"a IN (1, NULL)", 10, "NULL cannot be in an IN list"},
		{"a IS 1", 6, "expected NULL"},
		{"a ! 1", 3, `"!" must be followed`},
		{"a = 1; DROP TABLE x", 6, "unexpected character"},
		{"a = 1 -- comment", 7, "malformed number"},
		{"a = 1e99999", 5, "exponent"},
		{"a = 12abc", 5, "malformed number"},
		{"1 = a", 1, "expected a column name"},
		{"a = b", 5, "expected a literal"},
		{"and = 1", 1, "expected a column name"},
		{`"" = 1`, 1, "empty quoted name"},
		{"a NOT 1", 7, "expected IN after NOT"},
		{strings.Repeat("(", 100) + "a = 1" + strings.Repeat(")", 100), 65, "nested too deeply"},
		{strings.Repeat("NOT ", 100) + "a = 1", 257, "nested too deeply"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q) = %v, want a *Error", tt.in, err)
			continue
		}
		if fe.Pos != tt.pos || !strings.Contains(fe.Msg, tt.want) {
			t.Errorf("Parse(%q) = %v (pos %d), want pos %d and %q", tt.in, err, fe.Pos, tt.pos, tt.want)
		}
		if !strings.HasPrefix(err.Error(), fmt.Sprintf("at position %d: ", tt.pos)) {
			t.Errorf("error text %q does not start with the position", err)
		}
	}
}

func TestPatternsAndRenames(t *testing.T) {
	for p, want := range map[string]bool{"orders_*": true, "a?": true, "[ab]x": true, "records": false, "a_b1": false} {
		if IsPattern(p) != want {
			t.Errorf("IsPattern(%q) = %v", p, !want)
		}
	}
	for p, ok := range map[string]bool{"orders_*": true, "records": true, "": false, "a[": false} {
		if err := CheckPattern(p); (err == nil) != ok {
			t.Errorf("CheckPattern(%q) = %v", p, err)
		}
	}
	for tmpl, want := range map[string]string{
		"":                  "",
		"copy_{table}":      "",
		"{table}_v2":        "",
		"{name}_x":          "the only placeholder",
		"x\"; DROP TABLE y": "plain table name",
		"_ic_{table}":       "reserved",
		"{table}-x":         "plain table name",
	} {
		err := CheckRename(tmpl)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckRename(%q) = %v, want %q", tmpl, err, want)
		}
	}
}
