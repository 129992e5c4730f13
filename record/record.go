// Package record is the unit of data intercloud carries: a validated record,
// its stored NDJSON form in raw objects, and its row in the SQL table.
package record

import (
	"encoding/json"
	"fmt"
	"time"

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

// Row returns the record's values in the table's column order, converted
// for the dialect.
func Row(t sqldb.Table, d sqldb.Dialect, r Record) ([]any, error) {
	row := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		var v any
		switch c.Name {
		case ColID:
			v = r.ID
		case ColOrigin:
			v = r.Origin
		case ColTraceID:
			v = r.TraceID
		case ColIngestedAt:
			v = r.IngestedAt
		default:
			v = r.Fields[c.Name]
		}
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
	m := make(map[string]any, len(r.Fields)+4)
	for k, v := range r.Fields {
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(time.RFC3339Nano)
		}
		m[k] = v
	}
	m[ColID] = r.ID
	m[ColOrigin] = r.Origin
	m[ColTraceID] = r.TraceID
	m[ColIngestedAt] = r.IngestedAt.UTC().Format(time.RFC3339Nano)
	return json.Marshal(m)
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
