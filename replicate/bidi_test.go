package replicate_test

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// openPair opens databases a and b, each with the items table prepared
// for capture.
func openPair(t *testing.T) (a, b *sqldb.DB) {
	t.Helper()
	a, b = openDB(t, "a"), openDB(t, "b")
	for _, db := range []*sqldb.DB{a, b} {
		exec(t, db, itemsDDL)
		if err := replicate.Prepare(context.Background(), db, []string{"items"}, quietLogger()); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// TestBidirectional runs A→B and B→A with SkipReplicated: writes on either
// side reach the other exactly once and nothing echoes back.
func TestBidirectional(t *testing.T) {
	a, b := openPair(t)
	fillItems(t, a, 1, 51)
	fillItems(t, b, 1001, 1051)
	// a's rows arrive on b by full load; b's (written after Prepare) reach
	// a from the start of b's log. The reverse stream starts once the full
	// load is done, so that load cannot copy b's rows back to b.
	ab := sourcetest.Start(t, replicate.Config{Name: "a-to-b", Origin: "a", Source: a, Target: b, Tables: []string{"items"}, SkipReplicated: true, Poll: 5 * time.Millisecond})
	waitFor(t, "full load", 20*time.Second, func() bool { return ab.Stream.Status().Phase == replicate.PhaseCDC })
	ba := sourcetest.Start(t, replicate.Config{Name: "b-to-a", Origin: "b", Source: b, Target: a, Tables: []string{"items"}, SkipReplicated: true, SkipFullLoad: true, Poll: 5 * time.Millisecond})
	settle := func() {
		t.Helper()
		for i := 0; i < 2; i++ { // a change applied on one side is logged there; let both see it
			waitCaughtUp(t, ab, a)
			waitCaughtUp(t, ba, b)
		}
		mustValidate(t, a, b, "items")
	}
	settle()

	// Each phase writes distinct keys, one transaction per write, so every
	// local change is one change on the other side.
	write := func(db *sqldb.DB, queries ...string) {
		for _, q := range queries {
			exec(t, db, q)
		}
	}
	fillItems(t, a, 100, 130)
	fillItems(t, b, 2000, 2030)
	settle()
	write(a, `UPDATE items SET qty = 1 WHERE id BETWEEN 100 AND 109`, `UPDATE items SET qty = 2 WHERE id BETWEEN 1001 AND 1005`)
	write(b, `UPDATE items SET qty = 3 WHERE id BETWEEN 2000 AND 2009`, `UPDATE items SET qty = 4 WHERE id BETWEEN 1 AND 5`)
	settle()
	write(a, `DELETE FROM items WHERE id BETWEEN 110 AND 114`, `UPDATE items SET id = 3000 WHERE id = 115`)
	write(b, `DELETE FROM items WHERE id BETWEEN 2010 AND 2014`)
	settle()

	// Let any echo show up before counting.
	time.Sleep(100 * time.Millisecond)
	settle()

	logged := func(db *sqldb.DB, origin string) int64 {
		return count(t, db, `SELECT COUNT(*) FROM _ic_changes WHERE origin = ?`, origin)
	}
	// Local changes of a: 50 + 30 inserts, 10 + 5 updates, 5 deletes,
	// 1 key change (a delete and an update) = 102; of b: 50 + 30 + 10 + 5
	// + 5 = 100. The other side applied each exactly once, tagged.
	for _, tc := range []struct {
		local, remote     *sqldb.DB
		remoteOrigin      string
		wantLocal, wantIn int64
	}{
		{a, b, "a", 102, 102},
		{b, a, "b", 100, 100},
	} {
		if n := logged(tc.local, ""); n != tc.wantLocal {
			t.Errorf("local changes logged = %d, want %d", n, tc.wantLocal)
		}
		if n := logged(tc.remote, tc.remoteOrigin); n != tc.wantIn {
			t.Errorf("changes from %s applied on the other side = %d, want %d", tc.remoteOrigin, n, tc.wantIn)
		}
	}
	// No echo: a's log holds nothing tagged "a", b's nothing tagged "b",
	// and (counts above) each side holds exactly the other's local changes.
	if n := logged(a, "a") + logged(b, "b"); n != 0 {
		t.Errorf("%d changes echoed back to their origin", n)
	}
	if n := count(t, a, `SELECT COUNT(*) FROM items`); n != count(t, b, `SELECT COUNT(*) FROM items`) || n != 50+50+30+30-5-5 {
		t.Errorf("a has %d rows", n)
	}
}

// TestOriginMarkScope checks the origin tag covers only the apply
// transaction's writes.
func TestOriginMarkScope(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, "a")
	exec(t, db, itemsDDL)
	if err := replicate.Prepare(ctx, db, []string{"items"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	m := replicate.MarkerFor("sqlite")
	if m == nil {
		t.Fatal("no sqlite marker")
	}
	inTx(t, db, func(tx *sql.Tx) error {
		if err := m.MarkOrigin(ctx, tx, "peer"); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO items (id, name) VALUES (1, 'x')`); err != nil {
			return err
		}
		return m.UnmarkOrigin(ctx, tx)
	})
	exec(t, db, `INSERT INTO items (id, name) VALUES (2, 'y')`)
	// A rolled-back mark leaves nothing behind.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.MarkOrigin(ctx, tx, "peer"); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	exec(t, db, `UPDATE items SET name = 'z' WHERE id = 1`)
	var got []string
	rows, err := db.QueryContext(ctx, `SELECT pk || ':' || op || ':' || origin FROM _ic_changes ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	want := []string{"[1]:I:peer", "[2]:I:", "[1]:U:"}
	if len(got) != len(want) {
		t.Fatalf("changes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("changes = %v, want %v", got, want)
		}
	}
}

// TestSkippedChangesAreCheckpointedLater: every change the reverse stream
// of a pair reads is one the forward stream wrote, so each of its batches
// only moves its position. It checkpoints those at most once a second
// (a transaction each, fenced, was as many as the forward stream's), the
// last one once it has waited that long with nothing after it, and
// after a restart from the older checkpoint it reads them again and
// skips them: nothing echoes, a new write still arrives.
func TestSkippedChangesAreCheckpointedLater(t *testing.T) {
	a, b := openPair(t)
	ab := sourcetest.Start(t, replicate.Config{Name: "a-to-b", Origin: "a", Source: a, Target: b, Tables: []string{"items"}, SkipReplicated: true, Poll: 2 * time.Millisecond})
	waitFor(t, "full load", 20*time.Second, func() bool { return ab.Stream.Status().Phase == replicate.PhaseCDC })
	var fences, moved atomic.Int64
	reverse := replicate.Config{Name: "b-to-a", Origin: "b", Source: b, Target: a, Tables: []string{"items"}, SkipReplicated: true, SkipFullLoad: true, Poll: 2 * time.Millisecond,
		Fence: func(context.Context, *sql.Tx) error { fences.Add(1); return nil },
		OnApplied: func(bt replicate.Batch) {
			if len(bt.Changes) == 0 {
				moved.Add(1)
			}
		}}
	ba := sourcetest.Start(t, reverse)
	waitFor(t, "the reverse stream", 20*time.Second, func() bool { return ba.Stream.Status().Phase == replicate.PhaseCDC })
	start, fenced := time.Now(), fences.Load()
	for i := range 40 {
		exec(t, a, `INSERT INTO items (id, name, qty) VALUES (?, 'x', 1)`, 100+i)
		waitFor(t, "the row on b", 20*time.Second, func() bool { return count(t, b, `SELECT COUNT(*) FROM items WHERE id = ?`, 100+i) == 1 })
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, "the reverse stream to read them", 20*time.Second, func() bool { return moved.Load() >= 10 })
	secs := time.Since(start).Seconds()
	if n := fences.Load() - fenced; float64(n) > secs+2 {
		t.Errorf("%d transactions on the target for %d batches that only moved the position in %.1fs, want at most one a second", n, moved.Load(), secs)
	}
	// With nothing after them, the last position is saved on its own.
	waitFor(t, "the idle reverse stream's checkpoint", 10*time.Second, func() bool {
		cp, err := replicate.LoadCheckpoint(context.Background(), a, a.Dialect, "b-to-a")
		return err == nil && cp.Position != "" && cp.Position == ba.Stream.Status().Position
	})
	ba.Stop(t)
	sourcetest.Start(t, reverse)
	exec(t, b, `INSERT INTO items (id, name, qty) VALUES (500, 'from b', 2)`)
	waitFor(t, "b's row on a", 20*time.Second, func() bool { return count(t, a, `SELECT COUNT(*) FROM items WHERE id = 500`) == 1 })
	time.Sleep(100 * time.Millisecond)
	mustValidate(t, a, b, "items")
	if n := count(t, a, `SELECT COUNT(*) FROM _ic_changes WHERE origin = 'b'`); n != 1 {
		t.Errorf("a logged %d changes applied from b, want 1 (row 500)", n)
	}
}
