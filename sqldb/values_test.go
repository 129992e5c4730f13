package sqldb_test

import (
	"bytes"
	"encoding/hex"
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
