package sqldb_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

func TestParseTypeRoundTrip(t *testing.T) {
	for _, name := range []string{"string", "string(10)", "text", "int8", "int24", "uint24", "int64", "uint64", "float",
		"decimal", "decimal(65,30)", "bool", "timestamp", "timestamptz", "date", "time", "duration", "bytes", "bytes(4)", "geometry", "json"} {
		typ, err := sqldb.ParseType(name)
		if err != nil {
			t.Fatalf("ParseType(%q): %v", name, err)
		}
		if got := typ.String(); got != name {
			t.Errorf("ParseType(%q).String() = %q", name, got)
		}
	}
	for _, bad := range []string{"", "int7", "varchar(10)", "decimal(2,5)", "bool(1)", "string(0)", "enum('a')"} {
		if _, err := sqldb.ParseType(bad); err == nil {
			t.Errorf("ParseType(%q) took it", bad)
		}
	}
}

func TestEWKB(t *testing.T) {
	wkb, _ := hex.DecodeString("0101000000000000000000f03f0000000000000040") // POINT(1 2)
	e, err := sqldb.EWKB(4326, wkb)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(e); got != "0101000020e6100000000000000000f03f0000000000000040" {
		t.Errorf("EWKB = %s", got)
	}
	srid, back, err := sqldb.SplitEWKB(e)
	if err != nil || srid != 4326 || !bytes.Equal(back, wkb) {
		t.Errorf("SplitEWKB = %d %x %v", srid, back, err)
	}
	if same, _ := sqldb.EWKB(0, wkb); !bytes.Equal(same, wkb) {
		t.Errorf("SRID 0 changed the WKB")
	}
	for _, bad := range [][]byte{nil, {1, 2}, {7, 1, 0, 0, 0}} {
		if _, err := sqldb.EWKB(1, bad); err == nil {
			t.Errorf("EWKB(%x) took it", bad)
		}
	}
}

func TestValueModel(t *testing.T) {
	dur := sqldb.Type{Kind: sqldb.KindTime, Duration: true}
	enum := sqldb.Type{Kind: sqldb.KindString, Values: []string{"a", "b"}}
	set := sqldb.Type{Kind: sqldb.KindString, Values: []string{"a", "b"}, Set: true}
	boolean := sqldb.Type{Kind: sqldb.KindBool}
	u24 := sqldb.Type{Kind: sqldb.KindInt, Bits: 24, Unsigned: true}
	for _, c := range []struct {
		t    sqldb.Type
		in   any
		want string // canonical text; "" means an error
	}{
		{dur, "-838:59:59.000000", "-838:59:59"},
		{dur, "838:59:59", "838:59:59"},
		{dur, "-00:00:00", "00:00:00"},
		{dur, 30*time.Hour + 1500*time.Microsecond, "30:00:00.0015"},
		{dur, -time.Second, "-00:00:01"},
		{dur, "1 day", ""},
		{enum, "a", "a"},
		{enum, "", ""},
		{enum, "c", ""},
		{set, "a,b", "a,b"},
		{set, "a,c", ""},
		{boolean, int64(1), "1"},
		{boolean, int64(5), ""},
		{u24, int64(16777215), "16777215"},
		{u24, int64(16777216), ""},
		{u24, int64(-1), ""},
	} {
		n, err := sqldb.Normalize(c.t, c.in)
		var v any
		if err == nil {
			v, err = sqldb.Canonical(c.t, n)
		}
		var got string
		if err == nil {
			got, err = sqldb.Text(c.t, v)
		}
		switch {
		case c.want == "" && err == nil && !(c.t.Kind == sqldb.KindString && c.in == ""):
			t.Errorf("%s %v: took it as %q", c.t, c.in, got)
		case c.want != "" && err != nil:
			t.Errorf("%s %v: %v", c.t, c.in, err)
		case c.want != "" && got != c.want:
			t.Errorf("%s %v: %q, want %q", c.t, c.in, got, c.want)
		}
	}
}

func TestParseDefault(t *testing.T) {
	for in, want := range map[string]string{
		"'n/a'": "n/a", "'n/a'::character varying": "n/a", "'it''s'::text": "it's", "3": "3", "(-1.5)::numeric": "-1.5",
		"'2024-01-01 00:00:00'::timestamp without time zone": "2024-01-01 00:00:00", "''": "",
		"now()": "<nil>", "nextval('s'::regclass)": "<nil>", "NULL": "<nil>", "": "<nil>", "CURRENT_TIMESTAMP": "<nil>",
	} {
		got := "<nil>"
		if p := sqldb.ParseDefault(in); p != nil {
			got = *p
		}
		if got != want {
			t.Errorf("ParseDefault(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestText: every form of one value has one canonical text.
func TestText(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6007000, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		kind sqldb.Kind
		in   []any // all must give want
		want string
	}{
		{sqldb.KindInt, []any{int64(42), 42, uint8(42), "42", []byte("042"), 42.0, "42.0"}, "42"},
		{sqldb.KindInt, []any{uint64(18446744073709551615), "18446744073709551615"}, "18446744073709551615"},
		{sqldb.KindFloat, []any{1.5, float32(1.5), "1.5", []byte("1.50")}, "1.5"},
		{sqldb.KindFloat, []any{1e21, "1e21"}, "1e+21"},
		{sqldb.KindDecimal, []any{"1.50", "+001.5", []byte("1.5000"), 1.5, "15e-1"}, "1.5"},
		{sqldb.KindDecimal, []any{"-0.00", "0", "000", 0.0}, "0"},
		{sqldb.KindDecimal, []any{"-12.340", "-12.34"}, "-12.34"},
		{sqldb.KindBool, []any{true, int64(1), "1", "true", "t", []byte("1")}, "1"},
		{sqldb.KindBool, []any{false, int64(0), "0", "false", "f"}, "0"},
		{sqldb.KindTimestamp, []any{ts, ts.UTC(), "2024-01-02T02:04:05.006007Z", "2024-01-02 02:04:05.006007", "2024-01-02 03:04:05.006007+01:00", "2024-01-02 03:04:05.006007+01"}, "2024-01-02T02:04:05.006007Z"},
		{sqldb.KindDate, []any{"2024-01-02", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), "2024-01-02T00:00:00Z"}, "2024-01-02"},
		{sqldb.KindTime, []any{"13:14:15.500", "13:14:15.5", 13*time.Hour + 14*time.Minute + 15500*time.Millisecond}, "13:14:15.5"},
		{sqldb.KindBytes, []any{[]byte{0xde, 0xad}, "\xde\xad"}, "dead"},
		{sqldb.KindJSON, []any{`{"b":1,"a":2}`, `{ "a": 2, "b": 1 }`, []byte(`{"a":2,"b":1}`)}, `{"a":2,"b":1}`},
		{sqldb.KindString, []any{"héllo", []byte("héllo")}, "héllo"},
	} {
		for _, v := range tc.in {
			got, err := sqldb.Text(sqldb.Type{Kind: tc.kind}, v)
			if err != nil || got != tc.want {
				t.Errorf("Text(%v, %T %v) = %q, %v; want %q", tc.kind, v, v, got, err, tc.want)
			}
		}
	}
	for _, tc := range []struct {
		kind sqldb.Kind
		in   any
	}{
		{sqldb.KindInt, "x"}, {sqldb.KindInt, 1.5}, {sqldb.KindFloat, "pi"}, {sqldb.KindBool, "maybe"},
		{sqldb.KindTimestamp, "yesterday"}, {sqldb.KindBytes, 12},
	} {
		if _, err := sqldb.Text(sqldb.Type{Kind: tc.kind}, tc.in); err == nil {
			t.Errorf("Text(%v, %v) did not fail", tc.kind, tc.in)
		}
	}
}

// FuzzText: canonical text is a fixed point for the kinds it spells as
// their own text.
func FuzzText(f *testing.F) {
	for _, s := range []string{"1.50", "-0", "1e5", "2024-01-02T03:04:05Z", "13:14:15.500", `{"a":1}`, "0x1p-2", "NaN", "", "+"} {
		f.Add(s, uint8(sqldb.KindDecimal))
	}
	f.Fuzz(func(t *testing.T, s string, k uint8) {
		typ := sqldb.Type{Kind: sqldb.Kind(k%11 + 1)}
		c1, err := sqldb.Text(typ, s)
		if err != nil {
			return
		}
		switch typ.Kind {
		case sqldb.KindDecimal, sqldb.KindInt, sqldb.KindBool, sqldb.KindString, sqldb.KindText, sqldb.KindTimestamp, sqldb.KindDate:
			c2, err := sqldb.Text(typ, c1)
			if err != nil || c2 != c1 {
				t.Fatalf("Text(%v, %q) = %q, again %q (%v)", typ.Kind, s, c1, c2, err)
			}
		}
	})
}

func TestIsZeroDate(t *testing.T) {
	for _, c := range []struct {
		in   any
		want bool
	}{
		{"0000-00-00", true}, {"0000-00-00 00:00:00", true}, {"0000-00-00 00:00:00.000", true}, {"2024-00-15", true},
		{"2024-01-00 10:00:00", true}, {[]byte("0000-00-00"), true},
		{"2024-01-01", false}, {"0000-01-01", false}, {"1000-01-01 00:00:00", false}, {"", false}, {"00:00:00", false},
		{"2024-00-1x", false}, {"abcd-00-00", false}, {int64(0), false}, {time.Time{}, false},
	} {
		if got := sqldb.IsZeroDate(c.in); got != c.want {
			t.Errorf("IsZeroDate(%v) = %v", c.in, got)
		}
	}
	if _, err := sqldb.Normalize(sqldb.Type{Kind: sqldb.KindDate}, "0000-00-00"); !errors.Is(err, sqldb.ErrZeroDate) {
		t.Errorf("Normalize of a zero date: %v", err)
	}
}

func TestGeometryText(t *testing.T) {
	geom := sqldb.Type{Kind: sqldb.KindBytes, Spatial: true}
	got, err := sqldb.Normalize(geom, "0101000000000000000000F03F0000000000000040")
	if err != nil || hex.EncodeToString(got.([]byte)) != "0101000000000000000000f03f0000000000000040" {
		t.Errorf("Normalize of a geometry's hex text = %x, %v", got, err)
	}
	if _, err := sqldb.Normalize(geom, "POINT(1 2)"); err == nil {
		t.Error("took a geometry's WKT as hex")
	}
	if got, _ := sqldb.Normalize(sqldb.Type{Kind: sqldb.KindBytes}, "ab"); string(got.([]byte)) != "ab" {
		t.Errorf("bytes from text = %q", got)
	}
}
