package sqlserver_test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-sql/civil"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqlserver"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name.golden, or rewrites it with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func everyType() sqldb.Table {
	in := func(b int, u bool) sqldb.Type { return sqldb.Type{Kind: sqldb.KindInt, Bits: b, Unsigned: u} }
	cols := []sqldb.Column{
		{Name: "id", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
		{Name: "s10", Type: sqldb.Type{Kind: sqldb.KindString, Length: 10}, Nullable: true},
		{Name: "s0", Type: sqldb.Type{Kind: sqldb.KindString}, Nullable: true},
		{Name: "s5000", Type: sqldb.Type{Kind: sqldb.KindString, Length: 5000}, Nullable: true},
		{Name: "txt", Type: sqldb.Type{Kind: sqldb.KindText}},
		{Name: "i8", Type: in(8, false)}, {Name: "i16", Type: in(16, false)}, {Name: "i32", Type: in(32, false)}, {Name: "i64", Type: in(0, false)},
		{Name: "u8", Type: in(8, true)}, {Name: "u16", Type: in(16, true)}, {Name: "u32", Type: in(32, true)}, {Name: "u64", Type: in(64, true)},
		{Name: "f", Type: sqldb.Type{Kind: sqldb.KindFloat}},
		{Name: "d", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 38, Scale: 10}},
		{Name: "d0", Type: sqldb.Type{Kind: sqldb.KindDecimal}},
		{Name: "d38", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 38, Scale: 30}},
		{Name: "b", Type: sqldb.Type{Kind: sqldb.KindBool}},
		{Name: "ts", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
		{Name: "dt", Type: sqldb.Type{Kind: sqldb.KindDate}},
		{Name: "tm", Type: sqldb.Type{Kind: sqldb.KindTime}},
		{Name: "by", Type: sqldb.Type{Kind: sqldb.KindBytes, Length: 16}},
		{Name: "bl", Type: sqldb.Type{Kind: sqldb.KindBytes}},
		{Name: "j", Type: sqldb.Type{Kind: sqldb.KindJSON}, Nullable: true},
	}
	return sqldb.Table{Name: "every type", Columns: cols, PrimaryKey: []string{"id"}}
}

func TestGoldenSQL(t *testing.T) {
	d := sqlserver.Dialect{}
	kv := sqldb.Table{Name: "kv", Columns: []sqldb.Column{
		{Name: "k", Type: sqldb.Type{Kind: sqldb.KindString}},
		{Name: "v", Type: sqldb.Type{Kind: sqldb.KindInt}, Nullable: true},
	}, PrimaryKey: []string{"k"}}
	composite := sqldb.Table{Name: "c", Columns: []sqldb.Column{
		{Name: "a", Type: sqldb.Type{Kind: sqldb.KindBytes}},
		{Name: "b", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 32}},
		{Name: "v", Type: sqldb.Type{Kind: sqldb.KindJSON}, Nullable: true},
	}, PrimaryKey: []string{"a", "b"}}
	keyOnly := sqldb.Table{Name: "k", Columns: []sqldb.Column{{Name: "k", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}}}, PrimaryKey: []string{"k"}}
	odd := sqldb.Table{Name: "order ]by[ it's", Columns: []sqldb.Column{
		{Name: "select", Type: sqldb.Type{Kind: sqldb.KindString, Length: 10}},
		{Name: "a]]b", Type: sqldb.Type{Kind: sqldb.KindBool}, Nullable: true},
	}, PrimaryKey: []string{"select"}}

	for _, tc := range []struct {
		name  string
		stmts []string
	}{
		{"create_every_type", d.CreateTable(everyType())},
		{"create_composite", d.CreateTable(composite)},
		{"create_odd_names", d.CreateTable(odd)},
		{"upsert_kv_1", []string{d.Upsert(kv, 1)}},
		{"upsert_kv_3", []string{d.Upsert(kv, 3)}},
		{"upsert_composite_2", []string{d.Upsert(composite, 2)}},
		{"upsert_key_only", []string{d.Upsert(keyOnly, 2)}},
		{"upsert_odd_names", []string{d.Upsert(odd, 1)}},
		{"insert_ignore_kv_2", []string{d.InsertIgnore(kv, 2)}},
		{"upsert_newer_composite_2", []string{d.UpsertNewer(composite, 2, []string{"v"})}},
		{"insert_ignore_every_type", []string{d.InsertIgnore(everyType(), 1)}},
		{"create_index", d.CreateIndex("order ]by[ it's", "ix 'odd'", []string{"select", "a]]b"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, tc.name, strings.Join(tc.stmts, "\n;\n")+"\n")
		})
	}
}

func TestColumnTypes(t *testing.T) {
	d := sqlserver.Dialect{}
	var b strings.Builder
	for _, c := range everyType().Columns {
		typ := d.ColumnType(c.Type)
		// What Describe reads back from that type.
		length, prec, scale := 0, 0, 0
		name := strings.ToLower(typ)
		if i := strings.IndexByte(name, '('); i >= 0 {
			args := strings.TrimSuffix(name[i+1:], ")")
			name = name[:i]
			if args == "max" {
				length = -1
			} else if strings.Contains(args, ",") {
				fmt.Sscanf(args, "%d,%d", &prec, &scale)
			} else if name == "datetime2" || name == "time" {
				// fractional digits, not a length
			} else {
				fmt.Sscanf(args, "%d", &length)
			}
		}
		back := sqlserver.ParseType(name, length, prec, scale)
		fmt.Fprintf(&b, "%-6s %+v -> %s -> %+v\n", c.Name, c.Type, typ, back)
	}
	golden(t, "column_types", b.String())
}

func TestQuoteAndPlaceholder(t *testing.T) {
	d := sqlserver.Dialect{}
	for in, want := range map[string]string{"a": "[a]", "a]b": "[a]]b]", "[x]": "[[x]]]", "it's": "[it's]", "": "[]"} {
		if got := d.Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	if d.Placeholder(7) != "@p7" || d.Name() != "sqlserver" {
		t.Errorf("placeholder %s name %s", d.Placeholder(7), d.Name())
	}
	if n := sqldb.MaxRows(d, 10); n != 209 {
		t.Errorf("MaxRows(10 columns) = %d", n)
	}
}

func TestValue(t *testing.T) {
	d := sqlserver.Dialect{}
	ts := time.Date(2024, 2, 29, 12, 34, 56, 789012345, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		typ  sqldb.Type
		in   any
		want any
		err  bool
	}{
		{sqldb.Type{Kind: sqldb.KindTimestamp}, ts, civil.DateTime{Date: civil.Date{Year: 2024, Month: 2, Day: 29}, Time: civil.Time{Hour: 11, Minute: 34, Second: 56, Nanosecond: 789012000}}, false},
		{sqldb.Type{Kind: sqldb.KindDate}, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), civil.Date{Year: 1, Month: 1, Day: 1}, false},
		{sqldb.Type{Kind: sqldb.KindTime}, "23:59:59.999999", civil.Time{Hour: 23, Minute: 59, Second: 59, Nanosecond: 999999000}, false},
		{sqldb.Type{Kind: sqldb.KindInt, Unsigned: true}, uint64(math.MaxUint64), "18446744073709551615", false},
		{sqldb.Type{Kind: sqldb.KindInt, Bits: 8}, int64(128), nil, true},
		{sqldb.Type{Kind: sqldb.KindDecimal, Precision: 38, Scale: 10}, "-9999999999999999999999999999.9999999999", "-9999999999999999999999999999.9999999999", false},
		{sqldb.Type{Kind: sqldb.KindDecimal}, "1.2.3", nil, true},
		{sqldb.Type{Kind: sqldb.KindJSON}, `{"a":1`, nil, true},
		{sqldb.Type{Kind: sqldb.KindBool}, true, true, false},
		{sqldb.Type{Kind: sqldb.KindString}, nil, nil, false},
	} {
		got, err := d.Value(tc.typ, tc.in)
		if (err != nil) != tc.err {
			t.Errorf("Value(%v, %#v): error %v", tc.typ.Kind, tc.in, err)
			continue
		}
		if !tc.err && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
			t.Errorf("Value(%v, %#v) = %#v, want %#v", tc.typ.Kind, tc.in, got, tc.want)
		}
	}
}

func TestConfigFromURL(t *testing.T) {
	u, _ := url.Parse("sqlserver://app:p%40ss@db.example:1433/records?encrypt=true&app+name=ic")
	cfg, err := sqlserver.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "db.example" || cfg.Port != 1433 || cfg.Database != "records" || cfg.User != "app" || cfg.Password != "p@ss" || cfg.Instance != "" {
		t.Fatalf("config host %q port %d db %q user %q instance %q", cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.Instance)
	}
	for raw, want := range map[string]string{
		"sqlserver://u:s3cr3t@/db":                       "host is required",
		"sqlserver://u:s3cr3t@h/db?database=other":       "in the path",
		"sqlserver://u:s3cr3t@h/db?encrypt=maybe":        "bad URL",
		"sqlserver://u:s3cr3t@h/db?connection+timeout=x": "bad URL",
	} {
		u, _ := url.Parse(raw)
		_, err := sqlserver.ConfigFromURL(u)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: error leaks the password: %v", raw, err)
		}
	}
}

func TestOpenErrorHasNoPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := sqldb.Open(ctx, "sqlserver://sa:s3cr%3At@127.0.0.1:1/app?dial+timeout=2", nil)
	if err == nil {
		t.Fatal("opened")
	}
	if strings.Contains(err.Error(), "s3cr") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		n    int32
		want bool
	}{{1205, true}, {1222, true}, {40613, true}, {2627, false}, {18456, false}} {
		err := fmt.Errorf("load: %w", mssql.Error{Number: tc.n, Message: "x"})
		if got := sqldb.Transient(err); got != tc.want {
			t.Errorf("error %d: Transient %v, want %v", tc.n, got, tc.want)
		}
	}
}

// A fedauth parameter selects Microsoft Entra ID (Azure AD)
// authentication through go-mssqldb's azuread connector: its own checks
// apply (ActiveDirectoryPassword needs an application client id), before
// any connection, and the error keeps the password out.
func TestEntraIDAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := sqldb.Open(ctx, "sqlserver://u%40example.com:s3cr3t@127.0.0.1:1/app?fedauth=ActiveDirectoryPassword&dial+timeout=2", nil)
	if err == nil || !strings.Contains(err.Error(), "applicationclientid") || !strings.Contains(err.Error(), "fedauth") {
		t.Fatalf("error %v, want the azuread connector's complaint about applicationclientid", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

// SQL Server has no LIMIT: sqldb.Limit asks the dialect.
func TestLimit(t *testing.T) {
	if got := sqldb.Limit(sqlserver.Dialect{}, 5); got != " OFFSET 0 ROWS FETCH NEXT 5 ROWS ONLY" {
		t.Fatalf("limit %q", got)
	}
}
