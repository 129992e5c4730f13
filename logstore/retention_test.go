package logstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRetention deletes by age, then the oldest lines while the store is
// over its size bound; the counts are read with SQLite's own client.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "logs.db")
	s, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	var lines [][]byte
	for i := 0; i < 100; i++ {
		lines = append(lines, fmt.Appendf(nil, `{"time":%q,"level":"INFO","msg":"old %d"}`, now.Add(-48*time.Hour).Format(time.RFC3339Nano), i))
	}
	pad := strings.Repeat("x", 1000)
	for i := 0; i < 3000; i++ {
		lines = append(lines, fmt.Appendf(nil, `{"time":%q,"level":"INFO","msg":"new %d","pad":%q}`, now.Format(time.RFC3339Nano), i, pad))
	}
	for i := 0; i < len(lines); i += 500 {
		if _, err := s.Insert(ctx, lines[i:min(i+500, len(lines))]); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(where string) int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM logs WHERE ` + where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// By age: the 48 h old lines go, nothing else.
	n, err := s.Retain(ctx, Retention{MaxAge: 24 * time.Hour, MaxBytes: 1 << 40})
	if err != nil || n != 100 || count("msg LIKE 'old %'") != 0 || count("msg LIKE 'new %'") != 3000 {
		t.Fatalf("age: deleted %d (%v); old %d new %d", n, err, count("msg LIKE 'old %'"), count("msg LIKE 'new %'"))
	}
	// By size: the oldest go until the store fits; the newest stay.
	before, _ := s.Size(ctx)
	limit := before / 3
	if _, err := s.Retain(ctx, Retention{MaxAge: 24 * time.Hour, MaxBytes: limit}); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Size(ctx)
	left := count("1=1")
	if after > limit || left == 0 || left > 1500 || count("msg = 'new 2999'") != 1 || count("msg = 'new 0'") != 0 {
		t.Fatalf("size: %d → %d bytes (bound %d), %d lines left", before, after, limit, left)
	}
	// The search index follows: a deleted line is not found.
	if es, err := s.Search(ctx, Query{Text: "new 0", Limit: 10}); err != nil || len(es) != 0 && es[0].Msg == "new 0" {
		t.Fatalf("search after retention: %v %v", es, err)
	}
	t.Logf("size %d → %d bytes (bound %d), %d lines left", before, after, limit, left)
}

// TestInsertBatchOnce: a batch sent again under the same key is stored once.
func TestInsertBatchOnce(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "logs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lines := [][]byte{[]byte(`{"msg":"a"}`), []byte(`{"msg":"b"}`)}
	for i, want := range []int{2, 0, 0} {
		if n, err := s.InsertBatch(ctx, "q1:3:0", lines); err != nil || n != want {
			t.Fatalf("send %d: %d, %v; want %d", i, n, err, want)
		}
	}
	if n, err := s.InsertBatch(ctx, "q1:3:24", lines); err != nil || n != 2 {
		t.Fatalf("another batch: %d, %v", n, err)
	}
	es, err := s.Search(ctx, Query{Limit: 100})
	if err != nil || len(es) != 4 {
		t.Fatalf("%d entries, %v; want 4", len(es), err)
	}
}
