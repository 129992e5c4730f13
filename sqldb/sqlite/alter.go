package sqlite

import (
	"fmt"
	"strings"

	"github.com/intercloud/intercloud/sqldb"
)

var _ sqldb.Alterer = Dialect{}

// AddColumn implements sqldb.Alterer.
func (d Dialect) AddColumn(table string, c sqldb.Column) []string {
	def := ""
	if c.Default != nil {
		def = " DEFAULT '" + strings.ReplaceAll(*c.Default, "'", "''") + "'"
		if !c.Nullable {
			def = " NOT NULL" + def
		}
	}
	return []string{fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s%s", d.Quote(table), d.Quote(c.Name), d.ColumnType(c.Type), def)}
}

// RenameTable implements sqldb.Alterer.
func (d Dialect) RenameTable(from, to string) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s RENAME TO %s", d.Quote(from), d.Quote(to))}
}

// RenameColumn implements sqldb.Alterer.
func (d Dialect) RenameColumn(table, from, to string) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", d.Quote(table), d.Quote(from), d.Quote(to))}
}

// DropColumn implements sqldb.Alterer.
func (d Dialect) DropColumn(table, column string) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", d.Quote(table), d.Quote(column))}
}

// WidenColumn implements sqldb.Alterer: SQLite does not enforce declared
// types (values keep their own), so a type change needs no statement.
func (Dialect) WidenColumn(string, sqldb.Column) []string { return nil }
