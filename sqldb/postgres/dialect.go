package postgres

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/intercloud/intercloud/sqldb"
)

// Dialect is PostgreSQL's SQL.
type Dialect struct {
	// PostGIS is set when the database has the postgis extension (Open
	// looks): geometries are then created as PostGIS geometry, written and
	// read as (E)WKB; without it they are bytea holding the WKB.
	PostGIS bool
}

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
func (Dialect) Placeholder(n int) string { return "$" + strconv.Itoa(n) }

// MaxParams implements sqldb.ParamLimiter.
func (Dialect) MaxParams() int { return maxParams }

// ColumnType implements sqldb.Dialect; it is "" for a type of Kind 0.
// Integers take the narrowest type that holds every value (unsigned ones
// the next wider signed type, uint64 NUMERIC(20,0)); check adds the exact
// bounds.
func (d Dialect) ColumnType(t sqldb.Type) string {
	switch t.Kind {
	case sqldb.KindString:
		if t.Length > 0 {
			return fmt.Sprintf("VARCHAR(%d)", t.Length)
		}
		return "VARCHAR"
	case sqldb.KindText:
		return "TEXT"
	case sqldb.KindInt:
		switch need := intBits(t); {
		case need <= 16:
			return "SMALLINT"
		case need <= 32:
			return "INTEGER"
		case need <= 64:
			return "BIGINT"
		}
		return "NUMERIC(20,0)"
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
		if t.Local {
			return "TIMESTAMP(6)"
		}
		return "TIMESTAMPTZ(6)"
	case sqldb.KindDate:
		return "DATE"
	case sqldb.KindTime:
		if t.Duration {
			return "INTERVAL"
		}
		return "TIME(6)"
	case sqldb.KindBytes:
		if t.Spatial && d.PostGIS {
			return "geometry"
		}
		return "BYTEA"
	case sqldb.KindJSON:
		return "JSONB"
	}
	return ""
}

// intBits is how many bits of a signed integer hold every value of t.
func intBits(t sqldb.Type) int {
	b := t.Bits
	if b <= 0 || b > 64 {
		b = 64
	}
	if t.Unsigned {
		b++
	}
	return b
}

// literal quotes a string as a PostgreSQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// check returns the CHECK a column needs: the exact bounds of an integer
// whose SQL type is wider, the members of an ENUM or SET.
func (d Dialect) check(name string, t sqldb.Type) string {
	q := d.Quote(name)
	switch t.Kind {
	case sqldb.KindString:
		if len(t.Values) == 0 {
			return ""
		}
		lits := make([]string, len(t.Values))
		for i, v := range t.Values {
			lits[i] = literal(v)
		}
		if t.Set {
			return fmt.Sprintf(" CHECK (%s = '' OR string_to_array(%s, ',') <@ ARRAY[%s]::text[])", q, q, strings.Join(lits, ", "))
		}
		return fmt.Sprintf(" CHECK (%s IN ('', %s))", q, strings.Join(lits, ", "))
	case sqldb.KindInt:
		bits := t.Bits
		if bits <= 0 || bits > 64 {
			bits = 64
		}
		switch {
		case t.Unsigned && bits == 64:
			return fmt.Sprintf(" CHECK (%s >= 0 AND %s <= 18446744073709551615)", q, q)
		case t.Unsigned:
			return fmt.Sprintf(" CHECK (%s >= 0 AND %s <= %d)", q, q, uint64(1)<<bits-1)
		case bits == 16 || bits == 32 || bits == 64:
			return ""
		}
		return fmt.Sprintf(" CHECK (%s >= %d AND %s <= %d)", q, -(int64(1) << (bits - 1)), q, int64(1)<<(bits-1)-1)
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
		b.WriteString(d.check(c.Name, c.Type))
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
func (d Dialect) Value(t sqldb.Type, v any) (any, error) {
	c, err := sqldb.Canonical(t, v)
	if err != nil || c == nil {
		return c, err
	}
	if t.Spatial && d.PostGIS { // PostGIS reads hex EWKB as geometry text
		return hex.EncodeToString(c.([]byte)), nil
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

// CreateCoveringIndex implements sqldb.CoveringIndexer.
func (d Dialect) CreateCoveringIndex(table, name string, columns, include []string) []string {
	return []string{fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s) INCLUDE (%s)", d.Quote(name), d.Quote(table),
		sqldb.QuoteList(d, columns), sqldb.QuoteList(d, include))}
}

// Describe implements sqldb.Dialect from information_schema, in the
// current schema.
func (d Dialect) Describe(ctx context.Context, q sqldb.Querier, table string) (sqldb.Table, error) {
	rows, err := q.QueryContext(ctx, `SELECT column_name, data_type, udt_name, character_maximum_length, numeric_precision, numeric_scale, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, err)
	}
	defer rows.Close()
	t := sqldb.Table{Name: table}
	for rows.Next() {
		var name, dataType, udt, nullable string
		var length, precision, scale sql.NullInt64
		var def sql.NullString
		if err := rows.Scan(&name, &dataType, &udt, &length, &precision, &scale, &nullable, &def); err != nil {
			return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, err)
		}
		typ := ParseType(dataType, int(length.Int64), int(precision.Int64), int(scale.Int64))
		if dataType == "USER-DEFINED" && udt == "geometry" { // PostGIS
			typ = sqldb.Type{Kind: sqldb.KindBytes, Spatial: true}
		}
		t.Columns = append(t.Columns, sqldb.Column{
			Name:     name,
			Type:     typ,
			Nullable: nullable == "YES",
			Default:  sqldb.ParseDefault(def.String),
		})
	}
	if err := rows.Err(); err != nil {
		return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, err)
	}
	rows.Close()
	if len(t.Columns) == 0 {
		return sqldb.Table{}, fmt.Errorf("postgres: describe %s: %w", table, sqldb.ErrNoTable)
	}
	// The catalog, not information_schema: its constraint views show a
	// table's keys only to a user with more than SELECT on it, and a
	// read-only replication user has just that.
	pk, err := q.QueryContext(ctx, `SELECT a.attname FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE n.nspname = current_schema() AND c.relname = $1 AND i.indisprimary
ORDER BY k.ord`, table)
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
	case "timestamp with time zone":
		return sqldb.Type{Kind: sqldb.KindTimestamp}
	case "timestamp without time zone":
		return sqldb.Type{Kind: sqldb.KindTimestamp, Local: true}
	case "date":
		return sqldb.Type{Kind: sqldb.KindDate}
	case "time without time zone", "time with time zone":
		return sqldb.Type{Kind: sqldb.KindTime}
	case "interval":
		return sqldb.Type{Kind: sqldb.KindTime, Duration: true}
	case "uuid", "inet", "cidr", "macaddr", "xml", "money":
		return sqldb.Type{Kind: sqldb.KindText, Native: dataType} // exact as text
	case "ARRAY", "tsvector", "point", "line", "polygon", "box", "circle", "path", "lseg":
		return sqldb.Type{Native: dataType}
	case "bytea":
		return sqldb.Type{Kind: sqldb.KindBytes}
	case "json", "jsonb":
		return sqldb.Type{Kind: sqldb.KindJSON}
	}
	return sqldb.Type{Kind: sqldb.KindText}
}

var (
	_ sqldb.NewerUpserter   = Dialect{}
	_ sqldb.CoveringIndexer = Dialect{}
)
