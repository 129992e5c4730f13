package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// syncHook stands in for the fsync of a database's log: each call waits
// until the test lets it through (hold) or returns at once.
type syncHook struct {
	mu      sync.Mutex
	hold    bool
	err     error
	calls   []string
	entered chan string   // each call, once it has begun
	release chan struct{} // lets one held call through
}

func hookSyncs(t *testing.T, db *sqldb.DB) *syncHook {
	t.Helper()
	g := db.Dialect.(Dialect).gate
	h := &syncHook{entered: make(chan string, 100), release: make(chan struct{})}
	g.wal.syncFile = func(path string) error {
		h.mu.Lock()
		h.calls = append(h.calls, path)
		hold, err := h.hold, h.err
		h.mu.Unlock()
		h.entered <- path
		if hold {
			<-h.release
		}
		return err
	}
	return h
}

func (h *syncHook) set(hold bool, err error) {
	h.mu.Lock()
	h.hold, h.err = hold, err
	h.mu.Unlock()
}

// insertTx inserts k in a write transaction and commits it.
func insertTx(ctx context.Context, db *sqldb.DB, k int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (?)`, k); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10 s", what)
	}
	var zero T
	return zero
}

func notYet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s", what)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestCommitIsDurableOutsideTheLock: a commit returns only after a sync
// of the log that began after it, and the write lock is free while that
// sync runs: the next writer begins, writes and commits meanwhile (its
// commit then waits for a sync of its own, which begins after the first
// one ends). What was committed is visible to readers during the sync.
func TestCommitIsDurableOutsideTheLock(t *testing.T) {
	ctx := context.Background()
	db := openWithTable(t, `CREATE TABLE t (k INTEGER PRIMARY KEY)`)
	h := hookSyncs(t, db)
	h.set(true, nil)

	first := make(chan error, 1)
	go func() { first <- insertTx(ctx, db, 1) }()
	if got := waitFor(t, h.entered, "the first commit's sync"); got != db.Dialect.(Dialect).gate.wal.wal {
		t.Fatalf("synced %s, want the log", got)
	}
	notYet(t, first, "the first commit returned before its sync ended")

	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows visible during the sync: %d, %v; want 1", n, err)
	}
	// The lock is free: a second writer gets through its statements
	// while the first sync is held, and waits only at its commit.
	second := make(chan error, 1)
	wrote := make(chan struct{})
	go func() {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		tx, err := db.BeginTx(lctx, nil)
		if err != nil {
			second <- err
			return
		}
		if _, err := tx.ExecContext(lctx, `INSERT INTO t VALUES (2)`); err != nil {
			tx.Rollback()
			second <- err
			return
		}
		close(wrote)
		second <- tx.Commit()
	}()
	waitFor(t, wrote, "a second writer's statements while the first commit syncs")
	notYet(t, second, "the second commit returned before a sync of its own")

	h.release <- struct{}{} // the first sync ends
	if err := waitFor(t, first, "the first commit"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h.entered, "the second commit's sync (a round that began after it)")
	notYet(t, second, "the second commit returned before its sync ended")
	h.release <- struct{}{}
	if err := waitFor(t, second, "the second commit"); err != nil {
		t.Fatal(err)
	}
}

// TestCommitsShareASync: commits that end while a sync runs are made
// durable by one sync, not one each.
func TestCommitsShareASync(t *testing.T) {
	ctx := context.Background()
	db := openWithTable(t, `CREATE TABLE t (k INTEGER PRIMARY KEY)`)
	h := hookSyncs(t, db)
	h.set(true, nil)
	done := make(chan error, 10)
	go func() { done <- insertTx(ctx, db, 0) }()
	waitFor(t, h.entered, "the first sync")
	for k := 1; k <= 5; k++ {
		go func() { done <- insertTx(ctx, db, k) }()
	}
	// The five commit while the first sync is held, then wait.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows committed while a sync was held; want 6", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.set(false, nil)
	h.release <- struct{}{}
	for range 6 {
		if err := waitFor(t, done, "a commit"); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(h.calls); got != 2 {
		t.Errorf("%d syncs for 6 commits; want 2 (the first, and one the five shared)", got)
	}
	if st, _ := db.WriteLock(); st.Syncs < 2 {
		t.Errorf("WriteLock().Syncs = %d; want at least 2", st.Syncs)
	}
}

// TestWaitDurableSyncsAfterTheCall: a reader's WaitDurable does not count
// a sync that was already running when it was called (the commit it read
// may have ended after that sync began): it waits for the next one.
func TestWaitDurableSyncsAfterTheCall(t *testing.T) {
	ctx := context.Background()
	db := openWithTable(t, `CREATE TABLE t (k INTEGER PRIMARY KEY)`)
	h := hookSyncs(t, db)
	h.set(true, nil)
	commit := make(chan error, 1)
	go func() { commit <- insertTx(ctx, db, 1) }()
	waitFor(t, h.entered, "the commit's sync")

	read := make(chan error, 1)
	go func() { read <- db.WaitDurable(ctx) }()
	notYet(t, read, "WaitDurable returned while the only sync had begun before it")
	h.release <- struct{}{}
	waitFor(t, h.entered, "the sync WaitDurable waits for")
	notYet(t, read, "WaitDurable returned before its sync ended")
	h.release <- struct{}{}
	if err := waitFor(t, read, "WaitDurable"); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(t, commit, "the commit"); err != nil {
		t.Fatal(err)
	}

	// A cancelled wait returns the context's error.
	h.set(true, nil)
	go func() { commit <- insertTx(ctx, db, 2) }()
	waitFor(t, h.entered, "a sync")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.WaitDurable(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitDurable with a cancelled context: %v", err)
	}
	h.set(false, nil)
	h.release <- struct{}{}
	if err := waitFor(t, commit, "the commit"); err != nil {
		t.Fatal(err)
	}
}

// TestFailedSyncIsSticky: a commit whose sync fails returns the error, and
// so does every later commit, statement and WaitDurable: after a failed
// fsync the kernel may have dropped what it could not write, so no later
// sync can vouch for it.
func TestFailedSyncIsSticky(t *testing.T) {
	ctx := context.Background()
	db := openWithTable(t, `CREATE TABLE t (k INTEGER PRIMARY KEY)`)
	h := hookSyncs(t, db)
	h.set(false, syscall.EIO)
	go func() {
		for range h.entered {
		}
	}()
	if err := insertTx(ctx, db, 1); !errors.Is(err, syscall.EIO) {
		t.Fatalf("commit whose sync failed: %v; want EIO", err)
	}
	h.set(false, nil)
	if err := insertTx(ctx, db, 2); !errors.Is(err, syscall.EIO) {
		t.Errorf("a later commit: %v; want the first error", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO t VALUES (3)`); !errors.Is(err, syscall.EIO) {
		t.Errorf("a later statement: %v; want the first error", err)
	}
	if err := db.WaitDurable(ctx); !errors.Is(err, syscall.EIO) {
		t.Errorf("WaitDurable: %v; want the first error", err)
	}
}

// TestSyncsTheRealLog: with the real fsync, a commit syncs the log and,
// once, its directory; a log that is gone has nothing to sync.
func TestSyncsTheRealLog(t *testing.T) {
	ctx := context.Background()
	db := openWithTable(t, `CREATE TABLE t (k INTEGER PRIMARY KEY)`)
	w := db.Dialect.(Dialect).gate.wal
	before := w.rounds()
	if err := insertTx(ctx, db, 1); err != nil {
		t.Fatal(err)
	}
	if w.rounds() <= before {
		t.Errorf("rounds %d after a commit, %d before", w.rounds(), before)
	}
	if !w.dirDone {
		t.Error("the log's directory was never synced")
	}
	if _, err := os.Stat(w.wal); err != nil {
		t.Fatalf("the log: %v", err)
	}
	gone := newWALSyncer(filepath.Join(t.TempDir(), "none.db"), nil)
	if err := gone.after(ctx); err != nil {
		t.Errorf("syncing a log that does not exist: %v", err)
	}
}

// TestWaitDurableAfterAnotherOpener: WaitDurable syncs nothing when
// nothing was committed since the last sync began, and syncs when another
// opener of the file (another process, whose syncs this one cannot see)
// committed since.
func TestWaitDurableAfterAnotherOpener(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "two.db")
	open := func() *sqldb.DB {
		db, err := sqldb.Open(ctx, "sqlite://"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	db, other := open(), open()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	syncs := func() int64 { st, _ := db.WriteLock(); return st.Syncs }
	if err := insertTx(ctx, db, 1); err != nil {
		t.Fatal(err)
	}
	n := syncs()
	for range 3 {
		if err := db.WaitDurable(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := syncs(); got != n {
		t.Errorf("%d syncs with nothing committed since the last; want none", got-n)
	}
	if err := insertTx(ctx, other, 2); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	if got := syncs(); got != n+1 {
		t.Errorf("%d syncs after another opener's commit; want 1", got-n)
	}
}
