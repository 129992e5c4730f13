package sqlite

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestRareWriterIsNotStarved: while busy writers commit transaction after
// transaction, a writer that comes once in a while (a lease renewal) gets
// the database within a few of their transactions, never after seconds,
// and none of its statements times out.
func TestRareWriterIsNotStarved(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t, "gate.db")
	for _, q := range []string{
		`CREATE TABLE rows (k INTEGER PRIMARY KEY, v TEXT)`,
		`CREATE TABLE lease (name TEXT PRIMARY KEY, version INTEGER)`,
		`INSERT INTO lease VALUES ('l', 0)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	const busy = 6
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var busyTx int
	for w := range busy {
		wg.Go(func() {
			for k := w * 1_000_000; ; k += 200 {
				select {
				case <-stop:
					return
				default:
				}
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Error(err)
					return
				}
				for i := range 200 {
					if _, err := tx.ExecContext(ctx, `INSERT INTO rows VALUES (?, 'some value of a row')`, k+i); err != nil {
						t.Error(err)
						tx.Rollback()
						return
					}
				}
				if err := tx.Commit(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				busyTx++
				mu.Unlock()
			}
		})
	}
	var worst time.Duration
	var failed, renewed int
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		start := time.Now()
		_, err := db.ExecContext(rctx, `UPDATE lease SET version = version + 1 WHERE name = 'l'`)
		cancel()
		worst = max(worst, time.Since(start))
		if err != nil {
			failed++
			continue
		}
		renewed++
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("busy transactions %d, renewals %d, failed %d, worst wait %s", busyTx, renewed, failed, worst)
	if busyTx < 20 {
		t.Fatalf("only %d busy transactions ran: the test did not load the database", busyTx)
	}
	if failed > 0 || worst > 500*time.Millisecond {
		t.Fatalf("the rare writer was starved: %d of %d statements timed out after 1s, worst wait %s", failed, failed+renewed, worst)
	}
}
