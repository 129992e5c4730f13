package publish

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/replicate"
	_ "github.com/intercloud/intercloud/replicate/mysqlsrc"
	_ "github.com/intercloud/intercloud/replicate/pgsrc"
	"github.com/intercloud/intercloud/replicate/pollsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
)

// newEnvAt is newEnv on the database at url.
func newEnvAt(t testing.TB, url string) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqldb.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := objects.Open(ctx, "file://"+filepath.Join(dir, "objects"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); b.Close() })
	s := config.Default(dir).Schema
	return &env{db: db, bucket: b, schema: s, table: record.Table(s), ids: map[string]bool{}}
}

// TestIncrementalAggregates checks on every database that the aggregates
// kept incrementally equal those computed from scratch by the test (from
// the rows read with a plain query) after inserts, updates that move rows
// between buckets or change a bucket's min or max, deletes of a bucket's
// extremes and of whole buckets, and a restart.
func TestIncrementalAggregates(t *testing.T) {
	dbs := []struct {
		name, mode string
		url        func(t *testing.T) string
	}{
		{"sqlite", "", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "sql.db") }},
		{"postgres", "", func(t *testing.T) string { return peers.StartPostgres(t).URL("app") }},
		{"mariadb", "", func(t *testing.T) string { return peers.StartMariaDB(t).URL("app") }},
		// Publish on the query-based source (replication.source: poll).
		{"sqlite-poll", replicate.SourcePoll, func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "sql.db") }},
		{"postgres-poll", replicate.SourcePoll, func(t *testing.T) string { return peers.StartPostgres(t).URL("app") }},
	}
	for _, tc := range dbs {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.HasPrefix(tc.name, "sqlite") && testing.Short() {
				t.Skip("real servers are skipped with -short")
			}
			e := newEnvAt(t, tc.url(t))
			e.mode = tc.mode
			testIncremental(t, e)
			if tc.mode == replicate.SourcePoll {
				// The publisher read the poll change table, not a log.
				var n int
				if err := e.db.QueryRow("SELECT COUNT(*) FROM " + pollsrc.LogTable).Scan(&n); err != nil || n == 0 {
					t.Fatalf("poll change table: %d changes, %v", n, err)
				}
			}
		})
	}
}

func testIncremental(t *testing.T, e *env) {
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	metrics := []string{"cpu", "mem", "disk"}
	rng := rand.New(rand.NewPCG(1, 2))
	recs := map[string]rec{}
	put := func(rs ...rec) {
		t.Helper()
		e.insert(t, rs...)
		for _, r := range rs {
			recs[r.id] = r
		}
	}
	del := func(ids ...string) {
		t.Helper()
		d := e.db.Dialect
		for _, id := range ids {
			if _, err := e.db.Exec(fmt.Sprintf("DELETE FROM %s WHERE %s = %s", d.Quote("records"), d.Quote("id"), d.Placeholder(1)), id); err != nil {
				t.Fatal(err)
			}
			delete(recs, id)
		}
	}
	stop := e.run(t)
	var batch []rec
	for i := range 300 {
		batch = append(batch, rec{fmt.Sprintf("r%03d", i), metrics[rng.IntN(3)], float64(rng.IntN(1000) - 500),
			h.Add(time.Duration(rng.IntN(3*3600)) * time.Second)})
	}
	put(batch...)
	e.checkAggregates(t, "after inserts")

	// Move rows to other buckets (other metric, other hour), change the
	// values of some, and make new extremes.
	var moved []rec
	for i := 0; i < 300; i += 7 {
		r := recs[fmt.Sprintf("r%03d", i)]
		r.metric = metrics[(slices.Index(metrics, r.metric)+1)%3]
		r.ts = r.ts.Add(time.Hour)
		moved = append(moved, r)
	}
	for i := 1; i < 300; i += 11 {
		r := recs[fmt.Sprintf("r%03d", i)]
		r.value = float64(rng.IntN(4000) - 2000)
		moved = append(moved, r)
	}
	put(moved...)
	e.checkAggregates(t, "after moves and updates")

	// Delete the min and the max of every bucket, then all of one bucket.
	ext := map[bucketKey][2]rec{}
	for _, r := range recs {
		k := bucketKey{r.metric, r.ts.Truncate(time.Hour)}
		m, ok := ext[k]
		if !ok {
			m = [2]rec{r, r}
		}
		if r.value < m[0].value {
			m[0] = r
		}
		if r.value > m[1].value {
			m[1] = r
		}
		ext[k] = m
	}
	var gone []string
	for _, m := range ext {
		gone = append(gone, m[0].id, m[1].id)
	}
	slices.Sort(gone)
	del(slices.Compact(gone)...)
	e.checkAggregates(t, "after deleting extremes")
	var whole []string
	for id, r := range recs {
		if r.metric == "disk" && r.ts.Truncate(time.Hour).Equal(h.Add(time.Hour)) {
			whole = append(whole, id)
		}
	}
	del(whole...)
	e.checkAggregates(t, "after emptying a bucket")

	// Stopped, then more changes: the restart applies them.
	stop()
	put(rec{"late1", "cpu", 99999, h}, rec{"late2", "net", -99999, h})
	del("r002")
	e.run(t)
	e.checkAggregates(t, "after a restart")
}

// checkAggregates waits until the published files equal the aggregates
// the test computes from the table's rows, and fails with the difference
// after a deadline.
func (e *env) checkAggregates(t *testing.T, when string) {
	t.Helper()
	var diff string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if diff = e.aggregateDiff(t); diff == "" {
			return
		}
	}
	t.Fatalf("%s: published aggregates differ from the table:\n%s", when, diff)
}

func (e *env) aggregateDiff(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	d := e.db.Dialect
	rows, err := e.db.QueryContext(ctx, fmt.Sprintf("SELECT %s, %s, %s FROM %s", d.Quote("metric"), d.Quote("ts"), d.Quote("value"), d.Quote("records")))
	if err != nil {
		t.Fatal(err)
	}
	type agg struct{ count, sum, min, max float64 }
	want := map[string]*agg{}
	var total float64
	for rows.Next() {
		var m string
		var ts any
		var v sql.NullFloat64
		if err := rows.Scan(&m, &ts, &v); err != nil {
			t.Fatal(err)
		}
		tt, err := asTime(ts)
		if err != nil {
			t.Fatal(err)
		}
		k := Key(m, tt.Truncate(time.Hour), "json")
		a := want[k]
		if a == nil {
			a = &agg{min: v.Float64, max: v.Float64}
			want[k] = a
		}
		a.count++
		a.sum += v.Float64
		a.min, a.max = min(a.min, v.Float64), max(a.max, v.Float64)
		total++
	}
	rows.Close()
	var diff []string
	got := map[string]bool{}
	err = e.bucket.List(ctx, HourlyPrefix, func(o objects.Object) error {
		if !strings.HasSuffix(o.Key, ".json") {
			return nil
		}
		b, _, err := e.bucket.Get(ctx, o.Key)
		if errors.Is(err, objects.ErrNotFound) {
			return nil // removed since it was listed (its bucket emptied): looked at again next round
		}
		if err != nil {
			return err
		}
		got[o.Key] = true
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		w := want[o.Key]
		if w == nil {
			diff = append(diff, fmt.Sprintf("%s published (%v) but the table has no such bucket", o.Key, m))
			return nil
		}
		if m["count"] != w.count || m["sum"] != w.sum || m["min"] != w.min || m["max"] != w.max || m["mean"] != w.sum/w.count {
			diff = append(diff, fmt.Sprintf("%s = %v, want count %g sum %g min %g max %g", o.Key, m, w.count, w.sum, w.min, w.max))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if !got[k] {
			diff = append(diff, k+" missing")
		}
	}
	if s := e.summary(t); float64(s.Records) != total {
		diff = append(diff, fmt.Sprintf("summary counts %d records, the table has %g", s.Records, total))
	}
	slices.Sort(diff)
	return strings.Join(diff, "\n")
}

func TestAsTime(t *testing.T) {
	want := time.Date(2026, 11, 24, 12, 3, 57, 120000000, time.UTC)
	for _, in := range []any{want, want.In(time.FixedZone("x", 3600)), "2026-11-24T12:03:57.12Z", "2026-11-24T13:03:57.12+01:00",
		"2026-11-24 12:03:57.120000", []byte("2026-11-24 12:03:57.12")} {
		if got, err := asTime(in); err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("asTime(%v) = %v, %v", in, got, err)
		}
	}
	for _, in := range []any{"", "yesterday", 42, nil, "2026-11-24"} {
		if _, err := asTime(in); err == nil {
			t.Errorf("asTime(%v) accepted", in)
		}
	}
}

// publishThree runs the publisher until three records, two in one
// bucket of cpu from h and one of mem an hour later, are published as
// the table says, and stops it: a state for a test to change.
func (e *env) publishThree(t *testing.T, h time.Time) {
	t.Helper()
	stop := e.run(t)
	e.insert(t, rec{"a", "cpu", 1, h}, rec{"b", "cpu", 5, h.Add(time.Minute)}, rec{"c", "mem", 7, h.Add(time.Hour)})
	e.checkAggregates(t, "three records")
	stop()
}

// TestEarlierStateIsRebuilt: a state an earlier version built (its
// marker, 128-bit bucket ids, RowsTable's columns NOT NULL, and a
// contribution or bucket that no longer agrees with the table) is built
// again in the current layout when the publisher starts, and what it
// publishes then agrees with the table.
func TestEarlierStateIsRebuilt(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.publishThree(t, h)
	// The earlier layout, with a stale bucket and a stray contribution.
	for _, q := range []string{
		`DROP TABLE ` + RowsTable,
		`CREATE TABLE ` + RowsTable + ` (id VARCHAR(64) NOT NULL, bkt VARCHAR(80) NOT NULL, val REAL NOT NULL, PRIMARY KEY (id))`,
		`CREATE INDEX ix_ic_publish_rows_bkt_val ON ` + RowsTable + ` (bkt, val)`,
		`INSERT INTO ` + RowsTable + ` VALUES ('zz', '7f/2026-11-24T10', 1000)`,
		`DELETE FROM ` + BucketsTable,
		`INSERT INTO ` + BucketsTable + ` VALUES ('#state', '', '', 0, 0, 0, 0), ('7f/2026-11-24T10', 'cpu', '2026-11-24T10', 3, 1000, 1, 1000)`,
	} {
		sourcetest.Exec(t, e.db, q)
	}
	e.insert(t, rec{"d", "cpu", -3, h.Add(2 * time.Minute)})
	e.run(t)
	e.checkAggregates(t, "after the rebuild")
	var marker, contributions, notNull int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM `+BucketsTable+` WHERE bkt = ?`, stateMarker).Scan(&marker); err != nil || marker != 1 {
		t.Fatalf("marker rows %d, %v", marker, err)
	}
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM ` + RowsTable + ` r JOIN records USING (id) JOIN ` + BucketsTable + ` b ON b.bkt = r.bkt`).Scan(&contributions); err != nil || contributions != 4 {
		t.Fatalf("contributions of the records in their buckets: %d, %v", contributions, err)
	}
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('` + RowsTable + `') WHERE "notnull" = 1`).Scan(&notNull); err != nil || notNull != 0 {
		t.Fatalf("%d NOT NULL columns in %s, %v", notNull, RowsTable, err)
	}
	indexes := sourcetest.Column[string](t, e.db, `SELECT name FROM pragma_index_list('`+RowsTable+`') WHERE origin = 'c'`)
	if !slices.Equal(indexes, []string{RowsBucketIndex}) {
		t.Fatalf("indexes of %s: %v, want [%s]", RowsTable, indexes, RowsBucketIndex)
	}
}

// TestEarlierIndexIsReplaced: on SQLite the contributions' second index
// is on the bucket alone (entries of the bucket and the rowid), which
// the read of a bucket's extremes uses; an earlier version's index on
// bucket, id and value is dropped at the start, the state kept.
func TestEarlierIndexIsReplaced(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.publishThree(t, h)
	for _, q := range []string{
		`DROP INDEX ` + RowsBucketIndex,
		`CREATE INDEX ` + RowsIndex + ` ON ` + RowsTable + ` (bkt, id, val)`,
	} {
		sourcetest.Exec(t, e.db, q)
	}
	stop := e.run(t)
	defer stop()
	// A new extreme, then the record that held it moved away: the
	// bucket's extremes are read again.
	e.insert(t, rec{"d", "cpu", 9, h.Add(2 * time.Minute)})
	e.checkAggregates(t, "after the start")
	e.insert(t, rec{"d", "cpu", 2, h.Add(3 * time.Hour)})
	e.checkAggregates(t, "after the move")
	indexes := sourcetest.Column[string](t, e.db, `SELECT name FROM pragma_index_list('`+RowsTable+`') WHERE origin = 'c'`)
	if !slices.Equal(indexes, []string{RowsBucketIndex}) {
		t.Fatalf("indexes of %s: %v, want [%s]", RowsTable, indexes, RowsBucketIndex)
	}
	var plan []string
	rows, err := e.db.Query(`EXPLAIN QUERY PLAN SELECT MIN(val), MAX(val), SUM(val) FROM `+RowsTable+` WHERE bkt = ?`, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if len(plan) != 1 || !strings.Contains(plan[0], "USING INDEX "+RowsBucketIndex+" (bkt=?)") {
		t.Fatalf("the extremes of a bucket are read by %q, want its index", plan)
	}
}

// TestBucketID: bucket ids are short, tell groups and hours apart, and
// are the same for the same bucket however its hour was made.
func TestBucketID(t *testing.T) {
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ids := map[string]bool{}
	for _, g := range []string{"", "cpu", "mem", strings.Repeat("x", 10000)} {
		for _, hr := range []time.Time{h, h.Add(time.Hour), h.Add(-24 * 365 * 100 * time.Hour), time.Unix(0, 0).UTC()} {
			id := bucketID(g, hr)
			if len(id) > 30 || ids[id] {
				t.Fatalf("bucketID(%.10q, %v) = %q: too long or seen", g, hr, id)
			}
			ids[id] = true
			if again := bucketID(g, hr.In(time.FixedZone("x", 3600))); again != id {
				t.Fatalf("bucketID in another zone: %q, want %q", again, id)
			}
		}
	}
}
