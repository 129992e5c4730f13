package logstore

import (
	"context"
	"path/filepath"
	"testing"
)

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
