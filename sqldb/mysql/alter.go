package mysql

import (
	"fmt"

	"github.com/intercloud/intercloud/sqldb"
)

var _ sqldb.Alterer = Dialect{}

// AddColumn implements sqldb.Alterer.
func (d Dialect) AddColumn(table string, c sqldb.Column) []string {
	ine := ""
	if d.MariaDB {
		ine = "IF NOT EXISTS "
	}
	null := " NULL"
	if c.Default != nil {
		null = " DEFAULT " + Literal(*c.Default)
		if !c.Nullable {
			null = " NOT NULL" + null
		}
	}
	return []string{fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s%s %s%s", d.Quote(table), ine, d.Quote(c.Name), d.ColumnType(c.Type), null)}
}

// DropColumn implements sqldb.Alterer.
func (d Dialect) DropColumn(table, column string) []string {
	ie := ""
	if d.MariaDB {
		ie = "IF EXISTS "
	}
	return []string{fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s%s", d.Quote(table), ie, d.Quote(column))}
}

// RenameTable implements sqldb.Alterer.
func (d Dialect) RenameTable(from, to string) []string {
	return []string{fmt.Sprintf("RENAME TABLE %s TO %s", d.Quote(from), d.Quote(to))}
}

// RenameColumn implements sqldb.Alterer.
func (d Dialect) RenameColumn(table, from, to string) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", d.Quote(table), d.Quote(from), d.Quote(to))}
}

// WidenColumn implements sqldb.Alterer.
func (d Dialect) WidenColumn(table string, c sqldb.Column) []string {
	null := " NULL"
	if !c.Nullable {
		null = " NOT NULL"
	}
	return []string{fmt.Sprintf("ALTER TABLE %s MODIFY COLUMN %s %s%s", d.Quote(table), d.Quote(c.Name), d.ColumnType(c.Type), null)}
}
