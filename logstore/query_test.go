package logstore

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	since := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      string
		want    Query
		wantErr string
	}{
		{name: "empty", in: "", want: Query{}},
		{name: "blank", in: " \t\n ", want: Query{}},
		{name: "all filters", in: "trace_id:abc component:load cloud:aws level:error since:2026-11-24T00:00:00Z until:2026-11-25 some words",
			want: Query{Text: "some words", TraceID: "abc", Component: "load", Cloud: "aws", Level: "ERROR", Since: since, Until: since.AddDate(0, 0, 1)}},
		{name: "phrase", in: `"disk full" now`, want: Query{Text: `"disk full" now`}},
		{name: "quoted filter value", in: `component:"my part" x`, want: Query{Component: "my part", Text: "x"}},
		{name: "level alias", in: "level:warning", want: Query{Level: "WARN"}},
		{name: "limit", in: "limit:5 x", want: Query{Limit: 5, Text: "x"}},
		{name: "unknown key is text", in: "foo:bar http://x/y", want: Query{Text: "foo:bar http://x/y"}},
		{name: "unterminated phrase", in: `a "b c`, want: Query{Text: `a "b c"`}},
		{name: "empty phrase dropped", in: `a "" "  " b`, want: Query{Text: "a b"}},
		{name: "fts operators are text", in: `NEAR(a b) OR c* -d ^e AND NOT f`, want: Query{Text: `NEAR(a b) OR c* -d ^e AND NOT f`}},
		{name: "sql is text", in: `'; DROP TABLE logs; --`, want: Query{Text: `'; DROP TABLE logs; --`}},
		{name: "quote inside word", in: `a"b c"`, want: Query{Text: `a"b c"`}},
		{name: "colons", in: `:: a:b: :cloud`, want: Query{Text: `:: a:b: :cloud`}},
		{name: "filter value with colon", in: `trace_id:a:b`, want: Query{TraceID: "a:b"}},
		{name: "twice", in: "cloud:aws cloud:azure", wantErr: "cloud given twice"},
		{name: "no value", in: "cloud: x", wantErr: "cloud: needs a value"},
		{name: "empty quoted value", in: `cloud:"" x`, wantErr: "cloud: needs a value"},
		{name: "bad since", in: "since:yesterday", wantErr: `time "yesterday"`},
		{name: "negative duration", in: "since:-5m", wantErr: `time "-5m"`},
		{name: "bad limit", in: "limit:0", wantErr: "limit"},
		{name: "non-numeric limit", in: "limit:ten", wantErr: "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseQuery(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseQuery(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseQuery(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseQuery(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseQueryRelativeTime(t *testing.T) {
	q, err := ParseQuery("since:15m")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(q.Since); d < 15*time.Minute || d > 16*time.Minute {
		t.Fatalf("since:15m gave %v ago", d)
	}
}

// FuzzParseQuery checks that no input panics, that the text of a parsed
// query re-parses to the same terms, and that every query that parses runs
// against a real store without error: hostile text can produce neither an
// SQL nor an FTS syntax error.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "a b", `"a b" c`, `trace_id:abc component:load cloud:aws level:error since:2026-11-24T00:00:00Z x`,
		`NEAR(a b, 2)`, `a OR b`, `a*`, `-a`, `^a`, `"`, `""`, `"a""b"`, `'`, `\`, `;`, `--`, `(`, `)`, `:`, `a:b`,
		`msg:x`, `{x}`, `col:"v`, `limit:99999`, "\x00", "é ü 日本", `*`, `"*"`, `AND`, `NOT`, `+`,
	} {
		f.Add(s)
	}
	s := openTestStore(f, filepath.Join(f.TempDir(), "fuzz.db"))
	_, err := s.Insert(context.Background(), [][]byte{
		[]byte(`{"time":"2026-11-24T10:00:00Z","level":"INFO","msg":"hello world","cloud":"aws","component":"load","trace_id":"t1","k":"NEAR(x)"}`),
		[]byte(`{"time":"2026-11-24T10:00:01Z","level":"ERROR","msg":"a*b \"q\" (p)","cloud":"azure"}`),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		q, err := ParseQuery(in)
		if err != nil {
			return
		}
		if got, want := terms(q.Text), textTerms(tokenize(in)); !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseQuery(%q).Text = %q: terms %q, want %q", in, q.Text, got, want)
		}
		if _, err := s.Search(context.Background(), q); err != nil {
			t.Fatalf("Search(ParseQuery(%q)): %v", in, err)
		}
		if _, err := s.Search(context.Background(), Query{Text: in}); err != nil {
			t.Fatalf("Search(Text: %q): %v", in, err)
		}
	})
}

func textTerms(toks []token) []string {
	var out []string
	for _, t := range toks {
		if t.key == "" {
			out = append(out, t.value)
		}
	}
	return out
}
