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

// RenameTable implements sqldb.Alterer.
func (d Dialect) RenameTable(from, to string) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s RENAME TO %s", d.Quote(from), d.Quote(to))}
}

// RenameColumn implements sqldb.Alterer.
func (d Dialect) RenameColumn(table, from, to string) []string {
	return []string{fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", d.Quote(table), d.Quote(from), d.Quote(to))}
}

// WidenColumn implements sqldb.Alterer: the column's CHECK constraints
// (the bounds of its old type) are dropped, its values cast, and the
// checks of the new type added.
func (d Dialect) WidenColumn(table string, c sqldb.Column) []string {
	typ := d.ColumnType(c.Type)
	out := []string{
		fmt.Sprintf(`DO $$DECLARE r record; BEGIN FOR r IN SELECT con.conname FROM pg_constraint con
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey)
WHERE con.conrelid = to_regclass(%s) AND con.contype = 'c' AND a.attname = %s AND array_length(con.conkey, 1) = 1
LOOP EXECUTE format('ALTER TABLE %%s DROP CONSTRAINT %%I', %s, r.conname); END LOOP; END$$`,
			literal(d.Quote(table)), literal(c.Name), literal(d.Quote(table))),
		fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s",
			d.Quote(table), d.Quote(c.Name), typ, d.Quote(c.Name), typ),
	}
	if chk := d.check(c.Name, c.Type); chk != "" {
		out = append(out, fmt.Sprintf("ALTER TABLE %s ADD%s", d.Quote(table), chk))
	}
	return out
}
