package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/intercloud/intercloud/sqldb"
)

// Dialect is PostgreSQL's SQL.
type Dialect struct{}

var (
	_ sqldb.Dialect      = Dialect{}
	_ sqldb.Indexer      = Dialect{}
	_ sqldb.ParamLimiter = Dialect{}
)

// Name implements sqldb.Dialect.
func (Dialect) Name() string { return "postgres" }

// Quote implements sqldb.Dialect.
func (Dialect) Quote(id string) string { return `"` + strings.ReplaceAll(id, `"`, `""`) + `"` }

// Placeholder implements sqldb.Dialect.
func (Dialect) Placeholder(n int) string { return fmt.Sprintf("$%d", n) }

// MaxParams implements sqldb.ParamLimiter.
func (Dialect) MaxParams() int { return maxParams }

// ColumnType implements sqldb.Dialect.
func (Dialect) ColumnType(t sqldb.Type) string {
	switch t.Kind {
	case sqldb.KindString:
		if t.Length > 0 {
			return fmt.Sprintf("VARCHAR(%d)", t.Length)
		}
		return "VARCHAR"
	case sqldb.KindText:
		return "TEXT"
	case sqldb.KindInt:
		bits := t.Bits
		if t.Unsigned {
			bits *= 2 // the next wider signed type holds every value
		}
		switch {
		case t.Unsigned && (t.Bits == 0 || t.Bits >= 64):
			return "NUMERIC(20,0)"
		case bits > 0 && bits <= 16:
			return "SMALLINT"
		case bits == 32:
			return "INTEGER"
		}
		return "BIGINT"
	case sqldb.KindFloat:
		return "DOUBLE PRECISION"
	case sqldb.KindDecimal:
		if t.Precision <= 0 {
			return "NUMERIC"
		}
		return fmt.Sprintf("NUMERIC(%d,%d)", t.Precision, t.Scale)
	case sqldb.KindBool:
		return "BOOLEAN"
	case sqldb.KindTimestamp:
		return "TIMESTAMPTZ(6)"
	case sqldb.KindDate:
		return "DATE"
	case sqldb.KindTime:
		return "TIME(6)"
	case sqldb.KindBytes:
		return "BYTEA"
	case sqldb.KindJSON:
		return "JSONB"
	}
	return "TEXT"
}

// rangeCheck returns the CHECK an integer column needs when its SQL type
// is wider than the portable one.
func (d Dialect) rangeCheck(name string, t sqldb.Type) string {
	if t.Kind != sqldb.KindInt {
		return ""
	}
	q := d.Quote(name)
	switch {
	case t.Unsigned && (t.Bits == 0 || t.Bits >= 64):
		return fmt.Sprintf(" CHECK (%s >= 0 AND %s <= 18446744073709551615)", q, q)
	case t.Unsigned:
		return fmt.Sprintf(" CHECK (%s >= 0 AND %s <= %d)", q, q, uint64(1)<<t.Bits-1)
	case t.Bits == 8:
		return fmt.Sprintf(" CHECK (%s >= -128 AND %s <= 127)", q, q)
	}
	return ""
}

// CreateTable implements sqldb.Dialect.
func (d Dialect) CreateTable(t sqldb.Table) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", d.Quote(t.Name))
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", d.Quote(c.Name), d.ColumnType(c.Type))
		if !c.Nullable {
			b.WriteString(" NOT NULL")
		}
		b.WriteString(d.rangeCheck(c.Name, c.Type))
	}
	if len(t.PrimaryKey) > 0 {
		fmt.Fprintf(&b, ", PRIMARY KEY (%s)", sqldb.QuoteList(d, t.PrimaryKey))
	}
	b.WriteString(")")
	return []string{b.String()}
}

func (d Dialect) insert(t sqldb.Table, rows int) string {
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", d.Quote(t.Name),
		sqldb.QuoteList(d, t.ColumnNames()), sqldb.ValuesList(d, rows, len(t.Columns)))
}

// Upsert implements sqldb.Dialect. The rows of one call must have distinct
// keys, and at most MaxParams()/len(t.Columns) rows.
func (d Dialect) Upsert(t sqldb.Table, rows int) string {
	var set []string
	for _, c := range t.Columns {
		if !t.IsPrimaryKey(c.Name) {
			q := d.Quote(c.Name)
			set = append(set, q+" = EXCLUDED."+q)
		}
	}
	if len(set) == 0 {
		return d.InsertIgnore(t, rows)
	}
	return d.insert(t, rows) + fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", sqldb.QuoteList(d, t.PrimaryKey), strings.Join(set, ", "))
}

// UpsertNewer implements sqldb.NewerUpserter: the conflict's update runs
// only WHERE the incoming version is greater (RowsAffected counts the rows
// inserted or overwritten).
func (d Dialect) UpsertNewer(t sqldb.Table, rows int, version []string) string {
	cond := sqldb.NewerCondition(version,
		func(c string) string { return "EXCLUDED." + d.Quote(c) },
		func(c string) string { return d.Quote(t.Name) + "." + d.Quote(c) })
	return d.Upsert(t, rows) + " WHERE " + cond
}

// InsertIgnore implements sqldb.Dialect: only a primary-key conflict is
// ignored; RowsAffected is the number of rows inserted.
func (d Dialect) InsertIgnore(t sqldb.Table, rows int) string {
	if len(t.PrimaryKey) == 0 {
		return d.insert(t, rows) + " ON CONFLICT DO NOTHING"
	}
	return d.insert(t, rows) + fmt.Sprintf(" ON CONFLICT (%s) DO NOTHING", sqldb.QuoteList(d, t.PrimaryKey))
}

// Value implements sqldb.Dialect: sqldb.Canonical, with integers beyond
// int64 as decimal text for NUMERIC(20,0).
func (Dialect) Value(t sqldb.Type, v any) (any, error) {
	c, err := sqldb.Canonical(t, v)
	if err != nil || c == nil {
		return c, err
	}
	if u, ok := c.(uint64); ok {
		return fmt.Sprint(u), nil
	}
	return c, nil
}

// CreateIndex implements sqldb.Indexer.
func (d Dialect) CreateIndex(table, name string, columns []string) []string {
	return []string{fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", d.Quote(name), d.Quote(table), sqldb.QuoteList(d, columns))}
}

// Describe implements sqldb.Dialect from information_schema, in the
// current schema.
func (d Dialect) Describe(ctx context.Context, q sqldb.Querier, table string) (sqldb.Table, error) {
	rows, err := q.QueryContext(ctx, `SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale, is_nullable
FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, err)
	}
	defer rows.Close()
	t := sqldb.Table{Name: table}
	for rows.Next() {
		var name, dataType, nullable string
		var length, precision, scale sql.NullInt64
		if err := rows.Scan(&name, &dataType, &length, &precision, &scale, &nullable); err != nil {
			return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, err)
		}
		t.Columns = append(t.Columns, sqldb.Column{
			Name:     name,
			Type:     ParseType(dataType, int(length.Int64), int(precision.Int64), int(scale.Int64)),
			Nullable: nullable == "YES",
		})
	}
	if err := rows.Err(); err != nil {
		return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, err)
	}
	rows.Close()
	if len(t.Columns) == 0 {
		return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, sqldb.ErrNoTable)
	}
	pk, err := q.QueryContext(ctx, `SELECT k.column_name FROM information_schema.table_constraints c
JOIN information_schema.key_column_usage k
  ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name AND k.table_name = c.table_name
WHERE c.table_schema = current_schema() AND c.table_name = $1 AND c.constraint_type = 'PRIMARY KEY'
ORDER BY k.ordinal_position`, table)
	if err != nil {
		return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, err)
	}
	defer pk.Close()
	for pk.Next() {
		var name string
		if err := pk.Scan(&name); err != nil {
			return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, err)
		}
		t.PrimaryKey = append(t.PrimaryKey, name)
	}
	if err := pk.Err(); err != nil {
		return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, err)
	}
	return t, nil
}

// ParseType maps information_schema.columns.data_type (with its length,
// precision and scale) to a portable type. Types without a portable
// counterpart read as text.
func ParseType(dataType string, length, precision, scale int) sqldb.Type {
	switch dataType {
	case "character varying", "character":
		return sqldb.Type{Kind: sqldb.KindString, Length: length}
	case "text", "citext":
		return sqldb.Type{Kind: sqldb.KindText}
	case "smallint":
		return sqldb.Type{Kind: sqldb.KindInt, Bits: 16}
	case "integer":
		return sqldb.Type{Kind: sqldb.KindInt, Bits: 32}
	case "bigint":
		return sqldb.Type{Kind: sqldb.KindInt, Bits: 64}
	case "double precision", "real":
		return sqldb.Type{Kind: sqldb.KindFloat}
	case "numeric":
		return sqldb.Type{Kind: sqldb.KindDecimal, Precision: precision, Scale: scale}
	case "boolean":
		return sqldb.Type{Kind: sqldb.KindBool}
	case "timestamp with time zone", "timestamp without time zone":
		return sqldb.Type{Kind: sqldb.KindTimestamp}
	case "date":
		return sqldb.Type{Kind: sqldb.KindDate}
	case "time without time zone", "time with time zone":
		return sqldb.Type{Kind: sqldb.KindTime}
	case "bytea":
		return sqldb.Type{Kind: sqldb.KindBytes}
	case "json", "jsonb":
		return sqldb.Type{Kind: sqldb.KindJSON}
	}
	return sqldb.Type{Kind: sqldb.KindText}
}

var _ sqldb.NewerUpserter = Dialect{}
