package sqldb

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The value model: every portable value goes through three conversions,
// all built on one conversion function per Kind (the table conversions).
//
//   - Normalize reads a value as a driver scanned it or a source decoded
//     it (leniently: "1", 1 and true are all a boolean true) into the
//     portable Go value of its type: the conversion, not strict.
//   - Canonical checks a portable value before it is written (strictly: a
//     value out of range or of the wrong kind is an error) and is what
//     dialects' Value build on: the same conversion, strict.
//   - Text is the canonical text of a value, equal for the same logical
//     value whatever database stored it: what validation checksums and
//     checkpoints store keys as.
//
// Apply (Normalize, then the target's Value) and validation (Text) use
// this one table; tests compare against each database's own text output.

// convert is the conversion of one Kind: v (never nil) becomes the
// portable Go value of t. Lenient (strict false) takes every form a
// driver or source hands over and checks no bounds; strict also rejects
// values the type cannot hold (out of range, not a member, invalid JSON or
// decimal text, a time of day past 24h).
type convert func(t Type, v any, strict bool) (any, error)

var conversions = map[Kind]convert{
	KindString:    convString,
	KindText:      convString,
	KindInt:       convInt,
	KindFloat:     convFloat,
	KindDecimal:   convDecimal,
	KindBool:      convBool,
	KindTimestamp: convTimestamp,
	KindDate:      convDate,
	KindTime:      convClock,
	KindBytes:     convBytes,
	KindJSON:      convJSON,
}

// Normalize converts a value as a database driver scanned it (or a source
// decoded it) to the portable Go value for its column type:
//
//	KindInt                    int64 (uint64 above math.MaxInt64)
//	KindFloat                  float64
//	KindDecimal                string, as the source wrote it
//	KindBool                   bool
//	KindTimestamp              time.Time in UTC, microseconds
//	KindDate                   time.Time at midnight UTC
//	KindTime                   string
//	KindBytes                  []byte (a geometry's text is hex (E)WKB)
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
	if normalized(t.Kind, v) {
		return v, nil
	}
	if c, ok := conversions[t.Kind]; ok {
		return c(t, v, false)
	}
	return asText(v), nil
}

// normalized reports whether v is already what Normalize makes of it for
// kind k, the common case of a value a driver scanned (text, a 64-bit
// integer or float): it is then returned as it came, without converting
// and boxing it again.
func normalized(k Kind, v any) bool {
	switch v.(type) {
	case string:
		return k == KindString || k == KindText
	case int64:
		return k == KindInt
	case float64:
		return k == KindFloat
	}
	return false
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

func convString(t Type, v any, strict bool) (any, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		if strict {
			return nil, fmt.Errorf("sqldb: %T is not text", v)
		}
		return asText(v), nil
	}
	if strict && len(t.Values) > 0 {
		if err := checkMembers(t, s); err != nil {
			return nil, err
		}
	}
	return s, nil
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

// convInt reads any Go integer, a bool (MySQL's TINYINT(1)), an integral
// float or an integer's text; strict checks the value against Bits and
// Unsigned.
func convInt(t Type, v any, strict bool) (any, error) {
	n, u, above, err := parseInt(v)
	if err != nil {
		return nil, err
	}
	if !strict {
		if above {
			return u, nil
		}
		return n, nil
	}
	bits := t.Bits
	if bits <= 0 || bits > 64 {
		bits = 64
	}
	if above {
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

// parseInt returns an integer value as n, or as u with above set when it
// is above math.MaxInt64.
func parseInt(v any) (n int64, u uint64, above bool, err error) {
	switch x := v.(type) {
	case int64:
		return x, 0, false, nil
	case int:
		return int64(x), 0, false, nil
	case int32:
		return int64(x), 0, false, nil
	case int16:
		return int64(x), 0, false, nil
	case int8:
		return int64(x), 0, false, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, x, true, nil
		}
		return int64(x), 0, false, nil
	case uint:
		return parseInt(uint64(x))
	case uint32:
		return int64(x), 0, false, nil
	case uint16:
		return int64(x), 0, false, nil
	case uint8:
		return int64(x), 0, false, nil
	case bool:
		if x {
			return 1, 0, false, nil
		}
		return 0, 0, false, nil
	case float32:
		return parseInt(float64(x))
	case float64:
		if x != math.Trunc(x) || math.IsInf(x, 0) || x < -(1<<63) || x >= 1<<64 {
			return 0, 0, false, fmt.Errorf("sqldb: %v is not an integer", x)
		}
		if x >= 1<<63 {
			return 0, uint64(x), true, nil
		}
		return int64(x), 0, false, nil
	case string, []byte, json.Number:
		s := strings.TrimSpace(asText(x))
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, 0, false, nil
		}
		if p, err := strconv.ParseUint(s, 10, 64); err == nil {
			return parseInt(p)
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return parseInt(f)
		}
		return 0, 0, false, fmt.Errorf("sqldb: %q is not a 64-bit integer", s)
	}
	return 0, 0, false, fmt.Errorf("sqldb: %T %v is not an integer", v, v)
}

func intName(unsigned bool, bits int) string {
	if unsigned {
		return "uint" + strconv.Itoa(bits)
	}
	return "int" + strconv.Itoa(bits)
}

func convFloat(_ Type, v any, _ bool) (any, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case string, []byte, json.Number:
		s := strings.TrimSpace(asText(x))
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("sqldb: %q is not a number", s)
		}
		return f, nil
	}
	n, u, above, err := parseInt(v)
	if _, isBool := v.(bool); isBool || err != nil {
		return nil, fmt.Errorf("sqldb: %T %v is not a float", v, v)
	}
	if above {
		return float64(u), nil
	}
	return float64(n), nil
}

var decimalRE = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

// convDecimal keeps a decimal's text as the source wrote it (floats are
// spelled out in full, never in exponent form); strict checks that it is a
// decimal number.
func convDecimal(_ Type, v any, strict bool) (any, error) {
	var s string
	switch x := v.(type) {
	case float64:
		if strict && (math.IsNaN(x) || math.IsInf(x, 0)) {
			return nil, fmt.Errorf("sqldb: %v is not a decimal", x)
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case float32:
		return convDecimal(Type{}, float64(x), strict)
	case int64, int, int32, int16, int8, uint64, uint, uint32, uint16, uint8:
		return fmt.Sprint(x), nil
	case bool:
		if strict {
			return nil, fmt.Errorf("sqldb: %T is not a decimal", v)
		}
	}
	s = asText(v)
	if !strict {
		return s, nil
	}
	if s = strings.TrimSpace(s); !decimalRE.MatchString(s) {
		return nil, fmt.Errorf("sqldb: %q is not a decimal number", s)
	}
	return s, nil
}

// convBool takes 0 and 1 for false and true, never another number: a 5
// is no boolean.
func convBool(_ Type, v any, _ bool) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case []byte:
		if len(x) == 1 && x[0] <= 1 { // MySQL BIT(1)
			return x[0] == 1, nil
		}
	}
	switch x := v.(type) {
	case string, []byte, json.Number:
		switch strings.ToLower(strings.TrimSpace(asText(x))) {
		case "1", "t", "true", "y", "yes", "on":
			return true, nil
		case "0", "f", "false", "n", "no", "off":
			return false, nil
		}
	default:
		if n, _, above, err := parseInt(x); err == nil && !above && (n == 0 || n == 1) {
			return n == 1, nil
		}
	}
	return nil, fmt.Errorf("sqldb: %T %v is not a boolean", v, v)
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

// parseTime reads a time.Time, its text (zone-less text is UTC) or Unix
// seconds.
func parseTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string, []byte:
		s := strings.TrimSpace(asText(x))
		if IsZeroDate(s) {
			return time.Time{}, fmt.Errorf("sqldb: %w %q", ErrZeroDate, s)
		}
		if layout := plainLayout(s); layout != "" { // the common case, parsed once
			if ts, err := time.Parse(layout, s); err == nil {
				return ts, nil
			}
		}
		for _, layout := range timeLayouts {
			if ts, err := time.Parse(layout, s); err == nil {
				return ts, nil
			}
		}
		return time.Time{}, fmt.Errorf("sqldb: %q is not a timestamp", s)
	case int64:
		return time.Unix(x, 0), nil
	}
	return time.Time{}, fmt.Errorf("sqldb: %T is not a timestamp", v)
}

// ErrZeroDate is the error for a zero date: MySQL's '0000-00-00' (and
// dates with a zero month or day), which name no day and so have no
// portable value.
var ErrZeroDate = errors.New("zero date")

// IsZeroDate reports whether v is the text of a MySQL zero date or of a
// date with a zero month or day ("0000-00-00", "2024-00-15",
// "0000-00-00 00:00:00.000"), as MySQL and MariaDB write them when the
// sql_mode lets them be stored.
func IsZeroDate(v any) bool {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		return false
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' || (len(s) > 10 && s[10] != ' ' && s[10] != 'T') {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s[5:7] == "00" || s[8:10] == "00"
}

// plainLayout is the layout of a zone-less "YYYY-MM-DD" or
// "YYYY-MM-DD hh:mm:ss[.f]" text (what MySQL and SQLite store), or "".
func plainLayout(s string) string {
	switch {
	case len(s) == 10 && s[4] == '-' && s[7] == '-':
		return "2006-01-02"
	case len(s) >= 19 && len(s) <= 29 && s[4] == '-' && s[7] == '-' && s[10] == ' ' && s[13] == ':' && s[16] == ':' &&
		!strings.ContainsAny(s[19:], "Z+- "):
		return "2006-01-02 15:04:05.999999999"
	}
	return ""
}

func convTimestamp(_ Type, v any, _ bool) (any, error) {
	ts, err := parseTime(v)
	if err != nil {
		return nil, err
	}
	return ts.UTC().Truncate(time.Microsecond), nil
}

// convDate is the value's own calendar date (not its date in UTC).
func convDate(_ Type, v any, _ bool) (any, error) {
	ts, err := parseTime(v)
	if err != nil {
		return nil, err
	}
	y, m, d := ts.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
}

var (
	clockRE    = regexp.MustCompile(`^([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.(\d{1,9}))?$`)
	durationRE = regexp.MustCompile(`^(-)?(\d{1,9}):([0-5]\d):([0-5]\d)(?:\.(\d{1,9}))?$`)
)

// ClockFormat formats a time of day for KindTime (zeros after the decimal
// point trimmed).
const ClockFormat = "15:04:05.999999"

// convClock is a time of day ("hh:mm:ss[.ffffff]", below 24h) or, for a
// Duration type, a signed duration ("[-]hh:mm:ss[.ffffff]"). Lenient, text
// stays as it was written and a time.Duration of any length is spelled
// out; strict checks the text and spells it the one canonical way.
func convClock(t Type, v any, strict bool) (any, error) {
	switch x := v.(type) {
	case time.Time:
		return x.Truncate(time.Microsecond).Format(ClockFormat), nil
	case time.Duration:
		if strict && !t.Duration && (x < 0 || x >= 24*time.Hour) {
			return nil, fmt.Errorf("sqldb: %v is not a time of day", x)
		}
		return FormatDuration(x), nil
	case string, []byte:
		s := asText(x)
		if !strict {
			return s, nil
		}
		return clockText(t, strings.TrimSpace(s))
	}
	if !strict {
		return asText(v), nil
	}
	return nil, fmt.Errorf("sqldb: %T is not a time of day", v)
}

// clockText spells a time of day or duration's text canonically: two or
// more digits of hours, microseconds at most, trailing fraction zeros
// trimmed, no sign on zero.
func clockText(t Type, s string) (string, error) {
	neg, h, m, sec, frac := "", "", "", "", ""
	if t.Duration {
		p := durationRE.FindStringSubmatch(s)
		if p == nil {
			return "", fmt.Errorf("sqldb: %q is not a duration ([-]hh:mm:ss[.ffffff])", s)
		}
		n, _ := strconv.Atoi(p[2])
		neg, h, m, sec, frac = p[1], fmt.Sprintf("%02d", n), p[3], p[4], p[5]
	} else {
		p := clockRE.FindStringSubmatch(s)
		if p == nil {
			return "", fmt.Errorf("sqldb: %q is not a time of day (hh:mm:ss[.ffffff])", s)
		}
		h, m, sec, frac = p[1], p[2], p[3], p[4]
	}
	if len(frac) > 6 {
		frac = frac[:6]
	}
	out := h + ":" + m + ":" + sec
	if frac = strings.TrimRight(frac, "0"); frac != "" {
		out += "." + frac
	}
	if neg == "-" && strings.Trim(out, "0:.") != "" {
		out = "-" + out
	}
	return out, nil
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

// convBytes copies what it reads (drivers reuse their scan buffers). A
// geometry given as text is hex (E)WKB, as PostGIS writes it.
func convBytes(t Type, v any, _ bool) (any, error) {
	switch x := v.(type) {
	case []byte:
		if x == nil { // some drivers scan an empty BLOB so
			return []byte{}, nil
		}
		return bytes.Clone(x), nil
	case string:
		if t.Spatial {
			b, err := hex.DecodeString(x)
			if err != nil {
				return nil, fmt.Errorf("sqldb: a geometry's text is not hex (E)WKB: %w", err)
			}
			return b, nil
		}
		return []byte(x), nil
	}
	return nil, fmt.Errorf("sqldb: %T is not bytes", v)
}

// convJSON is a document's text; anything but text is marshalled; strict
// checks that text is valid JSON.
func convJSON(_ Type, v any, strict bool) (any, error) {
	switch x := v.(type) {
	case string, []byte, json.RawMessage:
		s := asText(x)
		if strict && !json.Valid([]byte(s)) {
			return nil, fmt.Errorf("sqldb: invalid JSON document")
		}
		return s, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("sqldb: json value: %w", err)
	}
	return string(b), nil
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
			if c, err := clockText(t, strings.TrimSpace(x)); err == nil {
				return c, nil
			}
			return trimFraction(x), nil
		case KindJSON:
			return jsonText(x), nil
		}
		return x, nil
	}
	return fmt.Sprint(n), nil
}

// decimalText normalises a decimal's text: no sign on zero, no leading
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

// trimFraction trims the zeros after a decimal point of a time text that
// is not canonical (PostgreSQL's 24:00:00, say).
func trimFraction(s string) string {
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
