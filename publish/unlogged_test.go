package publish

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb/postgres"
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
	// The pool's idle connections died with the server; the first query
	// on each would fail (unexpected EOF). Drop them, as a restarted
	// client would, and read the table with the server's own client.
	e.db.SetMaxIdleConns(0)
	e.db.SetMaxIdleConns(postgres.MaxIdleConns)
	if got := pg.Query(t, "app", `SELECT COUNT(*) FROM `+RowsTable+` WHERE id = 'zz-stray'`); len(got) != 1 || got[0] != "0" {
		t.Fatalf("after the crash %s holds the stray row (%q) (want it gone: an unlogged table is emptied)", RowsTable, got)
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
	var n int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM ` + RowsMarkerTable).Scan(&n); err != nil || n != 1 {
		t.Fatalf("marker rows in %s: %d, %v", RowsMarkerTable, n, err)
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
// PostgreSQL is rebuilt once, at the next start, into unlogged tables: a
// stray contribution and a wrong bucket it held are gone, and the old
// contributions table is dropped, never rewritten row by row (ALTER TABLE
// ... SET UNLOGGED would: an event trigger on table_rewrite, installed by
// the superuser, records every rewrite). The earlier layouts: a logged
// contributions table without a marker, and an unlogged one whose marker
// was its row with the id "".
func TestPostgresEarlierStateIsRebuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers are skipped with -short")
	}
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		layout []string
	}{
		{"logged", []string{
			`ALTER TABLE ` + RowsTable + ` SET LOGGED`,
		}},
		{"marker row", []string{
			`INSERT INTO ` + RowsTable + ` VALUES ('', '#rows', 0)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg := peers.StartPostgres(t)
			e := newEnvAt(t, pg.URL("app"))
			e.publishThree(t, h)
			layout := append(tc.layout,
				`DROP TABLE `+RowsMarkerTable,
				`UPDATE `+BucketsTable+` SET bkt = '#state/2' WHERE bkt = '`+stateMarker+`'`,
				`INSERT INTO `+RowsTable+` VALUES ('zz', '`+bucketID("cpu", h)+`', 1000)`,
				`UPDATE `+BucketsTable+` SET cnt = cnt + 1, total = total + 1000, max_v = 1000 WHERE bkt = '`+bucketID("cpu", h)+`'`,
			)
			for _, q := range layout {
				sourcetest.Exec(t, e.db, q)
			}
			root, err := sql.Open("pgx", pg.RootURL("app"))
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			for _, q := range []string{
				`CREATE TABLE rewrites (tbl text)`,
				`GRANT SELECT, INSERT ON rewrites TO PUBLIC`,
				`CREATE FUNCTION note_rewrite() RETURNS event_trigger LANGUAGE plpgsql AS $$
				BEGIN INSERT INTO rewrites VALUES (pg_event_trigger_table_rewrite_oid()::regclass::text); END $$`,
				`CREATE EVENT TRIGGER note_rewrite ON table_rewrite EXECUTE FUNCTION note_rewrite()`,
			} {
				if _, err := root.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			e.insert(t, rec{"d", "cpu", -3, h.Add(2 * time.Minute)})
			e.run(t)
			e.checkAggregates(t, "after the rebuild")
			rewritten := sourcetest.Column[string](t, root, `SELECT tbl FROM rewrites`)
			if len(rewritten) > 0 {
				t.Errorf("tables rewritten at the start: %v", rewritten)
			}
			var persistence string
			var stray, empty, marker int
			if err := e.db.QueryRow(`SELECT string_agg(relpersistence::text, '' ORDER BY relname) FROM pg_class WHERE relname IN ($1, $2)`, RowsTable, RowsMarkerTable).Scan(&persistence); err != nil || persistence != "uu" {
				t.Fatalf("%s, %s: relpersistence %q (want uu: unlogged), %v", RowsTable, RowsMarkerTable, persistence, err)
			}
			if err := e.db.QueryRow(`SELECT COUNT(*) FILTER (WHERE id = 'zz'), COUNT(*) FILTER (WHERE id = ''), (SELECT COUNT(*) FROM `+RowsMarkerTable+`) FROM `+RowsTable).Scan(&stray, &empty, &marker); err != nil || stray != 0 || empty != 0 || marker != 1 {
				t.Fatalf("stray contributions %d, contributions of the id '' %d, markers %d, %v", stray, empty, marker, err)
			}
		})
	}
}

// TestOddRecordIDs: records written straight into the records table with
// odd ids (the empty one, blanks, quotes, a backslash, array and marker
// look-alikes, "NULL", a tab, the longest) are counted, moved and deleted
// exactly like any other, before the first start and after, across a
// restart. None of them stands for the contributions' marker: the state
// is built once, at the first start, and the publisher never fails.
func TestOddRecordIDs(t *testing.T) {
	dbs := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"postgres", func(t *testing.T) string { return peers.StartPostgres(t).URL("app") }},
		{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "sql.db") }},
	}
	for _, tc := range dbs {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "sqlite" && testing.Short() {
				t.Skip("real servers are skipped with -short")
			}
			e := newEnvAt(t, tc.url(t))
			h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
			odd := []string{" ", "NULL", `"`, `\`, "{}", "{a,b}", ",", "#rows", "#state/2", "a\tb", "é", strings.Repeat("x", record.MaxIDLength), ""}
			var before, after []rec
			for i := range 20 {
				before = append(before, rec{fmt.Sprintf("r%02d", i), "cpu", float64(i), h.Add(time.Duration(i) * time.Minute)})
			}
			for i, id := range odd {
				r := rec{id, []string{"cpu", "mem"}[i%2], float64(i*10 - 50), h.Add(time.Duration(i) * time.Minute)}
				if i < len(odd)/2 {
					before = append(before, r)
				} else {
					after = append(after, r)
				}
			}
			if err := e.db.EnsureTable(context.Background(), e.table); err != nil {
				t.Fatal(err)
			}
			e.insert(t, before...)
			logs := &logCounter{n: map[string]int{}}
			stop := e.runWith(t, func(c *Config) { c.Logger = slog.New(logs) })
			e.checkAggregates(t, "at the first start")
			e.insert(t, after...)
			e.checkAggregates(t, "after new records with odd ids")
			// Each moved to the other group and the next hour, with a new
			// extreme among them.
			var moved []rec
			for i, id := range odd {
				moved = append(moved, rec{id, []string{"mem", "cpu"}[i%2], float64(-1000 * i), h.Add(time.Hour + time.Duration(i)*time.Minute)})
			}
			e.insert(t, moved...)
			e.checkAggregates(t, "after moving them")
			d := e.db.Dialect
			for _, id := range []string{"", " ", `\`} {
				if _, err := e.db.Exec(fmt.Sprintf("DELETE FROM %s WHERE %s = %s", d.Quote("records"), d.Quote("id"), d.Placeholder(1)), id); err != nil {
					t.Fatal(err)
				}
			}
			e.checkAggregates(t, "after deleting some")
			e.insert(t, rec{"", "disk", 7, h})
			e.checkAggregates(t, "after the empty id came back")
			stop()
			first := logs.take()
			e.insert(t, rec{"", "disk", 8, h}, rec{" ", "cpu", 1e6, h})
			e.runWith(t, func(c *Config) { c.Logger = slog.New(logs) })
			e.checkAggregates(t, "after a restart")
			second := logs.take()
			if first[msgRebuilt] != 1 || second[msgRebuilt] != 0 || first[msgRetry]+second[msgRetry] != 0 {
				t.Fatalf("state built %d times at the first start and %d at the second (want 1 and 0); %d failed runs",
					first[msgRebuilt], second[msgRebuilt], first[msgRetry]+second[msgRetry])
			}
			// Every record has its contribution, and only the records.
			var records, contributions, joined int
			q := fmt.Sprintf("SELECT (SELECT COUNT(*) FROM %[1]s), (SELECT COUNT(*) FROM %[2]s), (SELECT COUNT(*) FROM %[1]s r JOIN %[2]s c ON c.%[3]s = r.%[3]s)",
				d.Quote("records"), d.Quote(RowsTable), d.Quote("id"))
			if err := e.db.QueryRow(q).Scan(&records, &contributions, &joined); err != nil || records != contributions || records != joined {
				t.Fatalf("%d records, %d contributions, %d of them the records', %v", records, contributions, joined, err)
			}
		})
	}
}

// Messages TestOddRecordIDs counts.
const (
	msgRebuilt = "aggregates rebuilt"
	msgRetry   = "publish failed; retrying"
)

// logCounter is a slog.Handler that counts the messages logged.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }

func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.n[r.Message]++
	c.mu.Unlock()
	return nil
}

func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }

// take returns the counts so far and starts again from zero.
func (c *logCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// TestPostgresContributionsIndexCoversTheValue: on PostgreSQL the
// contributions' second index is on the bucket alone and carries the
// value (INCLUDE), so it stays narrow and still answers a bucket's
// extremes on its own. A state whose contributions have an earlier version's index
// (on bucket, id and value) is rebuilt with the new one at the start.
func TestPostgresContributionsIndexCoversTheValue(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers are skipped with -short")
	}
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	pg := peers.StartPostgres(t)
	e := newEnvAt(t, pg.URL("app"))
	indexes := func() []string {
		return sourcetest.Column[string](t, e.db, `SELECT indexdef FROM pg_indexes WHERE tablename = '`+RowsTable+`' ORDER BY indexname COLLATE "C"`)
	}
	want := []string{
		`CREATE UNIQUE INDEX ` + RowsTable + `_pkey ON public.` + RowsTable + ` USING btree (id)`,
		`CREATE INDEX ` + RowsCoveringIndex + ` ON public.` + RowsTable + ` USING btree (bkt) INCLUDE (val)`,
	}
	e.publishThree(t, h)
	if got := indexes(); !slices.Equal(got, want) {
		t.Fatalf("indexes of %s:\n%s\nwant\n%s", RowsTable, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// An earlier version's layout: the index on bucket, id and value,
	// and a stray contribution only a rebuild removes.
	for _, q := range []string{
		`DROP INDEX ` + RowsCoveringIndex,
		`CREATE INDEX ` + RowsIndex + ` ON ` + RowsTable + ` (bkt, id, val)`,
		`INSERT INTO ` + RowsTable + ` VALUES ('zz', '` + bucketID("cpu", h) + `', 1000)`,
		`UPDATE ` + BucketsTable + ` SET cnt = cnt + 1, total = total + 1000, max_v = 1000 WHERE bkt = '` + bucketID("cpu", h) + `'`,
	} {
		sourcetest.Exec(t, e.db, q)
	}
	e.insert(t, rec{"d", "cpu", -3, h.Add(2 * time.Minute)})
	e.run(t)
	e.checkAggregates(t, "after the rebuild")
	if got := indexes(); !slices.Equal(got, want) {
		t.Fatalf("indexes of %s after the start:\n%s\nwant\n%s", RowsTable, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var stray int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM ` + RowsTable + ` WHERE id = 'zz'`).Scan(&stray); err != nil || stray != 0 {
		t.Fatalf("stray contributions %d, %v", stray, err)
	}
}
