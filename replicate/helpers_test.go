package replicate_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func quietLogger() *slog.Logger {
	if os.Getenv("REPLICATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openAt(tb testing.TB, path string) *sqldb.DB {
	tb.Helper()
	db, err := sqldb.Open(context.Background(), "sqlite://"+path, quietLogger())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func openDB(tb testing.TB, name string) *sqldb.DB {
	tb.Helper()
	return openAt(tb, filepath.Join(tb.TempDir(), name+".db"))
}

func exec(tb testing.TB, db *sqldb.DB, query string, args ...any) {
	tb.Helper()
	sourcetest.Exec(tb, db, query, args...)
}

func count(tb testing.TB, db *sqldb.DB, query string, args ...any) int64 {
	tb.Helper()
	return sourcetest.Count(tb, db, query, args...)
}

// inTx runs statements in one transaction.
func inTx(tb testing.TB, db *sqldb.DB, fn func(tx *sql.Tx) error) {
	tb.Helper()
	if err := db.Tx(context.Background(), fn); err != nil {
		tb.Fatal(err)
	}
}

const itemsDDL = `CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, price DECIMAL_TEXT(10,2), at TIMESTAMP_TEXT, _trace_id VARCHAR(64))`

// fillItems inserts items lo..hi-1 in one transaction.
func fillItems(tb testing.TB, db *sqldb.DB, lo, hi int) {
	tb.Helper()
	inTx(tb, db, func(tx *sql.Tx) error {
		st, err := tx.Prepare(`INSERT INTO items (id, name, qty, price, at, _trace_id) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		base := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
		for i := lo; i < hi; i++ {
			var qty any = int64(i % 17)
			if i%10 == 0 {
				qty = nil
			}
			at := base.Add(time.Duration(i) * time.Second).Format("2006-01-02T15:04:05.000000Z")
			if _, err := st.Exec(i, "item-"+strconv.Itoa(i), qty, fmt.Sprintf("%d.%02d", i, i%100), at, fmt.Sprintf("trace-%d", i)); err != nil {
				return err
			}
		}
		return nil
	})
}

func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	sourcetest.WaitFor(tb, what, timeout, cond)
}

// currentSeq is the source's change-log position.
func currentSeq(tb testing.TB, db *sqldb.DB) int64 {
	tb.Helper()
	src, err := sqlitesrc.Open(context.Background(), db, nil, quietLogger())
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	p, err := src.Current(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	n, _ := sqlitesrc.ParsePosition(p)
	return n
}

// waitCaughtUp waits until the stream has applied everything the source
// logged so far.
func waitCaughtUp(tb testing.TB, r *sourcetest.Running, src *sqldb.DB) {
	tb.Helper()
	want := currentSeq(tb, src)
	waitFor(tb, fmt.Sprintf("position %d", want), 30*time.Second, func() bool {
		st := r.Stream.Status()
		if st.Phase != replicate.PhaseCDC {
			return false
		}
		n, err := sqlitesrc.ParsePosition(st.Position)
		return err == nil && n >= want
	})
}

func mustValidate(tb testing.TB, src, dst *sqldb.DB, tables ...string) {
	tb.Helper()
	rep, err := replicate.Validate(context.Background(), src, dst, tables, 100)
	if err != nil {
		tb.Fatal(err)
	}
	if !rep.OK() {
		tb.Fatalf("source and target differ:\n%s", rep)
	}
}

// hook records what OnApplied saw.
type hook struct {
	mu      sync.Mutex
	batches []replicate.Batch
	after   func(replicate.Batch)
}

func (h *hook) fn(b replicate.Batch) {
	h.mu.Lock()
	h.batches = append(h.batches, b)
	after := h.after
	h.mu.Unlock()
	if after != nil {
		after(b)
	}
}

func (h *hook) snapshot() []replicate.Batch {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]replicate.Batch(nil), h.batches...)
}
