package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// memSink keeps every batch it is given.
type memSink struct {
	mu      sync.Mutex
	batches [][][]byte
	err     error
}

func (m *memSink) Write(entries [][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.batches = append(m.batches, entries)
	return nil
}

func (m *memSink) lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, b := range m.batches {
		for _, l := range b {
			out = append(out, string(l))
		}
	}
	return out
}

func decode(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return m
}

func TestTraceIDs(t *testing.T) {
	id := NewTraceID()
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) || id == NewTraceID() {
		t.Fatalf("NewTraceID = %q", id)
	}
	ctx := context.Background()
	if TraceID(ctx) != "" || TraceID(WithTrace(ctx, "")) != "" {
		t.Fatal("trace id without WithTrace")
	}
	if TraceID(WithTrace(ctx, id)) != id {
		t.Fatal("TraceID lost")
	}
}

func TestLoggerLines(t *testing.T) {
	var buf bytes.Buffer
	sink := &memSink{}
	log := NewLogger(Options{Cloud: "aws", Writer: &buf, Sink: sink, Level: slog.LevelInfo})
	ctx := WithTrace(context.Background(), "trace-1")
	load := log.With("component", "load")

	load.InfoContext(ctx, "rows loaded", "rows", 3)
	load.Info("no trace here")
	load.Debug("below the level")
	load.WithGroup("db").InfoContext(ctx, "grouped", "table", "records")
	load.With("trace_id", "explicit").InfoContext(ctx, "explicit trace")
	load.InfoContext(ctx, "trace as attr", "trace_id", "mine")
	log.WithGroup("g").With("a", 1).WithGroup("h").InfoContext(ctx, "nested", "b", 2)

	local := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if shipped := sink.lines(); strings.Join(shipped, "\n") != strings.Join(local, "\n") {
		t.Fatalf("shipped lines differ from local ones:\n%q\n%q", shipped, local)
	}
	if len(local) != 6 {
		t.Fatalf("want 6 lines, got %d: %q", len(local), local)
	}
	m := decode(t, local[0])
	want := map[string]any{"level": "INFO", "msg": "rows loaded", "cloud": "aws", "component": "load", "trace_id": "trace-1", "rows": 3.0}
	for k, v := range want {
		if m[k] != v {
			t.Fatalf("line 0 %s = %v, want %v: %s", k, m[k], v, local[0])
		}
	}
	if _, ok := m["time"]; !ok {
		t.Fatalf("no time: %s", local[0])
	}
	if !strings.HasPrefix(local[0], `{"time":`) {
		t.Fatalf("time is not first: %s", local[0])
	}
	if m := decode(t, local[1]); m["trace_id"] != nil || m["component"] != "load" {
		t.Fatalf("line 1: %s", local[1])
	}
	m = decode(t, local[2])
	if m["trace_id"] != "trace-1" || m["component"] != "load" || m["cloud"] != "aws" {
		t.Fatalf("grouped line lost top-level fields: %s", local[2])
	}
	if db, _ := m["db"].(map[string]any); db["table"] != "records" {
		t.Fatalf("grouped attribute: %s", local[2])
	}
	for i, want := range map[int]string{3: "explicit", 4: "mine"} {
		if n := strings.Count(local[i], `"trace_id"`); n != 1 || decode(t, local[i])["trace_id"] != want {
			t.Fatalf("line %d has %d trace ids: %s", i, n, local[i])
		}
	}
	m = decode(t, local[5])
	g, _ := m["g"].(map[string]any)
	h, _ := g["h"].(map[string]any)
	if m["trace_id"] != "trace-1" || g["a"] != 1.0 || h["b"] != 2.0 {
		t.Fatalf("nested groups: %s", local[5])
	}
}

// TestOneKeyOnce: a key given twice (a component's logger handed to a
// package that adds "component" itself, or a record naming it again) is
// written once, the latest value winning, so every line is JSON that any
// consumer reads.
func TestOneKeyOnce(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(Options{Cloud: "aws", Writer: &buf}).With("component", "replicate")
	ctx := WithTrace(context.Background(), "t1")
	log.With("component", "replicate", "stream", "a").InfoContext(ctx, "twice")
	log.With("component", "replicate.pgsrc").Info("renamed")
	log.Info("record wins", "component", "logstore", "cloud", "azure")
	log.With("cloud", "azure").WithGroup("g").With("component", "inner").InfoContext(ctx, "grouped")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []struct{ component, cloud, trace string }{
		{"replicate", "aws", "t1"}, {"replicate.pgsrc", "aws", ""}, {"logstore", "azure", ""}, {"replicate", "azure", "t1"},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines: %q", lines)
	}
	for i, w := range want {
		for _, k := range []string{`"component"`, `"cloud"`} {
			if n := strings.Count(lines[i], k); n != 1 && (i < 3 || k == `"cloud"`) { // line 3 has its own inside g
				t.Errorf("line %d has %s %d times: %s", i, k, n, lines[i])
			}
		}
		m := decode(t, lines[i])
		if m["component"] != w.component || m["cloud"] != w.cloud || (w.trace != "" && m["trace_id"] != w.trace) {
			t.Errorf("line %d: %s", i, lines[i])
		}
	}
	if g, _ := decode(t, lines[3])["g"].(map[string]any); g["component"] != "inner" {
		t.Errorf("grouped attribute: %s", lines[3])
	}
}

func TestNoCloudNoWriter(t *testing.T) {
	sink := &memSink{}
	NewLogger(Options{Sink: sink}).Info("x")
	NewLogger(Options{}).Info("nowhere") // must not panic
	l := sink.lines()
	if len(l) != 1 || strings.Contains(l[0], "cloud") {
		t.Fatalf("lines %q", l)
	}
}

// TestSinkGetsCopies checks that shipped lines survive the handler reusing
// its buffer.
func TestSinkGetsCopies(t *testing.T) {
	sink := &memSink{}
	log := NewLogger(Options{Sink: sink})
	log.Info("first", "v", strings.Repeat("a", 100))
	first := string(sink.batches[0][0])
	log.Info("second", "v", strings.Repeat("b", 100))
	if string(sink.batches[0][0]) != first || strings.HasSuffix(first, "\n") {
		t.Fatalf("first line changed or has a newline: %q", sink.batches[0][0])
	}
}

type secretErr struct{}

func (secretErr) Error() string { return "dial postgres://app:hunter2@db:5432/app: refused" }

func TestRedaction(t *testing.T) {
	const secret = "hunter2"
	u, _ := url.Parse("https://user:" + secret + "@example.com/x")
	tests := []struct {
		name string
		log  func(*slog.Logger)
		keep string // text that must still be there
	}{
		{"password key", func(l *slog.Logger) { l.Info("m", "password", secret) }, `"password":"[redacted]"`},
		{"db_password key", func(l *slog.Logger) { l.Info("m", "DB_Password", secret) }, `[redacted]`},
		{"secret key", func(l *slog.Logger) { l.Info("m", "client_secret", secret) }, `[redacted]`},
		{"token key", func(l *slog.Logger) { l.Info("m", "accessToken", secret) }, `[redacted]`},
		{"authorization key", func(l *slog.Logger) { l.Info("m", "Authorization", "Bearer "+secret) }, `[redacted]`},
		{"api_key key", func(l *slog.Logger) { l.Info("m", "api_key", secret) }, `[redacted]`},
		{"apikey key", func(l *slog.Logger) { l.Info("m", "APIKey", secret) }, `[redacted]`},
		{"credential key", func(l *slog.Logger) { l.Info("m", "credentials", secret) }, `[redacted]`},
		{"int secret", func(l *slog.Logger) { l.Info("m", "pin_secret", 2) }, `"pin_secret":"[redacted]"`},
		{"secret group", func(l *slog.Logger) { l.Info("m", slog.Group("credentials", "user", secret)) }, `[redacted]`},
		{"secret in group", func(l *slog.Logger) { l.Info("m", slog.Group("db", "password", secret)) }, `"db":{"password":"[redacted]"}`},
		{"secret With", func(l *slog.Logger) { l.With("token", secret).Info("m") }, `[redacted]`},
		{"secret WithGroup", func(l *slog.Logger) { l.WithGroup("auth").Info("m", "token", secret) }, `[redacted]`},
		{"url value", func(l *slog.Logger) { l.Info("m", "db", "mysql://app:"+secret+"@127.0.0.1:3306/app") }, `mysql://app:xxxxx@127.0.0.1:3306/app`},
		{"url in message", func(l *slog.Logger) { l.Info("opening mysql://app:" + secret + "@h/app now") }, `mysql://app:xxxxx@h/app now`},
		{"url in error", func(l *slog.Logger) { l.Info("m", "err", fmt.Errorf("open: %w", secretErr{})) }, `postgres://app:xxxxx@db:5432/app`},
		{"url type", func(l *slog.Logger) { l.Info("m", "u", u) }, `https://user:xxxxx@example.com/x`},
		{"mysql dsn", func(l *slog.Logger) { l.Info("m", "dsn", "app:"+secret+"@tcp(127.0.0.1:3306)/app") }, `app:xxxxx@tcp(127.0.0.1:3306)/app`},
		{"sas query", func(l *slog.Logger) { l.Info("m", "u", "https://a.blob.core.windows.net/c?sv=1&sig="+secret+"&se=2") }, `sig=xxxxx&se=2`},
		{"password with @", func(l *slog.Logger) { l.Info("m", "u", "postgres://app:p@"+secret+"@h/db") }, `postgres://app:xxxxx@h/db`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			sink := &memSink{}
			tt.log(NewLogger(Options{Writer: &buf, Sink: sink}))
			out := buf.String()
			if strings.Contains(out, secret) || strings.Contains(strings.Join(sink.lines(), ""), secret) {
				t.Fatalf("secret logged: %s", out)
			}
			if !strings.Contains(out, tt.keep) {
				t.Fatalf("want %q in %s", tt.keep, out)
			}
		})
	}
}

func TestNotRedacted(t *testing.T) {
	var buf bytes.Buffer
	NewLogger(Options{Writer: &buf}).Info("plain user@example.com", "idempotency_key", "k1", "keys", 3, "url", "https://example.com/a?b=c", "email", "a@b.c")
	for _, want := range []string{`"idempotency_key":"k1"`, `"keys":3`, `"url":"https://example.com/a?b=c"`, `"email":"a@b.c"`, `plain user@example.com`} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("want %s in %s", want, buf.String())
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterErrorStillShips(t *testing.T) {
	sink := &memSink{}
	NewLogger(Options{Writer: failWriter{}, Sink: sink}).Info("x")
	if len(sink.lines()) != 1 {
		t.Fatal("line not shipped when the local writer fails")
	}
}

func TestLibraryLogger(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(Options{Writer: &buf, Level: slog.LevelInfo}).With("component", "replicate")
	lib := LibraryLogger(log, "go-mysql")
	lib.Info("begin to sync binlog")
	lib.Warn("retry sync")
	out := buf.String()
	if strings.Contains(out, "begin to sync") || !strings.Contains(out, `"msg":"retry sync"`) ||
		!strings.Contains(out, `"library":"go-mysql"`) || !strings.Contains(out, `"component":"replicate"`) {
		t.Fatalf("library lines:\n%s", out)
	}
	buf.Reset()
	dbg := LibraryLogger(NewLogger(Options{Writer: &buf, Level: slog.LevelDebug}), "x")
	dbg.Info("routine")
	if !strings.Contains(buf.String(), `"level":"DEBUG","msg":"routine"`) {
		t.Fatalf("info not lowered to debug: %s", buf.String())
	}
}
