package sqlitesrc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
)

// TestBusyBatchReadsAgainAtOnce: after a batch at least a quarter of
// MaxBatch (but not full), the feed reads again at once instead of
// sleeping Poll, so changes written while that batch was handled arrive
// without the poll's wait; a batch under a quarter waits Poll.
func TestBusyBatchReadsAgainAtOnce(t *testing.T) {
	db := openDB(t)
	mustExec(t, db, `CREATE TABLE a (id INTEGER PRIMARY KEY)`)
	src, err := Open(context.Background(), db, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const poll = 5 * time.Second
	opts := replicate.StreamOptions{MaxBatch: 8, Poll: poll}
	for _, tc := range []struct {
		name     string
		first    int // rows waiting before the stream starts
		wantWait bool
	}{
		{"busy", 3, false}, // 3 ≥ 8/4: read again at once
		{"quiet", 1, true}, // 1 < 8/4: wait Poll
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := src.Current(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			base := 1000 * (tc.first + 1)
			// One transaction, so that its changes come as one batch.
			if err := db.Tx(context.Background(), func(tx *sql.Tx) error {
				for i := range tc.first {
					if _, err := tx.Exec(`INSERT INTO a VALUES (?)`, base+i); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*poll)
			defer cancel()
			var firstAt, secondAt time.Time
			batches := 0
			err = src.Stream(ctx, cur, opts, func(ctx context.Context, b replicate.Batch) error {
				batches++
				switch batches {
				case 1:
					firstAt = time.Now()
					// Written while the batch is handled.
					mustExec(t, db, `INSERT INTO a VALUES (?)`, base+100)
				case 2:
					secondAt = time.Now()
					cancel()
				}
				return nil
			})
			if ctx.Err() == nil && err != nil {
				t.Fatal(err)
			}
			if secondAt.IsZero() {
				t.Fatalf("no second batch within %s", 3*poll)
			}
			waited := secondAt.Sub(firstAt)
			if tc.wantWait && waited < poll/2 {
				t.Errorf("a batch of %d read again after %s, want about Poll (%s)", tc.first, waited, poll)
			}
			if !tc.wantWait && waited >= poll/2 {
				t.Errorf("a busy batch of %d read again after %s, want at once (Poll %s)", tc.first, waited, poll)
			}
		})
	}
}

// TestNextBatchReadWhileApplied: the feed reads its next batch while fn
// applies the last one, so that batch carries the rows as they were
// before fn returned; a change made meanwhile comes in a later batch,
// and fn's error ends the stream with that error.
func TestNextBatchReadWhileApplied(t *testing.T) {
	db := openDB(t)
	mustExec(t, db, `CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`)
	src, err := Open(context.Background(), db, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mustExec(t, db, `INSERT INTO a VALUES (1, 'before'), (2, 'before'), (3, 'before'), (4, 'before')`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errStop := errors.New("stop here")
	var seen []string
	err = src.Stream(ctx, "", replicate.StreamOptions{MaxBatch: 2, Poll: 10 * time.Millisecond}, func(ctx context.Context, b replicate.Batch) error {
		for _, c := range b.Changes {
			seen = append(seen, fmt.Sprintf("%v=%v", c.Key[0], c.Row["v"]))
		}
		switch len(seen) {
		case 2:
			// The second batch (rows 3 and 4) is read while this one
			// is applied.
			time.Sleep(300 * time.Millisecond)
			mustExec(t, db, `UPDATE a SET v = 'after' WHERE id = 3`)
		case 5:
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Stream ended with %v, want fn's error", err)
	}
	if want := []string{"1=before", "2=before", "3=before", "4=before", "3=after"}; !slices.Equal(seen, want) {
		t.Fatalf("batches carried %v, want %v", seen, want)
	}
}
