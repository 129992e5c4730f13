package publish

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
)

// TestPostgresContributionsSurviveACrash: on PostgreSQL the contributions
// table is unlogged (its writes are not in the WAL, so no walsender
// decodes them); a crash of the server empties it. The publisher notices
// (its marker row is gone) and rebuilds the state, so updates that move
// records between buckets, deletes and inserts after the crash are
// counted exactly, not added to what the buckets already counted.
func TestPostgresContributionsSurviveACrash(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers are skipped with -short")
	}
	pg := peers.StartPostgres(t)
	e := newEnvAt(t, pg.URL("app"))
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.run(t)
	var recs []rec
	for i := range 200 {
		recs = append(recs, rec{fmt.Sprintf("r%03d", i), []string{"cpu", "mem"}[i%2], float64(i), h.Add(time.Duration(i) * time.Minute)})
	}
	e.insert(t, recs...)
	e.checkAggregates(t, "before the crash")
	var persistence string
	if err := e.db.QueryRow(`SELECT relpersistence FROM pg_class WHERE relname = $1`, RowsTable).Scan(&persistence); err != nil || persistence != "u" {
		t.Fatalf("%s: relpersistence %q (want u: unlogged), %v", RowsTable, persistence, err)
	}

	// A contribution of no record: the crash must take it with the
	// table's other rows (the running publisher may rebuild the table
	// before the check below reads it, but never brings this row back).
	if _, err := e.db.Exec(`INSERT INTO ` + RowsTable + ` (id, bkt, val) VALUES ('zz-stray', 'stray', 0)`); err != nil {
		t.Fatal(err)
	}
	pg.Kill(t)
	pg.Start(t)
	var n int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM ` + RowsTable + ` WHERE id = 'zz-stray'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after the crash %s holds the stray row (%d), %v (want it gone: an unlogged table is emptied)", RowsTable, n, err)
	}
	// Moved to the other metric and a later hour, new values (new
	// extremes among them), some deleted, some new.
	var moved []rec
	for _, r := range recs[:60] {
		r.metric = map[string]string{"cpu": "mem", "mem": "cpu"}[r.metric]
		r.ts = r.ts.Add(time.Hour)
		r.value = -r.value * 3
		moved = append(moved, r)
	}
	e.insert(t, moved...)
	if _, err := e.db.Exec(`DELETE FROM records WHERE id IN ('r100', 'r101', 'r199')`); err != nil {
		t.Fatal(err)
	}
	e.insert(t, rec{"n1", "disk", 1e9, h}, rec{"n2", "cpu", -1e9, h.Add(2 * time.Hour)})
	e.checkAggregates(t, "after the crash")
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM `+RowsTable+` WHERE id = $1`, rowsMarker).Scan(&n); err != nil || n != 1 {
		t.Fatalf("marker rows in %s: %d, %v", RowsTable, n, err)
	}
}

// TestPostgresReplayedBatchCountsOnce applies batches on PostgreSQL the
// way a replayed feed delivers them: the same batch twice, a record
// twice within one batch, a batch mixing new records with ones already
// counted (some unchanged, some moved). New records go in with a plain
// insert there; each record still counts once.
func TestPostgresReplayedBatchCountsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers are skipped with -short")
	}
	ctx := context.Background()
	e := newEnvAt(t, peers.StartPostgres(t).URL("app"))
	p, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Settings: config.Default("").Publish})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	change := func(id, metric string, v float64, hour int) replicate.Change {
		return replicate.Change{Table: "records", Op: replicate.OpUpsert, Key: []any{id},
			Row: map[string]any{"id": id, "metric": metric, "value": v, "ts": h.Add(time.Duration(hour) * time.Hour)}}
	}
	apply := func(cs ...replicate.Change) {
		t.Helper()
		if _, err := p.apply(ctx, replicate.Batch{Changes: cs}); err != nil {
			t.Fatal(err)
		}
		if err := p.flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, want map[bucketKey]Aggregate) {
		t.Helper()
		for k, w := range want {
			var a Aggregate
			err := e.db.QueryRow(`SELECT cnt, total, min_v, max_v FROM `+BucketsTable+` WHERE bkt = $1`, bucketID(k.group, k.hour)).Scan(&a.Count, &a.Sum, &a.Min, &a.Max)
			if err != nil {
				t.Fatalf("%s: %s %s: %v", when, k.group, k.hour, err)
			}
			w.Group, w.Hour = "", time.Time{}
			if a != w {
				t.Errorf("%s: %s %s: %+v, want %+v", when, k.group, k.hour, a, w)
			}
		}
	}
	first := []replicate.Change{change("a", "cpu", 1, 0), change("b", "cpu", 5, 0), change("a", "cpu", 2, 0), change("c", "mem", math.MaxFloat64, 1)}
	apply(first...)
	want := map[bucketKey]Aggregate{
		{"cpu", h}:                {Count: 2, Sum: 7, Min: 2, Max: 5},
		{"mem", h.Add(time.Hour)}: {Count: 1, Sum: math.MaxFloat64, Min: math.MaxFloat64, Max: math.MaxFloat64},
	}
	check("after the first batch", want)
	apply(first...)
	check("after the same batch again", want)
	// b unchanged, c moved to cpu, d new in mem.
	apply(change("b", "cpu", 5, 0), change("c", "cpu", -4, 0), change("d", "mem", 0.1, 1))
	want = map[bucketKey]Aggregate{
		{"cpu", h}:                {Count: 3, Sum: 3, Min: -4, Max: 5},
		{"mem", h.Add(time.Hour)}: {Count: 1, Sum: 0.1, Min: 0.1, Max: 0.1},
	}
	check("after a mixed batch", want)
	var n int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM ` + RowsTable + ` WHERE id IN ('a', 'b', 'c', 'd')`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d contributions, %v", n, err)
	}
}

// TestPgFloatArray: values read back exactly, the infinities and NaN
// included.
func TestPgFloatArray(t *testing.T) {
	got := pgFloatArray([]float64{0, -1.5, 0.1, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1), math.NaN()})
	want := "{0,-1.5,0.1,1.7976931348623157e+308,5e-324,Infinity,-Infinity,NaN}"
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestPostgresEarlierStateIsRebuilt: a state an earlier version left on
// PostgreSQL (a logged contributions table without the marker row) is
// made unlogged and rebuilt once, at the next start: a stray
// contribution and a wrong bucket it held are gone.
func TestPostgresEarlierStateIsRebuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers are skipped with -short")
	}
	e := newEnvAt(t, peers.StartPostgres(t).URL("app"))
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	stop := e.run(t)
	e.insert(t, rec{"a", "cpu", 1, h}, rec{"b", "cpu", 5, h.Add(time.Minute)}, rec{"c", "mem", 7, h.Add(time.Hour)})
	e.checkAggregates(t, "before")
	stop()
	for _, q := range []string{
		`ALTER TABLE ` + RowsTable + ` SET LOGGED`,
		`DELETE FROM ` + RowsTable + ` WHERE id = ''`,
		`INSERT INTO ` + RowsTable + ` VALUES ('zz', '` + bucketID("cpu", h) + `', 1000)`,
		`UPDATE ` + BucketsTable + ` SET cnt = cnt + 1, total = total + 1000, max_v = 1000 WHERE bkt = '` + bucketID("cpu", h) + `'`,
	} {
		if _, err := e.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	e.insert(t, rec{"d", "cpu", -3, h.Add(2 * time.Minute)})
	e.run(t)
	e.checkAggregates(t, "after the rebuild")
	var persistence string
	var stray, marker int
	if err := e.db.QueryRow(`SELECT relpersistence FROM pg_class WHERE relname = $1`, RowsTable).Scan(&persistence); err != nil || persistence != "u" {
		t.Fatalf("%s: relpersistence %q, %v", RowsTable, persistence, err)
	}
	if err := e.db.QueryRow(`SELECT COUNT(*) FILTER (WHERE id = 'zz'), COUNT(*) FILTER (WHERE id = '') FROM `+RowsTable).Scan(&stray, &marker); err != nil || stray != 0 || marker != 1 {
		t.Fatalf("stray contributions %d, markers %d, %v", stray, marker, err)
	}
}
