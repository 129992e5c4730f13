package sqldb

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
)

// The value model: every portable value goes through three conversions,
// one row per Kind in the table conversions below.
//
//   - Normalize reads a value as a driver scanned it or a source decoded
//     it (leniently: "1", 1 and true are all a boolean true) into the
//     portable Go value of its type.
//   - Canonical checks a portable value before it is written (strictly: a
//     value out of range or of the wrong kind is an error) and is what
//     dialects' Value build on.
//   - Text is the canonical text of a value, equal for the same logical
//     value whatever database stored it: what validation checksums and
//     checkpoints store keys as.
//
// Apply (Normalize, then the target's Value) and validation (Text) use
// this one table; tests compare against each database's own text output.

// conversion is one row of the value model.
type conversion struct {
	normalize func(t Type, v any) (any, error)
	check     func(t Type, v any) (any, error)
}

var conversions = map[Kind]conversion{
	KindString:    {normalize: normString, check: checkString},
	KindText:      {normalize: normString, check: checkString},
	KindInt:       {normalize: func(_ Type, v any) (any, error) { return normInt(v) }, check: canonicalInt},
	KindFloat:     {normalize: func(_ Type, v any) (any, error) { return normFloat(v) }, check: func(_ Type, v any) (any, error) { return canonicalFloat(v) }},
	KindDecimal:   {normalize: normDecimal, check: func(_ Type, v any) (any, error) { return canonicalDecimal(v) }},
	KindBool:      {normalize: func(_ Type, v any) (any, error) { return normBool(v) }, check: func(_ Type, v any) (any, error) { return canonicalBool(v) }},
	KindTimestamp: {normalize: func(_ Type, v any) (any, error) { return normTime(v, false) }, check: checkTimestamp},
	KindDate:      {normalize: func(_ Type, v any) (any, error) { return normTime(v, true) }, check: checkDate},
	KindTime:      {normalize: normClock, check: checkClock},
	KindBytes:     {normalize: normBytes, check: checkBytes},
	KindJSON:      {normalize: normJSON, check: checkJSON},
}

func normString(_ Type, v any) (any, error) { return asText(v), nil }

func normDecimal(_ Type, v any) (any, error) {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32), nil
	}
	return asText(v), nil
}

func normClock(t Type, v any) (any, error) {
	if t.Duration {
		if d, ok := v.(time.Duration); ok {
			return FormatDuration(d), nil
		}
	}
	switch x := v.(type) {
	case time.Time:
		return x.Format("15:04:05.999999"), nil
	case time.Duration:
		return formatClock(x), nil
	}
	return asText(v), nil
}

func normBytes(_ Type, v any) (any, error) {
	switch x := v.(type) {
	case []byte:
		if x == nil { // some drivers scan an empty BLOB so
			return []byte{}, nil
		}
		return bytes.Clone(x), nil
	case string:
		return []byte(x), nil
	}
	return nil, fmt.Errorf("sqldb: %T is not bytes", v)
}

func normJSON(_ Type, v any) (any, error) {
	switch x := v.(type) {
	case string, []byte, json.RawMessage:
		return asText(x), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("sqldb: json value: %w", err)
	}
	return string(b), nil
}

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
// result with Dialect.Value (which checks it with Canonical).
func Normalize(t Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if p, ok := v.(*any); ok { // a scan destination
		if p == nil {
			return nil, nil
		}
		return Normalize(t, *p)
	}
	if c, ok := conversions[t.Kind]; ok {
		return c.normalize(t, v)
	}
	return asText(v), nil
}

func asText(v any) string {
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
		s := strings.TrimSpace(asText(x))
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
	return nil, fmt.Errorf("sqldb: %T %v is not an integer", v, v)
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
		f, err := strconv.ParseFloat(strings.TrimSpace(asText(x)), 64)
		if err == nil {
			return f, nil
		}
	}
	return nil, fmt.Errorf("sqldb: %T %v is not a float", v, v)
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
		switch strings.ToLower(strings.TrimSpace(asText(x))) {
		case "1", "t", "true", "y", "yes", "on":
			return true, nil
		case "0", "f", "false", "n", "no", "off":
			return false, nil
		}
	}
	return nil, fmt.Errorf("sqldb: %T %v is not a boolean", v, v)
}

var readLayouts = []string{
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
		s := strings.TrimSpace(asText(x))
		var err error
		ok := false
		for _, layout := range readLayouts {
			if ts, err = time.Parse(layout, s); err == nil {
				ok = true
				break
			}
		}
		if !ok {
			return nil, fmt.Errorf("sqldb: %q is not a timestamp", s)
		}
	case int64: // Unix seconds
		ts = time.Unix(x, 0)
	default:
		return nil, fmt.Errorf("sqldb: %T is not a timestamp", v)
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

// Text returns the canonical text of a value of a column type: the same
// logical value gives the same text whatever the dialect stored it as
// (timestamps as UTC RFC 3339 with microseconds, decimals normalised, floats
// with strconv 'g' -1, bools as 0/1, bytes as hex, JSON re-encoded with
// sorted keys). It is what Validate checksums and how checkpoints store
// keys. nil has no canonical text; callers mark it separately.
func Text(t Type, v any) (string, error) {
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
		if t.Kind == KindDate {
			return x.Format("2006-01-02"), nil
		}
		return x.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), nil
	case []byte:
		return hex.EncodeToString(x), nil
	case string:
		switch t.Kind {
		case KindDecimal:
			return decimalText(x), nil
		case KindTime:
			if t.Duration {
				if c, err := Canonical(t, x); err == nil {
					return c.(string), nil
				}
			}
			return clockText(x), nil
		case KindJSON:
			return jsonText(x), nil
		}
		return x, nil
	}
	return fmt.Sprint(n), nil
}

// canonicalDecimal normalises a decimal's text: no sign on zero, no leading
// zeros in the integer part, no trailing zeros in the fraction.
func decimalText(s string) string {
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
		return decimalText(r.FloatString(40))
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

func clockText(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func jsonText(s string) string {
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
