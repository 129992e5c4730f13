package sqldb

import "fmt"

// Canonical converts a Go value to the portable value of its column type,
// checking it, so that drivers only map portable values to what they bind:
//
//	KindString, KindText  string (from string, []byte); an ENUM or SET
//	                      value checked against its members
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
//	KindTime              "hh:mm:ss[.ffffff]", a time of day below 24h, or
//	                      for a Duration "[-]hh:mm:ss[.ffffff]" (from such
//	                      strings, time.Duration, time.Time)
//	KindBytes             []byte (from []byte, string)
//	KindJSON              string holding valid JSON (from string, []byte,
//	                      json.RawMessage; anything else is marshalled)
//
// nil stays nil. A value of the wrong kind or out of range is an error
// that names the value's type, never a silent conversion. It is the
// strict form of the conversion Normalize does leniently (one function
// per Kind, see values.go).
func Canonical(t Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if c, ok := conversions[t.Kind]; ok {
		return c(t, v, true)
	}
	return nil, fmt.Errorf("sqldb: unknown column kind %v", t.Kind)
}
