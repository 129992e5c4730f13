package replicate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/replicate/sqlitesrc"
)

func TestFullLoadThenCDC(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	exec(t, src, itemsDDL)
	if err := replicate.Prepare(ctx, src, []string{"items"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	fillItems(t, src, 1, 5001)

	var h hook
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 700, Poll: 5 * time.Millisecond, OnApplied: h.fn})
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
	if st := r.Stream.Status(); st.SnapshotRows != 5000 {
		t.Fatalf("snapshot rows = %d, want 5000", st.SnapshotRows)
	}

	// Inserts, updates, deletes and primary-key changes.
	fillItems(t, src, 5001, 5101)
	exec(t, src, `UPDATE items SET name = name || '-upd', qty = NULL WHERE id % 7 = 0`)
	exec(t, src, `DELETE FROM items WHERE id % 11 = 0`)
	exec(t, src, `UPDATE items SET id = id + 100000 WHERE id <= 20`)
	exec(t, src, `UPDATE items SET price = '0.50', at = NULL WHERE id = 100`)
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
	if n := count(t, dst, `SELECT COUNT(*) FROM items WHERE id <= 20`); n != 0 {
		t.Fatalf("%d rows left under their old primary key", n)
	}
	st := r.Stream.Status()
	if st.CDCRows == 0 || st.Phase != replicate.PhaseCDC || st.LastError != "" {
		t.Fatalf("status = %+v", st)
	}
	// OnApplied saw the trace ids of the rows.
	var traced bool
	for _, b := range h.snapshot() {
		for _, c := range b.Changes {
			if c.Op == replicate.OpUpsert && strings.HasPrefix(c.TraceID, "trace-") {
				traced = true
			}
		}
	}
	if !traced {
		t.Fatal("no change carried its trace id")
	}
}

// countingTarget creates items on the target with a table counting every
// row write (insert or update) the replication makes.
func countingTarget(t *testing.T, dst interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}) {
	for _, q := range []string{
		itemsDDL,
		`CREATE TABLE writes (n INTEGER NOT NULL)`,
		`INSERT INTO writes VALUES (0)`,
		`CREATE TRIGGER items_ins AFTER INSERT ON items BEGIN UPDATE writes SET n = n + 1; END`,
		`CREATE TRIGGER items_upd AFTER UPDATE ON items BEGIN UPDATE writes SET n = n + 1; END`,
	} {
		if _, err := dst.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResumeMidSnapshotAndMidCDC(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	exec(t, src, itemsDDL)
	if err := replicate.Prepare(ctx, src, []string{"items"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	fillItems(t, src, 1, 1001)
	countingTarget(t, dst)
	cfg := replicate.Config{Name: "s", Origin: "src", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 100, Poll: 5 * time.Millisecond,
		LoadParallel: 1} // one writer: the progress commits with each chunk, so a resume is exact

	// Run 1 stops right after its first committed chunk.
	var h1 hook
	ctx1, cancel1 := context.WithCancel(ctx)
	h1.after = func(replicate.Batch) { cancel1() }
	cfg.OnApplied = h1.fn
	r1 := sourcetest.StartCtx(t, ctx1, cfg)
	if err := r1.Wait(t); err != nil {
		t.Fatal(err)
	}
	if got := len(h1.snapshot()); got != 1 {
		t.Fatalf("run 1 applied %d chunks, want 1", got)
	}
	cp, err := replicate.LoadCheckpoint(ctx, dst, dst.Dialect, "s")
	if err != nil || cp.Phase != replicate.PhaseSnapshot {
		t.Fatalf("checkpoint after run 1 = %+v, %v", cp, err)
	}
	states, err := replicate.LoadTableStates(ctx, dst, "s")
	if st := states["items"]; err != nil || st.State != "loading" || len(st.LastKey) != 1 || st.LastKey[0] != "100" {
		t.Fatalf("table state after run 1 = %+v, %v", states, err)
	}

	// Run 2 resumes after the saved key.
	var h2 hook
	cfg.OnApplied = h2.fn
	r2 := sourcetest.Start(t, cfg)
	waitCaughtUp(t, r2, src)
	r2.Stop(t)
	seen := map[int64]int{}
	for _, b := range append(h1.snapshot(), h2.snapshot()...) {
		if !b.Snapshot {
			continue
		}
		for _, c := range b.Changes {
			seen[c.Key[0].(int64)]++
		}
	}
	for id := int64(1); id <= 1000; id++ {
		if seen[id] != 1 {
			t.Fatalf("row %d loaded %d times", id, seen[id])
		}
	}
	if n := count(t, dst, `SELECT n FROM writes`); n != 1000 {
		t.Fatalf("target saw %d row writes for 1000 rows", n)
	}
	mustValidate(t, src, dst, "items")

	// Mid-CDC: 500 updates, then a run that stops after its third batch.
	inTx(t, src, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE items SET qty = qty + 1000 WHERE id <= 500`)
		return err
	})
	cfg.BatchSize = 50
	var h3 hook
	ctx3, cancel3 := context.WithCancel(ctx)
	h3.after = func(replicate.Batch) {
		if len(h3.snapshot()) == 3 {
			cancel3()
		}
	}
	cfg.OnApplied = h3.fn
	r3 := sourcetest.StartCtx(t, ctx3, cfg)
	if err := r3.Wait(t); err != nil {
		t.Fatal(err)
	}
	if got := len(h3.snapshot()); got != 3 {
		t.Fatalf("run 3 applied %d batches, want 3", got)
	}
	var h4 hook
	cfg.OnApplied = h4.fn
	r4 := sourcetest.Start(t, cfg)
	waitCaughtUp(t, r4, src)
	r4.Stop(t)

	// Positions only go forward across runs, and each key came once.
	var last int64
	keys := map[int64]int{}
	for _, b := range append(h3.snapshot(), h4.snapshot()...) {
		p, err := sqlitesrc.ParsePosition(b.Position)
		if err != nil || p <= last {
			t.Fatalf("position %q after %d", b.Position, last)
		}
		last = p
		for _, c := range b.Changes {
			keys[c.Key[0].(int64)]++
		}
	}
	if len(keys) != 500 {
		t.Fatalf("%d keys changed, want 500", len(keys))
	}
	for k, n := range keys {
		if n != 1 {
			t.Fatalf("key %d applied %d times", k, n)
		}
	}
	if n := count(t, dst, `SELECT n FROM writes`); n != 1500 {
		t.Fatalf("target saw %d row writes, want 1500", n)
	}
	mustValidate(t, src, dst, "items")
}

func TestChangesDuringSnapshot(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	exec(t, src, itemsDDL)
	if err := replicate.Prepare(ctx, src, []string{"items"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	fillItems(t, src, 1, 2001)
	// Every chunk commits while the source keeps changing rows the load
	// has read and rows it has not.
	var i int
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 100, Poll: 5 * time.Millisecond,
		OnApplied: func(b replicate.Batch) {
			if !b.Snapshot {
				return
			}
			i++
			_, _ = src.ExecContext(ctx, `UPDATE items SET name = 'during' WHERE id IN (?, ?)`, i*5, 2000-i*5)
			_, _ = src.ExecContext(ctx, `DELETE FROM items WHERE id = ?`, i*100+1)
		}})
	waitFor(t, "cdc", 20*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
}

func TestNoPrimaryKey(t *testing.T) {
	src, dst := openDB(t, "src"), openDB(t, "dst")
	exec(t, src, `CREATE TABLE nopk (a TEXT, b INTEGER)`)
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"nopk"}})
	err := r.Wait(t)
	if !errors.Is(err, replicate.ErrNoPrimaryKey) || !strings.Contains(err.Error(), `"nopk" has no primary key; replication needs one to apply updates and deletes exactly once`) {
		t.Fatalf("Run = %v", err)
	}
	// Prepare refuses too, and installs nothing.
	err = replicate.Prepare(context.Background(), src, []string{"nopk"}, quietLogger())
	if !errors.Is(err, replicate.ErrNoPrimaryKey) || !strings.Contains(err.Error(), "nopk") {
		t.Fatalf("Prepare = %v", err)
	}
	if n := count(t, src, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'`); n != 0 {
		t.Fatalf("%d triggers installed", n)
	}
}

func TestMissingSourceTable(t *testing.T) {
	src, dst := openDB(t, "src"), openDB(t, "dst")
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"ghost"}})
	if err := r.Wait(t); err == nil || !strings.Contains(err.Error(), `"ghost" does not exist`) {
		t.Fatalf("Run = %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	src, dst := openDB(t, "src"), openDB(t, "dst")
	for _, tc := range []struct {
		name string
		cfg  replicate.Config
		want string
	}{
		{"no name", replicate.Config{Source: src, Target: dst, Tables: []string{"a"}}, "Name"},
		{"no source", replicate.Config{Name: "s", Target: dst, Tables: []string{"a"}}, "Source"},
		{"no target", replicate.Config{Name: "s", Source: src, Tables: []string{"a"}}, "Target"},
		{"no tables", replicate.Config{Name: "s", Source: src, Target: dst}, "Tables"},
		{"dup table", replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"a", "a"}}, `"a" twice`},
		{"negative batch", replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"a"}, BatchSize: -1}, "BatchSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replicate.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want error naming %s", err, tc.want)
			}
		})
	}
}

func TestCompositeKey(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	exec(t, src, `CREATE TABLE ev (tenant VARCHAR(20) NOT NULL, n INTEGER NOT NULL, v TEXT, PRIMARY KEY (tenant, n))`)
	if err := replicate.Prepare(ctx, src, []string{"ev"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	inTx(t, src, func(tx *sql.Tx) error {
		for _, tenant := range []string{"a", "b", "c", "d"} {
			for n := 0; n < 150; n++ {
				if _, err := tx.Exec(`INSERT INTO ev VALUES (?, ?, ?)`, tenant, n, fmt.Sprint(tenant, n)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"ev"}, BatchSize: 64, Poll: 5 * time.Millisecond})
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "ev")
	exec(t, src, `UPDATE ev SET v = 'x' WHERE n % 3 = 0`)
	exec(t, src, `DELETE FROM ev WHERE tenant = 'b' AND n < 50`)
	exec(t, src, `UPDATE ev SET tenant = 'e' WHERE tenant = 'c' AND n >= 100`)
	exec(t, src, `UPDATE ev SET n = n + 1000 WHERE tenant = 'd' AND n < 10`)
	exec(t, src, `INSERT INTO ev VALUES ('a', -1, NULL)`)
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "ev")
	if n := count(t, dst, `SELECT COUNT(*) FROM ev WHERE tenant = 'e'`); n != 50 {
		t.Fatalf("target has %d rows moved to tenant e, want 50", n)
	}
}

func TestMultipleTables(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	exec(t, src, itemsDDL)
	exec(t, src, `CREATE TABLE tags (name TEXT PRIMARY KEY, n INTEGER)`)
	exec(t, src, `CREATE TABLE other (id INTEGER PRIMARY KEY)`)
	tables := []string{"items", "tags"}
	if err := replicate.Prepare(ctx, src, append(tables, "other"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	fillItems(t, src, 1, 301)
	exec(t, src, `INSERT INTO tags VALUES ('x', 1), ('y', 2)`)
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: tables, BatchSize: 128, Poll: 5 * time.Millisecond})
	waitCaughtUp(t, r, src)
	inTx(t, src, func(tx *sql.Tx) error {
		for _, q := range []string{
			`INSERT INTO tags VALUES ('z', 3)`, `UPDATE items SET qty = 1 WHERE id = 5`,
			`INSERT INTO other VALUES (1)`, `DELETE FROM tags WHERE name = 'x'`, `UPDATE tags SET name = 'w' WHERE name = 'y'`,
		} {
			if _, err := tx.Exec(q); err != nil {
				return err
			}
		}
		return nil
	})
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, tables...)
	var n int64
	err := dst.QueryRowContext(ctx, `SELECT COUNT(*) FROM other`).Scan(&n)
	if err == nil {
		t.Fatal("a table that is not replicated reached the target")
	}
}

// TestRetryAfterFailure breaks the target under a running stream: Run logs
// the failure, keeps it in Status, retries, and converges.
func TestRetryAfterFailure(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	exec(t, src, itemsDDL)
	if err := replicate.Prepare(ctx, src, []string{"items"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	fillItems(t, src, 1, 101)
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"items"}, Poll: 5 * time.Millisecond,
		PruneSource: true, PruneEvery: time.Millisecond})
	waitCaughtUp(t, r, src)
	// The origin table the apply transaction needs disappears.
	exec(t, dst, `DROP TABLE _ic_origin`)
	exec(t, src, `UPDATE items SET qty = 7`)
	waitFor(t, "the failure in Status", 10*time.Second, func() bool { return r.Stream.Status().LastError != "" })
	if st := r.Stream.Status(); !strings.Contains(st.LastError, "_ic_origin") || st.LastErrorAt.IsZero() {
		t.Fatalf("status = %+v", st)
	}
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
	// The stream, sole consumer of the source's log, pruned it.
	exec(t, src, `UPDATE items SET qty = 8 WHERE id = 1`)
	waitCaughtUp(t, r, src)
	exec(t, src, `UPDATE items SET qty = 9 WHERE id = 1`)
	waitCaughtUp(t, r, src)
	if n := count(t, src, `SELECT COUNT(*) FROM _ic_changes`); n > 2 {
		t.Fatalf("change log holds %d rows after pruning", n)
	}
}
