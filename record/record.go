// Package record is the unit of data intercloud carries: a validated record,
// its stored NDJSON form in raw objects, and its row in the SQL table.
package record

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/sqldb"
)

// System columns every records table has besides the schema's fields.
const (
	ColID         = "id"
	ColOrigin     = "_origin"      // cloud whose API took the record
	ColTraceID    = "_trace_id"    // trace of the ingest request
	ColIngestedAt = "_ingested_at" // when the API acknowledged it
)

// MaxIDLength bounds a client-supplied id.
const MaxIDLength = 64

// Record is one validated record.
type Record struct {
	ID string
	// Fields holds the schema's fields: string, float64, int64, bool, or
	// time.Time (UTC) for timestamps. A missing optional field is absent.
	Fields     map[string]any
	Origin     string
	TraceID    string
	IngestedAt time.Time
}

// Table returns the SQL table the schema's records are stored in.
func Table(s config.Schema) sqldb.Table {
	t := sqldb.Table{Name: s.Table, PrimaryKey: []string{ColID}}
	t.Columns = append(t.Columns, sqldb.Column{Name: ColID, Type: sqldb.Type{Kind: sqldb.KindString, Length: MaxIDLength}})
	for _, f := range s.Fields {
		t.Columns = append(t.Columns, sqldb.Column{Name: f.Name, Type: ColumnType(f), Nullable: !f.Required})
	}
	t.Columns = append(t.Columns,
		sqldb.Column{Name: ColOrigin, Type: sqldb.Type{Kind: sqldb.KindString, Length: 32}},
		sqldb.Column{Name: ColTraceID, Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
		sqldb.Column{Name: ColIngestedAt, Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
	)
	return t
}

// ColumnType maps a schema field type to a portable column type.
func ColumnType(f config.Field) sqldb.Type {
	switch f.Type {
	case config.TypeNumber:
		return sqldb.Type{Kind: sqldb.KindFloat}
	case config.TypeInteger:
		return sqldb.Type{Kind: sqldb.KindInt}
	case config.TypeBoolean:
		return sqldb.Type{Kind: sqldb.KindBool}
	case config.TypeTimestamp:
		return sqldb.Type{Kind: sqldb.KindTimestamp}
	}
	return sqldb.Type{Kind: sqldb.KindString, Length: f.MaxLen()}
}

// value is the record's value of a column: a system field or one of
// Fields.
func (r Record) value(name string) any {
	switch name {
	case ColID:
		return r.ID
	case ColOrigin:
		return r.Origin
	case ColTraceID:
		return r.TraceID
	case ColIngestedAt:
		return r.IngestedAt
	}
	return r.Fields[name]
}

// Row returns the record's values in the table's column order, converted
// for the dialect.
func Row(t sqldb.Table, d sqldb.Dialect, r Record) ([]any, error) {
	row := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		v := r.value(c.Name)
		cv, err := d.Value(c.Type, v)
		if err != nil {
			return nil, fmt.Errorf("record %s: field %s: %w", r.ID, c.Name, err)
		}
		row[i] = cv
	}
	return row, nil
}

// MarshalJSON writes the stored form: the fields, "id", and the system
// fields; timestamps in RFC 3339 with nanoseconds, UTC.
func (r Record) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, 256))
}

// AppendJSON appends the record's stored form (what MarshalJSON returns:
// one JSON object, keys in sorted order, exactly as encoding/json would
// write the map of its fields and system columns) to b.
func (r Record) AppendJSON(b []byte) ([]byte, error) {
	keys := make([]string, 0, len(r.Fields)+4)
	for k := range r.Fields {
		keys = append(keys, k)
	}
	keys = sortedKeys(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		v := r.value(k)
		var err error
		if b, err = AppendValue(b, v); err != nil {
			return nil, fmt.Errorf("record: field %s: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

// StoredKeys returns the member names of the stored form of a schema's
// records in the order AppendJSON writes them: the schema's fields and the
// system columns, sorted. A record leaves out the optional fields it
// lacks.
func StoredKeys(s config.Schema) []string {
	keys := make([]string, 0, len(s.Fields)+4)
	for _, f := range s.Fields {
		keys = append(keys, f.Name)
	}
	return sortedKeys(keys)
}

// sortedKeys adds the system columns to field names (dropping fields that
// shadow them) and sorts them.
func sortedKeys(fields []string) []string {
	keys := slices.DeleteFunc(fields, func(k string) bool {
		return k == ColID || k == ColOrigin || k == ColTraceID || k == ColIngestedAt
	})
	keys = append(keys, ColID, ColOrigin, ColTraceID, ColIngestedAt)
	slices.Sort(keys)
	return keys
}

// AppendValue appends one value of a record in the stored form, as
// encoding/json writes it: strings with HTML characters escaped, numbers
// in ES6 form (NaN and ±Inf are an error), timestamps as RFC 3339 strings
// in UTC with nanoseconds, nil as null.
func AppendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendString(b, x), nil
	case time.Time:
		return appendString(b, x.UTC().Format(time.RFC3339Nano)), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("unsupported value %v", x)
		}
		return AppendFloat(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case nil:
		return append(b, "null"...), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, raw...), nil
}

// AppendFloat appends a finite f as the stored form writes numbers (as
// encoding/json does: ES6 number formatting).
func AppendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string as encoding/json does: HTML
// characters, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// ParseStored reads one line of a raw object written by MarshalJSON, typing
// the fields by the schema. Raw objects are our own output, but a damaged
// one must fail clearly rather than load garbage.
func ParseStored(s config.Schema, line []byte) (Record, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return Record{}, fmt.Errorf("record: stored line: %w", err)
	}
	var r Record
	var ingested string
	for _, p := range []struct {
		key string
		dst *string
	}{{ColID, &r.ID}, {ColOrigin, &r.Origin}, {ColTraceID, &r.TraceID}, {ColIngestedAt, &ingested}} {
		raw, ok := m[p.key]
		if !ok {
			return Record{}, fmt.Errorf("record: stored line lacks %q", p.key)
		}
		if err := json.Unmarshal(raw, p.dst); err != nil {
			return Record{}, fmt.Errorf("record: stored %q: %w", p.key, err)
		}
	}
	t, err := time.Parse(time.RFC3339Nano, ingested)
	if err != nil {
		return Record{}, fmt.Errorf("record %s: stored %q: %w", r.ID, ColIngestedAt, err)
	}
	r.IngestedAt = t
	r.Fields = make(map[string]any, len(s.Fields))
	for _, f := range s.Fields {
		raw, ok := m[f.Name]
		if !ok || string(raw) == "null" {
			if f.Required {
				return Record{}, fmt.Errorf("record %s: stored line lacks required %q", r.ID, f.Name)
			}
			continue
		}
		v, err := decodeField(f, raw)
		if err != nil {
			return Record{}, fmt.Errorf("record %s: stored %q: %w", r.ID, f.Name, err)
		}
		r.Fields[f.Name] = v
	}
	return r, nil
}

func decodeField(f config.Field, raw json.RawMessage) (any, error) {
	switch f.Type {
	case config.TypeNumber:
		var v float64
		err := json.Unmarshal(raw, &v)
		return v, err
	case config.TypeInteger:
		var v int64
		err := json.Unmarshal(raw, &v)
		return v, err
	case config.TypeBoolean:
		var v bool
		err := json.Unmarshal(raw, &v)
		return v, err
	case config.TypeTimestamp:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return time.Parse(time.RFC3339Nano, s)
	}
	var v string
	err := json.Unmarshal(raw, &v)
	return v, err
}
