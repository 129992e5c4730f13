package sqlserversrc

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/replicate/pollsrc"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqlserver"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Every statement the source sends, against testdata/sqlserver.golden
// (go test -update rewrites it): the CDC checks and enabling, the LSN
// functions, the schema check and the change reads of a plain table, of
// an oddly named composite-key table and of the origin mark table. No SQL
// Server runs here: this pins the SQL down; the live suite runs with make
// test-sqlserver. The mark table's own statements are the poll source's
// (pollsrc's golden test).
func TestStatementsGolden(t *testing.T) {
	q := sqlserver.Dialect{}
	odd := sqldb.Table{
		Name: "odd]na'me",
		Columns: []sqldb.Column{
			{Name: "n", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 32}},
			{Name: "co]de", Type: sqldb.Type{Kind: sqldb.KindString, Length: 20}},
			{Name: "raw", Type: sqldb.Type{Kind: sqldb.KindBytes, Length: 16}},
		},
		PrimaryKey: []string{"n", "co]de", "raw"},
	}
	var b strings.Builder
	stmt := func(name, sql string) { fmt.Fprintf(&b, "-- %s\n%s\n\n", name, sql) }
	stmt("CDC enabled on the database", cdcEnabledSQL)
	stmt("capture instance of a table", instanceSQL)
	stmt("enable CDC on a table", enableTableSQL)
	stmt("highest LSN", maxLSNSQL)
	stmt("LSN after a position, oldest LSN of an instance", boundsSQL)
	stmt("captured columns", capturedSQL)
	stmt("table columns", tableColumnsSQL)
	stmt("commit time of an LSN", lsnTimeSQL)
	for _, c := range []struct {
		inst string
		def  sqldb.Table
	}{{"dbo_items", itemsDef}, {"dbo_odd]na'me", odd}, {"dbo_" + pollsrc.MarkTable, markDef}} {
		stmt("changes of "+c.inst+", a batch", changesSQL(q, c.inst, c.def, 2000))
		stmt("changes of "+c.inst+", whole", changesSQL(q, c.inst, c.def, 0))
	}
	golden(t, "sqlserver", b.String())
}

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
