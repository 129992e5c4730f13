package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/flatjson"
	"github.com/intercloud/intercloud/sqldb"
)

// RowReader reads raw objects straight into the rows of the records table
// (Table), converted for one dialect: what ReadStored followed by Row
// gives, without a Record, a map or encoding/json per record. It takes
// the shape the API writes (flat lines, keys without escapes, valid
// UTF-8, every member of the type its field has) in one pass over the
// object, and hands any other object to ReadStored and Row, which give the
// same rows or the precise error (FuzzRowReader checks this). It is safe
// for concurrent use.
type RowReader struct {
	schema config.Schema
	table  sqldb.Table
	d      sqldb.Dialect
	// types are the table's column types: slotID, the fields in schema
	// order, then origin, trace id and ingest time.
	types []sqldb.Type
}

// The members of a stored line the fast path knows, by slot: the system
// members, then the schema's fields from slotFields on.
const (
	slotID = iota
	slotOrigin
	slotTrace
	slotIngested
	slotFields
)

// NewRowReader returns a RowReader of schema s's records for dialect d.
func NewRowReader(s config.Schema, d sqldb.Dialect) *RowReader {
	t := Table(s)
	r := &RowReader{schema: s, table: t, d: d, types: make([]sqldb.Type, len(t.Columns))}
	for i, c := range t.Columns {
		r.types[i] = c.Type
	}
	return r
}

// Rows are the records of one raw object as bind values.
type Rows struct {
	// Values holds the rows one after the other, Cols values each, in the
	// table's column order, converted by the dialect's Value.
	Values []any
	// Cols is the number of columns of a row.
	Cols int
	// IDs and TraceIDs are each row's record id and trace id.
	IDs, TraceIDs []string
}

// Len returns the number of rows.
func (rs *Rows) Len() int { return len(rs.IDs) }

// Row returns the values of row i.
func (rs *Rows) Row(i int) []any { return rs.Values[i*rs.Cols : (i+1)*rs.Cols : (i+1)*rs.Cols] }

// Read returns the rows of a raw object's records in the order of their
// lines. A malformed object fails as ReadStored fails; a value the
// dialect refuses fails as Row fails.
func (r *RowReader) Read(data []byte) (Rows, error) {
	if rs, ok := r.fast(data); ok {
		return rs, nil
	}
	rs := Rows{Cols: len(r.table.Columns)}
	err := ReadStored(r.schema, data, func(_ int, rec Record) error {
		row, err := Row(r.table, r.d, rec)
		if err != nil {
			return err
		}
		rs.Values = append(rs.Values, row...)
		rs.IDs = append(rs.IDs, rec.ID)
		rs.TraceIDs = append(rs.TraceIDs, rec.TraceID)
		return nil
	})
	if err != nil {
		return Rows{}, err
	}
	return rs, nil
}

// converted remembers the last text of a system column and its bind value:
// the records of one request share their origin, trace id and ingest time.
type converted struct {
	text string
	v    any
	ok   bool
}

// fast reads the object's common shape; ok is false (and the rows are to
// be ignored) for anything else, including every fault.
func (r *RowReader) fast(data []byte) (rs Rows, ok bool) {
	if !utf8.Valid(data) {
		return rs, false
	}
	// One string of the object: the members' texts are its substrings.
	str := string(data)
	nf := len(r.schema.Fields)
	cols := len(r.table.Columns)
	lines := bytes.Count(data, []byte{'\n'}) + 1
	rs = Rows{Cols: cols, Values: make([]any, 0, lines*cols), IDs: make([]string, 0, lines), TraceIDs: make([]string, 0, lines)}
	raw := make([][]byte, slotFields+nf)
	var shared [slotFields]string // a shared line's origin, trace id, ingest time
	hasShared := false
	var memo [slotFields]converted
	// text returns a string member's text.
	text := func(b []byte) (string, bool) {
		if len(b) < 2 || b[0] != '"' {
			return "", false
		}
		for _, c := range b[1 : len(b)-1] {
			if c == '\\' {
				var s string
				err := json.Unmarshal(b, &s)
				return s, err == nil
			}
		}
		at := cap(data) - cap(b)
		return str[at+1 : at+len(b)-1], true
	}
	// number returns a number member's text.
	number := func(b []byte) (string, bool) {
		if b[0] != '-' && (b[0] < '0' || b[0] > '9') {
			return "", false
		}
		at := cap(data) - cap(b)
		return str[at : at+len(b)], true
	}
	failed := false
	eachLine(data, func(_ int, line []byte) error {
		clear(raw)
		other := false
		if !flatjson.Object(line, func(key, v []byte) bool {
			slot := r.slot(key)
			switch {
			case slot < 0:
				other = true
				return true
			case raw[slot] != nil:
				return false // a key twice
			case slot >= slotFields:
				other = true
			}
			raw[slot] = v
			return true
		}) {
			failed = true
			return errDecline
		}
		if raw[slotID] == nil {
			// A shared line: the three system members and nothing else.
			if other {
				failed = true
				return errDecline
			}
			for k := slotOrigin; k < slotFields; k++ {
				s, ok := "", raw[k] != nil
				if ok {
					s, ok = text(raw[k])
				}
				if !ok {
					failed = true
					return errDecline
				}
				shared[k] = s
			}
			hasShared = true
			return nil
		}
		id, ok := text(raw[slotID])
		if !ok || id == "" {
			failed = true
			return errDecline
		}
		var sys [slotFields]string
		for k := slotOrigin; k < slotFields; k++ {
			switch {
			case raw[k] != nil:
				if sys[k], ok = text(raw[k]); !ok {
					failed = true
					return errDecline
				}
			case hasShared:
				sys[k] = shared[k]
			default:
				failed = true
				return errDecline
			}
		}
		row := rs.Values[len(rs.Values) : len(rs.Values)+cols]
		var err error
		if row[0], err = r.d.Value(r.types[0], id); err != nil {
			failed = true
			return errDecline
		}
		for k, f := range r.schema.Fields {
			v, ok := r.field(f, raw[slotFields+k], text, number)
			if !ok {
				failed = true
				return errDecline
			}
			if row[1+k], err = r.d.Value(r.types[1+k], v); err != nil {
				failed = true
				return errDecline
			}
		}
		for k := slotOrigin; k < slotFields; k++ {
			m := &memo[k]
			if !m.ok || m.text != sys[k] {
				var v any = sys[k]
				if k == slotIngested {
					t, err := time.Parse(time.RFC3339Nano, sys[k])
					if err != nil {
						failed = true
						return errDecline
					}
					v = t
				}
				c := cols - slotFields + k
				cv, err := r.d.Value(r.types[c], v)
				if err != nil {
					failed = true
					return errDecline
				}
				*m = converted{text: sys[k], v: cv, ok: true}
			}
			row[cols-slotFields+k] = m.v
		}
		rs.Values = rs.Values[:len(rs.Values)+cols]
		rs.IDs = append(rs.IDs, id)
		rs.TraceIDs = append(rs.TraceIDs, sys[slotTrace])
		return nil
	})
	return rs, !failed
}

// errDecline stops the fast path's walk over the lines.
var errDecline = fmt.Errorf("record: not the common shape")

// slot returns the slot of a member's key, or -1 for a key the schema
// does not have (ReadStored ignores those in a record line).
func (r *RowReader) slot(key []byte) int {
	switch string(key) {
	case ColID:
		return slotID
	case ColOrigin:
		return slotOrigin
	case ColTraceID:
		return slotTrace
	case ColIngestedAt:
		return slotIngested
	}
	for i := range r.schema.Fields {
		if r.schema.Fields[i].Name == string(key) {
			return slotFields + i
		}
	}
	return -1
}

// field returns the typed value of field f's raw member (nil: absent or
// null), as decodeField gives it; ok is false for a value the fast path
// leaves to ReadStored (a fault, or a missing required field).
func (r *RowReader) field(f config.Field, raw []byte, text, number func([]byte) (string, bool)) (any, bool) {
	if raw == nil || string(raw) == "null" {
		return nil, !f.Required
	}
	switch f.Type {
	case config.TypeNumber:
		s, ok := number(raw)
		if !ok {
			return nil, false
		}
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	case config.TypeInteger:
		s, ok := number(raw)
		if !ok {
			return nil, false
		}
		v, err := strconv.ParseInt(s, 10, 64)
		return v, err == nil
	case config.TypeBoolean:
		switch string(raw) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
		return nil, false
	case config.TypeTimestamp:
		s, ok := text(raw)
		if !ok {
			return nil, false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return t, err == nil
	}
	s, ok := text(raw)
	return s, ok
}
