package mysqlsrc

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/shopspring/decimal"
	"golang.org/x/text/encoding/charmap"

	"github.com/intercloud/intercloud/sqldb/mysql"
)

// colInfo is one column as information_schema describes it.
type colInfo struct {
	name     string
	dataType string // DATA_TYPE, lower case: "int", "enum", "varbinary", ...
	unsigned bool
	labels   []string // ENUM and SET members
	octets   int      // CHARACTER_OCTET_LENGTH (BINARY(n) pads to it)
	scale    int      // NUMERIC_SCALE
	charset  string   // CHARACTER_SET_NAME of character columns
}

// tableInfo is a table's columns and primary key as of when it was read.
type tableInfo struct {
	cols   []colInfo
	byName map[string]int
	pk     []string
}

// tableInfo returns the cached schema of a table, reading it when missing.
func (s *Source) tableInfo(ctx context.Context, table string) (*tableInfo, error) {
	s.mu.Lock()
	ti := s.cache[table]
	s.mu.Unlock()
	if ti != nil {
		return ti, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(CHARACTER_OCTET_LENGTH, 0), COALESCE(NUMERIC_SCALE, 0),
COALESCE(CHARACTER_SET_NAME, '')
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, s.schema, table)
	if err != nil {
		return nil, fmt.Errorf("mysqlsrc: describe %s: %w", table, err)
	}
	defer rows.Close()
	ti = &tableInfo{byName: map[string]int{}}
	for rows.Next() {
		var c colInfo
		var ctype string
		if err := rows.Scan(&c.name, &c.dataType, &ctype, &c.octets, &c.scale, &c.charset); err != nil {
			return nil, fmt.Errorf("mysqlsrc: describe %s: %w", table, err)
		}
		c.dataType = strings.ToLower(c.dataType)
		c.unsigned = strings.Contains(strings.ToLower(ctype), "unsigned")
		if c.dataType == "enum" || c.dataType == "set" {
			c.labels = mysql.ParseLabels(ctype)
		}
		ti.byName[c.name] = len(ti.cols)
		ti.cols = append(ti.cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysqlsrc: describe %s: %w", table, err)
	}
	rows.Close()
	if len(ti.cols) == 0 {
		return nil, fmt.Errorf("mysqlsrc: table %s.%s does not exist", s.schema, table)
	}
	def, err := s.db.Dialect.Describe(ctx, s.db, table)
	if err != nil {
		return nil, fmt.Errorf("mysqlsrc: describe %s: %w", table, err)
	}
	ti.pk = def.PrimaryKey
	s.mu.Lock()
	s.cache[table] = ti
	s.mu.Unlock()
	return ti, nil
}

// forget drops cached schemas: of the named tables, or all when none.
func (s *Source) forget(tables ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(tables) == 0 {
		clear(s.cache)
		return
	}
	for _, t := range tables {
		delete(s.cache, t)
	}
}

// rename moves a table's cached schema to its new name (RENAME TABLE
// keeps the columns), so rows logged before the rename still decode
// after the server renamed it.
func (s *Source) rename(from, to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ti, ok := s.cache[from]
	delete(s.cache, from)
	delete(s.cache, to)
	if ok {
		s.cache[to] = ti
	}
}

// column converts one binlog value of a column.
type column struct {
	name string
	conv func(any) (any, error)
}

// decoder turns a table's row images into named, normalizable values.
type decoder struct {
	table string
	cols  []column
	pk    []int // indexes of the primary-key columns in cols
}

// decoderFor builds the decoder of a table map event.
func (s *Source) decoderFor(ctx context.Context, tme *replication.TableMapEvent) (*decoder, error) {
	table := string(tme.Table)
	ti, err := s.tableInfo(ctx, table)
	if err != nil {
		return nil, err
	}
	names := tme.ColumnNameString()
	if len(names) == 0 {
		if len(ti.cols) != int(tme.ColumnCount) {
			s.forget(table)
			if ti, err = s.tableInfo(ctx, table); err != nil {
				return nil, err
			}
		}
		if len(ti.cols) != int(tme.ColumnCount) {
			return nil, fmt.Errorf("mysqlsrc: %s: the binlog has %d columns, the table now %d; set binlog_row_metadata=FULL to decode rows written before a schema change",
				table, tme.ColumnCount, len(ti.cols))
		}
		names = make([]string, len(ti.cols))
		for i, c := range ti.cols {
			names[i] = c.name
		}
	}
	// Signedness comes from information_schema only: the binlog's
	// SIGNEDNESS metadata is read by position among the columns the
	// library counts as numeric, and MariaDB also gives YEAR a bit, so
	// every unsigned integer after a YEAR column would take its neighbour's
	// sign (65535 in a SMALLINT UNSIGNED read as -1). A column
	// information_schema no longer has is passed through as logged.
	enums, sets := tme.EnumStrValueMap(), tme.SetStrValueMap()
	d := &decoder{table: table, cols: make([]column, len(names))}
	for i, name := range names {
		var ci colInfo
		if j, ok := ti.byName[name]; ok {
			ci = ti.cols[j]
		}
		if l, ok := enums[i]; ok {
			ci.dataType, ci.labels = "enum", l
		}
		if l, ok := sets[i]; ok {
			ci.dataType, ci.labels = "set", l
		}
		if i < len(tme.ColumnType) {
			switch tme.ColumnType[i] {
			case gmysql.MYSQL_TYPE_NEWDECIMAL:
				ci.scale = int(tme.ColumnMeta[i] & 0xff)
			}
		}
		d.cols[i] = column{name: name, conv: converter(ci)}
	}
	for _, k := range ti.pk {
		found := false
		for i, n := range names {
			if n == k {
				d.pk = append(d.pk, i)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("mysqlsrc: %s: primary key column %s is not in the binlog row", table, k)
		}
	}
	if len(d.pk) == 0 {
		return nil, fmt.Errorf("mysqlsrc: %s: no primary key", table)
	}
	return d, nil
}

// row converts a binlog row image to a column map and its key.
func (d *decoder) row(vals []any) (map[string]any, []any, error) {
	if len(vals) != len(d.cols) {
		return nil, nil, fmt.Errorf("mysqlsrc: %s: row has %d values, table map %d columns", d.table, len(vals), len(d.cols))
	}
	row := make(map[string]any, len(vals))
	for i, v := range vals {
		if v == nil {
			row[d.cols[i].name] = nil
			continue
		}
		x, err := d.cols[i].conv(v)
		if err != nil {
			return nil, nil, fmt.Errorf("mysqlsrc: %s.%s: %w", d.table, d.cols[i].name, err)
		}
		row[d.cols[i].name] = x
	}
	key := make([]any, len(d.pk))
	for i, j := range d.pk {
		key[i] = row[d.cols[j].name]
	}
	return row, key, nil
}

// converter returns how values of a column become what sqldb.Normalize
// takes for its portable type.
func converter(c colInfo) func(any) (any, error) {
	switch c.dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		if c.unsigned {
			bits := map[string]uint{"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64}[c.dataType]
			return func(v any) (any, error) { return unsignedValue(v, bits) }
		}
	case "bit":
		return func(v any) (any, error) { return unsignedValue(v, 64) }
	case "float":
		return func(v any) (any, error) {
			if f, ok := v.(float32); ok {
				return float64(f), nil // exact, as the server's binary protocol gives it
			}
			return v, nil
		}
	case "decimal", "numeric":
		scale := int32(c.scale)
		return func(v any) (any, error) {
			switch x := v.(type) {
			case decimal.Decimal:
				return x.StringFixed(scale), nil
			case float64:
				return nil, fmt.Errorf("decimal arrived as a float")
			}
			return v, nil
		}
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection":
		return func(v any) (any, error) { return mysql.ReadGeometry(toBytes(v)) }
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		return textConverter(c.charset)
	case "binary":
		n := c.octets
		return func(v any) (any, error) {
			b := toBytes(v)
			if len(b) < n { // the binlog drops BINARY's trailing zero bytes
				b = append(b, make([]byte, n-len(b))...)
			}
			return b, nil
		}
	case "enum":
		labels := c.labels
		return func(v any) (any, error) {
			i, ok := v.(int64)
			if !ok {
				return v, nil
			}
			if i == 0 {
				return "", nil // the error value of an invalid ENUM
			}
			if i < 0 || int(i) > len(labels) {
				return nil, fmt.Errorf("enum index %d out of %d members", i, len(labels))
			}
			return labels[i-1], nil
		}
	case "set":
		labels := c.labels
		return func(v any) (any, error) {
			m, ok := v.(int64)
			if !ok {
				return v, nil
			}
			var out []string
			for i, l := range labels {
				if uint64(m)&(1<<uint(i)) != 0 {
					out = append(out, l)
				}
			}
			return strings.Join(out, ","), nil
		}
	}
	return plain
}

// textConverter decodes character columns: the binlog carries their bytes
// in the column's character set, which the target must get as UTF-8.
func textConverter(charset string) func(any) (any, error) {
	switch strings.ToLower(charset) {
	case "", "utf8", "utf8mb3", "utf8mb4", "ascii", "binary":
		return plain
	case "latin1": // MySQL's latin1 is Windows-1252
		dec := charmap.Windows1252.NewDecoder()
		return func(v any) (any, error) {
			b, err := dec.Bytes(toBytes(v))
			if err != nil {
				return nil, fmt.Errorf("latin1 text: %w", err)
			}
			return string(b), nil
		}
	}
	return func(any) (any, error) {
		return nil, fmt.Errorf("character set %s is not supported (only utf8mb4, utf8mb3, latin1 and ascii)", charset)
	}
}

// plain copies byte slices (they point into the event buffer) and passes
// other values as they are.
func plain(v any) (any, error) {
	if b, ok := v.([]byte); ok {
		return bytes.Clone(b), nil
	}
	return v, nil
}

func toBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return bytes.Clone(x)
	case string:
		return []byte(x)
	}
	return []byte(fmt.Sprint(v))
}

// unsignedValue reinterprets a signed binlog integer of the given width as
// unsigned: int64 when it fits, uint64 above math.MaxInt64.
func unsignedValue(v any, bits uint) (any, error) {
	var u uint64
	switch x := v.(type) {
	case int8:
		u = uint64(uint8(x))
	case int16:
		u = uint64(uint16(x))
	case int32:
		u = uint64(uint32(x))
		if bits == 24 {
			u &= 1<<24 - 1
		}
	case int64:
		u = uint64(x)
		if bits < 64 {
			u &= 1<<bits - 1
		}
	case int:
		u = uint64(x)
	case uint64:
		u = x
	default:
		return nil, fmt.Errorf("%T is not an integer", v)
	}
	if u > math.MaxInt64 {
		return u, nil
	}
	return int64(u), nil
}
