package mysqlsrc_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

func pgIDs(t testing.TB, db *sqldb.DB, query string) []int64 {
	t.Helper()
	return sourcetest.Column[int64](t, db, query)
}

// TestMariaDBToPostgresMapping replicates through a table mapping (include
// and exclude patterns, renamed table and column, an excluded column and a
// row filter) from MariaDB, whose default collation ignores case and
// trailing spaces, to PostgreSQL, through the full load and the binlog.
func TestMariaDBToPostgresMapping(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	ctx := context.Background()
	e := newEnv(t, true)
	src, dst := sourcetest.Open(t, e.mysqlURL(t, "")), sourcetest.Open(t, e.pgURL(t))
	sourcetest.Exec(t, src, `CREATE TABLE records (id BIGINT PRIMARY KEY, v VARCHAR(16))`)
	for _, name := range []string{"orders_a", "orders_tmp"} {
		sourcetest.Exec(t, src, `CREATE TABLE `+name+` (id BIGINT PRIMARY KEY, status VARCHAR(16) NULL, amount DECIMAL(10,2) NULL,
			internal_note TEXT NULL, at DATETIME(6) NULL) ENGINE=InnoDB`)
	}
	filter, err := replicate.ParseFilter("status IN ('paid', 'PAID?') AND amount >= 10 AND (at IS NULL OR at >= '2024-01-01T00:00:00Z')")
	if err != nil {
		t.Fatal(err)
	}
	m := &replicate.Mapping{
		Include: []string{"records", "orders_*"},
		Exclude: []string{"*_tmp"},
		Rules: []replicate.Rule{{
			Table: "orders_*", Rename: "copy_{table}",
			Columns: map[string]string{"amount": "amount_usd"}, ExcludeColumns: []string{"internal_note"},
			Filter: filter,
		}},
	}
	const rows = `(%d, 'paid', 10.00, 'n', '2024-05-06 07:08:09'), (%d, 'PAID', 50.00, NULL, NULL), (%d, 'paid ', 50.00, NULL, NULL),
		(%d, 'paid', 9.99, NULL, NULL), (%d, NULL, 70.00, NULL, NULL), (%d, 'paid', 70.00, 'secret', '2023-12-31 23:59:59'),
		(%d, 'paid', NULL, NULL, NULL), (%d, 'paid', 1000.50, NULL, NULL)`
	insert := func(base int) {
		var ids []any
		for i := 1; i <= 8; i++ {
			ids = append(ids, base+i)
		}
		sourcetest.Exec(t, src, "INSERT INTO orders_a (id, status, amount, internal_note, at) VALUES "+sprintf(rows, ids...))
	}
	insert(0) // through the full load (SQL)
	sourcetest.Exec(t, src, `INSERT INTO orders_tmp VALUES (1, 'paid', 10, NULL, NULL)`)
	sourcetest.Exec(t, src, `INSERT INTO records VALUES (1, 'one')`)

	r := sourcetest.Start(t, replicate.Config{Name: "mapped", Source: src, Target: dst, Mapping: m, BatchSize: 3, Poll: 10 * time.Millisecond})
	sourcetest.WaitFor(t, "full load", 60*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	insert(100) // through the binlog (Go)
	waitCaughtUp(t, r, src)
	want := []int64{1, 8, 101, 108}
	if got := pgIDs(t, dst, `SELECT id FROM copy_orders_a ORDER BY id`); !reflect.DeepEqual(got, want) {
		t.Fatalf("target orders %v, want %v", got, want)
	}
	check := func(when string) {
		t.Helper()
		rep, err := replicate.ValidateMapping(ctx, src, dst, m, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("%s:\n%s", when, rep)
		}
	}
	check("after load and inserts")

	// Rows move into and out of the filter; deletes; the excluded table.
	sourcetest.Exec(t, src, `UPDATE orders_a SET amount = 15 WHERE id = 4`)         // in
	sourcetest.Exec(t, src, `UPDATE orders_a SET status = 'refunded' WHERE id = 1`) // out
	sourcetest.Exec(t, src, `UPDATE orders_a SET status = 'paid' WHERE id IN (2, 3, 5)`)
	sourcetest.Exec(t, src, `UPDATE orders_a SET internal_note = 'x' WHERE id = 8`)
	sourcetest.Exec(t, src, `DELETE FROM orders_a WHERE id = 108`)
	sourcetest.Exec(t, src, `INSERT INTO orders_tmp VALUES (2, 'paid', 10, NULL, NULL)`)
	sourcetest.Exec(t, src, `INSERT INTO records VALUES (2, 'two')`)
	waitCaughtUp(t, r, src)
	want = []int64{2, 3, 4, 5, 8, 101}
	if got := pgIDs(t, dst, `SELECT id FROM copy_orders_a ORDER BY id`); !reflect.DeepEqual(got, want) {
		t.Fatalf("after updates target orders %v, want %v", got, want)
	}
	if n := sourcetest.Count(t, dst, `SELECT COUNT(*) FROM copy_orders_a WHERE id = 4 AND amount_usd = 15`); n != 1 {
		t.Fatal("order 4 lacks its new amount")
	}
	if n := sourcetest.Count(t, dst, `SELECT COUNT(*) FROM records`); n != 2 {
		t.Fatalf("records on target = %d", n)
	}
	if n := sourcetest.Count(t, dst, `SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE '%tmp%' OR table_name = 'orders_a'`); n != 0 {
		t.Fatal("an unmapped name reached the target")
	}
	if n := sourcetest.Count(t, dst, `SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'copy_orders_a' AND column_name IN ('internal_note', 'amount')`); n != 0 {
		t.Fatal("the target has the excluded or the renamed column")
	}
	check("after updates")
	r.Cancel()
	if err := r.Wait(t); err != nil {
		t.Fatal(err)
	}

	sourcetest.Exec(t, dst, `UPDATE copy_orders_a SET status = 'PAID' WHERE id = 101`)
	rep, err := replicate.ValidateMapping(ctx, src, dst, m, 3)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Tables) != 2 || rep.Tables[1].Target != "copy_orders_a" || len(rep.Tables[1].Ranges) != 1 {
		t.Fatalf("planted difference not found:\n%s", rep)
	}
}

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }
