package logstore

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTestStore(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), "sqlite://"+path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func line(tb testing.TB, fields map[string]any) []byte {
	tb.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// seed stores the lines of one record's path across both clouds plus noise.
func seed(t *testing.T, s *Store) time.Time {
	t.Helper()
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	at := func(sec int) string { return base.Add(time.Duration(sec) * time.Second).Format(time.RFC3339Nano) }
	lines := [][]byte{
		line(t, map[string]any{"time": at(0), "level": "INFO", "msg": "record accepted", "cloud": "aws", "component": "ingest", "trace_id": "trace-1", "records": 1}),
		line(t, map[string]any{"time": at(1), "level": "INFO", "msg": "rows loaded", "cloud": "aws", "component": "load", "trace_id": "trace-1", "table": "records"}),
		line(t, map[string]any{"time": at(2), "level": "INFO", "msg": "rows applied", "cloud": "azure", "component": "replicate", "trace_id": "trace-1"}),
		line(t, map[string]any{"time": at(3), "level": "WARN", "msg": "results published slowly", "cloud": "azure", "component": "publish", "trace_id": "trace-1", "path": "results/daily.json"}),
		line(t, map[string]any{"time": at(4), "level": "ERROR", "msg": "disk full on volume", "cloud": "aws", "component": "load", "trace_id": "trace-2", "err": "write: no space left"}),
		line(t, map[string]any{"time": at(5), "level": "INFO", "msg": "rows loaded", "cloud": "azure", "component": "load", "trace_id": "trace-3", "group": map[string]any{"shard": "eu-west"}}),
		// Not ours: @timestamp/message aliases, an offset time.
		[]byte(`{"@timestamp":"2026-11-24T11:00:06+01:00","message":"from elsewhere","level":"debug"}`),
	}
	n, err := s.Insert(context.Background(), lines)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(lines) {
		t.Fatalf("Insert accepted %d of %d", n, len(lines))
	}
	return base
}

func msgs(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Msg)
	}
	return out
}

func TestSearch(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "logs.db"))
	base := seed(t, s)
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"trace across clouds", Query{TraceID: "trace-1"}, []string{"results published slowly", "rows applied", "rows loaded", "record accepted"}},
		{"component", Query{Component: "load"}, []string{"rows loaded", "disk full on volume", "rows loaded"}},
		{"component and cloud", Query{Component: "load", Cloud: "azure"}, []string{"rows loaded"}},
		{"level any case", Query{Level: "error"}, []string{"disk full on volume"}},
		{"level default and alias", Query{Level: "DEBUG"}, []string{"from elsewhere"}},
		{"text in msg", Query{Text: "disk"}, []string{"disk full on volume"}},
		{"text words anded", Query{Text: "rows loaded"}, []string{"rows loaded", "rows loaded"}},
		{"text and trace", Query{Text: "rows", TraceID: "trace-1"}, []string{"rows applied", "rows loaded"}},
		{"text in attrs", Query{Text: "space"}, []string{"disk full on volume"}},
		{"text in nested attrs", Query{Text: "eu-west"}, []string{"rows loaded"}},
		{"attribute key", Query{Text: "shard"}, []string{"rows loaded"}},
		{"phrase", Query{Text: `"full on"`}, []string{"disk full on volume"}},
		{"phrase order matters", Query{Text: `"on full"`}, nil},
		{"case-insensitive text", Query{Text: "DISK"}, []string{"disk full on volume"}},
		{"builtin fields are not text", Query{Text: "INFO"}, nil},
		{"punctuation searched literally", Query{Text: "results/daily.json"}, []string{"results published slowly"}},
		{"punctuation only", Query{Text: ":"}, []string{"from elsewhere", "rows loaded", "disk full on volume", "results published slowly", "rows applied", "rows loaded", "record accepted"}},
		{"punctuation only, absent", Query{Text: "(*)"}, nil},
		{"fts syntax is literal", Query{Text: `NEAR(rows loaded) OR disk*`}, nil},
		{"since", Query{Since: base.Add(4 * time.Second)}, []string{"from elsewhere", "rows loaded", "disk full on volume"}},
		{"since and until", Query{Since: base.Add(1 * time.Second), Until: base.Add(3 * time.Second)}, []string{"rows applied", "rows loaded"}},
		{"limit", Query{Limit: 2}, []string{"from elsewhere", "rows loaded"}},
		{"nothing", Query{Cloud: "gcp"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Search(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if g := msgs(got); strings.Join(g, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("got %q, want %q", g, tt.want)
			}
		})
	}
}

func TestSearchEntryFields(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "logs.db"))
	seed(t, s)
	es, err := s.Search(context.Background(), Query{TraceID: "trace-2"})
	if err != nil || len(es) != 1 {
		t.Fatalf("Search = %v, %v", es, err)
	}
	e := es[0]
	if e.Cloud != "aws" || e.Component != "load" || e.Level != "ERROR" || e.TraceID != "trace-2" ||
		!e.Time.Equal(time.Date(2026, 11, 24, 10, 0, 4, 0, time.UTC)) {
		t.Fatalf("entry = %+v", e)
	}
	var attrs map[string]any
	if err := json.Unmarshal(e.Attrs, &attrs); err != nil || attrs["err"] != "write: no space left" || attrs["msg"] != "disk full on volume" {
		t.Fatalf("attrs = %s (%v)", e.Attrs, err)
	}
	// The alias line keeps its offset time as an instant.
	es, _ = s.Search(context.Background(), Query{Text: "elsewhere"})
	if len(es) != 1 || !es[0].Time.Equal(time.Date(2026, 11, 24, 10, 0, 6, 0, time.UTC)) {
		t.Fatalf("alias entry = %+v", es)
	}
}

func TestLimitBounds(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "logs.db"))
	var lines [][]byte
	for i := range 150 {
		lines = append(lines, []byte(fmt.Sprintf(`{"msg":"m%d","time":"2026-11-24T10:00:00.%06dZ"}`, i, i)))
	}
	if n, err := s.Insert(context.Background(), lines); err != nil || n != 150 {
		t.Fatalf("Insert = %d, %v", n, err)
	}
	for _, tt := range []struct{ limit, want int }{{0, DefaultLimit}, {-3, DefaultLimit}, {7, 7}, {MaxLimit + 1, 150}} {
		es, err := s.Search(context.Background(), Query{Limit: tt.limit})
		if err != nil || len(es) != tt.want {
			t.Fatalf("limit %d: %d entries, %v; want %d", tt.limit, len(es), err, tt.want)
		}
		if es[0].Msg != "m149" {
			t.Fatalf("newest first: got %q", es[0].Msg)
		}
	}
}

func TestInsertSkipsBadLines(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "logs.db"))
	lines := [][]byte{
		[]byte(`{"msg":"good one","cloud":"aws"}`),
		[]byte(`not json`),
		[]byte(`[1,2]`),
		[]byte(`null`),
		[]byte(`{"msg":"x"} trailing`),
		[]byte(`{"time":"yesterday","msg":"bad time"}`),
		[]byte(`{"time":"9999-12-31T23:00:00-05:00","msg":"time out of range"}`),
		[]byte(`{"cloud":5,"msg":"bad cloud"}`),
		[]byte(`{"msg":{"nested":true}}`),
		[]byte(`{"component":"` + strings.Repeat("c", 300) + `"}`),
		[]byte(`{"msg":"` + strings.Repeat("x", MaxLineSize) + `"}`),
		[]byte(``),
		[]byte("{\"msg\":\"bad utf8 \xff here\"}"),
	}
	n, err := s.Insert(context.Background(), lines)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("accepted %d, want 2", n)
	}
	es, err := s.Search(context.Background(), Query{})
	if err != nil || len(es) != 2 {
		t.Fatalf("Search = %v, %v", es, err)
	}
	if !json.Valid(es[0].Attrs) || !strings.Contains(es[0].Msg, "\uFFFD") {
		t.Fatalf("bad utf8 line stored as %q / %s", es[0].Msg, es[0].Attrs)
	}
}

func TestPrune(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "logs.db"))
	base := seed(t, s)
	n, err := s.Prune(context.Background(), base.Add(4*time.Second))
	if err != nil || n != 4 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	if es, _ := s.Search(context.Background(), Query{Text: "published"}); len(es) != 0 {
		t.Fatalf("pruned entry still found: %v", msgs(es))
	}
	if es, _ := s.Search(context.Background(), Query{Text: "disk"}); len(es) != 1 {
		t.Fatalf("kept entry not found: %v", msgs(es))
	}
}

func TestOpenErrors(t *testing.T) {
	for _, u := range []string{"mysql://u:secret@127.0.0.1:1/db", "sqlite://", "::bad"} {
		s, err := Open(context.Background(), u)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("Open error shows the password: %v", err)
		}
	}
	var s *Store
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openTestStore(t, path)
	seed(t, s)
	s.Close()
	s2 := openTestStore(t, path)
	es, err := s2.Search(context.Background(), Query{Text: "disk"})
	if err != nil || len(es) != 1 {
		t.Fatalf("after reopen: %v, %v", msgs(es), err)
	}
}

// FuzzParseLine checks that the line parser never panics and that every
// line it accepts stores and reads back as valid JSON.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`{"time":"2026-11-24T10:00:00Z","level":"INFO","msg":"hi","cloud":"aws","component":"load","trace_id":"t","n":1}`,
		`{"@timestamp":"2026-11-24T10:00:00+01:00","message":"x"}`,
		`{}`, `[]`, `null`, `"s"`, `{"msg":1}`, `{"time":"bad"}`, `{"a":{"b":[1,{"c":"d"}]}}`,
		"{\"msg\":\"\xff\"}", `{"msg":"a"}{"msg":"b"}`, `{"level":"warn","level":"error"}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseLine(b, now)
		if err != nil {
			return
		}
		if !json.Valid(r.line) {
			t.Fatalf("accepted line stored as invalid JSON: %q", r.line)
		}
		if r.level == "" || r.level != strings.ToUpper(r.level) {
			t.Fatalf("level %q", r.level)
		}
		if y := r.time.Year(); y < 1 || y > 9999 || r.time.Location() != time.UTC {
			t.Fatalf("time %v", r.time)
		}
	})
}

func TestBatchLineFoundByEachTrace(t *testing.T) {
	s := openTestStore(t, t.TempDir()+"/logs.db")
	ctx := context.Background()
	var ids []string
	for i := 0; i < 500; i++ { // far more than one short field holds
		ids = append(ids, newTestTraceID(i))
	}
	n, err := s.Insert(ctx, [][]byte{
		line(t, map[string]any{"msg": "changes applied", "cloud": "azure", "component": "replicate", "trace_id": strings.Join(ids, " ")}),
		line(t, map[string]any{"msg": "object loaded", "cloud": "aws", "component": "load", "trace_id": ids[7] + "," + ids[8]}),
	})
	if err != nil || n != 2 {
		t.Fatalf("insert: %d %v", n, err)
	}
	for _, tc := range []struct {
		id   string
		want int
	}{{ids[0], 1}, {ids[499], 1}, {ids[7], 2}, {ids[8], 2}, {"absent", 0}} {
		es, err := s.Search(ctx, Query{TraceID: tc.id})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != tc.want {
			t.Errorf("trace %s: %d entries, want %d", tc.id, len(es), tc.want)
		}
	}
}

func newTestTraceID(i int) string { return fmt.Sprintf("%032x", i+1) }
