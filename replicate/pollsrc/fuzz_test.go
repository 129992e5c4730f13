package pollsrc

import (
	"errors"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqlite"
)

// FuzzParsePosition: a position (a checkpoint read back from a target)
// is a non-negative decimal seq or refused with a permanent error, and a
// parsed seq formats back to a position that parses to it.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"", "0", "42", "9223372036854775807", "9223372036854775808", "-1", "+1", "007", " 1", "1e3", "0x10", "mysql-bin.000001:4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParsePosition(replicate.Position(s))
		if err != nil {
			if !errors.Is(err, replicate.ErrPermanent) || !strings.Contains(err.Error(), "bad position") {
				t.Fatalf("%q: error %v is not a permanent bad-position error", s, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("%q parsed to %d", s, n)
		}
		m, err := ParsePosition(FormatPosition(n))
		if err != nil || m != n {
			t.Fatalf("%q: %d formats to %q, parsed back to %d, %v", s, n, FormatPosition(n), m, err)
		}
	})
}

// FuzzDecodeKey: a change's key text (written by the triggers, read back
// from the change table) decodes into one value per key column, or is
// refused with an error; it never panics.
func FuzzDecodeKey(f *testing.F) {
	for _, s := range []string{`[1, "a", "00ff"]`, `[1]`, `[]`, `[null, "a", "00"]`, `[1, "a", "zz"]`, `{"a":1}`, `[1.5, true, ""]`, `[1, "a", "00", 4]`, ``} {
		f.Add(s)
	}
	t := newTable(&sqldb.DB{Dialect: sqlite.Dialect{}}, sqldb.Table{
		Name: "k",
		Columns: []sqldb.Column{
			{Name: "i", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 64}},
			{Name: "s", Type: sqldb.Type{Kind: sqldb.KindString, Length: 20}},
			{Name: "b", Type: sqldb.Type{Kind: sqldb.KindBytes, Length: 8}},
		},
		PrimaryKey: []string{"i", "s", "b"},
	})
	f.Fuzz(func(tt *testing.T, pk string) {
		key, err := decodeKey(t, pk)
		if err == nil && len(key) != 3 {
			tt.Fatalf("%q decoded to %d values for a 3-column key", pk, len(key))
		}
		for _, v := range key {
			if v == nil {
				tt.Fatalf("%q decoded a NULL key value", pk)
			}
		}
	})
}
