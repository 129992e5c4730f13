package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// copyTable has a column of every kind.
func copyTable(name string) sqldb.Table {
	return sqldb.Table{Name: name, PrimaryKey: []string{"k"}, Columns: []sqldb.Column{
		{Name: "k", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "s", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}, Nullable: true},
		{Name: "tx", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "i", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 32}, Nullable: true},
		{Name: "u", Type: sqldb.Type{Kind: sqldb.KindInt, Unsigned: true}, Nullable: true},
		{Name: "f", Type: sqldb.Type{Kind: sqldb.KindFloat}, Nullable: true},
		{Name: "dec", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 12, Scale: 2}, Nullable: true},
		{Name: "b", Type: sqldb.Type{Kind: sqldb.KindBool}, Nullable: true},
		{Name: "ts", Type: sqldb.Type{Kind: sqldb.KindTimestamp}, Nullable: true},
		{Name: "d", Type: sqldb.Type{Kind: sqldb.KindDate}, Nullable: true},
		{Name: "tm", Type: sqldb.Type{Kind: sqldb.KindTime}, Nullable: true},
		{Name: "by", Type: sqldb.Type{Kind: sqldb.KindBytes}, Nullable: true},
		{Name: "j", Type: sqldb.Type{Kind: sqldb.KindJSON}, Nullable: true},
		{Name: "nn", Type: sqldb.Type{Kind: sqldb.KindString, Length: 8}},
	}}
}

// copyRows returns n rows from key lo, values converted by the dialect;
// gen varies the non-key values (gen 7 has values only binary COPY takes).
func copyRows(t *testing.T, d sqldb.Dialect, tbl sqldb.Table, lo, n, gen int) [][]any {
	t.Helper()
	strs := []string{"plain", "tab\there", "new\nline\r\n", `back\slash \N \.`, "", "ünïcødé ☃", "quote'\"", `\x41`}
	floats := []float64{0, -1.5, 1e300, math.Inf(1), math.Inf(-1), math.NaN(), 5e-324, math.Copysign(0, -1)}
	var rows [][]any
	for k := lo; k < lo+n; k++ {
		x := k + gen
		raw := []any{
			int64(k),
			strs[x%len(strs)],
			strings.Repeat(strs[(x+1)%len(strs)], 3),
			int64(x*7 - 1000),
			uint64(math.MaxUint64 - uint64(x)),
			floats[x%len(floats)],
			fmt.Sprintf("%d.%02d", x*13-500, x%100),
			x%2 == 0,
			time.Date(1970+x%300, time.Month(1+x%12), 1+x%28, x%24, x%60, x%60, (x%1000)*1000, time.UTC),
			time.Date(2000+x%50, 2, 1+x%28, 0, 0, 0, 0, time.UTC),
			fmt.Sprintf("%02d:%02d:%02d.%06d", x%24, x%60, (x+1)%60, x%1000000),
			[]byte{0, '\\', '\t', '\n', byte(x), 'x'},
			fmt.Sprintf(`{"k":%d,"s":"a\tb\\c"}`, x),
			"nn",
		}
		switch x % 9 {
		case 3: // nulls
			for i := 1; i < len(raw)-1; i++ {
				raw[i] = nil
			}
		case 5:
			if gen == 7 { // a year the text encoder leaves to pgx's binary COPY
				raw[8] = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
			}
		}
		row := make([]any, len(raw))
		for i, v := range raw {
			c, err := d.Value(tbl.Columns[i].Type, v)
			if err != nil {
				t.Fatalf("value %s %#v: %v", tbl.Columns[i].Name, v, err)
			}
			row[i] = c
		}
		rows = append(rows, row)
	}
	return rows
}

func upsertStatements(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, tbl sqldb.Table, rows [][]any) error {
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, d.Upsert(tbl, 1), r...); err != nil {
			return err
		}
	}
	return nil
}

// sameRows fails unless tables a and b hold the same rows.
func sameRows(t *testing.T, db *sqldb.DB, a, b string, want int64) {
	t.Helper()
	var diff, n int64
	q := fmt.Sprintf(`SELECT (SELECT COUNT(*) FROM (SELECT * FROM %[1]s EXCEPT SELECT * FROM %[2]s) x) +
(SELECT COUNT(*) FROM (SELECT * FROM %[2]s EXCEPT SELECT * FROM %[1]s) y), (SELECT COUNT(*) FROM %[2]s)`, a, b)
	if err := db.QueryRowContext(t.Context(), q).Scan(&diff, &n); err != nil {
		t.Fatal(err)
	}
	if diff != 0 || n != want {
		t.Fatalf("%s and %s differ in %d rows; %s has %d rows, want %d", a, b, diff, b, n, want)
	}
}

func count(t *testing.T, db *sqldb.DB, table string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// testCopyUpsert checks that CopyUpsert writes exactly what Upsert
// statements write, inside the caller's transaction.
func testCopyUpsert(t *testing.T, db *sqldb.DB) {
	ctx := t.Context()
	d := db.Dialect
	cp, ok := d.(sqldb.Copier)
	if !ok {
		t.Fatal("postgres dialect is not a sqldb.Copier")
	}
	want, got := copyTable("copy_want"), copyTable("copy_got")
	for _, tbl := range []sqldb.Table{want, got} {
		if err := db.EnsureTable(ctx, tbl); err != nil {
			t.Fatal(err)
		}
		// Described back, as replication sees the target.
	}
	got, err := d.Describe(ctx, db, "copy_got")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("NoTransaction", func(t *testing.T) {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		err = cp.CopyUpsert(ctx, conn, got, copyRows(t, d, got, 0, 3, 0))
		if err == nil || !strings.Contains(err.Error(), "no open transaction") {
			t.Fatalf("copy without a transaction: %v", err)
		}
		if n := count(t, db, "copy_got"); n != 0 {
			t.Fatalf("%d rows written", n)
		}
	})

	t.Run("RollbackLeavesNothing", func(t *testing.T) {
		for _, rows := range [][][]any{copyRows(t, d, got, 0, 200, 0), nil} {
			if rows == nil { // the staging path too: keys that exist
				if err := db.ConnTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
					return cp.CopyUpsert(ctx, conn, got, copyRows(t, d, got, 0, 10, 0))
				}); err != nil {
					t.Fatal(err)
				}
				rows = copyRows(t, d, got, 0, 200, 1)
			}
			before := count(t, db, "copy_got")
			errRollback := fmt.Errorf("roll back")
			err := db.ConnTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
				if err := cp.CopyUpsert(ctx, conn, got, rows); err != nil {
					return err
				}
				// The copied rows are visible inside the transaction only.
				var in int64
				if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM copy_got").Scan(&in); err != nil {
					return err
				}
				if in != 200 {
					return fmt.Errorf("transaction sees %d rows, want 200", in)
				}
				if n := count(t, db, "copy_got"); n != before {
					return fmt.Errorf("other sessions see %d rows before commit, want %d", n, before)
				}
				return errRollback
			})
			if err != errRollback {
				t.Fatal(err)
			}
			if n := count(t, db, "copy_got"); n != before {
				t.Fatalf("%d rows after rollback, want %d", n, before)
			}
		}
		if _, err := db.ExecContext(ctx, "DELETE FROM copy_got"); err != nil {
			t.Fatal(err)
		}
	})

	apply := func(t *testing.T, batches ...[][]any) {
		t.Helper()
		err := db.ConnTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
			for _, rows := range batches {
				if err := upsertStatements(ctx, tx, d, want, rows); err != nil {
					return fmt.Errorf("statements: %w", err)
				}
				if err := cp.CopyUpsert(ctx, conn, got, rows); err != nil {
					return fmt.Errorf("copy: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("NewKeys", func(t *testing.T) {
		apply(t, copyRows(t, d, got, 0, 300, 0))
		sameRows(t, db, "copy_want", "copy_got", 300)
	})
	t.Run("ExistingAndNewKeys", func(t *testing.T) {
		// Two batches of one table in one transaction: the staging table
		// must be empty for the second.
		apply(t, copyRows(t, d, got, 250, 100, 7), copyRows(t, d, got, 100, 300, 3))
		sameRows(t, db, "copy_want", "copy_got", 400)
	})
	t.Run("ReplayChangesNothing", func(t *testing.T) {
		var before string
		sum := "SELECT md5(string_agg(x::text, ',' ORDER BY k)) FROM copy_got x"
		if err := db.QueryRowContext(ctx, sum).Scan(&before); err != nil {
			t.Fatal(err)
		}
		apply(t, copyRows(t, d, got, 100, 300, 3))
		var after string
		if err := db.QueryRowContext(ctx, sum).Scan(&after); err != nil {
			t.Fatal(err)
		}
		if before != after {
			t.Fatal("replaying a batch changed the table")
		}
		sameRows(t, db, "copy_want", "copy_got", 400)
	})
	t.Run("BadRowChangesNothing", func(t *testing.T) {
		for _, lo := range []int{1000, 0} { // new keys, then existing ones
			rows := copyRows(t, d, got, lo, 100, 11)
			rows[50][len(rows[50])-1] = nil // nn is NOT NULL
			err := db.ConnTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
				return cp.CopyUpsert(ctx, conn, got, rows)
			})
			if err == nil || !strings.Contains(err.Error(), "nn") {
				t.Fatalf("NULL in a NOT NULL column: %v", err)
			}
		}
		sameRows(t, db, "copy_want", "copy_got", 400)
	})
	t.Run("SchemaChange", func(t *testing.T) {
		for _, tbl := range []string{"copy_want", "copy_got"} {
			for _, stmt := range d.(sqldb.Alterer).AddColumn(tbl, sqldb.Column{Name: "extra", Type: sqldb.Type{Kind: sqldb.KindText}}) {
				if _, err := db.ExecContext(ctx, stmt); err != nil {
					t.Fatal(err)
				}
			}
		}
		var err error
		if want, err = d.Describe(ctx, db, "copy_want"); err != nil {
			t.Fatal(err)
		}
		if got, err = d.Describe(ctx, db, "copy_got"); err != nil {
			t.Fatal(err)
		}
		rows := copyRows(t, d, copyTable("x"), 350, 100, 5)
		for i := range rows {
			rows[i] = append(rows[i], fmt.Sprint("extra ", i))
		}
		apply(t, rows)
		sameRows(t, db, "copy_want", "copy_got", 450)
	})
}

// testCopyUpsertNewer checks that CopyUpsertNewer writes exactly what
// UpsertNewer statements write, and counts the same rows written: new
// keys, and existing ones that are older, equal, newer by the first
// version column or only by the second, or NULL in it.
func testCopyUpsertNewer(t *testing.T, db *sqldb.DB) {
	ctx := t.Context()
	d := db.Dialect
	cp, ok := d.(sqldb.NewerCopier)
	if !ok {
		t.Fatal("postgres dialect is not a sqldb.NewerCopier")
	}
	nu := d.(sqldb.NewerUpserter)
	version := []string{"at", "origin"}
	tbl := func(name string) sqldb.Table {
		return sqldb.Table{Name: name, PrimaryKey: []string{"id"}, Columns: []sqldb.Column{
			{Name: "id", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}},
			{Name: "val", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
			{Name: "at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}, Nullable: true},
			{Name: "origin", Type: sqldb.Type{Kind: sqldb.KindString, Length: 10}},
		}}
	}
	want, got := tbl("newer_want"), tbl("newer_got")
	for _, tb := range []sqldb.Table{want, got} {
		if err := db.EnsureTable(ctx, tb); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	// rows returns keys lo..lo+n-1 written at base+shift on origin, with
	// every seventh key's time NULL.
	rows := func(lo, n int, shift time.Duration, origin, val string) [][]any {
		var out [][]any
		for k := lo; k < lo+n; k++ {
			var at any = base.Add(shift)
			if k%7 == 3 {
				at = nil
			}
			r := []any{fmt.Sprintf("id-%05d", k), fmt.Sprintf("%s %d\t\\", val, k), at, origin}
			for i, v := range r {
				c, err := d.Value(got.Columns[i].Type, v)
				if err != nil {
					t.Fatal(err)
				}
				r[i] = c
			}
			out = append(out, r)
		}
		return out
	}
	apply := func(t *testing.T, batch [][]any) {
		t.Helper()
		var stmts, copied int64
		err := db.ConnTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
			for _, r := range batch {
				res, err := tx.ExecContext(ctx, nu.UpsertNewer(want, 1, version), r...)
				if err != nil {
					return fmt.Errorf("statement: %w", err)
				}
				n, _ := res.RowsAffected()
				stmts += n
			}
			var err error
			copied, err = cp.CopyUpsertNewer(ctx, conn, got, batch, version)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if copied != stmts {
			t.Fatalf("CopyUpsertNewer wrote %d rows, the statements %d", copied, stmts)
		}
	}
	var batch [][]any
	t.Run("NewKeys", func(t *testing.T) {
		apply(t, rows(0, 200, 0, "aws", "first"))
		sameRows(t, db, "newer_want", "newer_got", 200)
	})
	t.Run("OlderEqualNewer", func(t *testing.T) {
		batch = append(batch, rows(0, 50, -time.Second, "azure", "older")...)
		batch = append(batch, rows(50, 50, 0, "aws", "equal")...)
		batch = append(batch, rows(100, 50, 0, "azure", "newer origin")...)
		batch = append(batch, rows(150, 50, time.Second, "aaa", "newer time")...)
		batch = append(batch, rows(200, 100, 0, "aws", "new")...)
		apply(t, batch)
		sameRows(t, db, "newer_want", "newer_got", 300)
	})
	t.Run("ReplayChangesNothing", func(t *testing.T) {
		apply(t, batch)
		sameRows(t, db, "newer_want", "newer_got", 300)
	})
	t.Run("NoVersion", func(t *testing.T) {
		err := db.ConnTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
			_, err := cp.CopyUpsertNewer(ctx, conn, got, batch, nil)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "no version") {
			t.Fatalf("no version columns: %v", err)
		}
	})
}
