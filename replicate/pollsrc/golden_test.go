package pollsrc

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/mysql"
	"github.com/intercloud/intercloud/sqldb/postgres"
	"github.com/intercloud/intercloud/sqldb/sqlite"
	"github.com/intercloud/intercloud/sqldb/sqlserver"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Every statement the source sends, per dialect, against
// testdata/<dialect>.golden (go test -update rewrites them): install (the
// change and mark tables, the origin column, the trigger check and the
// triggers of a plain and of an oddly named composite-key table), the
// origin mark, and the reads, prune and backlog. For SQL Server, where no
// server runs here, this is what pins its SQL down; the live suite runs
// with make test-sqlserver.
func TestStatementsGolden(t *testing.T) {
	tables := []sqldb.Table{
		{
			Name: "items",
			Columns: []sqldb.Column{
				{Name: "id", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 64}},
				{Name: "name", Type: sqldb.Type{Kind: sqldb.KindString, Length: 100}, Nullable: true},
			},
			PrimaryKey: []string{"id"},
		},
		{
			Name: "odd]na'me",
			Columns: []sqldb.Column{
				{Name: "n", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 32}},
				{Name: "code", Type: sqldb.Type{Kind: sqldb.KindString, Length: 20}},
				{Name: "raw", Type: sqldb.Type{Kind: sqldb.KindBytes, Length: 16}},
				{Name: "v", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 10, Scale: 2}, Nullable: true},
			},
			PrimaryKey: []string{"n", "code", "raw"},
		},
	}
	for _, q := range []sqldb.Dialect{sqlite.Dialect{}, mysql.Dialect{MariaDB: true}, postgres.Dialect{}, sqlserver.Dialect{}} {
		t.Run(q.Name(), func(t *testing.T) {
			d := dialects[q.Name()]
			var b strings.Builder
			stmt := func(name, sql string) { fmt.Fprintf(&b, "-- %s\n%s\n\n", name, sql) }
			stmt("change table", d.logDDL)
			stmt("mark table", d.markDDL)
			stmt("add origin column", d.addCol)
			stmt("trigger check", d.count)
			for _, def := range tables {
				for i, s := range d.triggers(def, q.Quote, func(row string) string { return d.keyText(def, q.Quote, row) }) {
					stmt(fmt.Sprintf("capture %s (%d)", def.Name, i+1), s)
				}
				stmt("columns of "+def.Name, columnsSQL(q, def.Name))
				stmt("row of "+def.Name, rowSQL(q, def))
				stmt("rows of 3 keys of "+def.Name, rowsSQL(q, def, 3))
			}
			stmt("mark origin", d.mark)
			stmt("unmark origin", unmarkSQL(d))
			stmt("read", readSQL(q, 2000))
			stmt("highest seq", maxSeqSQL)
			stmt("seqs after", seqsAfterSQL(q))
			stmt("prune", pruneSQL(q))
			stmt("backlog", backlogSQL(q))
			golden(t, q.Name(), b.String())
		})
	}
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
