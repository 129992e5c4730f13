package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
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

// TestWriteLockCountsEachWriter: the database's dialect reports, per
// writer the context names, the writes, how long they queued and how
// long they held the write lock, and how many queue now; reads take no
// part, and a writer the context does not name counts as "other".
func TestWriteLockCountsEachWriter(t *testing.T) {
	ctx := context.Background()
	db := openWithTable(t, `CREATE TABLE t (k INTEGER PRIMARY KEY)`) // unnamed: "other"
	const hold = 150 * time.Millisecond
	slow := sqldb.WithWriter(ctx, "slow")
	tx, err := db.BeginTx(slow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(slow, `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	// A read-only transaction and a query do not queue.
	ro, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := ro.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ro.Rollback()
	queued := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(sqldb.WithWriter(ctx, "queued"), `INSERT INTO t VALUES (2)`)
		queued <- err
	}()
	cctx, cancel := context.WithCancel(sqldb.WithWriter(ctx, "gave-up"))
	gaveUp := make(chan error, 1)
	go func() {
		_, err := db.BeginTx(cctx, nil)
		gaveUp <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for st, _ := db.WriteLock(); st.Waiting < 2; st, _ = db.WriteLock() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting = %d, want 2 writers queued", st.Waiting)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The holder's hold counts while it lasts; its write once it ends.
	if st, _ := db.WriteLock(); !slices.ContainsFunc(st.Writers, func(w sqldb.WriterStats) bool {
		return w.Writer == "slow" && w.Held > 0 && w.Writes == 0
	}) {
		t.Errorf("while slow holds the lock: %+v, want slow's hold so far and no write yet", st.Writers)
	}
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled writer: %v, want context.Canceled", err)
	}
	time.Sleep(hold)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
	st, ok := db.WriteLock()
	if !ok {
		t.Fatal("the SQLite dialect is not a sqldb.WriteLocker")
	}
	if st.Waiting != 0 {
		t.Errorf("waiting = %d after every writer went, want 0", st.Waiting)
	}
	by := map[string]sqldb.WriterStats{}
	var names []string
	for _, w := range st.Writers {
		by[w.Writer] = w
		names = append(names, w.Writer)
	}
	if want := []string{"gave-up", "other", "queued", "slow"}; !slices.Equal(names, want) {
		t.Fatalf("writers %q, want %q (sorted)", names, want)
	}
	if w := by["slow"]; w.Writes != 1 || w.Held < hold || w.Wait != 0 {
		t.Errorf("slow: %+v, want 1 write held >= %s without waiting", w, hold)
	}
	if w := by["queued"]; w.Writes != 1 || w.Wait < hold || w.Held <= 0 || w.Held >= hold {
		t.Errorf("queued: %+v, want 1 write that waited >= %s", w, hold)
	}
	if w := by["gave-up"]; w.Writes != 0 || w.Wait <= 0 || w.Held != 0 {
		t.Errorf("gave-up: %+v, want a wait and no write", w)
	}
	if w := by[sqldb.UnnamedWriter]; w.Writes != 1 {
		t.Errorf("other: %+v, want the CREATE TABLE", w)
	}
}

// TestWriteLockTotalsNeverShrink: read while writers come and go, each
// writer's held time and writes only grow (they are exported as
// counters): a hold moves from "held now" to the totals at once.
func TestWriteLockTotalsNeverShrink(t *testing.T) {
	ctx := context.Background()
	db := openWithTable(t, `CREATE TABLE t (k INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)`)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		wctx := sqldb.WithWriter(ctx, name)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.ExecContext(wctx, `INSERT INTO t (v) VALUES ('x')`); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	last := map[string]sqldb.WriterStats{}
	reads := 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); reads++ {
		st, _ := db.WriteLock()
		for _, w := range st.Writers {
			if p := last[w.Writer]; w.Held < p.Held || w.Writes < p.Writes || w.Wait < p.Wait {
				t.Fatalf("read %d: %s went from %+v to %+v", reads, w.Writer, p, w)
			}
			last[w.Writer] = w
		}
	}
	close(stop)
	wg.Wait()
	if last["a"].Writes == 0 || last["b"].Writes == 0 {
		t.Fatalf("writers did not write: %+v", last)
	}
	t.Logf("%d reads, %+v", reads, last)
}

// openWithTable opens a new database as the driver does (its dialect
// reports the write lock) and runs create in it.
func openWithTable(t testing.TB, create string) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "lock.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(ctx, create); err != nil {
		t.Fatal(err)
	}
	return db
}
