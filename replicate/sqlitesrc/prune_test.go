package sqlitesrc

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// Several consumers trim the change table through replicate.PruneLog: up to
// the lowest position every one of them has applied, and not at all while
// one has no change-capture checkpoint.
func TestPruneLogThroughReplicate(t *testing.T) {
	ctx := context.Background()
	db, at := openDB(t), openDB(t)
	mustExec(t, db, `CREATE TABLE a (id INTEGER PRIMARY KEY)`)
	if err := replicate.Prepare(ctx, db, []string{"a"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := replicate.EnsureCheckpoints(ctx, at); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		mustExec(t, db, `INSERT INTO a VALUES (?)`, i)
	}
	save := func(name string, cp replicate.Checkpoint) {
		t.Helper()
		if err := at.Tx(ctx, func(tx *sql.Tx) error { return replicate.SaveCheckpoint(ctx, tx, at.Dialect, name, cp) }); err != nil {
			t.Fatal(err)
		}
	}
	readers := []replicate.Reader{{Name: "fast", At: at}, {Name: "slow", At: at}, {Name: "new", At: at}}
	save("fast", replicate.Checkpoint{Phase: replicate.PhaseCDC, Position: "10"})
	save("slow", replicate.Checkpoint{Phase: replicate.PhaseCDC, Position: "4"})
	if n, pruned, err := replicate.PruneLog(ctx, db, readers); err != nil || pruned || n != 0 || len(changes(t, db)) != 10 {
		t.Fatalf("with a reader not in CDC yet: %d %v %v", n, pruned, err)
	}
	save("new", replicate.Checkpoint{Phase: replicate.PhaseCDC, Position: "7"})
	if n, pruned, err := replicate.PruneLog(ctx, db, readers); err != nil || !pruned || n != 4 || len(changes(t, db)) != 6 {
		t.Fatalf("PruneLog = %d %v %v, left %d", n, pruned, err, len(changes(t, db)))
	}
	if _, pruned, err := replicate.PruneLog(ctx, db, nil); err != nil || pruned {
		t.Fatalf("no readers: %v %v", pruned, err)
	}
	save("slow", replicate.Checkpoint{Phase: replicate.PhaseCDC, Position: "x"})
	if _, _, err := replicate.PruneLog(ctx, db, readers); err == nil {
		t.Fatal("a bad position was accepted")
	}
}

// TestPruneUpToADurableCheckpoint: a reader's checkpoint in another
// database may be visible before it is durable (sqldb.DB.WaitDurable);
// the log is trimmed up to it only once it is, so here, where another
// opener of the target's file (another process) saved it, the trim syncs
// the target's log first.
func TestPruneUpToADurableCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(name string) *sqldb.DB { return sourcetest.Open(t, "sqlite://"+filepath.Join(dir, name)) }
	db, at, atOther := open("src.db"), open("dst.db"), open("dst.db")
	mustExec(t, db, `CREATE TABLE a (id INTEGER PRIMARY KEY)`)
	if err := replicate.Prepare(ctx, db, []string{"a"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := replicate.EnsureCheckpoints(ctx, at); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustExec(t, db, `INSERT INTO a VALUES (?)`, i)
	}
	if err := atOther.Tx(ctx, func(tx *sql.Tx) error {
		return replicate.SaveCheckpoint(ctx, tx, atOther.Dialect, "r", replicate.Checkpoint{Phase: replicate.PhaseCDC, Position: "3"})
	}); err != nil {
		t.Fatal(err)
	}
	syncs := func() int64 { st, _ := at.WriteLock(); return st.Syncs }
	before := syncs()
	if n, pruned, err := replicate.PruneLog(ctx, db, []replicate.Reader{{Name: "r", At: at}}); err != nil || !pruned || n != 3 {
		t.Fatalf("PruneLog = %d %v %v", n, pruned, err)
	}
	if got := syncs(); got <= before {
		t.Errorf("the target's log was not synced before the trim (%d syncs, %d before)", got, before)
	}
}

// A dialect no source registered is named, with the ones that are.
func TestNoSourceDriver(t *testing.T) {
	db := openDB(t)
	db.Dialect = otherDialect{db.Dialect}
	_, err := replicate.OpenSource(context.Background(), db, replicate.SourceConfig{Name: "s"})
	if !errors.Is(err, replicate.ErrNoSourceDriver) || err.Error() != `replicate: no driver for dialect "other" (have sqlite)` {
		t.Fatalf("OpenSource = %v", err)
	}
}

type otherDialect struct{ sqldb.Dialect }

func (otherDialect) Name() string { return "other" }

// Prune trims in chunks of pruneChunk changes: every change at or before
// the position goes, at every boundary of a chunk, and nothing after it.
func TestPruneInChunks(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	mustExec(t, db, `CREATE TABLE a (id INTEGER PRIMARY KEY)`)
	if err := Install(ctx, db, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	total := 3*pruneChunk + 5
	mustExec(t, db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) INSERT INTO a SELECT i FROM n`, total)
	left := func() (n, lo int64) {
		t.Helper()
		if err := db.QueryRowContext(ctx, `SELECT count(*), coalesce(min(seq), 0) FROM _ic_changes`).Scan(&n, &lo); err != nil {
			t.Fatal(err)
		}
		return n, lo
	}
	done := int64(0)
	for _, upTo := range []int64{0, 1, pruneChunk - 1, pruneChunk, pruneChunk + 1, 3 * pruneChunk, int64(total), int64(total) + 10} {
		n, err := Prune(ctx, db, FormatPosition(upTo))
		want := max(0, min(upTo, int64(total))-done)
		if err != nil || n != want {
			t.Fatalf("Prune(%d) = %d, %v; want %d", upTo, n, err, want)
		}
		done += n
		count, lo := left()
		if count != int64(total)-done || (count > 0 && lo != done+1) {
			t.Fatalf("after Prune(%d): %d changes from seq %d; want %d from %d", upTo, count, lo, int64(total)-done, done+1)
		}
	}
}
