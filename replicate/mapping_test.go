package replicate_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

func mustFilter(tb testing.TB, s string) *replicate.Filter {
	tb.Helper()
	f, err := replicate.ParseFilter(s)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// ordersMapping is the mapping the tests replicate through.
func ordersMapping(tb testing.TB) *replicate.Mapping {
	return &replicate.Mapping{
		Include: []string{"records", "orders_*"},
		Exclude: []string{"*_tmp"},
		Rules: []replicate.Rule{{
			Table:          "orders_*",
			Rename:         "copy_{table}",
			Columns:        map[string]string{"amount": "amount_usd"},
			ExcludeColumns: []string{"internal_note"},
			Filter:         mustFilter(tb, "status = 'paid' AND amount >= 10"),
		}},
	}
}

func ids(tb testing.TB, db *sqldb.DB, query string) []int64 {
	tb.Helper()
	return sourcetest.Column[int64](tb, db, query)
}

func columnNames(tb testing.TB, db *sqldb.DB, table string) []string {
	tb.Helper()
	t, err := db.Dialect.Describe(context.Background(), db, table)
	if err != nil {
		tb.Fatalf("describe %s: %v", table, err)
	}
	return t.ColumnNames()
}

func validateMapped(tb testing.TB, src, dst *sqldb.DB, m *replicate.Mapping) replicate.Report {
	tb.Helper()
	rep, err := replicate.ValidateMapping(context.Background(), src, dst, m, 2)
	if err != nil {
		tb.Fatal(err)
	}
	return rep
}

func TestMappedStream(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	exec(t, src, `CREATE TABLE records (id INTEGER PRIMARY KEY, v TEXT)`)
	for _, name := range []string{"orders_a", "orders_tmp"} {
		exec(t, src, `CREATE TABLE `+name+` (id INTEGER PRIMARY KEY, status VARCHAR(16), amount DECIMAL_TEXT(10,2), internal_note TEXT, _trace_id VARCHAR(64))`)
	}
	exec(t, src, `CREATE TABLE other (id INTEGER PRIMARY KEY)`)
	m := ordersMapping(t)
	tables, err := m.Tables(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"records", "orders_a"}; !reflect.DeepEqual(tables, want) {
		t.Fatalf("mapping selects %v, want %v", tables, want)
	}
	if err := replicate.Prepare(ctx, src, tables, quietLogger()); err != nil {
		t.Fatal(err)
	}
	exec(t, src, `INSERT INTO records VALUES (1, 'one'), (2, 'two')`)
	exec(t, src, `INSERT INTO orders_a VALUES
		(1, 'paid', '10.00', 'n1', 't1'),
		(2, 'paid', '9.99', NULL, 't2'),
		(3, 'open', '50.00', NULL, 't3'),
		(4, 'paid', '100.00', 'secret', 't4'),
		(5, NULL, '70.00', NULL, 't5'),
		(6, 'PAID', '70.00', NULL, 't6')`)
	exec(t, src, `INSERT INTO orders_tmp VALUES (1, 'paid', '10.00', NULL, NULL)`)
	exec(t, src, `INSERT INTO other VALUES (1)`)

	// Before replication, the mapped table is reported missing.
	if rep := validateMapped(t, src, dst, m); rep.OK() || !rep.Tables[1].Missing || rep.Tables[1].SourceRows != 2 {
		t.Fatalf("before replication:\n%s", rep)
	}

	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Mapping: m, BatchSize: 2, Poll: 5 * time.Millisecond})
	waitCaughtUp(t, r, src)
	if got := ids(t, dst, `SELECT id FROM copy_orders_a ORDER BY id`); !reflect.DeepEqual(got, []int64{1, 4}) {
		t.Fatalf("full load copied orders %v, want [1 4]", got)
	}
	if got := columnNames(t, dst, "copy_orders_a"); !reflect.DeepEqual(got, []string{"id", "status", "amount_usd", "_trace_id"}) {
		t.Fatalf("target columns = %v", got)
	}
	if got := count(t, dst, `SELECT COUNT(*) FROM records`); got != 2 {
		t.Fatalf("records on target = %d", got)
	}
	have, err := replicate.ListTables(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range have {
		if strings.Contains(name, "tmp") || name == "other" || name == "orders_a" {
			t.Fatalf("table %s replicated; target has %v", name, have)
		}
	}
	if rep := validateMapped(t, src, dst, m); !rep.OK() {
		t.Fatalf("after full load:\n%s", rep)
	}

	// Change data capture: rows move into and out of the filter.
	exec(t, src, `INSERT INTO orders_a VALUES (7, 'paid', '20.00', 'x', 't7'), (8, 'open', '5.00', NULL, 't8')`)
	exec(t, src, `UPDATE orders_a SET amount = '15.00' WHERE id = 2`)          // moves in
	exec(t, src, `UPDATE orders_a SET status = 'refunded' WHERE id = 4`)       // moves out
	exec(t, src, `UPDATE orders_a SET internal_note = 'changed' WHERE id = 1`) // unseen column
	exec(t, src, `UPDATE orders_a SET status = 'paid' WHERE id = 5`)           // NULL → paid: moves in
	exec(t, src, `DELETE FROM orders_a WHERE id = 1`)
	exec(t, src, `INSERT INTO orders_tmp VALUES (2, 'paid', '10.00', NULL, NULL)`)
	exec(t, src, `INSERT INTO records VALUES (3, 'three')`)
	waitCaughtUp(t, r, src)
	if got := ids(t, dst, `SELECT id FROM copy_orders_a ORDER BY id`); !reflect.DeepEqual(got, []int64{2, 5, 7}) {
		t.Fatalf("after CDC orders %v, want [2 5 7]", got)
	}
	if got := count(t, dst, `SELECT COUNT(*) FROM copy_orders_a WHERE id = 2 AND amount_usd = '15.00'`); got != 1 {
		t.Fatal("order 2 does not have its new amount")
	}
	if got := count(t, dst, `SELECT COUNT(*) FROM records`); got != 3 {
		t.Fatalf("records on target = %d", got)
	}
	if rep := validateMapped(t, src, dst, m); !rep.OK() {
		t.Fatalf("after CDC:\n%s", rep)
	}
	r.Stop(t)

	// A real difference is still found, and resynced through the mapping.
	exec(t, dst, `UPDATE copy_orders_a SET amount_usd = '999.00' WHERE id = 7`)
	exec(t, dst, `INSERT INTO copy_orders_a (id, status, amount_usd) VALUES (8, 'open', '5.00')`)
	rep := validateMapped(t, src, dst, m)
	if rep.OK() {
		t.Fatalf("planted difference not found:\n%s", rep)
	}
	tr := rep.Tables[1]
	if tr.Table != "orders_a" || tr.Target != "copy_orders_a" || !tr.CountsDiffer || len(tr.Ranges) == 0 || tr.SourceRows != 3 || tr.TargetRows != 4 {
		t.Fatalf("table report = %+v\n%s", tr, rep)
	}
	if !strings.Contains(rep.String(), "orders_a → copy_orders_a: differs") {
		t.Fatalf("report text:\n%s", rep)
	}
	if err := replicate.ResyncMapping(ctx, src, dst, m, rep); err != nil {
		t.Fatal(err)
	}
	if rep := validateMapped(t, src, dst, m); !rep.OK() {
		t.Fatalf("after resync:\n%s", rep)
	}
	if got := ids(t, dst, `SELECT id FROM copy_orders_a ORDER BY id`); !reflect.DeepEqual(got, []int64{2, 5, 7}) {
		t.Fatalf("after resync orders %v, want [2 5 7]", got)
	}
}

func TestMappedStreamErrors(t *testing.T) {
	tests := []struct {
		name string
		rule replicate.Rule
		want string
	}{
		{"exclude primary key", replicate.Rule{Table: "orders", ExcludeColumns: []string{"id"}}, `primary-key column "id" cannot be excluded`},
		{"filter on unknown column", replicate.Rule{Table: "orders", Filter: mustFilter(t, "nope = 1")}, `filter column "nope"`},
		{"two columns onto one", replicate.Rule{Table: "orders", Columns: map[string]string{"status": "note"}}, `both map to "note"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := openDB(t, "src"), openDB(t, "dst")
			exec(t, src, `CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, note TEXT)`)
			m := &replicate.Mapping{Include: []string{"orders"}, Rules: []replicate.Rule{tt.rule}}
			r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Mapping: m, Poll: 5 * time.Millisecond})
			err := r.Wait(t)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want %q", err, tt.want)
			}
			if n := count(t, dst, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'orders'`); n != 0 {
				t.Fatal("the target table was created despite the error")
			}
		})
	}
}

func TestMappingValidate(t *testing.T) {
	tests := []struct {
		name string
		m    replicate.Mapping
		want string
	}{
		{"ok", replicate.Mapping{Include: []string{"a", "b_*"}, Rules: []replicate.Rule{{Table: "b_*", Rename: "x_{table}"}}}, ""},
		{"bad include", replicate.Mapping{Include: []string{"a["}}, "include[0]"},
		{"bad rename", replicate.Mapping{Include: []string{"a"}, Rules: []replicate.Rule{{Table: "a", Rename: "{tbl}_x"}}}, "only placeholder"},
		{"hostile rename", replicate.Mapping{Include: []string{"a"}, Rules: []replicate.Rule{{Table: "a", Rename: "x; DROP TABLE y"}}}, "plain table name"},
		{"reserved rename", replicate.Mapping{Include: []string{"a"}, Rules: []replicate.Rule{{Table: "a", Rename: "_ic_{table}"}}}, "reserved"},
		{"renamed twice", replicate.Mapping{Include: []string{"a"}, Rules: []replicate.Rule{{Table: "a", Columns: map[string]string{"x": "z", "y": "z"}}}}, `"x" and "y" both renamed`},
		{"renamed and excluded", replicate.Mapping{Include: []string{"a"}, Rules: []replicate.Rule{{Table: "a", Columns: map[string]string{"x": "z"}, ExcludeColumns: []string{"x"}}}}, "also renamed"},
	}
	for _, tt := range tests {
		err := tt.m.Validate()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
	}
	m := replicate.Mapping{Include: []string{"orders_*", "records", "_ic_checkpoints"}, Exclude: []string{"*_tmp"}}
	for table, want := range map[string]bool{"orders_a": true, "orders_tmp": false, "records": true, "other": false, "_ic_checkpoints": false} {
		if got := m.Includes(table); got != want {
			t.Errorf("Includes(%q) = %v, want %v", table, got, want)
		}
	}
}
