package replicate

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// Normalize converts a value as a database driver scanned it (or a source
// decoded it) to the portable Go value for its column type:
//
//	KindInt                    int64 (uint64 above math.MaxInt64)
//	KindFloat                  float64
//	KindDecimal                string, as the source wrote it
//	KindBool                   bool
//	KindTimestamp              time.Time in UTC
//	KindDate                   time.Time at midnight UTC
//	KindTime                   string
//	KindBytes                  []byte
//	KindString, KindText       string
//	KindJSON                   string
//
// nil stays nil. Strings and []byte in the usual text forms of each type
// (decimal integers, "true"/"1", RFC 3339 or "YYYY-MM-DD hh:mm:ss" times,
// ...) are parsed, so sources need not convert. Target dialects convert the
// result with Dialect.Value.
func Normalize(t sqldb.Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if p, ok := v.(*any); ok { // a scan destination
		if p == nil {
			return nil, nil
		}
		return Normalize(t, *p)
	}
	switch t.Kind {
	case sqldb.KindInt:
		return normInt(v)
	case sqldb.KindFloat:
		return normFloat(v)
	case sqldb.KindDecimal:
		switch x := v.(type) {
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), nil
		case float32:
			return strconv.FormatFloat(float64(x), 'f', -1, 32), nil
		}
		return text(v), nil
	case sqldb.KindBool:
		return normBool(v)
	case sqldb.KindTimestamp:
		return normTime(v, false)
	case sqldb.KindDate:
		return normTime(v, true)
	case sqldb.KindTime:
		if t.Duration {
			if d, ok := v.(time.Duration); ok {
				return sqldb.FormatDuration(d), nil
			}
		}
		switch x := v.(type) {
		case time.Time:
			return x.Format("15:04:05.999999"), nil
		case time.Duration:
			return formatClock(x), nil
		}
		return text(v), nil
	case sqldb.KindBytes:
		switch x := v.(type) {
		case []byte:
			if x == nil { // some drivers scan an empty BLOB so
				return []byte{}, nil
			}
			return bytes.Clone(x), nil
		case string:
			return []byte(x), nil
		}
		return nil, fmt.Errorf("replicate: %T is not bytes", v)
	case sqldb.KindJSON:
		switch x := v.(type) {
		case string, []byte, json.RawMessage:
			return text(x), nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("replicate: json value: %w", err)
		}
		return string(b), nil
	}
	return text(v), nil
}

func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case json.RawMessage:
		return string(x)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

func normInt(v any) (any, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return x, nil
		}
		return int64(x), nil
	case uint:
		return normInt(uint64(x))
	case uint32:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x), nil
		}
	case float32:
		return normInt(float64(x))
	case string, []byte, json.Number:
		s := strings.TrimSpace(text(x))
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return n, nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return normInt(f)
		}
	}
	return nil, fmt.Errorf("replicate: %T %v is not an integer", v, v)
}

func normFloat(v any) (any, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case string, []byte, json.Number:
		f, err := strconv.ParseFloat(strings.TrimSpace(text(x)), 64)
		if err == nil {
			return f, nil
		}
	}
	return nil, fmt.Errorf("replicate: %T %v is not a float", v, v)
}

// normBool takes 0 and 1 for false and true, never another number: a
// 5 is no boolean.
func normBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64, int, int32, int16, int8, uint8, uint16, uint32, uint64, float64:
		n, err := normInt(x)
		if err == nil && (n == int64(0) || n == int64(1)) {
			return n == int64(1), nil
		}
	case string, []byte, json.Number:
		if b, ok := x.([]byte); ok && len(b) == 1 && b[0] <= 1 { // MySQL BIT(1)
			return b[0] == 1, nil
		}
		switch strings.ToLower(strings.TrimSpace(text(x))) {
		case "1", "t", "true", "y", "yes", "on":
			return true, nil
		case "0", "f", "false", "n", "no", "off":
			return false, nil
		}
	}
	return nil, fmt.Errorf("replicate: %T %v is not a boolean", v, v)
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999 -0700 MST",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

func normTime(v any, date bool) (any, error) {
	var ts time.Time
	switch x := v.(type) {
	case time.Time:
		ts = x
	case string, []byte:
		s := strings.TrimSpace(text(x))
		var err error
		ok := false
		for _, layout := range timeLayouts {
			if ts, err = time.Parse(layout, s); err == nil {
				ok = true
				break
			}
		}
		if !ok {
			return nil, fmt.Errorf("replicate: %q is not a timestamp", s)
		}
	case int64: // Unix seconds
		ts = time.Unix(x, 0)
	default:
		return nil, fmt.Errorf("replicate: %T is not a timestamp", v)
	}
	if date {
		y, m, d := ts.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
	}
	return ts.UTC(), nil
}

func formatClock(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	h := d / time.Hour
	m := (d % time.Hour) / time.Minute
	s := (d % time.Minute) / time.Second
	us := (d % time.Second) / time.Microsecond
	out := fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	if us != 0 {
		out += strings.TrimRight(fmt.Sprintf(".%06d", us), "0")
	}
	if neg {
		out = "-" + out
	}
	return out
}

// Canonical returns the canonical text of a value of a column type: the same
// logical value gives the same text whatever the dialect stored it as
// (timestamps as UTC RFC 3339 with microseconds, decimals normalised, floats
// with strconv 'g' -1, bools as 0/1, bytes as hex, JSON re-encoded with
// sorted keys). It is what Validate checksums and how checkpoints store
// keys. nil has no canonical text; callers mark it separately.
func Canonical(t sqldb.Type, v any) (string, error) {
	n, err := Normalize(t, v)
	if err != nil {
		return "", err
	}
	switch x := n.(type) {
	case nil:
		return "", nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case bool:
		if x {
			return "1", nil
		}
		return "0", nil
	case time.Time:
		if t.Kind == sqldb.KindDate {
			return x.Format("2006-01-02"), nil
		}
		return x.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), nil
	case []byte:
		return hex.EncodeToString(x), nil
	case string:
		switch t.Kind {
		case sqldb.KindDecimal:
			return canonicalDecimal(x), nil
		case sqldb.KindTime:
			if t.Duration {
				if c, err := sqldb.Canonical(t, x); err == nil {
					return c.(string), nil
				}
			}
			return canonicalClock(x), nil
		case sqldb.KindJSON:
			return canonicalJSON(x), nil
		}
		return x, nil
	}
	return fmt.Sprint(n), nil
}

// canonicalDecimal normalises a decimal's text: no sign on zero, no leading
// zeros in the integer part, no trailing zeros in the fraction.
func canonicalDecimal(s string) string {
	s = strings.TrimSpace(s)
	orig := s
	if strings.ContainsAny(s, "eE") {
		_, exp, _ := strings.Cut(strings.ToLower(s), "e")
		if e, err := strconv.Atoi(exp); err != nil || e > 400 || e < -400 {
			return orig // not a decimal a database stores: compare as text
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return s
		}
		return canonicalDecimal(r.FloatString(40))
	}
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart+frac == "" {
		return orig
	}
	for _, c := range intPart + frac {
		if c < '0' || c > '9' {
			return orig // not a plain decimal: compare as text
		}
	}
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	if intPart == "" {
		intPart = "0"
	}
	out := intPart
	if frac != "" {
		out += "." + frac
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out
}

func canonicalClock(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func canonicalJSON(s string) string {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return s
	}
	return string(b)
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
			if n, err = Normalize(c.Type, v); err == nil {
				s = n.(string)
			}
		default:
			s, err = Canonical(c.Type, v)
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
			v, err = Normalize(c.Type, s)
		}
		if err != nil {
			return nil, fmt.Errorf("replicate: %s: key column %s: %w", t.Name, c.Name, err)
		}
		out[i] = v
	}
	return out, nil
}
