// Package record is the unit of data intercloud carries: a validated record,
// its stored NDJSON form in raw objects, and its row in the SQL table.
package record

import (
	"bytes"
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

// MarshalJSON writes the record's self-contained stored form: the fields,
// "id", and the system fields; timestamps in RFC 3339 with nanoseconds,
// UTC. Raw objects of earlier versions hold one such line per record; the
// API now writes a shared line per request and compact record lines (see
// AppendShared, AppendCompact and ReadStored).
func (r Record) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, 256))
}

// AppendJSON appends the record's self-contained stored form (what
// MarshalJSON returns: one JSON object, keys in sorted order, exactly as
// encoding/json would write the map of its fields and system columns) to
// b.
func (r Record) AppendJSON(b []byte) ([]byte, error) {
	return r.appendObject(b, sortedKeys(r.fieldNames(), ColID, ColOrigin, ColTraceID, ColIngestedAt))
}

// AppendCompact appends the record's line in a raw object after a shared
// line (AppendShared) that holds its origin, trace id and ingest time: one
// JSON object of its fields and "id", keys in sorted order, values written
// as AppendJSON writes them.
func (r Record) AppendCompact(b []byte) ([]byte, error) {
	return r.appendObject(b, sortedKeys(r.fieldNames(), ColID))
}

func (r Record) fieldNames() []string {
	keys := make([]string, 0, len(r.Fields)+4)
	for k := range r.Fields {
		keys = append(keys, k)
	}
	return keys
}

// appendObject appends the JSON object of the record's values of keys, in
// that order.
func (r Record) appendObject(b []byte, keys []string) ([]byte, error) {
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = AppendValue(b, r.value(k)); err != nil {
			return nil, fmt.Errorf("record: field %s: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

// Shared is what the records of one ingest request share: the members of
// a raw object's shared line.
type Shared struct {
	Origin     string
	TraceID    string
	IngestedAt time.Time
}

// AppendShared appends the shared line of the compact record lines that
// follow it in a raw object: {"_ingested_at":...,"_origin":...,
// "_trace_id":...}, keys in sorted order, values written as AppendJSON
// writes them.
func AppendShared(b []byte, s Shared) []byte {
	b = append(b, `{"`+ColIngestedAt+`":`...)
	b = appendTime(b, s.IngestedAt)
	b = append(b, `,"`+ColOrigin+`":`...)
	b = appendString(b, s.Origin)
	b = append(b, `,"`+ColTraceID+`":`...)
	b = appendString(b, s.TraceID)
	return append(b, '}')
}

// CompactKeys returns the member names of a schema's compact record lines
// in the order AppendCompact writes them: the schema's fields and "id",
// sorted. A record leaves out the optional fields it lacks.
func CompactKeys(s config.Schema) []string {
	keys := make([]string, 0, len(s.Fields)+1)
	for _, f := range s.Fields {
		keys = append(keys, f.Name)
	}
	return sortedKeys(keys, ColID)
}

// sortedKeys adds system columns to field names (dropping fields that
// shadow a system column) and sorts them.
func sortedKeys(fields []string, system ...string) []string {
	keys := slices.DeleteFunc(fields, isSystem)
	keys = append(keys, system...)
	slices.Sort(keys)
	return keys
}

// appendTime appends a timestamp in the stored form: an RFC 3339 string
// in UTC with nanoseconds.
func appendTime(b []byte, t time.Time) []byte {
	return appendString(b, t.UTC().Format(time.RFC3339Nano))
}

func isSystem(k string) bool {
	return k == ColID || k == ColOrigin || k == ColTraceID || k == ColIngestedAt
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
		return appendTime(b, x), nil
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

// ReadStored reads a raw object, calling fn with each record (its fields
// typed by the schema) and the number of its line (from 1), until fn
// fails. A raw object is NDJSON of two kinds of line: a record line holds
// "id" and the record's fields; a shared line (no "id") holds
// "_ingested_at", "_origin" and "_trace_id" for the record lines after it,
// up to the next shared line. A record line may hold those members itself
// (every line of an object written by an earlier version does, and has no
// shared line); its own win. Raw objects are our own output, but a
// damaged one fails clearly rather than load garbage.
func ReadStored(s config.Schema, data []byte, fn func(line int, r Record) error) error {
	var shared map[string]json.RawMessage
	return eachLine(data, func(line int, b []byte) error {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("record: line %d: %w", line, err)
		}
		if _, ok := m[ColID]; !ok {
			// A shared line, recognised as StoredIDs does: by its origin.
			if _, ok := m[ColOrigin]; !ok {
				return fmt.Errorf("record: line %d has no record id", line)
			}
			for k := range m {
				if !isSystem(k) {
					return fmt.Errorf("record: line %d: a shared line (no %q) holds %q", line, ColID, k)
				}
			}
			shared = m
			return nil
		}
		r, err := parseRecord(s, m, shared)
		if err != nil {
			return fmt.Errorf("record: line %d: %w", line, err)
		}
		return fn(line, r)
	})
}

// parseRecord types one record line's members, taking the system members
// it lacks from the shared line before it (nil: none).
func parseRecord(s config.Schema, m, shared map[string]json.RawMessage) (Record, error) {
	var r Record
	var ingested string
	for _, p := range []struct {
		key string
		dst *string
	}{{ColID, &r.ID}, {ColOrigin, &r.Origin}, {ColTraceID, &r.TraceID}, {ColIngestedAt, &ingested}} {
		raw, ok := m[p.key]
		if !ok {
			if raw, ok = shared[p.key]; !ok {
				return Record{}, fmt.Errorf("record %s lacks %q (neither in its line nor in a shared line before it)", r.ID, p.key)
			}
		}
		if err := json.Unmarshal(raw, p.dst); err != nil {
			return Record{}, fmt.Errorf("record %s: stored %q: %w", r.ID, p.key, err)
		}
		if r.ID == "" {
			return Record{}, fmt.Errorf("record: stored %q is empty or null", ColID)
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
				return Record{}, fmt.Errorf("record %s lacks required %q", r.ID, f.Name)
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

// StoredIDs returns the ids of a raw object's records in order, reading
// only their "id" (and recognising shared lines by their "_origin").
func StoredIDs(data []byte) ([]string, error) {
	var ids []string
	err := eachLine(data, func(line int, b []byte) error {
		var l struct {
			ID     json.RawMessage `json:"id"`
			Origin *string         `json:"_origin"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			return fmt.Errorf("record: line %d: %w", line, err)
		}
		if l.ID == nil && l.Origin != nil { // a shared line
			return nil
		}
		var id string
		if l.ID == nil || json.Unmarshal(l.ID, &id) != nil || id == "" {
			return fmt.Errorf("record: line %d has no record id", line)
		}
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

// eachLine calls fn with every non-blank line of NDJSON (without its
// newline and surrounding space) and its number (from 1), until fn fails.
func eachLine(data []byte, fn func(line int, b []byte) error) error {
	for n := 1; len(data) > 0; n++ {
		b := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			b, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if b = bytes.TrimSpace(b); len(b) > 0 {
			if err := fn(n, b); err != nil {
				return err
			}
		}
	}
	return nil
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
