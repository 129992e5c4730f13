package sqlserver

import (
	"fmt"

	"github.com/intercloud/intercloud/sqldb"
)

var _ sqldb.Alterer = Dialect{}

// AddColumn implements sqldb.Alterer.
func (d Dialect) AddColumn(table string, c sqldb.Column) []string {
	if c.Default != nil {
		null := " NULL"
		if !c.Nullable {
			null = " NOT NULL"
		}
		return []string{fmt.Sprintf("ALTER TABLE %s ADD %s %s%s DEFAULT %s WITH VALUES%s",
			d.Quote(table), d.Quote(c.Name), d.ColumnType(c.Type), null, literal(*c.Default), d.check(c))}
	}
	c.Nullable = true
	return []string{fmt.Sprintf("ALTER TABLE %s ADD %s %s NULL%s",
		d.Quote(table), d.Quote(c.Name), d.ColumnType(c.Type), d.check(c))}
}

// RenameTable implements sqldb.Alterer.
func (d Dialect) RenameTable(from, to string) []string {
	return []string{fmt.Sprintf("EXEC sp_rename %s, %s", literal(d.Quote(from)), literal(to))}
}

// RenameColumn implements sqldb.Alterer.
func (d Dialect) RenameColumn(table, from, to string) []string {
	return []string{fmt.Sprintf("EXEC sp_rename %s, %s, N'COLUMN'", literal(d.Quote(table)+"."+d.Quote(from)), literal(to))}
}

// DropColumn implements sqldb.Alterer. The column's CHECK constraints
// (range and ISJSON checks get generated names) are dropped first, since
// SQL Server refuses to drop a column a constraint refers to.
func (d Dialect) DropColumn(table, column string) []string {
	t := literal(d.Quote(table))
	return []string{
		fmt.Sprintf("DECLARE @drop NVARCHAR(MAX) = N''; "+
			"SELECT @drop += N'ALTER TABLE ' + %s + N' DROP CONSTRAINT ' + QUOTENAME(name) + N'; ' "+
			"FROM sys.check_constraints WHERE parent_object_id = OBJECT_ID(%s) "+
			"AND parent_column_id = COLUMNPROPERTY(OBJECT_ID(%s), %s, 'ColumnId'); "+
			"EXEC sp_executesql @drop", t, t, t, literal(column)),
		fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", d.Quote(table), d.Quote(column)),
	}
}

// WidenColumn implements sqldb.Alterer.
func (d Dialect) WidenColumn(table string, c sqldb.Column) []string {
	null := " NULL"
	if !c.Nullable {
		null = " NOT NULL"
	}
	return []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s %s%s", d.Quote(table), d.Quote(c.Name), d.ColumnType(c.Type), null)}
}
