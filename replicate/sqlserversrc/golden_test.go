package sqlserversrc

import (
	"fmt"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/internal/golden"

	"github.com/intercloud/intercloud/replicate/pollsrc"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqlserver"
)

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
	golden.Check(t, "sqlserver", b.String())
}
