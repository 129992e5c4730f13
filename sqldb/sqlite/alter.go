package sqlite

import (
	"fmt"

	"github.com/intercloud/intercloud/sqldb"
)

var _ sqldb.Alterer = Dialect{}

// AddColumn implements sqldb.Alterer.
func (d Dialect) AddColumn(table string, c sqldb.Column) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", d.Quote(table), d.Quote(c.Name), d.ColumnType(c.Type))}
}

// DropColumn implements sqldb.Alterer.
func (d Dialect) DropColumn(table, column string) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", d.Quote(table), d.Quote(column))}
}

// WidenColumn implements sqldb.Alterer: SQLite does not enforce declared
// lengths or precisions, and every integer is 64-bit, so widening needs no
// statement.
func (Dialect) WidenColumn(string, sqldb.Column) []string { return nil }
