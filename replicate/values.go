package replicate

import (
	"encoding/hex"
	"fmt"

	"github.com/intercloud/intercloud/sqldb"
)

// Values go through sqldb's one value model: sqldb.Normalize as scanned or
// decoded, the target dialect's Value before a write, sqldb.Text for what
// validation checksums and checkpoints store keys as.

// comparable is the canonical text validate compares: sqldb.Text, or, for a
// value its column's type cannot hold (SQLite keeps a 5 in a BOOLEAN
// column), a text no value of the type has, so the row is reported as
// differing instead of failing the validation.
func comparable(t sqldb.Type, v any) string {
	s, err := sqldb.Text(t, v)
	if err != nil {
		return fmt.Sprintf("\x00invalid %v: %v", t.Kind, v)
	}
	return s
}

// encodeKey returns a key's texts for checkpoints: canonical, except the
// text-stored kinds, kept exactly.
func encodeKey(t sqldb.Table, key []any) ([]string, error) {
	out := make([]string, len(key))
	for i, v := range key {
		c, _ := t.Column(t.PrimaryKey[i])
		if v == nil {
			return nil, fmt.Errorf("replicate: %s: null in primary key column %s", t.Name, c.Name)
		}
		var s string
		var err error
		switch c.Type.Kind {
		case sqldb.KindDecimal, sqldb.KindTime, sqldb.KindJSON:
			// Exact text: a database comparing these as text must see the
			// stored value, not its canonical form.
			var n any
			if n, err = sqldb.Normalize(c.Type, v); err == nil {
				s = n.(string)
			}
		default:
			s, err = sqldb.Text(c.Type, v)
		}
		if err != nil {
			return nil, fmt.Errorf("replicate: %s: key column %s: %w", t.Name, c.Name, err)
		}
		out[i] = s
	}
	return out, nil
}

// decodeKey parses a key's canonical texts back into normalized values.
func decodeKey(t sqldb.Table, key []string) ([]any, error) {
	if len(key) != len(t.PrimaryKey) {
		return nil, fmt.Errorf("replicate: %s: key has %d values, primary key %d columns", t.Name, len(key), len(t.PrimaryKey))
	}
	out := make([]any, len(key))
	for i, s := range key {
		c, _ := t.Column(t.PrimaryKey[i])
		var v any
		var err error
		switch c.Type.Kind {
		case sqldb.KindBytes:
			v, err = hex.DecodeString(s)
		case sqldb.KindDecimal, sqldb.KindString, sqldb.KindText, sqldb.KindJSON, sqldb.KindTime:
			v = s
		default:
			v, err = sqldb.Normalize(c.Type, s)
		}
		if err != nil {
			return nil, fmt.Errorf("replicate: %s: key column %s: %w", t.Name, c.Name, err)
		}
		out[i] = v
	}
	return out, nil
}
