package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-sql/civil"

	"github.com/intercloud/intercloud/sqldb"
)

// Limits of the type map and of statements.
const (
	maxNVarchar    = 4000
	maxKeyNVarchar = 450 // 900-byte index keys
	maxVarbinary   = 8000
	maxKeyBinary   = 900
	maxPrecision   = 38
	// maxParams is 2,100 parameters per request less the two that
	// sp_executesql takes for the statement and its declarations.
	maxParams = 2098
)

// Dialect is SQL Server's T-SQL. Not verified against a live server: see
// the package documentation.
type Dialect struct{}

var (
	_ sqldb.Dialect      = Dialect{}
	_ sqldb.Indexer      = Dialect{}
	_ sqldb.ParamLimiter = Dialect{}
)

// Name implements sqldb.Dialect.
func (Dialect) Name() string { return "sqlserver" }

// Quote implements sqldb.Dialect.
func (Dialect) Quote(id string) string { return "[" + strings.ReplaceAll(id, "]", "]]") + "]" }

// Placeholder implements sqldb.Dialect.
func (Dialect) Placeholder(n int) string { return "@p" + strconv.Itoa(n) }

// Limit implements sqldb.Limiter: SQL Server has no LIMIT.
func (Dialect) Limit(n int) string { return fmt.Sprintf(" OFFSET 0 ROWS FETCH NEXT %d ROWS ONLY", n) }

// MaxParams implements sqldb.ParamLimiter.
func (Dialect) MaxParams() int { return maxParams }

// literal is an N'...' string literal.
func literal(s string) string { return "N'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ColumnType implements sqldb.Dialect.
func (Dialect) ColumnType(t sqldb.Type) string {
	switch t.Kind {
	case sqldb.KindString:
		if t.Length > 0 && t.Length <= maxNVarchar {
			return fmt.Sprintf("NVARCHAR(%d)", t.Length)
		}
		return "NVARCHAR(MAX)"
	case sqldb.KindText, sqldb.KindJSON:
		return "NVARCHAR(MAX)"
	case sqldb.KindInt:
		switch {
		case t.Unsigned && t.Bits == 8:
			return "TINYINT"
		case t.Unsigned && t.Bits == 16:
			return "INT"
		case t.Unsigned && (t.Bits == 24 || t.Bits == 32):
			return "BIGINT"
		case t.Unsigned:
			return "DECIMAL(20,0)"
		case t.Bits == 8 || t.Bits == 16:
			return "SMALLINT"
		case t.Bits == 24 || t.Bits == 32:
			return "INT"
		}
		return "BIGINT"
	case sqldb.KindFloat:
		return "FLOAT"
	case sqldb.KindDecimal:
		p, s := t.Precision, t.Scale
		if p <= 0 {
			p, s = maxPrecision, 10
		}
		if p > maxPrecision {
			return "" // DECIMAL holds 38 digits: narrowing would lose values
		}
		s = min(s, p)
		return fmt.Sprintf("DECIMAL(%d,%d)", p, s)
	case sqldb.KindBool:
		return "BIT"
	case sqldb.KindTimestamp:
		return "DATETIME2(6)"
	case sqldb.KindDate:
		return "DATE"
	case sqldb.KindTime:
		if t.Duration {
			return "" // TIME holds only times of day
		}
		return "TIME(6)"
	case sqldb.KindBytes:
		if t.Length > 0 && t.Length <= maxVarbinary && !t.Spatial {
			return fmt.Sprintf("VARBINARY(%d)", t.Length)
		}
		return "VARBINARY(MAX)"
	}
	return ""
}

// columnType is the DDL type of a column, narrower for key columns:
// (MAX) types cannot be index keys.
func (d Dialect) columnType(t sqldb.Table, c sqldb.Column) string {
	if t.IsPrimaryKey(c.Name) {
		switch c.Type.Kind {
		case sqldb.KindString, sqldb.KindText, sqldb.KindJSON:
			n := c.Type.Length
			if c.Type.Kind != sqldb.KindString || n <= 0 || n > maxKeyNVarchar {
				n = maxKeyNVarchar
			}
			return fmt.Sprintf("NVARCHAR(%d)", n)
		case sqldb.KindBytes:
			n := c.Type.Length
			if n <= 0 || n > maxKeyBinary {
				n = maxKeyBinary
			}
			return fmt.Sprintf("VARBINARY(%d)", n)
		}
	}
	return d.ColumnType(c.Type)
}

// check returns the CHECK a column needs: the portable range of integers
// stored in a wider type, and ISJSON for JSON.
func (d Dialect) check(c sqldb.Column) string {
	q := d.Quote(c.Name)
	t := c.Type
	switch t.Kind {
	case sqldb.KindJSON:
		return fmt.Sprintf(" CHECK (ISJSON(%s) = 1)", q)
	case sqldb.KindString:
		if len(t.Values) > 0 && !t.Set {
			lits := make([]string, len(t.Values))
			for i, v := range t.Values {
				lits[i] = literal(v)
			}
			return fmt.Sprintf(" CHECK (%s IN (N'', %s))", q, strings.Join(lits, ", "))
		}
	case sqldb.KindInt:
		switch {
		case t.Unsigned && t.Bits == 8:
			return "" // TINYINT is exactly uint8
		case t.Unsigned && (t.Bits == 16 || t.Bits == 24 || t.Bits == 32):
			return fmt.Sprintf(" CHECK (%s >= 0 AND %s <= %d)", q, q, uint64(1)<<t.Bits-1)
		case t.Bits == 24:
			return fmt.Sprintf(" CHECK (%s >= -8388608 AND %s <= 8388607)", q, q)
		case t.Unsigned:
			return fmt.Sprintf(" CHECK (%s >= 0)", q)
		case t.Bits == 8:
			return fmt.Sprintf(" CHECK (%s >= -128 AND %s <= 127)", q, q)
		}
	}
	return ""
}

// CreateTable implements sqldb.Dialect.
func (d Dialect) CreateTable(t sqldb.Table) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "IF OBJECT_ID(%s, N'U') IS NULL CREATE TABLE %s (", literal(d.Quote(t.Name)), d.Quote(t.Name))
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", d.Quote(c.Name), d.columnType(t, c))
		if !c.Nullable || t.IsPrimaryKey(c.Name) {
			b.WriteString(" NOT NULL")
		} else {
			b.WriteString(" NULL")
		}
		b.WriteString(d.check(c))
	}
	if len(t.PrimaryKey) > 0 {
		fmt.Fprintf(&b, ", PRIMARY KEY (%s)", sqldb.QuoteList(d, t.PrimaryKey))
	}
	b.WriteString(")")
	return []string{b.String()}
}

// merge builds MERGE ... USING (VALUES ...) with each parameter cast to its
// column's type, so that NULLs and strings bind to the right types.
func (d Dialect) merge(t sqldb.Table, rows int, update bool) string {
	return d.mergeIf(t, rows, update, nil)
}

// UpsertNewer implements sqldb.NewerUpserter: WHEN MATCHED AND the source
// row's version is greater.
func (d Dialect) UpsertNewer(t sqldb.Table, rows int, version []string) string {
	return d.mergeIf(t, rows, true, version)
}

// mergeIf is merge whose update runs only for a newer version, if given.
func (d Dialect) mergeIf(t sqldb.Table, rows int, update bool, version []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "MERGE INTO %s WITH (HOLDLOCK) AS [target] USING (VALUES ", d.Quote(t.Name))
	n := 1
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i, c := range t.Columns {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "CAST(%s AS %s)", d.Placeholder(n), d.columnType(t, c))
			n++
		}
		b.WriteByte(')')
	}
	fmt.Fprintf(&b, ") AS [source] (%s) ON ", sqldb.QuoteList(d, t.ColumnNames()))
	key := t.PrimaryKey
	if len(key) == 0 {
		key = t.ColumnNames()
	}
	for i, k := range key {
		if i > 0 {
			b.WriteString(" AND ")
		}
		fmt.Fprintf(&b, "[target].%s = [source].%s", d.Quote(k), d.Quote(k))
	}
	var set []string
	for _, c := range t.Columns {
		if !t.IsPrimaryKey(c.Name) {
			q := d.Quote(c.Name)
			set = append(set, "[target]."+q+" = [source]."+q)
		}
	}
	if update && len(set) > 0 {
		when := " WHEN MATCHED"
		if len(version) > 0 {
			when += " AND " + sqldb.NewerCondition(version,
				func(c string) string { return "[source]." + d.Quote(c) },
				func(c string) string { return "[target]." + d.Quote(c) })
		}
		b.WriteString(when + " THEN UPDATE SET " + strings.Join(set, ", "))
	}
	src := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		src[i] = "[source]." + d.Quote(c.Name)
	}
	fmt.Fprintf(&b, " WHEN NOT MATCHED THEN INSERT (%s) VALUES (%s);", sqldb.QuoteList(d, t.ColumnNames()), strings.Join(src, ", "))
	return b.String()
}

// Upsert implements sqldb.Dialect. The rows of one call must have
// distinct keys, and at most MaxParams()/len(t.Columns) rows.
func (d Dialect) Upsert(t sqldb.Table, rows int) string { return d.merge(t, rows, true) }

// InsertIgnore implements sqldb.Dialect; RowsAffected is the number of
// rows inserted.
func (d Dialect) InsertIgnore(t sqldb.Table, rows int) string { return d.merge(t, rows, false) }

// Value implements sqldb.Dialect: sqldb.Canonical, then timestamps, dates
// and times as civil values (DATETIME2, DATE, TIME parameters, free of
// time zones) and integers beyond int64 as decimal text.
func (Dialect) Value(t sqldb.Type, v any) (any, error) {
	c, err := sqldb.Canonical(t, v)
	if err != nil || c == nil {
		return c, err
	}
	switch x := c.(type) {
	case uint64:
		return fmt.Sprint(x), nil
	case time.Time:
		if t.Kind == sqldb.KindDate {
			return civil.DateOf(x), nil
		}
		return civil.DateTimeOf(x), nil
	case string:
		if t.Kind == sqldb.KindTime {
			ct, err := civil.ParseTime(x)
			if err != nil {
				return nil, fmt.Errorf("sqlserver: time %q: %w", x, err)
			}
			return ct, nil
		}
	}
	return c, nil
}

// CreateIndex implements sqldb.Indexer, guarded by sys.indexes.
func (d Dialect) CreateIndex(table, name string, columns []string) []string {
	return []string{fmt.Sprintf("IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = %s AND object_id = OBJECT_ID(%s)) CREATE INDEX %s ON %s (%s)",
		literal(name), literal(d.Quote(table)), d.Quote(name), d.Quote(table), sqldb.QuoteList(d, columns))}
}

// The queries Describe runs.
const (
	describeColumns = `SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE
FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = SCHEMA_NAME() AND TABLE_NAME = @p1 ORDER BY ORDINAL_POSITION`
	describeKey = `SELECT k.COLUMN_NAME FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS c
JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = c.CONSTRAINT_NAME
WHERE c.TABLE_SCHEMA = SCHEMA_NAME() AND c.TABLE_NAME = @p1 AND c.CONSTRAINT_TYPE = 'PRIMARY KEY' ORDER BY k.ORDINAL_POSITION`
	describeJSON = `SELECT col.name FROM sys.check_constraints cc
JOIN sys.columns col ON col.object_id = cc.parent_object_id AND col.column_id = cc.parent_column_id
WHERE cc.parent_object_id = OBJECT_ID(QUOTENAME(SCHEMA_NAME()) + N'.' + QUOTENAME(@p1)) AND LOWER(cc.definition) LIKE N'%isjson(%'`
)

// Describe implements sqldb.Dialect from INFORMATION_SCHEMA and
// sys.check_constraints, in the default schema.
func (d Dialect) Describe(ctx context.Context, q sqldb.Querier, table string) (sqldb.Table, error) {
	rows, err := q.QueryContext(ctx, describeColumns, table)
	if err != nil {
		return sqldb.Table{}, fmt.Errorf("sqlserver: describe %s: %w", table, err)
	}
	defer rows.Close()
	t := sqldb.Table{Name: table}
	for rows.Next() {
		var name, dataType, nullable string
		var length, precision, scale sql.NullInt64
		if err := rows.Scan(&name, &dataType, &length, &precision, &scale, &nullable); err != nil {
			return sqldb.Table{}, fmt.Errorf("sqlserver: describe %s: %w", table, err)
		}
		t.Columns = append(t.Columns, sqldb.Column{
			Name:     name,
			Type:     ParseType(dataType, int(length.Int64), int(precision.Int64), int(scale.Int64)),
			Nullable: nullable == "YES",
		})
	}
	if err := rows.Err(); err != nil {
		return sqldb.Table{}, fmt.Errorf("sqlserver: describe %s: %w", table, err)
	}
	rows.Close()
	if len(t.Columns) == 0 {
		return sqldb.Table{}, fmt.Errorf("sqlserver: describe %s: %w", table, sqldb.ErrNoTable)
	}
	if t.PrimaryKey, err = names(ctx, q, describeKey, table); err != nil {
		return sqldb.Table{}, fmt.Errorf("sqlserver: describe %s: %w", table, err)
	}
	jsonCols, err := names(ctx, q, describeJSON, table)
	if err != nil {
		return sqldb.Table{}, fmt.Errorf("sqlserver: describe %s: %w", table, err)
	}
	for _, j := range jsonCols {
		for i, c := range t.Columns {
			if c.Name == j && c.Type.Kind == sqldb.KindText {
				t.Columns[i].Type = sqldb.Type{Kind: sqldb.KindJSON}
			}
		}
	}
	return t, nil
}

func names(ctx context.Context, q sqldb.Querier, query, table string) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ParseType maps INFORMATION_SCHEMA.COLUMNS.DATA_TYPE (with its length,
// -1 for MAX, precision and scale) to a portable type. Types without a
// portable counterpart read as text.
func ParseType(dataType string, length, precision, scale int) sqldb.Type {
	switch strings.ToLower(dataType) {
	case "nvarchar", "varchar", "nchar", "char":
		if length < 0 {
			return sqldb.Type{Kind: sqldb.KindText}
		}
		return sqldb.Type{Kind: sqldb.KindString, Length: length}
	case "ntext", "text", "xml":
		return sqldb.Type{Kind: sqldb.KindText}
	case "uniqueidentifier":
		return sqldb.Type{Kind: sqldb.KindString, Length: 36}
	case "tinyint":
		return sqldb.Type{Kind: sqldb.KindInt, Bits: 8, Unsigned: true}
	case "smallint":
		return sqldb.Type{Kind: sqldb.KindInt, Bits: 16}
	case "int":
		return sqldb.Type{Kind: sqldb.KindInt, Bits: 32}
	case "bigint":
		return sqldb.Type{Kind: sqldb.KindInt, Bits: 64}
	case "decimal", "numeric":
		return sqldb.Type{Kind: sqldb.KindDecimal, Precision: precision, Scale: scale}
	case "money", "smallmoney":
		return sqldb.Type{Kind: sqldb.KindDecimal, Precision: 19, Scale: 4}
	case "float", "real":
		return sqldb.Type{Kind: sqldb.KindFloat}
	case "bit":
		return sqldb.Type{Kind: sqldb.KindBool}
	case "datetime2", "datetime", "smalldatetime", "datetimeoffset":
		return sqldb.Type{Kind: sqldb.KindTimestamp}
	case "date":
		return sqldb.Type{Kind: sqldb.KindDate}
	case "time":
		return sqldb.Type{Kind: sqldb.KindTime}
	case "varbinary", "binary":
		if length < 0 {
			return sqldb.Type{Kind: sqldb.KindBytes}
		}
		return sqldb.Type{Kind: sqldb.KindBytes, Length: length}
	case "image", "rowversion", "timestamp":
		return sqldb.Type{Kind: sqldb.KindBytes}
	}
	return sqldb.Type{Kind: sqldb.KindText}
}

var _ sqldb.NewerUpserter = Dialect{}
