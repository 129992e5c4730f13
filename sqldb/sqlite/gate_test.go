package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// openGated opens a database file, tuned (a write gate, checkpoints
// beside the writers) or not, with a table t.
func openGated(t testing.TB, tuned bool) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "g.db")
	db, err := openFile(context.Background(), path, tuned)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, w INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db, path
}

// Writers of one pool, in transactions and in single statements, all
// commit; the rows are counted through a pool of its own.
func TestGateEveryWriteCommits(t *testing.T) {
	db, path := openGated(t, true)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := w*each + i
				var err error
				if i%2 == 0 {
					_, err = db.Exec(`INSERT INTO t VALUES (?, ?)`, id, w)
				} else {
					var tx *sql.Tx
					if tx, err = db.Begin(); err == nil {
						if _, err = tx.Exec(`INSERT INTO t VALUES (?, ?)`, id, w); err == nil {
							err = tx.Commit()
						} else {
							tx.Rollback()
						}
					}
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d, write %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	other, err := openFile(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var n, ws int
	if err := other.QueryRow(`SELECT count(*), count(DISTINCT w) FROM t`).Scan(&n, &ws); err != nil || n != writers*each || ws != writers {
		t.Fatalf("rows %d from %d writers, %v; want %d from %d", n, ws, err, writers*each, writers)
	}
}

// However a write transaction ends (commit, rollback, its context
// cancelled, its connection closed), the next writer gets its turn.
func TestGatePassesOn(t *testing.T) {
	db, _ := openGated(t, true)
	next := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO t VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	next("a commit")

	if tx, err = db.Begin(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO t VALUES (1, 1)`); err == nil {
		t.Fatal("a duplicate key was accepted")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	next("a failed statement and a rollback")

	ctx, cancel := context.WithCancel(context.Background())
	if _, err = db.BeginTx(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cancel() // database/sql rolls the transaction back
	next("a cancelled context")

	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.BeginTx(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := conn.Raw(func(dc any) error { return dc.(*cachingConn).Close() }); err != nil {
		t.Fatal(err)
	}
	next("a closed connection")
}

// Readers never wait for the gate; a writer waits until its context
// ends, and says so.
func TestGateReadersPassWritersWait(t *testing.T) {
	db, _ := openGated(t, true)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO t VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ro, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := ro.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("a reader during a write saw %d rows, %v; want 0 (its snapshot)", n, err)
	}
	ro.Rollback()

	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if _, err := db.BeginTx(short, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a writer waiting for the gate got %v; want its context's deadline", err)
	}
	if _, err := db.ExecContext(short, `INSERT INTO t VALUES (2, 2)`); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a statement waiting for the gate got %v; want its context's deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the waits took %v", d)
	}
}

// A wait for the gate ends after its bound: the caller goes on without
// it (SQLite's busy timeout decides).
func TestGateWaitIsBounded(t *testing.T) {
	g := newWriteGate(50 * time.Millisecond)
	if held, err := g.enter(context.Background()); !held || err != nil {
		t.Fatalf("an open gate: %v %v", held, err)
	}
	start := time.Now()
	if held, err := g.enter(context.Background()); held || err != nil {
		t.Fatalf("a taken gate: %v %v; want not held, no error", held, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("gave up after %v; want 50ms", d)
	}
	g.leave()
	if held, _ := g.enter(context.Background()); !held {
		t.Fatal("the gate was not passed on")
	}
}

// BenchmarkContendedWrites runs small write transactions from several
// goroutines on one pool, with the write gate and checkpoints beside the
// writers ("gate") and with SQLite's busy handler and checkpoints in the
// commits ("busy-handler"), and reports how long a transaction waited to begin (p50,
// p99, max) and the commits per second.
func BenchmarkContendedWrites(b *testing.B) {
	for _, c := range []struct {
		name  string
		gated bool
	}{{"gate", true}, {"busy-handler", false}} {
		b.Run(c.name, func(b *testing.B) {
			db, _ := openGated(b, c.gated)
			const writers = 4
			var mu sync.Mutex
			var waits []time.Duration
			var wg sync.WaitGroup
			per := max(1, b.N/writers)
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				wg.Go(func() {
					for i := range per {
						t0 := time.Now()
						tx, err := db.Begin()
						if err != nil {
							b.Error(err)
							return
						}
						waited := time.Since(t0)
						if _, err := tx.Exec(`INSERT INTO t VALUES (?, ?)`, w*per+i, w); err != nil {
							b.Error(err)
						}
						time.Sleep(200 * time.Microsecond) // work inside the transaction
						if err := tx.Commit(); err != nil {
							b.Error(err)
						}
						mu.Lock()
						waits = append(waits, waited)
						mu.Unlock()
						time.Sleep(time.Millisecond) // work before the next one (a loader parses its next object)
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			slices.Sort(waits)
			q := func(f float64) float64 { return float64(waits[int(f*float64(len(waits)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "wait-p50-ms")
			b.ReportMetric(q(0.99), "wait-p99-ms")
			b.ReportMetric(q(1), "wait-max-ms")
			b.ReportMetric(float64(len(waits))/elapsed.Seconds(), "commits/s")
		})
	}
}

// A pool's commits leave the write-ahead log to its checkpointer: its
// connections do not checkpoint (wal_autocheckpoint 0), and what they
// wrote reaches the database file within a few checkpoint intervals.
func TestCheckpointsBesideTheWriters(t *testing.T) {
	db, path := openGated(t, true)
	var auto int
	if err := db.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("wal_autocheckpoint = %d, %v; want 0", auto, err)
	}
	before := fileSize(t, path)
	const n, size = 64, 64 << 10 // 4 MiB, about 1,000 pages
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`CREATE TABLE b (v BLOB)`); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := tx.Exec(`INSERT INTO b VALUES (randomblob(?))`, size); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, path); got > before+size {
		t.Fatalf("the commit checkpointed: the database file went from %d to %d bytes", before, got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for fileSize(t, path) < before+n*size {
		if time.Now().After(deadline) {
			t.Fatalf("the database file has %d bytes 10s after the commit; want the %d written", fileSize(t, path), n*size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
