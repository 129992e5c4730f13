package pgsrc

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// msg builds a pgoutput message from parts: byte, uint16, uint32, uint64,
// string (NUL-terminated) or []byte (raw).
func msg(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch x := p.(type) {
		case byte:
			b = append(b, x)
		case uint16:
			b = binary.BigEndian.AppendUint16(b, x)
		case uint32:
			b = binary.BigEndian.AppendUint32(b, x)
		case uint64:
			b = binary.BigEndian.AppendUint64(b, x)
		case string:
			b = append(append(b, x...), 0)
		case []byte:
			b = append(b, x...)
		}
	}
	return b
}

func textCol(s string) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{'t'}, uint32(len(s))), s...)
}

var testRelation = msg(byte('R'), uint32(7), "public", "items", byte('f'), uint16(3),
	byte(1), "id", uint32(oidInt8), uint32(0xffffffff),
	byte(0), "body", uint32(oidText), uint32(0xffffffff),
	byte(0), "at", uint32(oidTimestamptz), uint32(0xffffffff))

func TestParseMessages(t *testing.T) {
	m, err := parseMessage(testRelation)
	if err != nil {
		t.Fatal(err)
	}
	rel := m.(relationMsg)
	if rel.name != "items" || len(rel.columns) != 3 || rel.columns[2].typ != oidTimestamptz {
		t.Fatalf("relation %+v", rel)
	}
	// An update changing the key, with the old row image ('O') holding
	// the TOASTed body the new image left out ('u').
	up := msg(byte('U'), uint32(7),
		byte('O'), uint16(3), textCol("1"), textCol("long body"), byte('n'),
		byte('N'), uint16(3), textCol("2"), []byte{'u'}, textCol("2024-01-02 03:04:05.5+02"))
	m, err = parseMessage(up)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := rowChanges(&rel, []string{"id"}, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 2 || ch[0].Op != replicate.OpDelete || ch[0].Key[0] != int64(1) ||
		ch[1].Op != replicate.OpUpsert || ch[1].Key[0] != int64(2) || ch[1].Row["body"] != "long body" ||
		!ch[1].Row["at"].(time.Time).Equal(time.Date(2024, 1, 2, 1, 4, 5, 5e8, time.UTC)) {
		t.Fatalf("changes %+v", ch)
	}
	// Without an old image the unchanged column is an error, not a guess.
	m, _ = parseMessage(msg(byte('U'), uint32(7), byte('N'), uint16(3), textCol("2"), []byte{'u'}, byte('n')))
	if _, err := rowChanges(&rel, []string{"id"}, m); err == nil {
		t.Fatal("TOASTed column without old image accepted")
	}
	for _, bad := range [][]byte{
		{'I'}, msg(byte('I'), uint32(7), byte('N'), uint16(2), textCol("1")),
		msg(byte('I'), uint32(7), byte('N'), uint16(1), byte('t'), uint32(1000), "x"),
		msg(byte('T'), uint32(0xffffffff), byte(0)), {'S'}, {'?'}, msg(byte('R'), uint32(1), "ns"),
	} {
		if _, err := parseMessage(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestDecodeValue(t *testing.T) {
	for _, tc := range []struct {
		typ  uint32
		in   string
		want any
	}{
		{oidInt2, "-32768", int64(-32768)},
		{oidInt8, "9223372036854775807", int64(9223372036854775807)},
		{oidNumeric, "-0.000000000100", "-0.000000000100"},
		{oidFloat8, "-Infinity", nil}, // checked below
		{oidBool, "t", true},
		{oidText, "x'y", "x'y"},
		{oidJSONB, `{"a": 1}`, `{"a": 1}`},
		{oidTime, "23:59:59.999999", "23:59:59.999999"},
	} {
		got, err := decodeValue(tc.typ, tupleCol{kind: 't', data: []byte(tc.in)})
		if err != nil {
			t.Errorf("%d %q: %v", tc.typ, tc.in, err)
			continue
		}
		if tc.want != nil && got != tc.want {
			t.Errorf("%d %q = %#v, want %#v", tc.typ, tc.in, got, tc.want)
		}
	}
	b, err := decodeValue(oidBytea, tupleCol{kind: 't', data: []byte(`\x00ff`)})
	if err != nil || string(b.([]byte)) != "\x00\xff" {
		t.Errorf("bytea = %v, %v", b, err)
	}
	for _, bad := range []struct {
		typ uint32
		in  string
	}{{oidInt4, "x"}, {oidBool, "yes"}, {oidBytea, "ab"}, {oidTimestamptz, "infinity"}, {oidDate, "2000-01-01 BC"}} {
		if _, err := decodeValue(bad.typ, tupleCol{kind: 't', data: []byte(bad.in)}); err == nil {
			t.Errorf("%d %q accepted", bad.typ, bad.in)
		}
	}
}

func TestPositions(t *testing.T) {
	for _, ok := range []string{"", "0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		l, err := ParsePosition(replicate.Position(ok))
		if err != nil {
			t.Errorf("%q: %v", ok, err)
		} else if ok != "" && FormatPosition(l) != replicate.Position(ok) {
			t.Errorf("%q round trips to %q", ok, FormatPosition(l))
		}
	}
	for _, bad := range []string{"1", "/1", "1/", "x/1", "123456789/0", "1/2/3", " 1/2"} {
		if _, err := ParsePosition(replicate.Position(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if a, b := SlotName("aws-to-azure"), SlotName("aws_to_azure"); a == b || len(a) > 63 {
		t.Errorf("slot names %q %q", a, b)
	}
	if s := SlotName("plain_name"); s != "intercloud_plain_name" {
		t.Errorf("SlotName = %q", s)
	}
}

// FuzzParseMessage feeds arbitrary bytes through the pgoutput decoder and
// the row decoding: errors are fine, panics are not.
func FuzzParseMessage(f *testing.F) {
	f.Add(testRelation)
	f.Add(msg(byte('I'), uint32(7), byte('N'), uint16(3), textCol("1"), textCol("b"), textCol("2024-01-02 03:04:05+00")))
	f.Add(msg(byte('U'), uint32(7), byte('K'), uint16(3), textCol("1"), byte('n'), byte('n'), byte('N'), uint16(3), textCol("2"), []byte{'u'}, byte('n')))
	f.Add(msg(byte('D'), uint32(7), byte('O'), uint16(3), textCol("1"), textCol("x"), byte('n')))
	f.Add(msg(byte('B'), uint64(1), uint64(2), uint32(3)))
	f.Add(msg(byte('C'), byte(0), uint64(1), uint64(2), uint64(3)))
	f.Add(msg(byte('T'), uint32(1), byte(0), uint32(7)))
	rel := &relationMsg{name: "items", columns: []relColumn{{name: "id", typ: oidInt8}, {name: "body", typ: oidBytea}, {name: "at", typ: oidTimestamptz}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseMessage(data)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case insertMsg, updateMsg, deleteMsg:
			_, _ = rowChanges(rel, []string{"id"}, m)
			_, _ = rowChanges(rel, []string{"at", "id"}, m)
		case relationMsg:
			_ = sameColumns(m.columns, rel.columns)
		}
	})
}

// FuzzDecodeValue decodes arbitrary text as every type.
func FuzzDecodeValue(f *testing.F) {
	for _, s := range []string{"1", "t", `\x00ff`, "2024-01-02 03:04:05.123456+05:30", "2024-01-02", "NaN", "-Infinity", "1e400"} {
		f.Add(uint32(oidTimestamptz), byte('t'), []byte(s))
	}
	f.Fuzz(func(t *testing.T, typ uint32, kind byte, data []byte) {
		for _, ty := range []uint32{typ, oidBool, oidBytea, oidInt8, oidFloat4, oidFloat8, oidDate, oidTimestamp, oidTimestamptz, oidNumeric} {
			v, err := decodeValue(ty, tupleCol{kind: kind, data: data})
			if err == nil && kind == 't' && v == nil {
				t.Fatalf("%d %q decoded to nil", ty, data)
			}
		}
	})
}

func FuzzParsePosition(f *testing.F) {
	f.Add("16/B374D848")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParsePosition(replicate.Position(s))
		if err == nil && s != "" {
			if l2, err := ParsePosition(FormatPosition(l)); err != nil || l2 != l {
				t.Fatalf("%q: round trip %v %v", s, l2, err)
			}
		}
	})
}

// TestReplicatedRowsAreNotParsed feeds a stream reading with
// SkipReplicated a replicated transaction (its first change writes the
// origin table) and a local one: the replicated transaction's rows, and
// rows of a table the stream does not read, are dropped without parsing
// their row images (no allocation), the local row is delivered.
func TestReplicatedRowsAreNotParsed(t *testing.T) {
	ctx := context.Background()
	var got []replicate.Change
	st := &streamState{
		src:  &Source{tables: map[string]*tableInfo{"items": {def: sqldb.Table{Name: "items", PrimaryKey: []string{"id"}}}}},
		opts: replicate.StreamOptions{SkipReplicated: true, MaxBatch: 1},
		want: map[string]bool{"items": true},
		rels: map[uint32]*relationMsg{}, known: map[string][]relColumn{}, schema: map[string]bool{},
		confirmed: 1 << 62, // no status update to send: there is no server
		fn: func(_ context.Context, b replicate.Batch) error {
			for _, c := range b.Changes {
				if c.Op != replicate.OpSchema { // the first Relation message's
					got = append(got, c)
				}
			}
			return nil
		},
	}
	origin := msg(byte('R'), uint32(8), "public", OriginTable, byte('f'), uint16(1), byte(1), "id", uint32(oidText), uint32(0xffffffff))
	other := msg(byte('R'), uint32(9), "public", "others", byte('f'), uint16(1), byte(1), "id", uint32(oidInt8), uint32(0xffffffff))
	begin := msg(byte('B'), uint64(10), uint64(0), uint32(1))
	commit := msg(byte('C'), byte(0), uint64(10), uint64(20), uint64(0))
	row := func(id string) []byte {
		return msg(byte('I'), uint32(7), byte('N'), uint16(3), textCol(id), textCol("body"), textCol("2024-01-02 03:04:05+00"))
	}
	feed := func(msgs ...[]byte) {
		t.Helper()
		for _, m := range msgs {
			if err := st.walData(ctx, m, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	feed(testRelation, origin, other, begin, msg(byte('I'), uint32(8), byte('N'), uint16(1), textCol("aws")))
	replicated, otherRow := row("1"), msg(byte('I'), uint32(9), byte('N'), uint16(1), textCol("5"))
	for _, m := range [][]byte{replicated, otherRow} {
		if n := testing.AllocsPerRun(100, func() { feed(m) }); n != 0 {
			t.Errorf("a dropped row change allocated %v times", n)
		}
	}
	feed(commit, begin, row("2"), otherRow, commit)
	if len(got) != 1 || got[0].Key[0] != int64(2) {
		t.Fatalf("delivered %+v, want the local row 2 only", got)
	}
}

// slowTimestamp is parseTimestamp by its layouts alone.
func slowTimestamp(s string) (time.Time, error) {
	var err error
	for _, l := range tsLayouts {
		var t time.Time
		if t, err = time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, err
}

// TestUTCTimestamp checks the fast path against the layouts: the same
// instant where it parses, the layouts' answer where it does not.
func TestUTCTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{"2024-01-02 03:04:05+00", true},
		{"2024-01-02 03:04:05.5+00", true},
		{"2024-01-02 03:04:05.123456+00", true},
		{"2024-01-02 03:04:05.000001", true},
		{"0001-01-01 00:00:00+00", true},
		{"9999-12-31 23:59:59.999999+00", true},
		{"2024-02-29 00:00:00+00", true},
		{"2023-02-29 00:00:00+00", false},
		{"2024-13-01 00:00:00+00", false},
		{"2024-01-01 24:00:00+00", false},
		{"2024-01-01 00:00:60+00", false},
		{"0000-01-01 00:00:00+00", false},
		{"2024-01-02 03:04:05.+00", false},
		{"2024-01-02 03:04:05.1234567+00", false},
		{"2024-01-02 03:04:05+05:30", false},
		{"2024-01-02 03:04:05+01", false},
		{"2024-01-02 03:04:05-00", false},
		{"2024-01-02 03:04:05+00 BC", false},
		{"infinity", false},
		{"2024-01-02T03:04:05+00", false},
		{"2024-1-02 03:04:05+00", false},
	} {
		got, ok := utcTimestamp(tc.in)
		if ok != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.in, ok, tc.fast)
		}
		want, err := slowTimestamp(tc.in)
		if ok && (err != nil || !got.Equal(want) || got.Location() != time.UTC) {
			t.Errorf("%q: fast %v, layouts %v (%v)", tc.in, got, want, err)
		}
		full, ferr := parseTimestamp(tc.in)
		if (ferr == nil) != (err == nil) || !full.Equal(want) {
			t.Errorf("%q: parseTimestamp %v %v, layouts %v %v", tc.in, full, ferr, want, err)
		}
	}
}

// FuzzUTCTimestamp: wherever the fast path parses, the layouts parse the
// same instant.
func FuzzUTCTimestamp(f *testing.F) {
	for _, s := range []string{"2024-01-02 03:04:05.123456+00", "2024-01-02 03:04:05", "2023-02-29 00:00:00+00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := utcTimestamp(s)
		if !ok {
			return
		}
		want, err := slowTimestamp(s)
		if err != nil || !got.Equal(want) {
			t.Fatalf("%q: fast %v, layouts %v %v", s, got, want, err)
		}
	})
}

// BenchmarkParseTimestamp parses a timestamptz as the replication
// session sends it, by the fast path and by the layouts.
func BenchmarkParseTimestamp(b *testing.B) {
	const s = "2026-11-30 16:04:05.123456+00"
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseTimestamp(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("layouts", func(b *testing.B) {
		for b.Loop() {
			if _, err := slowTimestamp(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
