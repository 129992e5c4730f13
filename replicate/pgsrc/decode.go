package pgsrc

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file decodes the pgoutput protocol (version 1) with bounds checks on
// every read: the bytes come from the network and a malformed message must
// give an error, never a panic.

// errShort is returned for a message that ends early.
var errShort = errors.New("message too short")

// reader reads big-endian protocol fields from a message.
type reader struct {
	b   []byte
	err error
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b) < n {
		r.err = errShort
		return false
	}
	return true
}

func (r *reader) u8() byte {
	if !r.need(1) {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// str reads a NUL-terminated string.
func (r *reader) str() string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.err = errors.New("unterminated string")
	return ""
}

func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// pgEpoch is 2000-01-01 UTC, the origin of protocol timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (r *reader) time() time.Time {
	us := int64(r.u64())
	return pgEpoch.Add(time.Duration(us) * time.Microsecond).UTC()
}

// The pgoutput messages this source uses.
type (
	beginMsg struct {
		finalLSN   uint64
		commitTime time.Time
		xid        uint32
	}
	commitMsg struct {
		commitLSN, endLSN uint64
		commitTime        time.Time
	}
	relColumn struct {
		flags byte
		name  string
		typ   uint32
		mod   int32
	}
	relationMsg struct {
		id              uint32
		namespace, name string
		replident       byte
		columns         []relColumn
	}
	// tupleCol is one column of a tuple: kind is 'n' (null), 'u'
	// (unchanged TOASTed value, not sent), 't' (text) or 'b' (binary).
	tupleCol struct {
		kind byte
		data []byte
	}
	insertMsg struct {
		rel uint32
		new []tupleCol
	}
	updateMsg struct {
		rel     uint32
		oldKind byte // 0, 'K' (key) or 'O' (old row)
		old     []tupleCol
		new     []tupleCol
	}
	deleteMsg struct {
		rel     uint32
		oldKind byte // 'K' or 'O'
		old     []tupleCol
	}
	truncateMsg struct {
		options byte
		rels    []uint32
	}
	typeMsg   struct{}
	originMsg struct{ name string }
	// otherMsg is a message this source does not act on (logical decoding
	// messages).
	otherMsg struct{ kind byte }
)

// parseMessage decodes one pgoutput message.
func parseMessage(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, errors.New("pgsrc: empty pgoutput message")
	}
	kind := data[0]
	r := &reader{b: data[1:]}
	var m any
	switch kind {
	case 'B':
		m = beginMsg{finalLSN: r.u64(), commitTime: r.time(), xid: r.u32()}
	case 'C':
		_ = r.u8() // flags
		m = commitMsg{commitLSN: r.u64(), endLSN: r.u64(), commitTime: r.time()}
	case 'O':
		_ = r.u64()
		m = originMsg{name: r.str()}
	case 'R':
		rel := relationMsg{id: r.u32(), namespace: r.str(), name: r.str(), replident: r.u8()}
		n := int(r.u16())
		for i := 0; i < n && r.err == nil; i++ {
			c := relColumn{flags: r.u8(), name: r.str()}
			c.typ = r.u32()
			c.mod = int32(r.u32())
			rel.columns = append(rel.columns, c)
		}
		m = rel
	case 'Y':
		_, _, _ = r.u32(), r.str(), r.str()
		m = typeMsg{}
	case 'I':
		ins := insertMsg{rel: r.u32()}
		if k := r.u8(); r.err == nil && k != 'N' {
			return nil, fmt.Errorf("pgsrc: insert: tuple kind %q, want 'N'", k)
		}
		ins.new = r.tuple()
		m = ins
	case 'U':
		up := updateMsg{rel: r.u32()}
		k := r.u8()
		if k == 'K' || k == 'O' {
			up.oldKind, up.old = k, r.tuple()
			k = r.u8()
		}
		if r.err == nil && k != 'N' {
			return nil, fmt.Errorf("pgsrc: update: tuple kind %q, want 'N'", k)
		}
		up.new = r.tuple()
		m = up
	case 'D':
		del := deleteMsg{rel: r.u32(), oldKind: r.u8()}
		if r.err == nil && del.oldKind != 'K' && del.oldKind != 'O' {
			return nil, fmt.Errorf("pgsrc: delete: tuple kind %q, want 'K' or 'O'", del.oldKind)
		}
		del.old = r.tuple()
		m = del
	case 'T':
		n := int(r.u32())
		t := truncateMsg{options: r.u8()}
		if r.err == nil && n > len(r.b)/4 {
			return nil, fmt.Errorf("pgsrc: truncate: %d relations in %d bytes", n, len(r.b))
		}
		for i := 0; i < n && r.err == nil; i++ {
			t.rels = append(t.rels, r.u32())
		}
		m = t
	case 'M':
		m = otherMsg{kind: kind}
	case 'S', 'E', 'c', 'A', 'b', 'P', 'K', 'r', 's':
		return nil, fmt.Errorf("pgsrc: pgoutput message %q was not requested (protocol version 1 only)", kind)
	default:
		return nil, fmt.Errorf("pgsrc: unknown pgoutput message %q", kind)
	}
	if r.err != nil {
		return nil, fmt.Errorf("pgsrc: pgoutput message %q: %w", kind, r.err)
	}
	return m, nil
}

// tuple reads a TupleData.
func (r *reader) tuple() []tupleCol {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if n > len(r.b) { // every column takes at least one byte
		r.err = errShort
		return nil
	}
	cols := make([]tupleCol, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		c := tupleCol{kind: r.u8()}
		switch c.kind {
		case 'n', 'u':
		case 't', 'b':
			l := r.u32()
			if r.err == nil && uint64(l) > uint64(len(r.b)) {
				r.err = errShort
				return nil
			}
			c.data = r.bytes(int(l))
		default:
			if r.err == nil {
				r.err = fmt.Errorf("unknown tuple column kind %q", c.kind)
			}
		}
		cols = append(cols, c)
	}
	return cols
}

// Type OIDs of the built-in types this source decodes to typed values;
// every other type arrives as its text.
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidTimetz      = 1266
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// decodeValue converts one text-format column value of a type to the Go
// value sqldb.Normalize accepts for it: int64 for integers, float64,
// bool, []byte for bytea, time.Time (UTC) for timestamps and dates, and the
// exact text for numeric, time, JSON and everything else.
func decodeValue(typ uint32, c tupleCol) (any, error) {
	switch c.kind {
	case 'n':
		return nil, nil
	case 't':
	case 'u':
		return nil, errors.New("unchanged TOASTed value was not sent")
	default:
		return nil, fmt.Errorf("column format %q is not text", c.kind)
	}
	s := string(c.data)
	switch typ {
	case oidInt2, oidInt4, oidInt8, oidOID:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("integer %q: %w", s, err)
		}
		return n, nil
	case oidFloat4:
		f, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return nil, fmt.Errorf("real %q: %w", s, err)
		}
		return f, nil // the float32 value, as a driver scanning REAL gives it
	case oidFloat8:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("float %q: %w", s, err)
		}
		return f, nil
	case oidBool:
		switch s {
		case "t":
			return true, nil
		case "f":
			return false, nil
		}
		return nil, fmt.Errorf("boolean %q is not t or f", s)
	case oidBytea:
		h, ok := strings.CutPrefix(s, `\x`)
		if !ok {
			return nil, fmt.Errorf("bytea is not in hex format (bytea_output=hex)")
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("bytea: %w", err)
		}
		return b, nil
	case oidTimestamptz, oidTimestamp:
		return parseTimestamp(s)
	case oidDate:
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return nil, fmt.Errorf("date %q: %w", s, err)
		}
		return t, nil
	}
	return s, nil
}

// Layouts of timestamps in DateStyle ISO: with an offset of hours, hours
// and minutes, or hours, minutes and seconds; or without a zone.
var tsLayouts = []string{
	"2006-01-02 15:04:05.999999Z07",
	"2006-01-02 15:04:05.999999Z07:00",
	"2006-01-02 15:04:05.999999Z07:00:00",
	"2006-01-02 15:04:05.999999",
}

func parseTimestamp(s string) (time.Time, error) {
	if t, ok := utcTimestamp(s); ok {
		return t, nil
	}
	for _, l := range tsLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q is not an ISO timestamp between years 1 and 9999", s)
}

// utcTimestamp parses the form the replication session sends every
// timestamptz in (TimeZone UTC) and every timestamp in, "YYYY-MM-DD
// HH:MM:SS[.ffffff]" with or without "+00", without time.Parse's trials
// of layouts; ok is false for anything else, which parseTimestamp's
// layouts then decide.
func utcTimestamp(s string) (t time.Time, ok bool) {
	s = strings.TrimSuffix(s, "+00")
	if len(s) < 19 || len(s) > 26 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(from, to int) int {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19)
	ns := 0
	if len(s) > 19 {
		if s[19] != '.' || len(s) == 20 {
			return time.Time{}, false
		}
		if ns = num(20, len(s)); ns < 0 {
			return time.Time{}, false
		}
		for i := len(s) - 20; i < 9; i++ {
			ns *= 10
		}
	}
	if y < 1 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0 {
		return time.Time{}, false
	}
	t = time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC)
	// Out of range fields (month 13, February 30, hour 24) normalize into
	// another time: not this form's.
	if t.Year() != y || int(t.Month()) != mo || t.Day() != d || t.Hour() != h || t.Minute() != mi || t.Second() != sec {
		return time.Time{}, false
	}
	return t, true
}
