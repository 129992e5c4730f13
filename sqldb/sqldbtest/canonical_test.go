package sqldbtest

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

func TestCanonical(t *testing.T) {
	i8 := sqldb.Type{Kind: sqldb.KindInt, Bits: 8}
	u8 := sqldb.Type{Kind: sqldb.KindInt, Bits: 8, Unsigned: true}
	u64 := sqldb.Type{Kind: sqldb.KindInt, Unsigned: true}
	i64 := sqldb.Type{Kind: sqldb.KindInt}
	for _, tc := range []struct {
		typ  sqldb.Type
		in   any
		want string // %#v of the result, or "error"
	}{
		{i8, int64(127), "127"},
		{i8, int64(128), "error"},
		{i8, int64(-129), "error"},
		{u8, int64(255), "255"},
		{u8, int64(-1), "error"},
		{u64, uint64(math.MaxUint64), "0xffffffffffffffff"},
		{u64, "18446744073709551615", "0xffffffffffffffff"},
		{i64, uint64(math.MaxUint64), "error"},
		{i64, 1.5, "error"},
		{i64, 3.0, "3"},
		{i64, json.Number("-9223372036854775808"), "-9223372036854775808"},
		{i64, "x", "error"},
		{sqldb.Type{Kind: sqldb.KindDecimal}, " -1.50 ", `"-1.50"`},
		{sqldb.Type{Kind: sqldb.KindDecimal}, 0.1, `"0.1"`},
		{sqldb.Type{Kind: sqldb.KindDecimal}, "1e5", `"1e5"`},
		{sqldb.Type{Kind: sqldb.KindDecimal}, "NaN", "error"},
		{sqldb.Type{Kind: sqldb.KindDecimal}, math.Inf(1), "error"},
		{sqldb.Type{Kind: sqldb.KindBool}, "true", "true"},
		{sqldb.Type{Kind: sqldb.KindBool}, int64(2), "error"},
		{sqldb.Type{Kind: sqldb.KindTime}, "23:59:59.1234567", `"23:59:59.123456"`},
		{sqldb.Type{Kind: sqldb.KindTime}, "08:00:00.500", `"08:00:00.5"`},
		{sqldb.Type{Kind: sqldb.KindTime}, "24:00:00", "error"},
		{sqldb.Type{Kind: sqldb.KindTime}, 90 * time.Minute, `"01:30:00"`},
		{sqldb.Type{Kind: sqldb.KindTime}, -time.Second, "error"},
		{sqldb.Type{Kind: sqldb.KindJSON}, `{"a":1}`, `"{\"a\":1}"`},
		{sqldb.Type{Kind: sqldb.KindJSON}, `{"a":`, "error"},
		{sqldb.Type{Kind: sqldb.KindJSON}, map[string]int{"b": 2}, `"{\"b\":2}"`},
		{sqldb.Type{Kind: sqldb.KindString}, 5, "error"},
		{sqldb.Type{Kind: sqldb.KindBytes}, "ab", `[]byte{0x61, 0x62}`},
		{sqldb.Type{Kind: sqldb.KindTimestamp}, "2024-01-02T03:04:05.123456789+01:00", "2024-01-02 02:04:05.123456 +0000 UTC"},
		{sqldb.Type{Kind: sqldb.KindTimestamp}, "2024-01-02 03:04:05", "2024-01-02 03:04:05 +0000 UTC"},
		{sqldb.Type{Kind: sqldb.KindTimestamp}, "yesterday", "error"},
		{sqldb.Type{Kind: sqldb.KindDate}, time.Date(2024, 1, 2, 23, 0, 0, 0, time.FixedZone("x", -5*3600)), "2024-01-02 00:00:00 +0000 UTC"},
		{sqldb.Type{Kind: sqldb.KindString}, nil, "<nil>"},
	} {
		got, err := sqldb.Canonical(tc.typ, tc.in)
		s := fmt.Sprintf("%#v", got)
		if ts, ok := got.(time.Time); ok {
			s = ts.String()
		}
		if err != nil {
			s = "error"
		}
		if s != tc.want {
			t.Errorf("Canonical(%v, %#v) = %s (%v), want %s", tc.typ.Kind, tc.in, s, err, tc.want)
		}
	}
}

// FuzzCanonical: strings of every kind either convert or fail cleanly,
// and a converted value converts to itself again.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"1", "-1.5", "18446744073709551615", "12:34:56.789", "2024-01-02T03:04:05Z", `{"a":[1]}`, "true", "1e400"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, k uint8) {
		kind := sqldb.Kind(int(k)%11 + 1)
		typ := sqldb.Type{Kind: kind, Unsigned: k&16 != 0, Bits: []int{0, 8, 16, 32}[int(k>>5)%4]}
		c, err := sqldb.Canonical(typ, s)
		if err != nil {
			return
		}
		c2, err := sqldb.Canonical(typ, c)
		if err != nil {
			t.Fatalf("%v %q → %#v, then error %v", kind, s, c, err)
		}
		if fmt.Sprintf("%#v", c) != fmt.Sprintf("%#v", c2) {
			t.Fatalf("%v %q → %#v → %#v", kind, s, c, c2)
		}
	})
}
