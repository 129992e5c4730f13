package sqldb

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// String returns the portable type's name as ParseType reads it: string,
// string(n), text, int8 … int64, uint8 … uint64 (int24 and uint24 too),
// float, decimal(p,s), bool, timestamp (wall clock, no zone), timestamptz
// (an instant), date, time, duration, bytes, bytes(n), geometry, json,
// enum('a','b'), set('a','b'); a type of Kind 0 is its Native name.
func (t Type) String() string {
	switch t.Kind {
	case KindString:
		if len(t.Values) > 0 {
			kw := "enum"
			if t.Set {
				kw = "set"
			}
			q := make([]string, len(t.Values))
			for i, v := range t.Values {
				q[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
			}
			return kw + "(" + strings.Join(q, ",") + ")"
		}
		if t.Length > 0 {
			return fmt.Sprintf("string(%d)", t.Length)
		}
		return "string"
	case KindInt:
		bits := t.Bits
		if bits <= 0 || bits > 64 {
			bits = 64
		}
		if t.Unsigned {
			return "uint" + strconv.Itoa(bits)
		}
		return "int" + strconv.Itoa(bits)
	case KindDecimal:
		if t.Precision <= 0 {
			return "decimal"
		}
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	case KindTimestamp:
		if t.Local {
			return "timestamp"
		}
		return "timestamptz"
	case KindTime:
		if t.Duration {
			return "duration"
		}
		return "time"
	case KindBytes:
		if t.Spatial {
			return "geometry"
		}
		if t.Length > 0 {
			return fmt.Sprintf("bytes(%d)", t.Length)
		}
		return "bytes"
	case 0:
		if t.Native != "" {
			return t.Native
		}
		return "(no type)"
	}
	return t.Kind.String()
}

var typeNameRE = regexp.MustCompile(`^([a-z]+[0-9]*)(?:\((\d+)(?:,(\d+))?\))?$`)

// ParseType reads a portable type name (see Type.String; enum and set
// are not accepted). It is how users override a column's type.
func ParseType(name string) (Type, error) {
	s := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), " ", ""))
	m := typeNameRE.FindStringSubmatch(s)
	if m == nil {
		return Type{}, fmt.Errorf("sqldb: %q is not a type name", name)
	}
	n1, err1 := strconv.Atoi(m[2])
	n2, err2 := strconv.Atoi(m[3])
	params := 0
	if m[2] != "" {
		params++
		if err1 != nil || n1 <= 0 {
			return Type{}, fmt.Errorf("sqldb: %q: bad length or precision", name)
		}
	}
	if m[3] != "" {
		params++
		if err2 != nil || n2 > n1 {
			return Type{}, fmt.Errorf("sqldb: %q: bad scale", name)
		}
	}
	var t Type
	maxParams := 0
	switch m[1] {
	case "string":
		t, maxParams = Type{Kind: KindString, Length: n1}, 1
	case "text":
		t = Type{Kind: KindText}
	case "int8", "int16", "int24", "int32", "int64", "uint8", "uint16", "uint24", "uint32", "uint64":
		bits, _ := strconv.Atoi(strings.TrimLeft(m[1], "uint"))
		t = Type{Kind: KindInt, Bits: bits, Unsigned: m[1][0] == 'u'}
	case "float":
		t = Type{Kind: KindFloat}
	case "decimal":
		t, maxParams = Type{Kind: KindDecimal, Precision: n1, Scale: n2}, 2
	case "bool":
		t = Type{Kind: KindBool}
	case "timestamp":
		t = Type{Kind: KindTimestamp, Local: true}
	case "timestamptz":
		t = Type{Kind: KindTimestamp}
	case "date":
		t = Type{Kind: KindDate}
	case "time":
		t = Type{Kind: KindTime}
	case "duration":
		t = Type{Kind: KindTime, Duration: true}
	case "bytes":
		t, maxParams = Type{Kind: KindBytes, Length: n1}, 1
	case "geometry":
		t = Type{Kind: KindBytes, Spatial: true}
	case "json":
		t = Type{Kind: KindJSON}
	default:
		return Type{}, fmt.Errorf("sqldb: %q is not a type name (string(n), text, int8 … int64, uint8 … uint64, float, decimal(p,s), bool, timestamp, timestamptz, date, time, duration, bytes, geometry, json)", name)
	}
	if params > maxParams {
		return Type{}, fmt.Errorf("sqldb: %q takes %d parameters", name, maxParams)
	}
	return t, nil
}

var (
	quotedDefault  = regexp.MustCompile(`^\(*'((?:[^']|'')*)'(?:::[a-z][a-z0-9 _"]*(?:\(\d+(?:,\d+)?\))?)?\)*$`)
	numericDefault = regexp.MustCompile(`^\(*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\)*(?:::[a-z][a-z0-9 _"]*)?$`)
)

// ParseDefault reads a column default as a catalogue shows it ('n/a',
// 'n/a'::character varying, 3, (-1.5)::numeric): the constant's text, or
// nil for NULL and for expressions (now(), nextval(...)).
func ParseDefault(expr string) *string {
	s := strings.TrimSpace(expr)
	if m := quotedDefault.FindStringSubmatch(s); m != nil {
		v := strings.ReplaceAll(m[1], "''", "'")
		return &v
	}
	if m := numericDefault.FindStringSubmatch(s); m != nil {
		return &m[1]
	}
	return nil
}
