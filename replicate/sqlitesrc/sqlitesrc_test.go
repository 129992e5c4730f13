package sqlitesrc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func openDB(t testing.TB) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "t.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sqldb.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func changes(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT tbl || ' ' || pk || ' ' || op || ' ' || origin FROM _ic_changes ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

func TestTriggers(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	mustExec(t, db, `CREATE TABLE "odd ""name""" (k1 TEXT, k2 INTEGER, v BLOB, PRIMARY KEY (k1, k2))`)
	mustExec(t, db, `CREATE TABLE bin (k BLOB PRIMARY KEY, v TEXT)`)
	tables := []string{`odd "name"`, "bin"}
	for i := 0; i < 2; i++ { // idempotent
		if err := Install(ctx, db, tables); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'`).Scan(&n); err != nil || n != 6 {
		t.Fatalf("%d triggers, %v", n, err)
	}
	mustExec(t, db, `INSERT INTO "odd ""name""" VALUES ('a', 1, x'00'), ('b''q', 2, NULL)`)
	mustExec(t, db, `UPDATE "odd ""name""" SET v = x'01' WHERE k1 = 'a'`)
	mustExec(t, db, `UPDATE "odd ""name""" SET k2 = 3 WHERE k1 = 'a'`)
	mustExec(t, db, `DELETE FROM "odd ""name""" WHERE k2 = 2`)
	mustExec(t, db, `INSERT INTO bin VALUES (x'00ff', 'x')`)
	mustExec(t, db, `INSERT INTO bin VALUES (x'00ff', 'y') ON CONFLICT (k) DO UPDATE SET v = excluded.v`)
	want := []string{
		`odd "name" ["a",1] I`,
		`odd "name" ["b'q",2] I`,
		`odd "name" ["a",1] U`,
		`odd "name" ["a",1] D`, // a key change: old key deleted,
		`odd "name" ["a",3] U`, // new key written
		`odd "name" ["b'q",2] D`,
		`bin ["00FF"] I`,
		`bin ["00FF"] U`,
	}
	if got := changes(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := Install(ctx, db, []string{"missing"}); err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Fatalf("Install(missing) = %v", err)
	}
	// Each change's time is now, in Unix milliseconds (digits in the TEXT
	// column).
	var bad int
	var last int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE CAST(CAST(at AS INTEGER) AS TEXT) != at), MAX(CAST(at AS INTEGER)) FROM _ic_changes`).Scan(&bad, &last); err != nil || bad != 0 {
		t.Fatalf("%d change times not milliseconds, %v", bad, err)
	}
	if at := time.UnixMilli(last); time.Since(at).Abs() > time.Minute {
		t.Fatalf("change time %d (%v) is not now", last, at)
	}
}

func collect(t *testing.T, src *Source, from replicate.Position, opts replicate.StreamOptions, until func([]replicate.Batch) bool) []replicate.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []replicate.Batch
	err := src.Stream(ctx, from, opts, func(ctx context.Context, b replicate.Batch) error {
		got = append(got, b)
		if until(got) {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream = %v", err)
	}
	return got
}

func TestStream(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	mustExec(t, db, `CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, _trace_id TEXT)`)
	mustExec(t, db, `CREATE TABLE b (id TEXT PRIMARY KEY)`)
	src, err := Open(ctx, db, []string{"a", "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mustExec(t, db, `INSERT INTO a VALUES (1, 'one', 't1'), (2, 'two', 't2')`)
	mustExec(t, db, `UPDATE a SET v = 'uno' WHERE id = 1`)
	mustExec(t, db, `INSERT INTO b VALUES ('x')`)
	mustExec(t, db, `DELETE FROM a WHERE id = 2`)
	// A replicated write, tagged.
	m := Marker{}
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		if err := m.MarkOrigin(ctx, tx, "peer"); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO a VALUES (3, 'three', NULL)`); err != nil {
			return err
		}
		return m.UnmarkOrigin(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}
	cur, err := src.Current(ctx)
	if err != nil || cur != "6" {
		t.Fatalf("Current = %q, %v", cur, err)
	}

	all := func(b []replicate.Batch) bool { return b[len(b)-1].Position == cur }
	got := collect(t, src, "", replicate.StreamOptions{Tables: []string{"a"}, SkipReplicated: true, MaxBatch: 100, Poll: time.Millisecond}, all)
	if len(got) != 1 {
		t.Fatalf("%d batches", len(got))
	}
	b := got[0]
	var desc []string
	for _, c := range b.Changes {
		desc = append(desc, fmt.Sprintf("%s %v %v %v %s", c.Table, c.Op, c.Key, c.Row["v"], c.TraceID))
	}
	// Key 1's two changes collapse into its current image; key 2 is gone;
	// b is filtered out and the tagged write skipped.
	want := []string{"a upsert [1] uno t1", "a delete [2] <nil> "}
	if !reflect.DeepEqual(desc, want) {
		t.Fatalf("changes %q, want %q", desc, want)
	}
	if b.CommitTime.IsZero() || time.Since(b.CommitTime) > time.Minute {
		t.Fatalf("commit time %v", b.CommitTime)
	}

	// Without SkipReplicated, the tagged write comes too; small batches.
	got = collect(t, src, "", replicate.StreamOptions{MaxBatch: 2, Poll: time.Millisecond}, all)
	var n int
	var last int64
	for _, b := range got {
		p, _ := ParsePosition(b.Position)
		if p <= last || len(b.Changes) > 2 {
			t.Fatalf("batch %+v after %d", b, last)
		}
		last = p
		n += len(b.Changes)
	}
	if len(got) != 3 || n != 6 {
		t.Fatalf("%d batches, %d changes", len(got), n)
	}

	// Resuming from a position gives only what follows.
	got = collect(t, src, "5", replicate.StreamOptions{Poll: time.Millisecond}, all)
	if len(got) != 1 || len(got[0].Changes) != 1 || got[0].Changes[0].Key[0] != int64(3) {
		t.Fatalf("from 5: %+v", got)
	}

	// Errors: unknown table, bad position, failing fn.
	if err := src.Stream(ctx, "", replicate.StreamOptions{Tables: []string{"zzz"}}, nil); err == nil {
		t.Fatal("unknown table accepted")
	}
	if err := src.Stream(ctx, "x1", replicate.StreamOptions{}, nil); err == nil {
		t.Fatal("bad position accepted")
	}
	boom := errors.New("boom")
	if err := src.Stream(ctx, "", replicate.StreamOptions{}, func(context.Context, replicate.Batch) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Stream = %v, want fn's error", err)
	}
}

func TestStreamStopsPromptly(t *testing.T) {
	db := openDB(t)
	mustExec(t, db, `CREATE TABLE a (id INTEGER PRIMARY KEY)`)
	src, err := Open(context.Background(), db, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Stream(ctx, "", replicate.StreamOptions{Poll: time.Hour}, func(context.Context, replicate.Batch) error { return nil })
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Stream = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Stream did not return on cancel")
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	mustExec(t, db, `CREATE TABLE a (id INTEGER PRIMARY KEY)`)
	src, err := Open(ctx, db, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		mustExec(t, db, `INSERT INTO a VALUES (?)`, i)
	}
	n, err := Prune(ctx, db, "3")
	if err != nil || n != 3 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	if err := src.Prune(ctx, "5"); err != nil {
		t.Fatal(err)
	}
	if got := changes(t, db); len(got) != 0 {
		t.Fatalf("left %v", got)
	}
	// The position survives an empty log, and new changes follow it.
	if cur, err := src.Current(ctx); err != nil || cur != "5" {
		t.Fatalf("Current = %q, %v", cur, err)
	}
	mustExec(t, db, `INSERT INTO a VALUES (99)`)
	if cur, _ := src.Current(ctx); cur != "6" {
		t.Fatalf("Current = %q after an insert", cur)
	}
	if _, err := Prune(ctx, db, "-1"); err == nil {
		t.Fatal("bad position accepted")
	}
}

func TestParsePosition(t *testing.T) {
	for in, want := range map[replicate.Position]int64{"": 0, "0": 0, "42": 42, "9223372036854775807": 1<<63 - 1} {
		if got, err := ParsePosition(in); err != nil || got != want {
			t.Errorf("ParsePosition(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []replicate.Position{"-1", "x", "1.5", " 1", "9223372036854775808"} {
		if _, err := ParsePosition(in); err == nil {
			t.Errorf("ParsePosition(%q) accepted", in)
		}
	}
}

func FuzzDecodeKey(f *testing.F) {
	for _, s := range []string{`[1]`, `["a",2]`, `["00FF"]`, `[1.5]`, `[null]`, `[`, `{}`, `[[1]]`, `[1e400]`,
		`["01a22b3d-08d8-7000-808f-a592882eba72"]`, `["a\"b"]`, `["é"]`, `[""]`, `["a"] `} {
		f.Add(s)
	}
	tbl := newTable(sqldb.Table{Name: "t", Columns: []sqldb.Column{
		{Name: "a", Type: sqldb.Type{Kind: sqldb.KindBytes}},
		{Name: "b", Type: sqldb.Type{Kind: sqldb.KindInt}},
	}, PrimaryKey: []string{"a", "b"}}, "")
	one := newTable(sqldb.Table{Name: "u", Columns: []sqldb.Column{{Name: "a", Type: sqldb.Type{Kind: sqldb.KindText}}}, PrimaryKey: []string{"a"}}, "")
	f.Fuzz(func(t *testing.T, s string) {
		for _, tb := range []*table{tbl, one} {
			key, err := decodeKey(tb, s)
			if err == nil && len(key) != len(tb.kinds) {
				t.Fatalf("decodeKey(%q) = %v", s, key)
			}
			// The shortcut for one text column agrees with the decoder.
			if slow, serr := decodeKeyJSON(tb, s); err == nil && (serr != nil || !reflect.DeepEqual(key, slow)) {
				t.Fatalf("decodeKey(%q) = %#v, the JSON decoder %#v, %v", s, key, slow, serr)
			}
		}
	})
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"", "0", "123", "-1", "1e3", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParsePosition(replicate.Position(s))
		if err == nil && FormatPosition(n) != replicate.Position(s) && s != "" {
			// Only canonical decimals round-trip; others (leading zeros,
			// "+") are accepted by strconv but must stay non-negative.
			if n < 0 {
				t.Fatalf("ParsePosition(%q) = %d", s, n)
			}
		}
	})
}

// TestJoinedRead checks that a source capturing one table, which reads
// the changes and their rows in one joined statement, gives the same
// batches as one capturing more tables, which reads the rows by key
// afterwards: for each kind of key, with updates, deletes, a key changed
// by an update, a replicated write and a batch boundary in between.
func TestJoinedRead(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, create string
		keys         []string // the SQL key values of three rows
		newKey       string   // what the second row's key becomes
	}{
		{"integer", `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, _trace_id TEXT)`, []string{"1", "2", "3"}, "20"},
		{"text", `CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, _trace_id TEXT)`, []string{"'a'", `'b"\'`, "'01a22b3d-08d8-7000-808f-a592882eba72'"}, "'é'"},
		{"text that looks like a number", `CREATE TABLE t (k VARCHAR(10) PRIMARY KEY, v TEXT, _trace_id TEXT)`, []string{"'1'", "'2.50'", "'x'"}, "'3'"},
		{"blob", `CREATE TABLE t (k BLOB PRIMARY KEY, v TEXT, _trace_id TEXT)`, []string{"x'00ff'", "x'01'", "x''"}, "x'abcd'"},
		{"real", `CREATE TABLE t (k REAL PRIMARY KEY, v TEXT, _trace_id TEXT)`, []string{"1.5", "-2.25", "1e300"}, "0.1"},
		{"without rowid", `CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, _trace_id TEXT) WITHOUT ROWID`, []string{"'a'", "'b'", "'c'"}, "'d'"},
		{"a column named rowid", `CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, _trace_id TEXT, rowid TEXT DEFAULT 'r')`, []string{"'a'", "'b'", "'c'"}, "'d'"},
		{"columns named rowid, _rowid_ and oid", `CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT, _trace_id TEXT, rowid TEXT, _rowid_ TEXT, "OID" TEXT)`, []string{"'a'", "'b'", "'c'"}, "'d'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			mustExec(t, db, tc.create)
			mustExec(t, db, `CREATE TABLE other (id INTEGER PRIMARY KEY)`)
			joined, err := Open(ctx, db, []string{"t"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer joined.Close()
			general, err := Open(ctx, db, []string{"t", "other"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer general.Close()
			if joined.only(map[string]bool{"t": true}) == nil || general.only(map[string]bool{"t": true, "other": true}) != nil {
				t.Fatal("the one-table source does not read joined, or the other one does")
			}
			for i, k := range tc.keys {
				mustExec(t, db, fmt.Sprintf(`INSERT INTO t (k, v, _trace_id) VALUES (%s, 'v%d', 'trace%d')`, k, i, i))
			}
			mustExec(t, db, `INSERT INTO other VALUES (7)`)
			mustExec(t, db, fmt.Sprintf(`UPDATE t SET v = 'updated' WHERE k = %s`, tc.keys[0]))
			mustExec(t, db, fmt.Sprintf(`UPDATE t SET k = %s WHERE k = %s`, tc.newKey, tc.keys[1]))
			mustExec(t, db, fmt.Sprintf(`DELETE FROM t WHERE k = %s`, tc.keys[2]))
			m := Marker{}
			if err := db.Tx(ctx, func(tx *sql.Tx) error {
				if err := m.MarkOrigin(ctx, tx, "peer"); err != nil {
					return err
				}
				if _, err := tx.Exec(fmt.Sprintf(`INSERT INTO t (k, v, _trace_id) VALUES (%s, 'replicated', NULL)`, tc.keys[2])); err != nil {
					return err
				}
				return m.UnmarkOrigin(ctx, tx)
			}); err != nil {
				t.Fatal(err)
			}
			cur, err := joined.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The joined statement itself finds the rows (not the
			// exact-key read that confirms a miss): the first change is
			// of the first row, which is there.
			tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			_, _, images, err := joined.tables["t"].readJoined(ctx, tx, 0, replicate.StreamOptions{MaxBatch: 100})
			tx.Rollback()
			if err != nil || len(images) == 0 || images[0] == nil {
				t.Fatalf("readJoined: %v, images %v", err, images)
			}
			// Every change of a table with rowids logs the row's.
			var noRowid int64
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM _ic_changes WHERE tbl = 't' AND rid IS NULL`).Scan(&noRowid); err != nil {
				t.Fatal(err)
			}
			if withRowid := !strings.Contains(tc.create, "WITHOUT ROWID") && !strings.Contains(tc.create, "OID"); withRowid != (noRowid == 0) {
				t.Fatalf("%d changes without a rowid", noRowid)
			}
			all := func(b []replicate.Batch) bool { return b[len(b)-1].Position == cur }
			// The logged rowids as they are, then stale: naming another
			// row (as after VACUUM renumbered them), none, or missing
			// (as in changes logged by an earlier version).
			for _, hints := range []string{"", `UPDATE _ic_changes SET rid = CASE seq % 3 WHEN 0 THEN rid + 1 WHEN 1 THEN NULL ELSE -1 END`} {
				if hints != "" {
					mustExec(t, db, hints)
				}
				for _, opts := range []replicate.StreamOptions{
					{Tables: []string{"t"}, MaxBatch: 100},
					{Tables: []string{"t"}, MaxBatch: 3},
					{Tables: []string{"t"}, MaxBatch: 100, SkipReplicated: true},
					{Tables: []string{"t"}, MaxBatch: 2, SkipReplicated: true},
				} {
					opts.Poll = time.Millisecond
					got := collect(t, joined, "", opts, all)
					want := collect(t, general, "", opts, all)
					if !reflect.DeepEqual(describe(got), describe(want)) {
						t.Fatalf("%q %+v: joined read\n%s\nreading by key\n%s", hints, opts, describe(got), describe(want))
					}
					if n := len(describe(got)); n == 0 {
						t.Fatalf("%+v: no changes", opts)
					}
					if opts.MaxBatch == 100 && !opts.SkipReplicated {
						checkImages(t, db, got)
					}
				}
			}
		})
	}
}

// checkImages checks the changes of one batch of every change of table t
// against t read with a query of its own: an upsert for each row, with
// its v, and deletes only of keys that have none.
func checkImages(t *testing.T, db *sqldb.DB, bs []replicate.Batch) {
	t.Helper()
	if len(bs) != 1 {
		t.Fatalf("%d batches", len(bs))
	}
	var rows, upserts int64
	if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM t`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	for _, c := range bs[0].Changes {
		var v sql.NullString
		err := db.QueryRowContext(context.Background(), `SELECT v FROM t WHERE k = ?`, c.Key...).Scan(&v)
		switch {
		case c.Op == replicate.OpDelete && errors.Is(err, sql.ErrNoRows):
		case c.Op == replicate.OpUpsert && err == nil && c.Row["v"] == v.String:
			upserts++
		default:
			t.Fatalf("%v %#v %#v: the table has v = %q, %v", c.Op, c.Key, c.Row, v.String, err)
		}
	}
	if upserts != rows {
		t.Fatalf("%d upserts, %d rows", upserts, rows)
	}
}

// describe renders batches for comparison.
func describe(bs []replicate.Batch) string {
	var b strings.Builder
	for _, x := range bs {
		fmt.Fprintf(&b, "batch %s:\n", x.Position)
		for _, c := range x.Changes {
			fmt.Fprintf(&b, "  %s %v %#v %#v %q\n", c.Table, c.Op, c.Key, c.Row, c.TraceID)
		}
	}
	return b.String()
}

// A change table and triggers installed by an earlier version (no rid
// column, the time as RFC 3339 text) are upgraded by the next Open, and the
// changes they logged are read like the new ones.
func TestUpgradeEarlierCapture(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	mustExec(t, db, `CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)`)
	mustExec(t, db, `CREATE TABLE _ic_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, pk TEXT NOT NULL,
		op TEXT NOT NULL, origin TEXT NOT NULL DEFAULT '', at TEXT NOT NULL)`)
	mustExec(t, db, `CREATE TABLE _ic_origin (id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT)`)
	const log = `INSERT INTO _ic_changes (tbl, pk, op, origin, at) SELECT 't', json_array(%s.k), '%s',
		COALESCE((SELECT origin FROM _ic_origin WHERE id = 1), ''), strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now');`
	mustExec(t, db, `CREATE TRIGGER _ic_t_ins AFTER INSERT ON t BEGIN `+fmt.Sprintf(log, "NEW", "I")+` END`)
	mustExec(t, db, `CREATE TRIGGER _ic_t_upd AFTER UPDATE ON t BEGIN `+fmt.Sprintf(log, "NEW", "U")+` END`)
	mustExec(t, db, `CREATE TRIGGER _ic_t_del AFTER DELETE ON t BEGIN `+fmt.Sprintf(log, "OLD", "D")+` END`)
	mustExec(t, db, `INSERT INTO t VALUES ('a', 'one'), ('b', 'two'), ('c', 'three')`)
	mustExec(t, db, `UPDATE t SET v = 'uno' WHERE k = 'a'`)
	mustExec(t, db, `DELETE FROM t WHERE k = 'b'`)
	before := time.Now()

	src, err := Open(ctx, db, []string{"t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var rids, ats int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(rid), COUNT(*) FILTER (WHERE at LIKE '____-__-__T__:__:__.___Z') FROM _ic_changes`).Scan(&rids, &ats); err != nil || rids != 0 || ats != 5 {
		t.Fatalf("earlier changes: %d with a rowid, %d with a time as text, %v", rids, ats, err)
	}
	cur, _ := src.Current(ctx)
	got := collect(t, src, "", replicate.StreamOptions{Poll: time.Millisecond}, func(b []replicate.Batch) bool { return b[len(b)-1].Position == cur })
	checkImages(t, db, got)
	if at := got[0].CommitTime; at.IsZero() || at.After(before) || before.Sub(at) > time.Minute {
		t.Fatalf("commit time %v of an earlier change, read at %v", at, before)
	}

	// What the new triggers log: the rowid, the time in milliseconds.
	mustExec(t, db, `INSERT INTO t VALUES ('d', 'four')`)
	mustExec(t, db, `UPDATE t SET v = 'tres' WHERE k = 'c'`)
	var rid, rowid int64
	var at string
	if err := db.QueryRowContext(ctx, `SELECT rid, at, (SELECT rowid FROM t WHERE k = 'd') FROM _ic_changes WHERE seq = 6`).Scan(&rid, &at, &rowid); err != nil || rid != rowid {
		t.Fatalf("change 6: rid %d, row %d, %v", rid, rowid, err)
	}
	if ms, err := strconv.ParseInt(at, 10, 64); err != nil || time.Since(time.UnixMilli(ms)).Abs() > time.Minute {
		t.Fatalf("change 6 at %q (%v)", at, err)
	}
	cur, _ = src.Current(ctx)
	got = collect(t, src, "", replicate.StreamOptions{Poll: time.Millisecond}, func(b []replicate.Batch) bool { return b[len(b)-1].Position == cur })
	checkImages(t, db, got)
	if at := got[0].CommitTime; time.Since(at).Abs() > time.Minute {
		t.Fatalf("commit time %v", at)
	}
}

func FuzzParseAt(f *testing.F) {
	for _, s := range []string{"1796043944544", "0", "-1", "2026-11-30T13:05:41.917Z", "2026-11-30T13:05:41Z", "", "x", "9223372036854775807", "1e3", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		at, ok := parseAt(s)
		if !ok {
			if !at.IsZero() {
				t.Fatalf("parseAt(%q) = %v, false", s, at)
			}
			return
		}
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil && at.UnixMilli() != ms {
			t.Fatalf("parseAt(%q) = %v (%d ms)", s, at, at.UnixMilli())
		}
	})
}

// TestStreamPassesOnDurableChanges: a commit is visible a little before
// the sync that makes it durable ends (sqldb.DB.WaitDurable), so the
// stream makes sure of it after each read that found changes, before it
// hands the batch on: here the change came from another opener of the
// file (another process), whose syncs this one cannot see, so it syncs
// the log itself. A read that finds none syncs nothing.
func TestStreamPassesOnDurableChanges(t *testing.T) {
	ctx := context.Background()
	u := "sqlite://" + filepath.Join(t.TempDir(), "t.db")
	db, other := sourcetest.Open(t, u), sourcetest.Open(t, u)
	mustExec(t, db, `CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)`)
	src, err := Open(ctx, db, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	syncs := func() int64 {
		st, ok := db.WriteLock()
		if !ok {
			t.Fatal("no write lock figures")
		}
		return st.Syncs
	}
	mustExec(t, db, `INSERT INTO a VALUES (0, 'zero')`)
	if err := db.WaitDurable(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, other, `INSERT INTO a VALUES (1, 'one')`)
	before := syncs()
	var handed int64
	collect(t, src, "", replicate.StreamOptions{Poll: 5 * time.Millisecond}, func(bs []replicate.Batch) bool {
		handed = syncs()
		return true
	})
	if handed <= before {
		t.Errorf("syncs of the log: %d after the insert, %d when the batch was handed on; want one more", before, handed)
	}
	idle := syncs()
	ictx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	pos, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Stream(ictx, pos, replicate.StreamOptions{Poll: 5 * time.Millisecond}, func(context.Context, replicate.Batch) error {
		t.Error("a batch with nothing changed")
		return nil
	}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stream = %v", err)
	}
	if got := syncs(); got != idle {
		t.Errorf("%d syncs while no change came; want none", got-idle)
	}
}
