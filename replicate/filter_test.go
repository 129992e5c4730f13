package replicate

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

var ordersTable = sqldb.Table{
	Name: "orders",
	Columns: []sqldb.Column{
		{Name: "id", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "status", Type: sqldb.Type{Kind: sqldb.KindString, Length: 32}, Nullable: true},
		{Name: "amount", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 10, Scale: 2}, Nullable: true},
		{Name: "qty", Type: sqldb.Type{Kind: sqldb.KindInt}, Nullable: true},
		{Name: "score", Type: sqldb.Type{Kind: sqldb.KindFloat}, Nullable: true},
		{Name: "vip", Type: sqldb.Type{Kind: sqldb.KindBool}, Nullable: true},
		{Name: "at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}, Nullable: true},
		{Name: "note", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "blob", Type: sqldb.Type{Kind: sqldb.KindBytes}, Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

func TestCompileFilterErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nope = 1", `filter column "nope": table "orders" has no such column`},
		{"blob = 'x'", "is bytes"},
		{"qty = 'x'", "integer column compares with a number"},
		{"qty = 1.5", "not an integer"},
		{"qty = 99999999999999999999", "out of the column's range"},
		{"status = 1", "text column compares with a 'string'"},
		{"vip < TRUE", "only = and != compare it"},
		{"vip = 1", "TRUE or FALSE"},
		{"at > 'yesterday'", "not a timestamp"},
		{"amount = 'x'", "decimal column compares with a number"},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		_, err = compileFilter(f, ordersTable)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("compile(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

// orderRows are rows with NULLs, strings that look like SQL, mixed case,
// trailing spaces, numbers at the edges of the filters.
var orderRows = [][]any{
	{1, "paid", "10.00", 1, 1.5, true, "2024-05-06T07:08:09Z", "a"},
	{2, "paid", "9.99", 2, -1.0, false, "2024-05-06T07:08:10Z", nil},
	{3, "PAID", "100.00", 3, 0.0, nil, nil, "b"},
	{4, "paid ", "50.00", nil, nil, true, "2023-01-01T00:00:00Z", "c"},
	{5, nil, "50.00", 5, 2.25, false, "2025-01-01T00:00:00Z", "d"},
	{6, "open", nil, 6, 3.0, true, "2024-05-06T07:08:09Z", "e"},
	{7, "x'; DROP TABLE orders; --", "10", 7, 1.5, true, nil, "f"},
	{8, "pending", "10.005", 0, 1e10, nil, "2024-12-31T23:59:59Z", "g"},
	{9, "", "0", -3, -0.5, false, "2024-05-06T07:08:09.5Z", ""},
	{10, "paid", "-10", 10, nil, true, "2024-05-06T07:08:09Z", "h"},
	{11, "é", "1.10", 11, 1.5, false, nil, nil},
	{12, "Paid", "20", 12, 3.5, true, "2024-06-01T00:00:00Z", "i"},
}

var equivFilters = []string{
	"status = 'paid' AND amount >= 10",
	"status = 'paid' OR amount >= 10",
	"NOT (status = 'paid')",
	"status <> 'paid'",
	"status IS NULL",
	"status IS NOT NULL AND NOT status IN ('paid', 'open')",
	"status IN ('paid', 'PAID', 'x''; DROP TABLE orders; --')",
	"status > 'p' AND status < 'q'",
	"status >= 'é'",
	"status = ''",
	"amount > 9.995",
	"amount = 10",
	"amount < 0 OR amount IS NULL",
	"NOT (amount < 50)",
	"qty IN (1, 3, 5) OR qty IS NULL",
	"qty NOT IN (1, 3, 5)",
	"qty <= 0",
	"score > 1.5",
	"score >= 1.5 AND score < 1e10",
	"vip = TRUE",
	"vip != TRUE",
	"NOT vip = FALSE",
	"at >= '2024-05-06T07:08:09Z' AND at < '2024-06-01 00:00:00'",
	"at > '2024-05-06T07:08:09Z'",
	"at IS NULL OR note IS NULL",
	"note = 'a' OR (qty > 5 AND NOT (vip = TRUE OR status = 'open'))",
	"(status = 'paid' OR status = 'Paid') AND (amount >= 10 OR vip = TRUE) AND at IS NOT NULL",
}

// TestFilterSQLMatchesGo checks that the SQL rendering selects exactly the
// rows the Go evaluation accepts, on SQLite.
func TestFilterSQLMatchesGo(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "f.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.EnsureTable(ctx, ordersTable); err != nil {
		t.Fatal(err)
	}
	FilterEquivalence(t, db, ordersTable, orderRows, equivFilters)
}

// FilterEquivalence loads rows into t on db and checks every filter's SQL
// against its Go evaluation of the rows read back.
func FilterEquivalence(t *testing.T, db *sqldb.DB, table sqldb.Table, rows [][]any, filters []string) {
	t.Helper()
	ctx := context.Background()
	cols := table.ColumnNames()
	for _, r := range rows {
		vals := make([]any, len(cols))
		for i := range cols {
			var v any
			if i < len(r) {
				v = r[i]
			}
			c, _ := table.Column(cols[i])
			n, err := sqldb.Normalize(c.Type, v)
			if err != nil {
				t.Fatal(err)
			}
			if vals[i], err = db.Dialect.Value(c.Type, n); err != nil {
				t.Fatal(err)
			}
		}
		q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", db.Dialect.Quote(table.Name), sqldb.QuoteList(db.Dialect, cols), sqldb.Placeholders(db.Dialect, 1, len(cols)))
		if _, err := db.ExecContext(ctx, q, vals...); err != nil {
			t.Fatal(err)
		}
	}
	all, err := queryRows(ctx, db, fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", sqldb.QuoteList(db.Dialect, cols), db.Dialect.Quote(table.Name), db.Dialect.Quote(table.PrimaryKey[0])), nil, len(cols))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range filters {
		f, err := ParseFilter(src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		cf, err := compileFilter(f, table)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		var want []string
		for _, r := range all {
			row := map[string]any{}
			for i, c := range cols {
				row[c] = r[i]
			}
			ok, err := cf.match(row)
			if err != nil {
				t.Fatalf("%q: %v", src, err)
			}
			if ok {
				want = append(want, fmt.Sprint(row[table.PrimaryKey[0]]))
			}
		}
		a := &args{d: db.Dialect}
		where, err := cf.sql(db.Dialect, a)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY 1", db.Dialect.Quote(table.PrimaryKey[0]), db.Dialect.Quote(table.Name), where)
		got, err := queryRows(ctx, db, q, a.vals, 1)
		if err != nil {
			t.Fatalf("%q: %s: %v", src, q, err)
		}
		var gotIDs []string
		for _, r := range got {
			gotIDs = append(gotIDs, fmt.Sprint(r[0]))
		}
		if strings.Join(gotIDs, ",") != strings.Join(want, ",") {
			t.Errorf("filter %q: SQL selects [%s], Go accepts [%s]\n%s %v", src, strings.Join(gotIDs, ","), strings.Join(want, ","), q, a.vals)
		}
	}
}

// TestFilterHostileLiterals checks that SQL-looking literals are bound as
// values, never spliced into the statement.
func TestFilterHostileLiterals(t *testing.T) {
	f, err := ParseFilter(`status = 'x''; DROP TABLE orders; --' OR status IN ('1'' OR ''1''=''1')`)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := compileFilter(f, ordersTable)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "f.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := &args{d: db.Dialect}
	s, err := cf.sql(db.Dialect, a)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, "DROP") || strings.Contains(s, "'") {
		t.Fatalf("literal text in SQL: %s", s)
	}
	if len(a.vals) != 2 || a.vals[0] != "x'; DROP TABLE orders; --" || a.vals[1] != "1' OR '1'='1" {
		t.Fatalf("bound values = %q", a.vals)
	}
	ok, err := cf.match(map[string]any{"status": "x'; DROP TABLE orders; --"})
	if err != nil || !ok {
		t.Fatalf("match = %v, %v", ok, err)
	}
	ok, _ = cf.match(map[string]any{"status": "anything"})
	if ok {
		t.Fatal("an injection-looking literal matched another value")
	}
}

func TestFilterThreeValued(t *testing.T) {
	tests := []struct {
		filter string
		row    map[string]any
		want   bool
	}{
		{"status = 'paid'", map[string]any{"status": nil}, false},
		{"NOT status = 'paid'", map[string]any{"status": nil}, false},
		{"status <> 'paid'", map[string]any{"status": nil}, false},
		{"status = 'paid' OR qty = 1", map[string]any{"status": nil, "qty": int64(1)}, true},
		{"NOT (status = 'paid' AND qty = 1)", map[string]any{"status": nil, "qty": int64(2)}, true},
		{"NOT (status = 'paid' OR qty = 1)", map[string]any{"status": nil, "qty": int64(2)}, false},
		{"status IS NULL", map[string]any{}, true},
		{"qty NOT IN (1, 2)", map[string]any{"qty": nil}, false},
		{"qty > 2", map[string]any{"qty": "3"}, true}, // normalized from text
		{"at < '2024-01-01'", map[string]any{"at": time.Date(2023, 12, 31, 23, 0, 0, 0, time.FixedZone("x", -3600))}, false},
		{"amount >= 10", map[string]any{"amount": []byte("10.000")}, true},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := compileFilter(f, ordersTable)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cf.match(tt.row)
		if err != nil || got != tt.want {
			t.Errorf("%q on %v = %v, %v; want %v", tt.filter, tt.row, got, err, tt.want)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range equivFilters {
		f.Add(s)
	}
	f.Add(`"a""b" = 'c''d' OR NOT x IN (1, -2.5e3, TRUE)`)
	f.Add("a = 1; DROP TABLE x")
	f.Fuzz(func(t *testing.T, s string) {
		fl, err := ParseFilter(s)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) || fe.Pos < 1 || fe.Pos > len(s)+1 {
				t.Fatalf("error %v has no position within the input", err)
			}
			return
		}
		out := fl.String()
		again, err := ParseFilter(out)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", out, s, err)
		}
		if again.String() != out {
			t.Fatalf("round trip %q → %q", out, again.String())
		}
		// Evaluating against a table must not panic, whatever it says.
		if cf, err := compileFilter(fl, ordersTable); err == nil {
			_, _ = cf.match(map[string]any{"status": "paid", "qty": int64(1), "amount": "1.5"})
			a := &args{d: sqliteDialectForFuzz{}}
			_, _ = cf.sql(a.d, a)
		}
	})
}

// sqliteDialectForFuzz renders placeholders without a database.
type sqliteDialectForFuzz struct{ sqldb.Dialect }

func (sqliteDialectForFuzz) Name() string { return "sqlite" }
func (sqliteDialectForFuzz) Quote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
func (sqliteDialectForFuzz) Placeholder(int) string                 { return "?" }
func (sqliteDialectForFuzz) Value(_ sqldb.Type, v any) (any, error) { return v, nil }
