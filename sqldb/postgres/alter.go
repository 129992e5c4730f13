package postgres

import (
	"fmt"

	"github.com/intercloud/intercloud/sqldb"
)

var _ sqldb.Alterer = Dialect{}

// AddColumn implements sqldb.Alterer.
func (d Dialect) AddColumn(table string, c sqldb.Column) []string {
	def := ""
	if c.Default != nil {
		def = " DEFAULT " + literal(*c.Default)
		if !c.Nullable {
			def += " NOT NULL"
		}
	}
	return []string{fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s%s%s",
		d.Quote(table), d.Quote(c.Name), d.ColumnType(c.Type), def, d.check(c.Name, c.Type))}
}

// DropColumn implements sqldb.Alterer.
func (d Dialect) DropColumn(table, column string) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s DROP COLUMN IF EXISTS %s", d.Quote(table), d.Quote(column))}
}

// WidenColumn implements sqldb.Alterer.
func (d Dialect) WidenColumn(table string, c sqldb.Column) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s",
		d.Quote(table), d.Quote(c.Name), d.ColumnType(c.Type))}
}
