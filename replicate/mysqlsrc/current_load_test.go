package mysqlsrc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/mysqlsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
)

// testCurrentUnderLoad: while writers commit single-row transactions
// without pause, each round takes Current, reads the table as a full load
// would, writes a marker row and streams from the position up to the
// marker. Every row acknowledged before the marker was written must be in
// the load or in the stream.
func testCurrentUnderLoad(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := sourcetest.Open(t, e.mysqlURL(t, ""))
	sourcetest.Exec(t, db, itemsDDL)
	src, err := mysqlsrc.Open(ctx, db, replicate.SourceConfig{Name: "underload", Tables: []string{"items"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 8, 300
	const markerBase = int64(1) << 40
	var next atomic.Int64
	var mu sync.Mutex
	acked := map[int64]bool{}
	var wg sync.WaitGroup
	werr := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				id := next.Add(1)
				if _, err := db.ExecContext(ctx, "INSERT INTO items (id, name) VALUES (?, 'w')", id); err != nil {
					if ctx.Err() == nil {
						werr <- err
					}
					return
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	lost := 0
	for round := range rounds {
		pos, err := src.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		rows, err := db.QueryContext(ctx, "SELECT id FROM items")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			seen[id] = true
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		want := make([]int64, 0, len(acked))
		for id := range acked {
			want = append(want, id)
		}
		mu.Unlock()
		marker := markerBase + int64(round)
		sourcetest.Exec(t, db, "INSERT INTO items (id, name) VALUES (?, 'marker')", marker)
		sctx, stop := context.WithTimeout(ctx, 2*time.Minute)
		done := errors.New("done")
		err = src.Stream(sctx, pos, replicate.StreamOptions{}, func(_ context.Context, b replicate.Batch) error {
			for _, ch := range b.Changes {
				id, ok := ch.Key[0].(int64)
				if !ok {
					return fmt.Errorf("key %T %v", ch.Key[0], ch.Key[0])
				}
				seen[id] = true
				if id == marker {
					return done
				}
			}
			return nil
		})
		stop()
		if !errors.Is(err, done) {
			t.Fatalf("round %d: stream from %s: %v", round, pos, err)
		}
		missing := 0
		for _, id := range want {
			if !seen[id] {
				missing++
			}
		}
		if missing > 0 {
			lost++
			t.Errorf("round %d: %d of %d acknowledged rows neither loaded nor streamed from %s", round, missing, len(want), pos)
		}
	}
	select {
	case err := <-werr:
		t.Fatal(err)
	default:
	}
	cancel()
	wg.Wait()
	// Independent count: every acknowledged row is in the source.
	if n := sourcetest.Count(t, db, "SELECT COUNT(*) FROM items WHERE id < ?", markerBase); n < int64(len(acked)) {
		t.Fatalf("source has %d writer rows, %d acknowledged", n, len(acked))
	}
	t.Logf("%d rounds, %d rows written, rounds losing rows: %d", rounds, len(acked), lost)
}
