package replicate_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
)

// versioned is a table whose rows carry a version (acknowledgement time,
// then origin), as the records table does.
var versioned = sqldb.Table{Name: "recs", PrimaryKey: []string{"id"}, Columns: []sqldb.Column{
	{Name: "id", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
	{Name: "v", Type: sqldb.Type{Kind: sqldb.KindInt}, Nullable: true},
	{Name: "_ingested_at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
	{Name: "_origin", Type: sqldb.Type{Kind: sqldb.KindString, Length: 32}},
}}

var recsVersion = []string{"_ingested_at", "_origin"}

// putRec writes a row of recs as a client of db would (a plain upsert).
func putRec(tb testing.TB, db *sqldb.DB, id string, v int, at time.Time, origin string) {
	tb.Helper()
	row := make([]any, len(versioned.Columns))
	for i, x := range []any{id, int64(v), at, origin} {
		cv, err := db.Dialect.Value(versioned.Columns[i].Type, x)
		if err != nil {
			tb.Fatal(err)
		}
		row[i] = cv
	}
	if _, err := db.ExecContext(context.Background(), db.Dialect.Upsert(versioned, 1), row...); err != nil {
		tb.Fatalf("put %s: %v", id, err)
	}
}

func recOf(tb testing.TB, db *sqldb.DB, id string) (v int, origin string) {
	tb.Helper()
	q := "SELECT v, _origin FROM recs WHERE id = " + db.Dialect.Placeholder(1)
	if err := db.QueryRowContext(context.Background(), q, id).Scan(&v, &origin); err != nil {
		tb.Fatalf("row %s: %v", id, err)
	}
	return v, origin
}

// TestConflictCounted applies, by change data capture, an older version of
// a row after the target took a newer one: the target keeps the newer row
// and the stream counts exactly one conflict; a newer version, a tie won by
// the greater origin, and rows of other keys are applied and not counted.
// The targets count differently (MySQL counts an overwritten row twice).
func TestConflictCounted(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { conflictCounted(t, openDB(t, "b")) })
	if testing.Short() {
		return
	}
	t.Run("MariaDB", func(t *testing.T) { conflictCounted(t, openURL(t, peers.StartMariaDB(t).URL("app"))) })
	t.Run("PostgreSQL", func(t *testing.T) { conflictCounted(t, openURL(t, peers.StartPostgres(t).URL("app"))) })
}

func openURL(tb testing.TB, u string) *sqldb.DB {
	tb.Helper()
	db, err := sqldb.Open(context.Background(), u, quietLogger())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func conflictCounted(t *testing.T, b *sqldb.DB) {
	ctx := context.Background()
	a := openDB(t, "a")
	for _, db := range []*sqldb.DB{a, b} {
		if err := db.EnsureTable(ctx, versioned); err != nil {
			t.Fatal(err)
		}
	}
	if err := replicate.Prepare(ctx, a, []string{"recs"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	r := sourcetest.Start(t, replicate.Config{Name: "a-to-b", Origin: "aws", Source: a, Target: b, Tables: []string{"recs"},
		SkipReplicated: true, Version: recsVersion, Poll: 5 * time.Millisecond})
	waitFor(t, "full load", 20*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })

	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	// The target took id k at t0+2s (from azure); the source's write of k
	// at t0+1s arrives after it, with a new key n.
	putRec(t, b, "k", 2, t0.Add(2*time.Second), "azure")
	putRec(t, a, "k", 1, t0.Add(time.Second), "aws")
	putRec(t, a, "n", 10, t0, "aws")
	waitCaughtUp(t, r, a)
	if got := r.Stream.Status().Conflicts; got != 1 {
		t.Fatalf("conflicts = %d after an older version, want 1", got)
	}
	if v, o := recOf(t, b, "k"); v != 2 || o != "azure" {
		t.Fatalf("target's k = %d from %s, want the newer 2 from azure", v, o)
	}
	if v, _ := recOf(t, b, "n"); v != 10 {
		t.Fatalf("target's n = %d, want 10", v)
	}

	// A newer version replaces the target's row; so does the same time
	// from a greater origin ("aws" < "azure": a tie from the lesser origin
	// is a conflict).
	putRec(t, a, "k", 3, t0.Add(3*time.Second), "aws")
	waitCaughtUp(t, r, a)
	if v, o := recOf(t, b, "k"); v != 3 || o != "aws" {
		t.Fatalf("target's k = %d from %s, want the newer 3 from aws", v, o)
	}
	putRec(t, b, "k", 4, t0.Add(4*time.Second), "azure")
	putRec(t, a, "k", 5, t0.Add(4*time.Second), "aws")
	waitCaughtUp(t, r, a)
	if v, o := recOf(t, b, "k"); v != 4 || o != "azure" {
		t.Fatalf("target's k = %d from %s, want the tie's winner 4 from azure", v, o)
	}
	if got := r.Stream.Status().Conflicts; got != 2 {
		t.Fatalf("conflicts = %d after a newer version and a lost tie, want 2", got)
	}

	// A batch large enough to be copied (PostgreSQL): new keys, one the
	// target holds newer and one it holds older.
	putRec(t, b, "m007", 7, t0.Add(time.Hour), "azure")
	putRec(t, b, "m008", 8, t0, "azure")
	if err := a.Tx(ctx, func(tx *sql.Tx) error {
		for i := range 100 {
			row := make([]any, len(versioned.Columns))
			for j, x := range []any{fmt.Sprintf("m%03d", i), int64(100 + i), t0.Add(time.Minute), "aws"} {
				cv, err := a.Dialect.Value(versioned.Columns[j].Type, x)
				if err != nil {
					return err
				}
				row[j] = cv
			}
			if _, err := tx.ExecContext(ctx, a.Dialect.Upsert(versioned, 1), row...); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, r, a)
	if got := r.Stream.Status().Conflicts; got != 3 {
		t.Fatalf("conflicts = %d after a batch with one older row, want 3", got)
	}
	if v, o := recOf(t, b, "m007"); v != 7 || o != "azure" {
		t.Fatalf("target's m007 = %d from %s, want the newer 7 from azure", v, o)
	}
	for _, id := range []string{"m008", "m099"} {
		if v, o := recOf(t, b, id); v < 100 || o != "aws" {
			t.Fatalf("target's %s = %d from %s, want the batch's row", id, v, o)
		}
	}
	var n int
	if err := b.QueryRowContext(ctx, "SELECT COUNT(*) FROM recs WHERE id LIKE 'm%'").Scan(&n); err != nil || n != 100 {
		t.Fatalf("%d rows of the batch on the target (%v), want 100", n, err)
	}
}
