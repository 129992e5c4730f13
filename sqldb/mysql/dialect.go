package mysql

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/intercloud/intercloud/sqldb"
)

// Limits of the type map.
const (
	// MaxVarchar is the longest string(n) kept as VARCHAR(n); longer ones
	// are MEDIUMTEXT, so that a few wide columns do not exceed InnoDB's
	// 65,535-byte row limit (utf8mb4 counts 4 bytes a character).
	MaxVarchar = 4096
	// MaxKeyVarchar is the longest VARCHAR a key column gets: 3,072 bytes
	// is InnoDB's index key limit. A key string(n) with n of 0 or above
	// this is VARCHAR(MaxKeyVarchar).
	MaxKeyVarchar = 768
	// MaxVarbinary is the longest bytes(n) kept as VARBINARY(n).
	MaxVarbinary = 16384
)

// Dialect is MySQL's and MariaDB's SQL. The zero value is MySQL 8; Open
// sets MariaDB for a MariaDB server.
type Dialect struct {
	// MariaDB selects MariaDB's collation and CREATE INDEX IF NOT EXISTS.
	MariaDB bool
}

var (
	_ sqldb.Dialect      = Dialect{}
	_ sqldb.Indexer      = Dialect{}
	_ sqldb.ParamLimiter = Dialect{}
	_ sqldb.Reader       = Dialect{}
	_ sqldb.Selector     = Dialect{}
)

// Name implements sqldb.Dialect.
func (Dialect) Name() string { return "mysql" }

// Quote implements sqldb.Dialect.
func (Dialect) Quote(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

// Placeholder implements sqldb.Dialect.
func (Dialect) Placeholder(int) string { return "?" }

// MaxParams implements sqldb.ParamLimiter: the protocol counts parameters
// in 16 bits.
func (Dialect) MaxParams() int { return 65535 }

// Collation is the tables' collation.
func (d Dialect) Collation() string {
	if d.MariaDB {
		return "utf8mb4_nopad_bin"
	}
	return "utf8mb4_0900_bin"
}

// ColumnType implements sqldb.Dialect; it is "" for a type of Kind 0.
func (d Dialect) ColumnType(t sqldb.Type) string {
	switch t.Kind {
	case sqldb.KindString:
		if len(t.Values) > 0 {
			kw := "ENUM"
			if t.Set {
				kw = "SET"
			}
			q := make([]string, len(t.Values))
			for i, v := range t.Values {
				q[i] = Literal(v)
			}
			return kw + "(" + strings.Join(q, ",") + ")"
		}
		if t.Length > 0 && t.Length <= MaxVarchar {
			return fmt.Sprintf("VARCHAR(%d)", t.Length)
		}
		return "MEDIUMTEXT"
	case sqldb.KindText:
		return "LONGTEXT"
	case sqldb.KindInt:
		var s string
		switch t.Bits {
		case 8:
			s = "TINYINT"
		case 16:
			s = "SMALLINT"
		case 24:
			s = "MEDIUMINT"
		case 32:
			s = "INT"
		default:
			s = "BIGINT"
		}
		if t.Unsigned {
			s += " UNSIGNED"
		}
		return s
	case sqldb.KindFloat:
		return "DOUBLE"
	case sqldb.KindDecimal:
		if t.Precision <= 0 {
			return "DECIMAL(65,30)"
		}
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case sqldb.KindBool:
		return "TINYINT(1)"
	case sqldb.KindTimestamp:
		return "DATETIME(6)"
	case sqldb.KindDate:
		return "DATE"
	case sqldb.KindTime:
		return "TIME(6)"
	case sqldb.KindBytes:
		if t.Spatial {
			return "GEOMETRY"
		}
		if t.Length > 0 && t.Length <= MaxVarbinary {
			return fmt.Sprintf("VARBINARY(%d)", t.Length)
		}
		return "LONGBLOB"
	case sqldb.KindJSON:
		return "JSON"
	}
	return ""
}

// Literal quotes a string as a MySQL string literal (backslashes escaped,
// so it holds in every sql_mode).
func Literal(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(s) + "'"
}

// keyType is the DDL type of a primary-key column: InnoDB cannot index
// TEXT or BLOB columns without a prefix length.
func (d Dialect) keyType(t sqldb.Type) string {
	switch t.Kind {
	case sqldb.KindString, sqldb.KindText:
		if len(t.Values) > 0 {
			return d.ColumnType(t)
		}
		if t.Kind == sqldb.KindString && t.Length > 0 && t.Length <= MaxKeyVarchar {
			return fmt.Sprintf("VARCHAR(%d)", t.Length)
		}
		return fmt.Sprintf("VARCHAR(%d)", MaxKeyVarchar)
	case sqldb.KindBytes:
		if t.Length > 0 && t.Length <= 3072 {
			return fmt.Sprintf("VARBINARY(%d)", t.Length)
		}
		return "VARBINARY(3072)"
	}
	return d.ColumnType(t)
}

// CreateTable implements sqldb.Dialect.
func (d Dialect) CreateTable(t sqldb.Table) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", d.Quote(t.Name))
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		typ := d.ColumnType(c.Type)
		if t.IsPrimaryKey(c.Name) {
			typ = d.keyType(c.Type)
		}
		fmt.Fprintf(&b, "%s %s", d.Quote(c.Name), typ)
		if !c.Nullable || t.IsPrimaryKey(c.Name) {
			b.WriteString(" NOT NULL")
		} else {
			b.WriteString(" NULL")
		}
	}
	if len(t.PrimaryKey) > 0 {
		fmt.Fprintf(&b, ", PRIMARY KEY (%s)", sqldb.QuoteList(d, t.PrimaryKey))
	}
	fmt.Fprintf(&b, ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=%s", d.Collation())
	return []string{b.String()}
}

func (d Dialect) insert(t sqldb.Table, rows int) string {
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", d.Quote(t.Name),
		sqldb.QuoteList(d, t.ColumnNames()), sqldb.ValuesList(d, rows, len(t.Columns)))
}

// Upsert implements sqldb.Dialect. Rows of one call should have distinct
// keys (the last one wins here, but other dialects refuse).
func (d Dialect) Upsert(t sqldb.Table, rows int) string {
	var set []string
	for _, c := range t.Columns {
		if !t.IsPrimaryKey(c.Name) {
			q := d.Quote(c.Name)
			set = append(set, q+" = VALUES("+q+")")
		}
	}
	if len(set) == 0 {
		return d.InsertIgnore(t, rows)
	}
	return d.insert(t, rows) + " ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}

// UpsertNewer implements sqldb.NewerUpserter. MySQL has no condition on
// ON DUPLICATE KEY UPDATE, so every column is assigned IF(newer, incoming,
// existing); the assignments run left to right and each sees the columns
// assigned before it, so the version columns come last, in reverse order:
// once the later ones are overwritten the condition still decides by the
// earlier ones, which are equal whenever only the later ones were newer.
func (d Dialect) UpsertNewer(t sqldb.Table, rows int, version []string) string {
	cond := sqldb.NewerCondition(version,
		func(c string) string { return "VALUES(" + d.Quote(c) + ")" },
		func(c string) string { return d.Quote(c) })
	isVersion := map[string]bool{}
	for _, v := range version {
		isVersion[v] = true
	}
	assign := func(c string) string {
		q := d.Quote(c)
		return q + " = IF(" + cond + ", VALUES(" + q + "), " + q + ")"
	}
	var set []string
	for _, c := range t.Columns {
		if !t.IsPrimaryKey(c.Name) && !isVersion[c.Name] {
			set = append(set, assign(c.Name))
		}
	}
	for i := len(version) - 1; i >= 0; i-- {
		set = append(set, assign(version[i]))
	}
	return d.insert(t, rows) + " ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}

// InsertIgnore implements sqldb.Dialect: a duplicate key leaves the row
// as it is (assigning a key column to itself changes nothing and counts no
// affected row); every other error still fails the statement.
func (d Dialect) InsertIgnore(t sqldb.Table, rows int) string {
	key := t.ColumnNames()[0]
	if len(t.PrimaryKey) > 0 {
		key = t.PrimaryKey[0]
	}
	q := d.Quote(key)
	return d.insert(t, rows) + " ON DUPLICATE KEY UPDATE " + q + " = " + q
}

// Value implements sqldb.Dialect: sqldb.Canonical, then timestamps, dates
// and times as text in the server's own formats (exact, and free of the
// driver's time zone and zero-time handling), geometries in the server's
// own form (the SRID, then WKB).
func (Dialect) Value(t sqldb.Type, v any) (any, error) {
	c, err := sqldb.Canonical(t, v)
	if err != nil || c == nil {
		return c, err
	}
	switch t.Kind {
	case sqldb.KindBytes:
		if t.Spatial {
			srid, wkb, err := sqldb.SplitEWKB(c.([]byte))
			if err != nil {
				return nil, fmt.Errorf("mysql: geometry: %w", err)
			}
			return append(binary.LittleEndian.AppendUint32(nil, srid), wkb...), nil
		}
	case sqldb.KindTimestamp:
		return c.(time.Time).Format("2006-01-02 15:04:05.000000"), nil
	case sqldb.KindDate:
		return c.(time.Time).Format("2006-01-02"), nil
	}
	return c, nil
}

// SelectColumn implements sqldb.Selector: dates and timestamps are read as
// the server's text, so that a zero date (or one with a zero month or
// day) arrives as written instead of as the driver's nearest time.Time.
func (Dialect) SelectColumn(t sqldb.Type, q string) string {
	if t.Kind == sqldb.KindDate || t.Kind == sqldb.KindTimestamp {
		return "CAST(" + q + " AS CHAR)"
	}
	return q
}

// Read implements sqldb.Reader: a geometry as the server stores it (the
// SRID, little-endian, then WKB) becomes the portable (E)WKB.
func (Dialect) Read(t sqldb.Type, v any) (any, error) {
	if t.Kind != sqldb.KindBytes || !t.Spatial || v == nil {
		return v, nil
	}
	b, ok := v.([]byte)
	if !ok {
		return v, nil
	}
	return ReadGeometry(b)
}

// ReadGeometry converts a geometry as MySQL stores it (and writes it to
// the binlog) to the portable (E)WKB.
func ReadGeometry(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("mysql: geometry of %d bytes", len(b))
	}
	out, err := sqldb.EWKB(binary.LittleEndian.Uint32(b[:4]), b[4:])
	if err != nil {
		return nil, fmt.Errorf("mysql: geometry: %w", err)
	}
	return out, nil
}

// CreateIndex implements sqldb.Indexer. MariaDB's statement has IF NOT
// EXISTS; MySQL has no such clause, so on MySQL the statement fails with
// error 1061 when the index exists: use Dialect.EnsureIndex there.
func (d Dialect) CreateIndex(table, name string, columns []string) []string {
	ine := ""
	if d.MariaDB {
		ine = "IF NOT EXISTS "
	}
	return []string{fmt.Sprintf("CREATE INDEX %s%s ON %s (%s)", ine, d.Quote(name), d.Quote(table), sqldb.QuoteList(d, columns))}
}

// EnsureIndex creates an index unless information_schema.statistics
// already lists it: MySQL's CREATE INDEX has no IF NOT EXISTS.
func (d Dialect) EnsureIndex(ctx context.Context, q sqldb.Querier, table, name string, columns []string) error {
	var n int
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?", table, name).Scan(&n)
	if err != nil {
		return fmt.Errorf("mysql: index %s: %w", name, err)
	}
	if n > 0 {
		return nil
	}
	for _, s := range d.CreateIndex(table, name, columns) {
		if _, err := q.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("mysql: create index %s: %w", name, err)
		}
	}
	return nil
}

// Describe implements sqldb.Dialect from information_schema.
func (d Dialect) Describe(ctx context.Context, q sqldb.Querier, table string) (sqldb.Table, error) {
	rows, err := q.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, COLUMN_DEFAULT, EXTRA
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, table)
	if err != nil {
		return sqldb.Table{}, fmt.Errorf("mysql: describe %s: %w", table, err)
	}
	defer rows.Close()
	t := sqldb.Table{Name: table}
	for rows.Next() {
		var name, ctype, nullable, key, extra string
		var def sql.NullString
		if err := rows.Scan(&name, &ctype, &nullable, &key, &def, &extra); err != nil {
			return sqldb.Table{}, fmt.Errorf("mysql: describe %s: %w", table, err)
		}
		c := sqldb.Column{Name: name, Type: ParseColumnType(ctype), Nullable: nullable == "YES"}
		if def.Valid {
			c.Default = d.constantDefault(def.String, extra)
		}
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return sqldb.Table{}, fmt.Errorf("mysql: describe %s: %w", table, err)
	}
	rows.Close()
	if len(t.Columns) == 0 {
		return sqldb.Table{}, fmt.Errorf("mysql: describe %s: %w", table, sqldb.ErrNoTable)
	}
	pk, err := q.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, table)
	if err != nil {
		return sqldb.Table{}, fmt.Errorf("mysql: describe %s: %w", table, err)
	}
	defer pk.Close()
	for pk.Next() {
		var name string
		if err := pk.Scan(&name); err != nil {
			return sqldb.Table{}, fmt.Errorf("mysql: describe %s: %w", table, err)
		}
		t.PrimaryKey = append(t.PrimaryKey, name)
	}
	if err := pk.Err(); err != nil {
		return sqldb.Table{}, fmt.Errorf("mysql: describe %s: %w", table, err)
	}
	pk.Close()
	// MariaDB's JSON is LONGTEXT with a CHECK (json_valid(col)) named
	// after the column.
	if d.MariaDB {
		if err := markJSON(ctx, q, &t); err != nil {
			return sqldb.Table{}, fmt.Errorf("mysql: describe %s: %w", table, err)
		}
	}
	return t, nil
}

var numericDefault = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

// constantDefault reads information_schema.COLUMNS.COLUMN_DEFAULT: the text
// of a constant default, nil for NULL or an expression. MariaDB quotes
// string literals and writes NULL and expressions as SQL; MySQL writes
// literals bare and marks expressions DEFAULT_GENERATED in EXTRA.
func (d Dialect) constantDefault(def, extra string) *string {
	if !d.MariaDB {
		if strings.Contains(strings.ToUpper(extra), "DEFAULT_GENERATED") {
			return nil
		}
		return &def
	}
	switch {
	case len(def) >= 2 && def[0] == '\'' && def[len(def)-1] == '\'':
		v := ParseLabels("(" + def + ")")
		if len(v) != 1 {
			return nil
		}
		return &v[0]
	case numericDefault.MatchString(def):
		return &def
	}
	return nil // NULL, or an expression such as current_timestamp()
}

func markJSON(ctx context.Context, q sqldb.Querier, t *sqldb.Table) error {
	rows, err := q.QueryContext(ctx, `SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?`, t.Name)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var clause sql.NullString
		if err := rows.Scan(&name, &clause); err != nil {
			return err
		}
		for i, c := range t.Columns {
			if c.Name == name && c.Type.Kind == sqldb.KindText && isJSONValid(clause.String, name) {
				t.Columns[i].Type = sqldb.Type{Kind: sqldb.KindJSON}
			}
		}
	}
	return rows.Err()
}

func isJSONValid(clause, col string) bool {
	c := strings.ToLower(strings.ReplaceAll(clause, " ", ""))
	return c == "json_valid("+strings.ToLower(Dialect{}.Quote(col))+")"
}

var columnTypeRE = regexp.MustCompile(`^([a-z]+)(?:\((\d+)(?:,(\d+))?\))?((?: [a-z]+)*)$`)

// spatialTypes are MySQL's geometry types.
var spatialTypes = map[string]bool{
	"geometry": true, "point": true, "linestring": true, "polygon": true, "multipoint": true,
	"multilinestring": true, "multipolygon": true, "geometrycollection": true, "geomcollection": true,
}

// ParseColumnType reads information_schema.COLUMNS.COLUMN_TYPE ("bigint(20)
// unsigned", "decimal(38,10)", "varchar(64)", ...) as a portable type: every
// integer keeps its width and sign (TINYINT(1) is an 8-bit integer, not a
// boolean), DATETIME is a timestamp without zone and TIMESTAMP an instant,
// TIME a signed duration, the spatial types bytes holding WKB, ENUM and SET
// strings with their members. A type without a portable counterpart has
// Kind 0 and its name in Native.
func ParseColumnType(ctype string) sqldb.Type {
	lower := strings.ToLower(strings.TrimSpace(ctype))
	if strings.HasPrefix(lower, "enum(") || strings.HasPrefix(lower, "set(") {
		labels := ParseLabels(ctype)
		t := sqldb.Type{Kind: sqldb.KindString, Values: labels, Set: strings.HasPrefix(lower, "set("), Native: lower}
		for _, l := range labels {
			n := utf8.RuneCountInString(l)
			if t.Set {
				t.Length += n + 1
			} else {
				t.Length = max(t.Length, n)
			}
		}
		t.Length = max(t.Length, 1)
		return t
	}
	unknown := sqldb.Type{Native: lower}
	if lower == "" {
		unknown.Native = "(no type)"
	}
	m := columnTypeRE.FindStringSubmatch(lower)
	if m == nil {
		return unknown
	}
	n1, _ := strconv.Atoi(m[2])
	n2, _ := strconv.Atoi(m[3])
	unsigned := strings.Contains(m[4], "unsigned")
	intType := func(bits int) sqldb.Type {
		return sqldb.Type{Kind: sqldb.KindInt, Bits: bits, Unsigned: unsigned}
	}
	if spatialTypes[m[1]] {
		return sqldb.Type{Kind: sqldb.KindBytes, Spatial: true}
	}
	switch m[1] {
	case "varchar", "char":
		return sqldb.Type{Kind: sqldb.KindString, Length: n1}
	case "tinytext":
		return sqldb.Type{Kind: sqldb.KindString, Length: 255}
	case "text", "mediumtext":
		return sqldb.Type{Kind: sqldb.KindString}
	case "longtext":
		return sqldb.Type{Kind: sqldb.KindText}
	case "tinyint":
		return intType(8)
	case "bool", "boolean":
		return sqldb.Type{Kind: sqldb.KindBool}
	case "smallint":
		return intType(16)
	case "mediumint":
		return intType(24)
	case "int", "integer":
		return intType(32)
	case "bigint":
		return intType(64)
	case "bit":
		if n1 <= 1 {
			return sqldb.Type{Kind: sqldb.KindBool}
		}
		return sqldb.Type{Kind: sqldb.KindInt, Bits: 64, Unsigned: true}
	case "double", "float", "real":
		return sqldb.Type{Kind: sqldb.KindFloat}
	case "decimal", "numeric":
		if m[2] == "" {
			n1 = 10
		}
		return sqldb.Type{Kind: sqldb.KindDecimal, Precision: n1, Scale: n2}
	case "datetime":
		return sqldb.Type{Kind: sqldb.KindTimestamp, Local: true}
	case "timestamp":
		return sqldb.Type{Kind: sqldb.KindTimestamp}
	case "date":
		return sqldb.Type{Kind: sqldb.KindDate}
	case "time":
		return sqldb.Type{Kind: sqldb.KindTime, Duration: true}
	case "varbinary", "binary":
		return sqldb.Type{Kind: sqldb.KindBytes, Length: n1}
	case "tinyblob":
		return sqldb.Type{Kind: sqldb.KindBytes, Length: 255}
	case "blob", "mediumblob", "longblob":
		return sqldb.Type{Kind: sqldb.KindBytes}
	case "json":
		return sqldb.Type{Kind: sqldb.KindJSON}
	case "year":
		return sqldb.Type{Kind: sqldb.KindInt, Bits: 16}
	}
	return unknown
}

// ParseLabels reads the members of an ENUM or SET column type, such as
// enum('a','b') (a quote inside a member is doubled).
func ParseLabels(ctype string) []string {
	i := strings.IndexByte(ctype, '(')
	if i < 0 {
		return nil
	}
	s := ctype[i+1:]
	var out []string
	for {
		j := strings.IndexByte(s, '\'')
		if j < 0 {
			return out
		}
		s = s[j+1:]
		var b strings.Builder
		for len(s) > 0 {
			if s[0] == '\'' {
				if len(s) > 1 && s[1] == '\'' {
					b.WriteByte('\'')
					s = s[2:]
					continue
				}
				s = s[1:]
				break
			}
			if s[0] == '\\' && len(s) > 1 {
				b.WriteByte(s[1])
				s = s[2:]
				continue
			}
			b.WriteByte(s[0])
			s = s[1:]
		}
		out = append(out, b.String())
	}
}

var _ sqldb.NewerUpserter = Dialect{}
