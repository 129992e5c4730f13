package sqlserver_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/internal/golden"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/mysql"
	"github.com/intercloud/intercloud/sqldb/sqlserver"
)

// mysqlTypes is every MySQL/MariaDB column type as information_schema
// spells it (COLUMN_TYPE), at the widths and parameters that change the
// mapping.
var mysqlTypes = []string{
	"tinyint(4)", "tinyint(3) unsigned", "tinyint(1)", "smallint(6)", "smallint(5) unsigned",
	"mediumint(9)", "mediumint(8) unsigned", "int(11)", "int(10) unsigned", "bigint(20)", "bigint(20) unsigned",
	"year(4)", "bit(1)", "bit(8)", "bit(64)",
	"decimal(10,2)", "decimal(38,10)", "decimal(65,30)", "decimal(10,0)",
	"float", "double",
	"date", "datetime", "datetime(3)", "datetime(6)", "timestamp", "timestamp(6)", "time", "time(6)",
	"char(1)", "char(255)", "varchar(45)", "varchar(4000)", "varchar(16383)",
	"tinytext", "text", "mediumtext", "longtext",
	"binary(16)", "varbinary(255)", "tinyblob", "blob", "mediumblob", "longblob",
	"enum('G','PG','PG-13')", "set('Trailers','Commentaries')",
	"json",
	"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection",
	"inet6", "uuid",
}

// TestGoldenMySQLTypes is the SQL Server DDL for every MySQL type: each
// type read as a portable type, the SQL Server column type the dialect
// creates for it ("refused" where it holds none, which stops that table),
// and the CREATE TABLE of a table with every column it takes. No SQL
// Server runs here, so the golden text is the test.
func TestGoldenMySQLTypes(t *testing.T) {
	d := sqlserver.Dialect{}
	var b strings.Builder
	tbl := sqldb.Table{Name: "mysql_types", Columns: []sqldb.Column{{Name: "id", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 32}}}, PrimaryKey: []string{"id"}}
	for i, ctype := range mysqlTypes {
		typ := mysql.ParseColumnType(ctype)
		col := "refused"
		if typ.Kind != 0 {
			if c := d.ColumnType(typ); c != "" {
				col = c
				tbl.Columns = append(tbl.Columns, sqldb.Column{Name: fmt.Sprintf("c%02d", i), Type: typ, Nullable: true})
			}
		}
		fmt.Fprintf(&b, "%-38s %-40s %s\n", ctype, typ, col)
	}
	b.WriteString("\n" + strings.Join(d.CreateTable(tbl), "\n;\n") + "\n")
	golden.Check(t, "mysql_types", b.String())
}
