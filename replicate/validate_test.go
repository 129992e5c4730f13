package replicate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqlite"
)

func TestValidateAndResync(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	for _, db := range []*sqldb.DB{src, dst} {
		exec(t, db, itemsDDL)
		fillItems(t, db, 1, 1001)
	}
	rep, err := replicate.Validate(ctx, src, dst, []string{"items"}, 100)
	if err != nil || !rep.OK() {
		t.Fatalf("equal tables: %v\n%s", err, rep)
	}
	// Plant differences: a changed value, a missing row, an extra row past
	// the source's last key, and an extra row inside a range.
	exec(t, dst, `UPDATE items SET price = '555.01' WHERE id = 555`)
	exec(t, dst, `DELETE FROM items WHERE id = 10`)
	exec(t, dst, `INSERT INTO items (id, name) VALUES (5000, 'stray')`)
	exec(t, dst, `DELETE FROM items WHERE id = 150`)
	exec(t, dst, `UPDATE items SET id = 150 WHERE id = 999`) // moves a row between ranges
	rep, err = replicate.Validate(ctx, src, dst, []string{"items"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("Validate found no difference")
	}
	tr := rep.Tables[0]
	if tr.Table != "items" || tr.SourceRows != 1000 || tr.TargetRows != 999 || !tr.CountsDiffer {
		t.Fatalf("table report = %+v", tr)
	}
	var got []string
	for _, r := range tr.Ranges {
		got = append(got, r.Describe())
	}
	want := []string{"(-∞ .. 100]", "(100 .. 200]", "(500 .. 600]", "(900 .. 1000]", "(1000 .. +∞]"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ranges = %v, want %v\n%s", got, want, rep)
	}
	if s := rep.String(); !strings.Contains(s, "items: differs") || !strings.Contains(s, "(500 .. 600]") {
		t.Fatalf("report text:\n%s", s)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}

	if err := replicate.Resync(ctx, src, dst, rep); err != nil {
		t.Fatal(err)
	}
	mustValidate(t, src, dst, "items")

	// Counts differ: a whole range missing.
	exec(t, dst, `DELETE FROM items WHERE id > 700`)
	rep, err = replicate.Validate(ctx, src, dst, []string{"items"}, 100)
	if err != nil || rep.OK() || !rep.Tables[0].CountsDiffer || len(rep.Tables[0].Ranges) != 3 {
		t.Fatalf("Validate = %v\n%s", err, rep)
	}
	if err := replicate.Resync(ctx, src, dst, rep); err != nil {
		t.Fatal(err)
	}
	mustValidate(t, src, dst, "items")

	// A table missing on the target is reported and created by Resync.
	exec(t, src, `CREATE TABLE extra (k TEXT PRIMARY KEY, v INTEGER)`)
	exec(t, src, `INSERT INTO extra VALUES ('a', 1), ('b', 2)`)
	rep, err = replicate.Validate(ctx, src, dst, []string{"items", "extra"}, 100)
	if err != nil || rep.OK() || !rep.Tables[1].Missing || !rep.Tables[0].OK() {
		t.Fatalf("Validate = %v\n%s", err, rep)
	}
	if err := replicate.Resync(ctx, src, dst, rep); err != nil {
		t.Fatal(err)
	}
	mustValidate(t, src, dst, "items", "extra")
}

// allKinds is a table with a column of every portable kind.
var allKinds = sqldb.Table{
	Name: "kinds",
	Columns: []sqldb.Column{
		{Name: "id", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "s", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}, Nullable: true},
		{Name: "txt", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "i", Type: sqldb.Type{Kind: sqldb.KindInt}, Nullable: true},
		{Name: "u", Type: sqldb.Type{Kind: sqldb.KindInt, Unsigned: true}, Nullable: true},
		{Name: "f", Type: sqldb.Type{Kind: sqldb.KindFloat}, Nullable: true},
		{Name: "d", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 30, Scale: 10}, Nullable: true},
		{Name: "b", Type: sqldb.Type{Kind: sqldb.KindBool}, Nullable: true},
		{Name: "ts", Type: sqldb.Type{Kind: sqldb.KindTimestamp}, Nullable: true},
		{Name: "day", Type: sqldb.Type{Kind: sqldb.KindDate}, Nullable: true},
		{Name: "tod", Type: sqldb.Type{Kind: sqldb.KindTime}, Nullable: true},
		{Name: "bin", Type: sqldb.Type{Kind: sqldb.KindBytes}, Nullable: true},
		{Name: "doc", Type: sqldb.Type{Kind: sqldb.KindJSON}, Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

// keyKinds has a primary key of bytes, timestamp and decimal columns.
var keyKinds = sqldb.Table{
	Name: "keykinds",
	Columns: []sqldb.Column{
		{Name: "k", Type: sqldb.Type{Kind: sqldb.KindBytes}},
		{Name: "at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
		{Name: "amt", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 10, Scale: 2}},
		{Name: "v", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
	},
	PrimaryKey: []string{"k", "at", "amt"},
}

func insertRow(t *testing.T, db *sqldb.DB, tbl sqldb.Table, vals ...any) {
	t.Helper()
	row := make([]any, len(vals))
	for i, v := range vals {
		x, err := db.Dialect.Value(tbl.Columns[i].Type, v)
		if err != nil {
			t.Fatal(err)
		}
		row[i] = x
	}
	exec(t, db, db.Dialect.Upsert(tbl, 1), row...)
}

func TestAllKindsAndNulls(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	for _, tbl := range []sqldb.Table{allKinds, keyKinds} {
		if err := src.EnsureTable(ctx, tbl); err != nil {
			t.Fatal(err)
		}
	}
	tables := []string{"kinds", "keykinds"}
	if err := replicate.Prepare(ctx, src, tables, quietLogger()); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2023, 12, 31, 23, 59, 59, 987654000, time.UTC)
	insertRow(t, src, allKinds, int64(1), "héllo", "long text\nline", int64(-42), uint64(18446744073709551615), 3.141592653589793,
		"12345678901234567890.0123456789", true, ts, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "13:14:15.5", []byte{0, 1, 2, 255}, `{"b":1,"a":[true,null]}`)
	insertRow(t, src, allKinds, int64(2), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil)
	insertRow(t, src, allKinds, int64(3), "", "", int64(0), uint64(0), math.Copysign(0, -1), "0", false, time.Unix(0, 0), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "00:00:00", []byte{}, `null`)
	insertRow(t, src, keyKinds, []byte{1, 2}, ts, "10.50", "x")
	insertRow(t, src, keyKinds, []byte{1, 2}, ts.Add(time.Microsecond), "10.50", nil)
	insertRow(t, src, keyKinds, []byte{0xff}, ts, "-1.00", "y")

	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: tables, BatchSize: 2, Poll: 5 * time.Millisecond})
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, tables...)

	// CDC of the same kinds, keys of every kind included.
	insertRow(t, src, allKinds, int64(4), "x", "y", int64(1)<<62, uint64(1)<<63, 1e-300, "-0.000001", true, ts.Add(-time.Hour), time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), "23:59:59", []byte("bytes"), `[1,2]`)
	exec(t, src, `UPDATE kinds SET s = NULL, bin = NULL, doc = '{}' WHERE id = 1`)
	insertRow(t, src, keyKinds, []byte{0, 0, 0}, ts, "0.01", "z")
	exec(t, src, `DELETE FROM keykinds WHERE k = x'ff'`)
	exec(t, src, `UPDATE keykinds SET at = ? WHERE k = x'0102' AND v = 'x'`, ts.Add(time.Hour).Format(sqlite.TimeFormat))
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, tables...)

	// Same dialect: the target holds exactly the source's stored values.
	for _, tbl := range []sqldb.Table{allKinds, keyKinds} {
		q := "SELECT * FROM " + tbl.Name + " ORDER BY " + strings.Join(tbl.PrimaryKey, ", ")
		a, b := dump(t, src, q), dump(t, dst, q)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s differs:\nsource %v\ntarget %v", tbl.Name, a, b)
		}
	}
	if n := count(t, dst, `SELECT COUNT(*) FROM kinds WHERE id = 2 AND s IS NULL AND i IS NULL AND ts IS NULL AND bin IS NULL AND doc IS NULL`); n != 1 {
		t.Fatal("NULLs did not arrive as NULLs")
	}
	// Negative zero arrives as the source stored it (SQLite keeps REAL
	// -0.0 as 0.0): == alone cannot tell the two apart, the sign bit can.
	var sf, tf float64
	if err := src.QueryRowContext(ctx, `SELECT f FROM kinds WHERE id = 3`).Scan(&sf); err != nil {
		t.Fatal(err)
	}
	if err := dst.QueryRowContext(ctx, `SELECT f FROM kinds WHERE id = 3`).Scan(&tf); err != nil {
		t.Fatal(err)
	}
	if tf != 0 || math.Signbit(tf) != math.Signbit(sf) {
		t.Fatalf("the source's %v arrived as %v", sf, tf)
	}
}

func dump(t *testing.T, db *sqldb.DB, q string) [][]any {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = bytes.Clone(b)
			}
		}
		out = append(out, vals)
	}
	return out
}

// TestValidateAndResyncReadDurableRows: a commit is visible a moment
// before the sync that makes it durable ends (sqldb.DB.WaitDurable), so
// source rows that may be copied to the target (the rows a validation
// compares, whose differences a resync applies, and the rows a resync of
// whole ranges copies) are made sure of first: here they were written
// through another opener of the source (another process), whose syncs
// this one cannot see, so each read syncs the source's log itself.
func TestValidateAndResyncReadDurableRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "src.db")
	src, other, dst := openAt(t, path), openAt(t, path), openDB(t, "dst")
	exec(t, src, itemsDDL)
	exec(t, dst, itemsDDL)
	syncs := func() int64 {
		st, ok := src.WriteLock()
		if !ok {
			t.Fatal("no write lock figures")
		}
		return st.Syncs
	}
	fillItems(t, other, 1, 101)
	before := syncs()
	if _, err := replicate.Validate(ctx, src, dst, []string{"items"}, 0); err != nil {
		t.Fatal(err)
	}
	if after := syncs(); after <= before {
		t.Errorf("syncs of the source's log: %d before the validation, %d after; want one more", before, after)
	}
	// A target without the table: the resync copies whole ranges.
	fresh := openDB(t, "fresh")
	rep, err := replicate.Validate(ctx, src, fresh, []string{"items"}, 0)
	if err != nil || len(rep.Tables) != 1 || !rep.Tables[0].Missing {
		t.Fatalf("validate against a target without the table: %v\n%s", err, rep)
	}
	exec(t, other, `UPDATE items SET qty = 7`)
	before = syncs()
	if err := replicate.Resync(ctx, src, fresh, rep); err != nil {
		t.Fatal(err)
	}
	if after := syncs(); after <= before {
		t.Errorf("syncs of the source's log: %d before the resync, %d after; want one more", before, after)
	}
	mustValidate(t, src, fresh, "items")
}
