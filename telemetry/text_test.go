package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

// TestTextFormat: the local lines are text a person reads (colored on
// demand) while the sink still gets JSON.
func TestTextFormat(t *testing.T) {
	var plain, colored bytes.Buffer
	sink := &memSink{}
	ctx := WithTrace(context.Background(), "t1")
	for _, tt := range []struct {
		buf   *bytes.Buffer
		color bool
	}{{&plain, false}, {&colored, true}} {
		log := NewLogger(Options{Cloud: "azure", Writer: tt.buf, Text: true, Color: tt.color, Sink: sink, Level: slog.LevelDebug}).With("component", "publish")
		log.InfoContext(ctx, "aggregates published", "records", 3, "note", "two words")
		log.Error("publish failed", "err", "container does not exist")
	}
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	re := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} INFO  azure/publish aggregates published trace_id=t1 records=3 note="two words"$`)
	if len(lines) != 2 || !re.MatchString(lines[0]) ||
		!strings.HasSuffix(lines[1], `ERROR azure/publish publish failed err="container does not exist"`) {
		t.Fatalf("text lines:\n%s", plain.String())
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Fatal("colors without Color")
	}
	if !strings.Contains(colored.String(), "\x1b[36mINFO \x1b[0m") || !strings.Contains(colored.String(), "\x1b[31m") {
		t.Fatalf("colored lines: %q", colored.String())
	}
	for _, l := range sink.lines() {
		if !strings.HasPrefix(l, `{"time":`) {
			t.Fatalf("the sink got %q, want JSON", l)
		}
	}
	if got := string(TextLine([]byte("not json"), true)); got != "not json" {
		t.Fatalf("non-JSON line became %q", got)
	}
}
