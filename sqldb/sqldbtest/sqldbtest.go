// Package sqldbtest is the conformance suite every sqldb driver passes
// against a real database: RunConformance.
//
// The suite checks the Dialect contract end to end: DDL is idempotent,
// Describe reads back every portable type, Upsert inserts then
// overwrites, InsertIgnore keeps existing rows and counts only inserted
// ones, values of every portable kind survive Value → INSERT → SELECT
// exactly (decimals compared as exact rationals, JSON as documents),
// identifiers that need quoting work everywhere, and DB.Tx commits, rolls
// back and retries a transient failure.
//
// Describe may be lossy only where a dialect's DDL is; the accepted
// differences are listed per dialect in Lossy, and anything else fails.
package sqldbtest

import (
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// Lossy maps a dialect's name to what its Describe returns for a declared
// type, where that differs from the declared type. Ints are compared with
// Bits 0 read as 64.
var Lossy = map[string]func(sqldb.Type) sqldb.Type{
	// SQLite declares every integer INTEGER (int64) except uint64, string(0)
	// as TEXT, and bytes as BLOB without a length.
	"sqlite": func(t sqldb.Type) sqldb.Type {
		switch t.Kind {
		case sqldb.KindInt:
			if t.Unsigned && bits(t) == 64 {
				return sqldb.Type{Kind: sqldb.KindInt, Unsigned: true, Bits: 64}
			}
			return sqldb.Type{Kind: sqldb.KindInt, Bits: 64}
		case sqldb.KindString:
			if t.Length == 0 {
				return sqldb.Type{Kind: sqldb.KindText}
			}
		case sqldb.KindBytes:
			return sqldb.Type{Kind: sqldb.KindBytes}
		}
		return t
	},
	// PostgreSQL has no 8-bit or unsigned integers: each takes the next
	// wider signed type (uint64 NUMERIC(20,0)); BYTEA has no length.
	"postgres": func(t sqldb.Type) sqldb.Type {
		switch t.Kind {
		case sqldb.KindInt:
			b := bits(t)
			if t.Unsigned {
				if b == 64 {
					return sqldb.Type{Kind: sqldb.KindDecimal, Precision: 20}
				}
				b *= 2
			}
			if b < 16 {
				b = 16
			}
			return sqldb.Type{Kind: sqldb.KindInt, Bits: b}
		case sqldb.KindBytes:
			return sqldb.Type{Kind: sqldb.KindBytes}
		}
		return t
	},
	// MySQL and MariaDB keep MEDIUMTEXT / LONGBLOB lengths only up to the
	// VARCHAR / VARBINARY limits (4096 characters, 16384 bytes), and have
	// no boolean: TINYINT(1) is an 8-bit integer.
	"mysql": func(t sqldb.Type) sqldb.Type {
		switch {
		case t.Kind == sqldb.KindBool:
			return sqldb.Type{Kind: sqldb.KindInt, Bits: 8}
		case t.Kind == sqldb.KindString && t.Length > 4096:
			return sqldb.Type{Kind: sqldb.KindString}
		case t.Kind == sqldb.KindBytes && t.Length > 16384:
			return sqldb.Type{Kind: sqldb.KindBytes}
		}
		return t
	},
}

func bits(t sqldb.Type) int {
	if t.Bits == 0 {
		return 64
	}
	return t.Bits
}

// essential strips a type to the parameters its kind uses.
func essential(t sqldb.Type) sqldb.Type {
	switch t.Kind {
	case sqldb.KindString, sqldb.KindBytes:
		return sqldb.Type{Kind: t.Kind, Length: t.Length}
	case sqldb.KindInt:
		return sqldb.Type{Kind: t.Kind, Bits: bits(t), Unsigned: t.Unsigned}
	case sqldb.KindDecimal:
		return sqldb.Type{Kind: t.Kind, Precision: t.Precision, Scale: t.Scale}
	}
	return sqldb.Type{Kind: t.Kind}
}

// expectedType is what Describe should return for a declared type.
func expectedType(dialect string, t sqldb.Type) sqldb.Type {
	if f, ok := Lossy[dialect]; ok {
		t = f(t)
	}
	return essential(t)
}

// RunConformance runs the suite on the database open returns. open is
// called once; the suite creates (and first drops) tables named conf_*.
func RunConformance(t *testing.T, open func(t *testing.T) *sqldb.DB) {
	db := open(t)
	name := db.Dialect.Name()
	t.Logf("dialect %s (%s)", name, db.Name)
	start := time.Now()
	t.Run("EnsureTableIdempotent", func(t *testing.T) { testEnsureTable(t, db) })
	t.Run("DescribeMissing", func(t *testing.T) { testDescribeMissing(t, db) })
	t.Run("DescribeTypes", func(t *testing.T) { testDescribe(t, db) })
	t.Run("Upsert", func(t *testing.T) { testUpsert(t, db) })
	t.Run("UpsertKeyOnly", func(t *testing.T) { testKeyOnly(t, db) })
	t.Run("CompositeKey", func(t *testing.T) { testCompositeKey(t, db) })
	t.Run("InsertIgnore", func(t *testing.T) { testInsertIgnore(t, db) })
	t.Run("UpsertNewer", func(t *testing.T) { testUpsertNewer(t, db) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, db) })
	t.Run("QuotedIdentifiers", func(t *testing.T) { testIdentifiers(t, db) })
	t.Run("Index", func(t *testing.T) { testIndex(t, db) })
	t.Run("TxCommit", func(t *testing.T) { testTxCommit(t, db) })
	t.Run("TxRollback", func(t *testing.T) { testTxRollback(t, db) })
	t.Run("TxRetriesTransient", func(t *testing.T) { testTxTransient(t, db) })
	t.Run("RejectedData", func(t *testing.T) { testRejected(t, db) })
	t.Logf("conformance %s: %v", name, time.Since(start).Round(time.Millisecond))
}

// --- helpers ---

func fresh(t *testing.T, db *sqldb.DB, tbl sqldb.Table) {
	t.Helper()
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+db.Dialect.Quote(tbl.Name)); err != nil {
		t.Fatalf("drop %s: %v", tbl.Name, err)
	}
	if err := db.EnsureTable(ctx, tbl); err != nil {
		t.Fatalf("ensure %s: %v", tbl.Name, err)
	}
}

// bind converts rows of Go values with the dialect, flattened.
func bind(t *testing.T, d sqldb.Dialect, tbl sqldb.Table, rows [][]any) []any {
	t.Helper()
	var args []any
	for _, r := range rows {
		if len(r) != len(tbl.Columns) {
			t.Fatalf("row has %d values, table %d columns", len(r), len(tbl.Columns))
		}
		for i, v := range r {
			x, err := d.Value(tbl.Columns[i].Type, v)
			if err != nil {
				t.Fatalf("value %s=%#v: %v", tbl.Columns[i].Name, v, err)
			}
			args = append(args, x)
		}
	}
	return args
}

func upsert(t *testing.T, db sqldb.Querier, d sqldb.Dialect, tbl sqldb.Table, rows [][]any) int64 {
	t.Helper()
	res, err := db.ExecContext(t.Context(), d.Upsert(tbl, len(rows)), bind(t, d, tbl, rows)...)
	if err != nil {
		t.Fatalf("upsert into %s: %v", tbl.Name, err)
	}
	n, _ := res.RowsAffected()
	return n
}

func insertIgnore(t *testing.T, db sqldb.Querier, d sqldb.Dialect, tbl sqldb.Table, rows [][]any) (int64, error) {
	t.Helper()
	res, err := db.ExecContext(t.Context(), d.InsertIgnore(tbl, len(rows)), bind(t, d, tbl, rows)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// selectAll reads every row in key order, each value in canonical text.
func selectAll(t *testing.T, db *sqldb.DB, tbl sqldb.Table) [][]string {
	t.Helper()
	d := db.Dialect
	q := fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", sqldb.QuoteList(d, tbl.ColumnNames()), d.Quote(tbl.Name), sqldb.QuoteList(d, tbl.PrimaryKey))
	rows, err := db.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatalf("select %s: %v", tbl.Name, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(tbl.Columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("scan %s: %v", tbl.Name, err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			s, err := Canon(tbl.Columns[i].Type, v)
			if err != nil {
				t.Fatalf("%s.%s: read %T %v: %v", tbl.Name, tbl.Columns[i].Name, v, v, err)
			}
			row[i] = s
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("select %s: %v", tbl.Name, err)
	}
	return out
}

// want converts Go rows to the canonical text the database must return.
func want(t *testing.T, tbl sqldb.Table, rows [][]any) [][]string {
	t.Helper()
	out := make([][]string, len(rows))
	for r, row := range rows {
		out[r] = make([]string, len(row))
		for i, v := range row {
			c, err := sqldb.Canonical(tbl.Columns[i].Type, v)
			if err != nil {
				t.Fatalf("canonical %s=%#v: %v", tbl.Columns[i].Name, v, err)
			}
			if out[r][i], err = Canon(tbl.Columns[i].Type, c); err != nil {
				t.Fatalf("canon %s=%#v: %v", tbl.Columns[i].Name, v, err)
			}
		}
	}
	return out
}

func compareRows(t *testing.T, tbl sqldb.Table, got, want [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d:\n got %q\nwant %q", tbl.Name, len(got), len(want), got, want)
	}
	for r := range want {
		for i := range want[r] {
			if got[r][i] != want[r][i] {
				t.Errorf("%s row %d column %s: got %s, want %s", tbl.Name, r, tbl.Columns[i].Name, got[r][i], want[r][i])
			}
		}
	}
}

// Canon renders a value read from (or bound for) a column as canonical
// text, so that drivers' different Go types compare: integers in decimal,
// floats shortest round-trip, decimals as exact rationals, timestamps
// RFC 3339 UTC, dates YYYY-MM-DD, times hh:mm:ss[.ffffff], bytes in hex,
// JSON re-marshalled with sorted keys, NULL as "NULL".
func Canon(t sqldb.Type, v any) (string, error) {
	if v == nil {
		return "NULL", nil
	}
	if b, ok := v.([]byte); ok && t.Kind != sqldb.KindBytes {
		v = string(b)
	}
	switch t.Kind {
	case sqldb.KindString, sqldb.KindText:
		if s, ok := v.(string); ok {
			return strconv.Quote(s), nil
		}
	case sqldb.KindInt:
		switch x := v.(type) {
		case int64:
			return strconv.FormatInt(x, 10), nil
		case uint64:
			return strconv.FormatUint(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), nil
		case string:
			r, ok := new(big.Rat).SetString(x)
			if ok && r.IsInt() {
				return r.Num().String(), nil
			}
		}
	case sqldb.KindFloat:
		switch x := v.(type) {
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		case float32:
			return strconv.FormatFloat(float64(x), 'g', -1, 32), nil
		case string:
			f, err := strconv.ParseFloat(x, 64)
			if err == nil {
				return strconv.FormatFloat(f, 'g', -1, 64), nil
			}
		}
	case sqldb.KindDecimal:
		s := fmt.Sprint(v)
		if r, ok := new(big.Rat).SetString(s); ok {
			return r.RatString(), nil
		}
	case sqldb.KindBool:
		switch x := v.(type) {
		case bool:
			return strconv.FormatBool(x), nil
		case int64:
			return strconv.FormatBool(x != 0), nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return strconv.FormatBool(b), nil
			}
		}
	case sqldb.KindTimestamp, sqldb.KindDate:
		var ts time.Time
		switch x := v.(type) {
		case time.Time:
			ts = x
		case string:
			var err error
			for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02"} {
				if ts, err = time.Parse(l, x); err == nil {
					break
				}
			}
			if err != nil {
				return "", fmt.Errorf("unparsable time %q", x)
			}
		default:
			return "", fmt.Errorf("unexpected %T", v)
		}
		if t.Kind == sqldb.KindDate {
			return ts.Format("2006-01-02"), nil
		}
		return ts.UTC().Format(time.RFC3339Nano), nil
	case sqldb.KindTime:
		// Independently of sqldb's value model: [-]h:mm:ss[.f] with the
		// fraction's trailing zeros (and a zero's sign) dropped.
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case time.Duration:
			neg := x < 0
			if neg {
				x = -x
			}
			s = fmt.Sprintf("%d:%02d:%02d.%06d", x/time.Hour, x%time.Hour/time.Minute, x%time.Minute/time.Second, x%time.Second/time.Microsecond)
			if neg {
				s = "-" + s
			}
		case time.Time:
			s = x.Format("15:04:05.000000")
		default:
			return "", fmt.Errorf("unexpected %T for a time", v)
		}
		neg := strings.HasPrefix(s, "-")
		hms, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
		parts := strings.Split(hms, ":")
		h, err := strconv.Atoi(parts[0])
		if len(parts) != 3 || err != nil {
			return "", fmt.Errorf("unparsable time %q", s)
		}
		if len(frac) > 6 {
			frac = frac[:6]
		}
		out := fmt.Sprintf("%02d:%s:%s", h, parts[1], parts[2])
		if frac = strings.TrimRight(frac, "0"); frac != "" {
			out += "." + frac
		}
		if neg && strings.Trim(out, "0:.") != "" {
			out = "-" + out
		}
		return out, nil
	case sqldb.KindBytes:
		switch x := v.(type) {
		case []byte:
			return "x'" + hex.EncodeToString(x) + "'", nil
		case string:
			return "x'" + hex.EncodeToString([]byte(x)) + "'", nil
		}
	case sqldb.KindJSON:
		s, ok := v.(string)
		if !ok {
			b, err := json.Marshal(v)
			if err != nil {
				return "", err
			}
			s = string(b)
		}
		var doc any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return "", fmt.Errorf("json %q: %w", s, err)
		}
		b, err := json.Marshal(doc)
		return string(b), err
	}
	return "", fmt.Errorf("unexpected %T %v for %v", v, v, t.Kind)
}

// --- cases ---

func kvTable(name string) sqldb.Table {
	return sqldb.Table{Name: name, Columns: []sqldb.Column{
		{Name: "id", Type: sqldb.Type{Kind: sqldb.KindString, Length: 32}},
		{Name: "n", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "s", Type: sqldb.Type{Kind: sqldb.KindString, Length: 20}, Nullable: true},
	}, PrimaryKey: []string{"id"}}
}

func testEnsureTable(t *testing.T, db *sqldb.DB) {
	tbl := kvTable("conf_ensure")
	fresh(t, db, tbl)
	upsert(t, db, db.Dialect, tbl, [][]any{{"a", int64(1), "x"}})
	for i := 0; i < 2; i++ {
		if err := db.EnsureTable(t.Context(), tbl); err != nil {
			t.Fatalf("EnsureTable again: %v", err)
		}
	}
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{{"a", int64(1), "x"}}))
}

// testRejected: a statement the database refuses for its data is
// Rejected, and neither Unavailable nor Transient, whatever wraps it.
func testRejected(t *testing.T, db *sqldb.DB) {
	tbl := kvTable("conf_rejected")
	fresh(t, db, tbl)
	d := db.Dialect
	_, err := db.ExecContext(t.Context(), d.InsertIgnore(tbl, 1), "a", nil, "x")
	if err == nil {
		t.Fatal("NULL in a NOT NULL column accepted")
	}
	err = fmt.Errorf("load: insert: %w", err)
	if !sqldb.Rejected(err) || sqldb.Unavailable(err) || sqldb.Transient(err) {
		t.Fatalf("NULL in a NOT NULL column: Rejected %v, Unavailable %v, Transient %v (%v)",
			sqldb.Rejected(err), sqldb.Unavailable(err), sqldb.Transient(err), err)
	}
	if sqldb.Rejected(nil) || sqldb.Unavailable(nil) {
		t.Fatal("nil classified")
	}
}

func testDescribeMissing(t *testing.T, db *sqldb.DB) {
	_, err := db.Dialect.Describe(t.Context(), db, "conf_no_such_table")
	if !errors.Is(err, sqldb.ErrNoTable) {
		t.Fatalf("Describe of a missing table: %v, want ErrNoTable", err)
	}
}

// typesTable has a column of every portable type and parameter.
func typesTable() sqldb.Table {
	ty := func(k sqldb.Kind) sqldb.Type { return sqldb.Type{Kind: k} }
	in := func(b int, u bool) sqldb.Type { return sqldb.Type{Kind: sqldb.KindInt, Bits: b, Unsigned: u} }
	cols := []sqldb.Column{
		{Name: "id", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
		{Name: "s10", Type: sqldb.Type{Kind: sqldb.KindString, Length: 10}},
		{Name: "s0", Type: sqldb.Type{Kind: sqldb.KindString}},
		{Name: "txt", Type: ty(sqldb.KindText)},
		{Name: "i8", Type: in(8, false)},
		{Name: "i16", Type: in(16, false)},
		{Name: "i32", Type: in(32, false)},
		{Name: "i64", Type: in(64, false)},
		{Name: "u8", Type: in(8, true)},
		{Name: "u16", Type: in(16, true)},
		{Name: "u32", Type: in(32, true)},
		{Name: "u64", Type: in(64, true)},
		{Name: "f", Type: ty(sqldb.KindFloat)},
		{Name: "d", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 38, Scale: 10}},
		{Name: "d52", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 5, Scale: 2}},
		{Name: "b", Type: ty(sqldb.KindBool)},
		{Name: "ts", Type: ty(sqldb.KindTimestamp)},
		{Name: "dt", Type: ty(sqldb.KindDate)},
		{Name: "tm", Type: ty(sqldb.KindTime)},
		{Name: "by", Type: sqldb.Type{Kind: sqldb.KindBytes, Length: 300}},
		{Name: "bl", Type: ty(sqldb.KindBytes)},
		{Name: "j", Type: ty(sqldb.KindJSON)},
	}
	for i := 1; i < len(cols); i++ {
		cols[i].Nullable = true
	}
	return sqldb.Table{Name: "conf_types", Columns: cols, PrimaryKey: []string{"id"}}
}

func testDescribe(t *testing.T, db *sqldb.DB) {
	tbl := typesTable()
	tbl.Columns[1].Nullable = false // one NOT NULL non-key column
	fresh(t, db, tbl)
	got, err := db.Dialect.Describe(t.Context(), db, tbl.Name)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if got.Name != tbl.Name {
		t.Errorf("name %q, want %q", got.Name, tbl.Name)
	}
	if strings.Join(got.PrimaryKey, ",") != strings.Join(tbl.PrimaryKey, ",") {
		t.Errorf("primary key %v, want %v", got.PrimaryKey, tbl.PrimaryKey)
	}
	if len(got.Columns) != len(tbl.Columns) {
		t.Fatalf("%d columns, want %d: %+v", len(got.Columns), len(tbl.Columns), got.Columns)
	}
	for i, c := range tbl.Columns {
		g := got.Columns[i]
		if g.Name != c.Name {
			t.Errorf("column %d: name %q, want %q", i, g.Name, c.Name)
			continue
		}
		if g.Nullable != c.Nullable {
			t.Errorf("column %s: nullable %v, want %v", c.Name, g.Nullable, c.Nullable)
		}
		exp := expectedType(db.Dialect.Name(), c.Type)
		if !essential(g.Type).Equal(exp) {
			t.Errorf("column %s: declared %+v, described %+v, want %+v", c.Name, c.Type, g.Type, exp)
		} else if !essential(c.Type).Equal(exp) {
			t.Logf("column %s: declared %+v reads back as %+v (documented)", c.Name, essential(c.Type), exp)
		}
	}
	// The described table creates an equal table: what replication does.
	again := got
	again.Name = "conf_types_again"
	fresh(t, db, again)
	got2, err := db.Dialect.Describe(t.Context(), db, again.Name)
	if err != nil {
		t.Fatalf("Describe again: %v", err)
	}
	for i := range got.Columns {
		if !essential(got2.Columns[i].Type).Equal(essential(got.Columns[i].Type)) {
			t.Errorf("column %s: Describe → CreateTable → Describe gives %+v, then %+v", got.Columns[i].Name, got.Columns[i].Type, got2.Columns[i].Type)
		}
	}
}

func testUpsert(t *testing.T, db *sqldb.DB) {
	tbl := kvTable("conf_upsert")
	fresh(t, db, tbl)
	upsert(t, db, db.Dialect, tbl, [][]any{{"a", int64(1), "a1"}, {"b", int64(2), nil}, {"c", int64(3), "c1"}})
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{{"a", int64(1), "a1"}, {"b", int64(2), nil}, {"c", int64(3), "c1"}}))
	upsert(t, db, db.Dialect, tbl, [][]any{{"a", int64(10), nil}, {"b", int64(20), "b2"}, {"d", int64(4), "d1"}})
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{
		{"a", int64(10), nil}, {"b", int64(20), "b2"}, {"c", int64(3), "c1"}, {"d", int64(4), "d1"}}))
	// The same statement again changes nothing and does not fail.
	upsert(t, db, db.Dialect, tbl, [][]any{{"a", int64(10), nil}})
	// A bad row fails the whole statement: nothing of it is written.
	_, err := db.ExecContext(t.Context(), db.Dialect.Upsert(tbl, 2), bind(t, db.Dialect, tbl, [][]any{{"e", int64(5), "e"}, {"f", nil, "f"}})...)
	if err == nil {
		t.Fatalf("upsert of a NULL into a NOT NULL column succeeded")
	}
	if n := len(selectAll(t, db, tbl)); n != 4 {
		t.Fatalf("a failed upsert left %d rows, want 4", n)
	}
}

func testKeyOnly(t *testing.T, db *sqldb.DB) {
	tbl := sqldb.Table{Name: "conf_keyonly", Columns: []sqldb.Column{{Name: "k", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}}}, PrimaryKey: []string{"k"}}
	fresh(t, db, tbl)
	upsert(t, db, db.Dialect, tbl, [][]any{{"a"}, {"b"}})
	upsert(t, db, db.Dialect, tbl, [][]any{{"a"}, {"c"}})
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{{"a"}, {"b"}, {"c"}}))
}

func testCompositeKey(t *testing.T, db *sqldb.DB) {
	tbl := sqldb.Table{Name: "conf_composite", Columns: []sqldb.Column{
		{Name: "k1", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}},
		{Name: "k2", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "v", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
	}, PrimaryKey: []string{"k1", "k2"}}
	fresh(t, db, tbl)
	upsert(t, db, db.Dialect, tbl, [][]any{{"a", int64(1), "a1"}, {"a", int64(2), "a2"}, {"b", int64(1), "b1"}})
	upsert(t, db, db.Dialect, tbl, [][]any{{"a", int64(2), "A2"}})
	n, err := insertIgnore(t, db, db.Dialect, tbl, [][]any{{"b", int64(1), "B1"}, {"b", int64(2), "b2"}})
	if err != nil || n != 1 {
		t.Fatalf("insert ignore: %d rows, %v; want 1", n, err)
	}
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{
		{"a", int64(1), "a1"}, {"a", int64(2), "A2"}, {"b", int64(1), "b1"}, {"b", int64(2), "b2"}}))
	got, err := db.Dialect.Describe(t.Context(), db, tbl.Name)
	if err != nil || strings.Join(got.PrimaryKey, ",") != "k1,k2" {
		t.Fatalf("Describe: key %v, %v; want [k1 k2]", got.PrimaryKey, err)
	}
}

func testInsertIgnore(t *testing.T, db *sqldb.DB) {
	tbl := kvTable("conf_ignore")
	fresh(t, db, tbl)
	n, err := insertIgnore(t, db, db.Dialect, tbl, [][]any{{"a", int64(1), "a1"}, {"b", int64(2), "b1"}})
	if err != nil || n != 2 {
		t.Fatalf("first insert: %d rows, %v; want 2", n, err)
	}
	n, err = insertIgnore(t, db, db.Dialect, tbl, [][]any{{"a", int64(100), "changed"}, {"c", int64(3), nil}})
	if err != nil || n != 1 {
		t.Fatalf("second insert: %d rows, %v; want 1", n, err)
	}
	n, err = insertIgnore(t, db, db.Dialect, tbl, [][]any{{"a", int64(100), "changed"}, {"c", int64(30), nil}})
	if err != nil || n != 0 {
		t.Fatalf("third insert: %d rows, %v; want 0", n, err)
	}
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{{"a", int64(1), "a1"}, {"b", int64(2), "b1"}, {"c", int64(3), nil}}))
	// Errors other than a duplicate key are not ignored.
	if _, err := insertIgnore(t, db, db.Dialect, tbl, [][]any{{"d", nil, "d"}}); err == nil {
		t.Fatalf("insert ignore swallowed a NOT NULL violation")
	}
	if n := len(selectAll(t, db, tbl)); n != 3 {
		t.Fatalf("%d rows after a failed insert, want 3", n)
	}
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func testRoundTrip(t *testing.T, db *sqldb.DB) {
	tbl := typesTable()
	fresh(t, db, tbl)
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	date := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	text := "emoji 😀🇪🇺 ü ß 中文 \x01\x02\x1f\x7f\t\r\n quotes ' \" ` \\ end"
	rows := [][]any{
		{"max", "0123456789", strings.Repeat("long ", 1000), text,
			int64(math.MaxInt8), int64(math.MaxInt16), int64(math.MaxInt32), int64(math.MaxInt64),
			uint64(math.MaxUint8), uint64(math.MaxUint16), uint64(math.MaxUint32), uint64(math.MaxUint64),
			math.MaxFloat64, "9999999999999999999999999999.9999999999", "999.99", true,
			ts("9999-12-31T23:59:59.999999Z"), date(9999, 12, 31), "23:59:59.999999",
			allBytes(), allBytes(), `{"a":[1,2.5,"x",true,null],"b":{"c":{}},"e":"😀 \u0001"}`},
		{"min", "", "", "",
			int64(math.MinInt8), int64(math.MinInt16), int64(math.MinInt32), int64(math.MinInt64),
			uint64(0), uint64(0), uint64(0), uint64(0),
			-math.MaxFloat64, "-9999999999999999999999999999.9999999999", "-999.99", false,
			ts("1970-01-01T00:00:00.000001Z"), date(1, 1, 1), "00:00:00",
			[]byte{}, []byte{0}, `[]`},
		{"mid", "ab", text, "x", int64(-1), int64(0), int64(1), int64(-1),
			uint64(1), uint64(2), uint64(3), uint64(math.MaxInt64) + 1,
			math.SmallestNonzeroFloat64, "0.0000000001", "0.01", true,
			ts("2024-02-29T12:34:56.789012Z"), date(2024, 2, 29), "12:34:56.789012",
			[]byte{0xff, 0x00, 0xfe}, []byte{0xff}, `"just a string"`},
		{"neg", "x", "y", "z", int64(0), int64(-2), int64(-3), int64(math.MinInt64) + 1,
			uint64(0), uint64(0), uint64(0), uint64(math.MaxInt64),
			-1.5e-300, "-0.0000000001", "0", false,
			// Nanoseconds are truncated to microseconds by Value.
			ts("2000-01-01T00:00:00.123456789Z"), date(2000, 1, 1), "08:00:00.5",
			[]byte("\x00\x00"), []byte("text"), `12.5`},
		{"nulls", "n", nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
			nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
	}
	upsert(t, db, db.Dialect, tbl, rows)
	sorted := [][]any{rows[0], rows[2], rows[1], rows[3], rows[4]} // ORDER BY id
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, sorted))

	// A lookup by a bound value finds the row, for every kind a key or
	// filter might use.
	for _, c := range []string{"i64", "u64", "d", "ts", "dt", "by"} {
		col, _ := tbl.Column(c)
		idx := 0
		for i, cc := range tbl.Columns {
			if cc.Name == c {
				idx = i
			}
		}
		v, err := db.Dialect.Value(col.Type, rows[0][idx])
		if err != nil {
			t.Fatal(err)
		}
		var id string
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", db.Dialect.Quote("id"), db.Dialect.Quote(tbl.Name), db.Dialect.Quote(c), db.Dialect.Placeholder(1))
		if err := db.QueryRowContext(t.Context(), q, v).Scan(&id); err != nil || id != "max" {
			t.Errorf("lookup by %s: %q, %v", c, id, err)
		}
	}
}

func testIdentifiers(t *testing.T, db *sqldb.DB) {
	tbl := sqldb.Table{Name: `conf order "by" it's`, Columns: []sqldb.Column{
		{Name: "select", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}},
		{Name: "from where", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: `dq"col`, Type: sqldb.Type{Kind: sqldb.KindString, Length: 10}, Nullable: true},
		{Name: "bt`col]x", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "sq'col", Type: sqldb.Type{Kind: sqldb.KindBool}, Nullable: true},
		{Name: "Mixed Case ü", Type: sqldb.Type{Kind: sqldb.KindFloat}, Nullable: true},
	}, PrimaryKey: []string{"select", "from where"}}
	fresh(t, db, tbl)
	if err := db.EnsureTable(t.Context(), tbl); err != nil {
		t.Fatal(err)
	}
	upsert(t, db, db.Dialect, tbl, [][]any{{"a", int64(1), "x", "y", true, 1.5}})
	upsert(t, db, db.Dialect, tbl, [][]any{{"a", int64(1), "x2", nil, false, 2.5}})
	if n, err := insertIgnore(t, db, db.Dialect, tbl, [][]any{{"a", int64(1), "no", nil, nil, nil}, {"b", int64(1), nil, nil, nil, nil}}); err != nil || n != 1 {
		t.Fatalf("insert ignore: %d, %v", n, err)
	}
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{{"a", int64(1), "x2", nil, false, 2.5}, {"b", int64(1), nil, nil, nil, nil}}))
	got, err := db.Dialect.Describe(t.Context(), db, tbl.Name)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if strings.Join(got.ColumnNames(), "|") != strings.Join(tbl.ColumnNames(), "|") || strings.Join(got.PrimaryKey, "|") != strings.Join(tbl.PrimaryKey, "|") {
		t.Fatalf("Describe: columns %q key %q", got.ColumnNames(), got.PrimaryKey)
	}
	if ix, ok := db.Dialect.(sqldb.Indexer); ok {
		for _, s := range ix.CreateIndex(tbl.Name, `ix "odd" name`, []string{"from where", `dq"col`}) {
			if _, err := db.ExecContext(t.Context(), s); err != nil {
				t.Fatalf("create index: %v", err)
			}
		}
	}
}

func testIndex(t *testing.T, db *sqldb.DB) {
	ix, ok := db.Dialect.(sqldb.Indexer)
	if !ok {
		t.Skip("dialect has no Indexer")
	}
	tbl := kvTable("conf_index")
	fresh(t, db, tbl)
	for i := 0; i < 2; i++ {
		for _, s := range ix.CreateIndex(tbl.Name, "ix_conf_index_n", []string{"n", "s"}) {
			if _, err := db.ExecContext(t.Context(), s); err != nil {
				t.Fatalf("create index (time %d): %v", i+1, err)
			}
		}
	}
}

func count(t *testing.T, db sqldb.Querier, d sqldb.Dialect, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+d.Quote(table)).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func testTxCommit(t *testing.T, db *sqldb.DB) {
	tbl := kvTable("conf_tx")
	fresh(t, db, tbl)
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		upsert(t, tx, db.Dialect, tbl, [][]any{{"a", int64(1), nil}, {"b", int64(2), nil}})
		if n := count(t, tx, db.Dialect, tbl.Name); n != 2 {
			return fmt.Errorf("inside the transaction %d rows, want 2", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, db.Dialect, tbl.Name); n != 2 {
		t.Fatalf("after commit %d rows, want 2", n)
	}
}

func testTxRollback(t *testing.T, db *sqldb.DB) {
	tbl := kvTable("conf_rollback")
	fresh(t, db, tbl)
	boom := errors.New("boom")
	attempts := 0
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		attempts++
		upsert(t, tx, db.Dialect, tbl, [][]any{{"a", int64(1), nil}})
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx returned %v, want boom", err)
	}
	if attempts != 1 {
		t.Fatalf("a non-transient error was tried %d times", attempts)
	}
	if n := count(t, db, db.Dialect, tbl.Name); n != 0 {
		t.Fatalf("after rollback %d rows, want 0", n)
	}
}

// lockTimeout returns the statements that make the current transaction
// give up waiting for a row lock quickly, and those that undo them.
func lockTimeout(dialect string) (set, reset []string) {
	switch dialect {
	case "mysql":
		return []string{"SET SESSION innodb_lock_wait_timeout = 1"}, []string{"SET SESSION innodb_lock_wait_timeout = DEFAULT"}
	case "postgres":
		return []string{"SET LOCAL lock_timeout = '100ms'"}, nil
	case "sqlserver":
		return []string{"SET LOCK_TIMEOUT 100"}, []string{"SET LOCK_TIMEOUT -1"}
	}
	return nil, nil
}

func testTxTransient(t *testing.T, db *sqldb.DB) {
	set, reset := lockTimeout(db.Dialect.Name())
	if set == nil {
		t.Skipf("no way to provoke a lock timeout on %s without a long wait", db.Dialect.Name())
	}
	ctx := t.Context()
	d := db.Dialect
	tbl := kvTable("conf_transient")
	fresh(t, db, tbl)
	upsert(t, db, d, tbl, [][]any{{"x", int64(0), nil}})
	update := fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s = %s", d.Quote(tbl.Name), d.Quote("n"), d.Placeholder(1), d.Quote("id"), d.Placeholder(2))

	holder, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, update, int64(1), "x"); err != nil {
		t.Fatalf("lock the row: %v", err)
	}
	attempts := 0
	var firstErr error
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		attempts++
		if attempts == 1 {
			for _, s := range set {
				if _, err := tx.ExecContext(ctx, s); err != nil {
					return fmt.Errorf("set lock timeout: %w", err)
				}
			}
			_, err := tx.ExecContext(ctx, update, int64(100), "x")
			firstErr = err
			for _, s := range reset {
				_, _ = tx.ExecContext(ctx, s)
			}
			if err := holder.Commit(); err != nil {
				return fmt.Errorf("release the lock: %w", err)
			}
			if err == nil {
				return errors.New("the update did not wait for the lock")
			}
			return err
		}
		_, err := tx.ExecContext(ctx, update, int64(100), "x")
		return err
	})
	if err != nil {
		t.Fatalf("Tx: %v (first attempt: %v)", err, firstErr)
	}
	if !sqldb.Transient(firstErr) {
		t.Fatalf("lock timeout %v is not Transient", firstErr)
	}
	if attempts != 2 {
		t.Fatalf("%d attempts, want 2", attempts)
	}
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{{"x", int64(100), nil}}))
	t.Logf("retried after: %v", firstErr)
}

// RunOutage takes a real server away under an open database, once with
// each of downs (a clean stop, a kill), and brings it back with up: while
// it is down a statement fails Unavailable (never Rejected), and once it is
// back the pool reconnects by itself (a connection the server closed may
// fail one more statement, as Unavailable).
func RunOutage(t *testing.T, db *sqldb.DB, up func(testing.TB), downs ...func(testing.TB)) {
	t.Helper()
	// Idle pooled connections that the outage kills.
	var conns []*sql.Conn
	for range 4 {
		c, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	for _, down := range downs {
		down(t)
		_, err := db.ExecContext(t.Context(), "SELECT 1")
		if err == nil || !sqldb.Unavailable(fmt.Errorf("wrapped: %w", err)) || sqldb.Rejected(err) {
			t.Fatalf("statement while the server is down: %v (Unavailable %v)", err, sqldb.Unavailable(err))
		}
		up(t)
		for try := 0; ; try++ {
			_, err := db.ExecContext(t.Context(), "SELECT 1")
			if err == nil {
				break
			}
			if !sqldb.Unavailable(err) || try == 8 {
				t.Fatalf("statement after restart (try %d): %v", try, err)
			}
		}
	}
}

// testUpsertNewer: a row replaces the stored one only when its version
// (a timestamp, then a name breaking ties) is greater; an older or equal
// row changes nothing; new keys are inserted either way.
func testUpsertNewer(t *testing.T, db *sqldb.DB) {
	nu, ok := db.Dialect.(sqldb.NewerUpserter)
	if !ok {
		t.Skipf("%s has no conditional upsert", db.Dialect.Name())
	}
	tbl := sqldb.Table{Name: "conf_newer", Columns: []sqldb.Column{
		{Name: "k", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}},
		{Name: "v", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
		{Name: "origin", Type: sqldb.Type{Kind: sqldb.KindString, Length: 32}},
	}, PrimaryKey: []string{"k"}}
	fresh(t, db, tbl)
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Microsecond) }
	run := func(rows [][]any) {
		t.Helper()
		if _, err := db.ExecContext(t.Context(), nu.UpsertNewer(tbl, len(rows), []string{"at", "origin"}), bind(t, db.Dialect, tbl, rows)...); err != nil {
			t.Fatal(err)
		}
	}
	run([][]any{{"a", "a-aws", ms(10), "aws"}, {"b", "b-aws", ms(10), "aws"}, {"c", "c-azure", ms(10), "azure"}, {"d", "d-aws", ms(10), "aws"}})
	run([][]any{
		{"a", "a-azure-later", ms(11), "azure"},  // later: wins
		{"b", "b-azure-tie", ms(10), "azure"},    // same time, greater name: wins
		{"c", "c-aws-tie", ms(10), "aws"},        // same time, smaller name: loses
		{"d", "d-azure-earlier", ms(9), "azure"}, // earlier: loses
		{"e", "e-new", ms(1), "aws"},             // new key: inserted
	})
	// Applying the same rows again changes nothing.
	run([][]any{{"a", "a-azure-later", ms(11), "azure"}, {"c", "c-aws-tie", ms(10), "aws"}})
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{
		{"a", "a-azure-later", ms(11), "azure"},
		{"b", "b-azure-tie", ms(10), "azure"},
		{"c", "c-azure", ms(10), "azure"},
		{"d", "d-aws", ms(10), "aws"},
		{"e", "e-new", ms(1), "aws"},
	}))
	// The order of arrival does not matter: both orders end the same.
	fresh(t, db, tbl)
	run([][]any{{"x", "x-azure", ms(5), "azure"}})
	run([][]any{{"x", "x-aws", ms(5), "aws"}})
	compareRows(t, tbl, selectAll(t, db, tbl), want(t, tbl, [][]any{{"x", "x-azure", ms(5), "azure"}}))
}
