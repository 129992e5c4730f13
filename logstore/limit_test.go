package logstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLimit: lines older than the age limit go; past the size limit the
// oldest go first until the store's pages in use fit, and the newest
// lines stay searchable.
func TestLimit(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "logs.db"))
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	pad := strings.Repeat("x", 400)
	var lines [][]byte
	for i := range 4000 {
		at := now.Add(-time.Duration(4000-i) * time.Minute) // ~2.8 days back to now
		lines = append(lines, line(t, map[string]any{"time": at.Format(time.RFC3339Nano), "level": "INFO",
			"msg": fmt.Sprintf("line %d", i), "cloud": "aws", "component": "ingest", "trace_id": fmt.Sprintf("t%d", i), "pad": pad}))
	}
	if _, err := s.Insert(ctx, lines); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM logs`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Age: one day keeps the last 1440 minutes.
	n, err := s.Limit(ctx, 24*time.Hour, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if got := count(); got != 1439 && got != 1440 || n != int64(4000-got) {
		t.Fatalf("after the age limit: %d lines kept, %d deleted", got, n)
	}
	// Size: a quarter of what is used now.
	used, err := s.Used(ctx)
	if err != nil {
		t.Fatal(err)
	}
	limit := used / 4
	if _, err := s.Limit(ctx, 24*time.Hour, limit); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Used(ctx)
	if after > limit {
		t.Fatalf("used %d bytes after the size limit of %d", after, limit)
	}
	kept := count()
	if kept == 0 || kept > 1440/2 {
		t.Fatalf("%d lines kept", kept)
	}
	t.Logf("size limit %d B: %d → %d B, %d lines kept", limit, used, after, kept)
	// The newest line is still there; the oldest kept is newer than every deleted one.
	if es, err := s.Search(ctx, Query{Text: "3999"}); err != nil || len(es) != 1 {
		t.Fatalf("newest line: %v, %v", es, err)
	}
	if es, _ := s.Search(ctx, Query{TraceID: "t2560"}); len(es) != 0 {
		t.Fatalf("an old line survived: %v", msgs(es))
	}
}
