package sqldb

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Canonical converts a Go value to the portable value of its column type,
// checking it, so that drivers only map portable values to what they bind:
//
//	KindString, KindText  string (from string, []byte)
//	KindInt               int64, or uint64 above math.MaxInt64; checked
//	                      against Bits and Unsigned (from any Go integer,
//	                      an integral float64, a decimal string, json.Number)
//	KindFloat             float64 (from floats, integers, strings)
//	KindDecimal           a decimal string such as "-12.50" (from strings,
//	                      integers, floats, json.Number, fmt.Stringer);
//	                      never a float on the way to the database
//	KindBool              bool (from bool, 0/1, "true"/"false"/"1"/"0")
//	KindTimestamp         time.Time in UTC truncated to microseconds (from
//	                      time.Time, RFC 3339 strings, "YYYY-MM-DD hh:mm:ss[.f]"
//	                      strings read as UTC)
//	KindDate              time.Time at midnight UTC of the value's own
//	                      calendar date (from time.Time, "YYYY-MM-DD")
//	KindTime              "hh:mm:ss[.ffffff]", a time of day below 24h
//	                      (from such strings, time.Duration, time.Time)
//	KindBytes             []byte (from []byte, string)
//	KindJSON              string holding valid JSON (from string, []byte,
//	                      json.RawMessage; anything else is marshalled)
//
// nil stays nil. A value of the wrong kind or out of range is an error
// that names the value's type, never a silent conversion.
func Canonical(t Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if c, ok := conversions[t.Kind]; ok {
		return c.check(t, v)
	}
	return nil, fmt.Errorf("sqldb: unknown column kind %v", t.Kind)
}

func checkString(t Type, v any) (any, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		return nil, fmt.Errorf("sqldb: %T is not text", v)
	}
	if len(t.Values) > 0 {
		if err := checkMembers(t, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func checkTimestamp(_ Type, v any) (any, error) {
	ts, err := canonicalTime(v)
	if err != nil {
		return nil, err
	}
	return ts.UTC().Truncate(time.Microsecond), nil
}

func checkDate(_ Type, v any) (any, error) {
	ts, err := canonicalTime(v)
	if err != nil {
		return nil, err
	}
	y, m, d := ts.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
}

func checkClock(t Type, v any) (any, error) {
	if t.Duration {
		return canonicalDuration(v)
	}
	return canonicalClock(v)
}

func checkBytes(_ Type, v any) (any, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	}
	return nil, fmt.Errorf("sqldb: %T is not bytes", v)
}

func checkJSON(_ Type, v any) (any, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.RawMessage:
		s = string(x)
	case []byte:
		s = string(x)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("sqldb: json value: %w", err)
		}
		return string(b), nil
	}
	if !json.Valid([]byte(s)) {
		return nil, fmt.Errorf("sqldb: invalid JSON document")
	}
	return s, nil
}

func canonicalInt(t Type, v any) (any, error) {
	var (
		n   int64
		u   uint64
		big bool // u holds the value, above math.MaxInt64
	)
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case int16:
		n = int64(x)
	case int8:
		n = int64(x)
	case uint64:
		if x > math.MaxInt64 {
			u, big = x, true
		} else {
			n = int64(x)
		}
	case uint:
		return canonicalInt(t, uint64(x))
	case uint32:
		n = int64(x)
	case uint16:
		n = int64(x)
	case uint8:
		n = int64(x)
	case bool: // a boolean into an integer column (MySQL's TINYINT(1))
		if x {
			n = 1
		}
	case float64:
		if x != math.Trunc(x) || math.IsInf(x, 0) || x < -(1<<63) || x >= 1<<64 {
			return nil, fmt.Errorf("sqldb: %v is not an integer", x)
		}
		if x >= 1<<63 {
			u, big = uint64(x), true
		} else {
			n = int64(x)
		}
	case string, json.Number:
		s := strings.TrimSpace(fmt.Sprint(x))
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			n = i
		} else if p, err := strconv.ParseUint(s, 10, 64); err == nil {
			u, big = p, true
		} else {
			return nil, fmt.Errorf("sqldb: %q is not a 64-bit integer", s)
		}
	default:
		return nil, fmt.Errorf("sqldb: %T is not an integer", v)
	}
	bits := t.Bits
	if bits <= 0 || bits > 64 {
		bits = 64
	}
	if big {
		if !t.Unsigned || bits < 64 {
			return nil, fmt.Errorf("sqldb: %d out of range for %s", u, intName(t.Unsigned, bits))
		}
		return u, nil
	}
	var lo, hi int64
	switch {
	case t.Unsigned && bits == 64:
		lo, hi = 0, math.MaxInt64
	case t.Unsigned:
		lo, hi = 0, 1<<bits-1
	default:
		lo, hi = -1<<(bits-1), 1<<(bits-1)-1
	}
	if n < lo || n > hi {
		return nil, fmt.Errorf("sqldb: %d out of range for %s", n, intName(t.Unsigned, bits))
	}
	return n, nil
}

func intName(unsigned bool, bits int) string {
	if unsigned {
		return "uint" + strconv.Itoa(bits)
	}
	return "int" + strconv.Itoa(bits)
}

func canonicalFloat(v any) (any, error) {
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
	case string, json.Number:
		s := strings.TrimSpace(fmt.Sprint(x))
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("sqldb: %q is not a number", s)
		}
		return f, nil
	}
	return nil, fmt.Errorf("sqldb: %T is not a float", v)
}

var decimalRE = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

func canonicalDecimal(v any) (any, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case json.Number:
		s = string(x)
	case []byte:
		s = strings.TrimSpace(string(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("sqldb: %v is not a decimal", x)
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case float32:
		return canonicalDecimal(float64(x))
	case int64, int, int32, int16, int8, uint64, uint, uint32, uint16, uint8:
		return fmt.Sprint(x), nil
	case fmt.Stringer:
		s = x.String()
	default:
		return nil, fmt.Errorf("sqldb: %T is not a decimal", v)
	}
	if !decimalRE.MatchString(s) {
		return nil, fmt.Errorf("sqldb: %q is not a decimal number", s)
	}
	return s, nil
}

func canonicalBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		if x == 0 || x == 1 {
			return x == 1, nil
		}
	case int:
		if x == 0 || x == 1 {
			return x == 1, nil
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "1", "t", "true":
			return true, nil
		case "0", "f", "false":
			return false, nil
		}
	}
	return nil, fmt.Errorf("sqldb: %T %v is not a boolean", v, v)
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

func canonicalTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		for _, l := range timeLayouts {
			if ts, err := time.Parse(l, s); err == nil {
				return ts, nil
			}
		}
		return time.Time{}, fmt.Errorf("sqldb: %q is not a timestamp", s)
	}
	return time.Time{}, fmt.Errorf("sqldb: %T is not a timestamp", v)
}

var clockRE = regexp.MustCompile(`^([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.(\d{1,9}))?$`)

// ClockFormat formats a time of day for KindTime (zeros after the decimal
// point trimmed).
const ClockFormat = "15:04:05.999999"

func canonicalClock(v any) (any, error) {
	switch x := v.(type) {
	case time.Time:
		return x.Truncate(time.Microsecond).Format(ClockFormat), nil
	case time.Duration:
		if x < 0 || x >= 24*time.Hour {
			return nil, fmt.Errorf("sqldb: %v is not a time of day", x)
		}
		return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(x.Truncate(time.Microsecond)).Format(ClockFormat), nil
	case []byte:
		return canonicalClock(string(x))
	case string:
		s := strings.TrimSpace(x)
		m := clockRE.FindStringSubmatch(s)
		if m == nil {
			return nil, fmt.Errorf("sqldb: %q is not a time of day (hh:mm:ss[.ffffff])", s)
		}
		frac := m[4]
		if len(frac) > 6 {
			frac = frac[:6]
		}
		frac = strings.TrimRight(frac, "0")
		out := m[1] + ":" + m[2] + ":" + m[3]
		if frac != "" {
			out += "." + frac
		}
		return out, nil
	}
	return nil, fmt.Errorf("sqldb: %T is not a time of day", v)
}

// checkMembers checks an ENUM value (one member, or the empty string
// MySQL stores for an invalid one) or a SET value (members joined by
// commas).
func checkMembers(t Type, s string) error {
	if s == "" {
		return nil
	}
	parts := []string{s}
	if t.Set {
		parts = strings.Split(s, ",")
	}
	for _, p := range parts {
		if !slices.Contains(t.Values, p) {
			return fmt.Errorf("sqldb: %q is not a member of %s", p, strings.Join(t.Values, ","))
		}
	}
	return nil
}

var durationRE = regexp.MustCompile(`^(-)?(\d{1,9}):([0-5]\d):([0-5]\d)(?:\.(\d{1,9}))?$`)

// canonicalDuration is the text of a signed duration: [-]hh:mm:ss[.ffffff]
// with at least two digits of hours and trailing fraction zeros trimmed.
func canonicalDuration(v any) (any, error) {
	switch x := v.(type) {
	case time.Duration:
		return FormatDuration(x), nil
	case time.Time:
		return x.Truncate(time.Microsecond).Format(ClockFormat), nil
	case []byte:
		return canonicalDuration(string(x))
	case string:
		s := strings.TrimSpace(x)
		m := durationRE.FindStringSubmatch(s)
		if m == nil {
			return nil, fmt.Errorf("sqldb: %q is not a duration ([-]hh:mm:ss[.ffffff])", s)
		}
		h, _ := strconv.Atoi(m[2])
		frac := m[5]
		if len(frac) > 6 {
			frac = frac[:6]
		}
		frac = strings.TrimRight(frac, "0")
		out := fmt.Sprintf("%02d:%s:%s", h, m[3], m[4])
		if frac != "" {
			out += "." + frac
		}
		if m[1] == "-" && strings.Trim(out, "0:.") != "" {
			out = "-" + out
		}
		return out, nil
	}
	return nil, fmt.Errorf("sqldb: %T is not a duration", v)
}

// FormatDuration formats a signed duration as [-]hh:mm:ss[.ffffff].
func FormatDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	d = d.Truncate(time.Microsecond)
	out := fmt.Sprintf("%02d:%02d:%02d", d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second)
	if us := d % time.Second / time.Microsecond; us != 0 {
		out += strings.TrimRight(fmt.Sprintf(".%06d", us), "0")
	}
	if neg && d != 0 {
		out = "-" + out
	}
	return out
}
