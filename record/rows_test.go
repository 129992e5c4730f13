package record

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/sqldb/sqlite"
)

// rowsSchema has a field of every type, required and optional ones.
func rowsSchema(t testing.TB) config.Schema {
	s := config.Default(t.TempDir()).Schema
	return config.Schema{Table: s.Table, Fields: append(s.Fields,
		config.Field{Name: "n", Type: config.TypeInteger},
		config.Field{Name: "ok", Type: config.TypeBoolean},
		config.Field{Name: "note", Type: config.TypeString},
		config.Field{Name: "seen", Type: config.TypeTimestamp},
		config.Field{Name: "x", Type: config.TypeNumber},
	)}
}

// referenceRows is what ReadStored and Row give for data.
func referenceRows(r *RowReader, data []byte) (Rows, error) {
	rs := Rows{Cols: len(r.table.Columns)}
	err := ReadStored(r.schema, data, func(_ int, rec Record) error {
		row, err := Row(r.table, r.d, rec)
		if err != nil {
			return err
		}
		rs.Values = append(rs.Values, row...)
		rs.IDs = append(rs.IDs, rec.ID)
		rs.TraceIDs = append(rs.TraceIDs, rec.TraceID)
		return nil
	})
	return rs, err
}

func sameRows(a, b Rows) bool {
	if a.Len() != b.Len() || a.Cols != b.Cols || len(a.Values) != len(b.Values) {
		return false
	}
	for i := range a.Values {
		// -0 and 0 are different floats to a database that keeps the
		// sign; DeepEqual tells them apart by their bits too.
		if !reflect.DeepEqual(a.Values[i], b.Values[i]) {
			return false
		}
		if x, ok := a.Values[i].(float64); ok && math.Signbit(x) != math.Signbit(b.Values[i].(float64)) {
			return false
		}
	}
	return slices.Equal(a.IDs, b.IDs) && slices.Equal(a.TraceIDs, b.TraceIDs)
}

// commonObjects are raw objects of the shape the API writes, and of the
// layout of earlier versions, with the boundaries of every type: each
// must take the fast path and give the rows of the reference.
var commonObjects = []string{
	// The API's layout: a shared line, compact record lines.
	`{"_ingested_at":"2026-11-24T10:00:00.123456789Z","_origin":"aws","_trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}
{"device":"d1","id":"0193a1b2-0000-7000-8000-000000000001","metric":"cpu","ts":"2026-11-24T09:59:58.5Z","value":1.25}
{"device":"\u003cd\u003e \"q\" \\ é😀","id":"0193a1b2-0000-7000-8000-000000000002","metric":"","n":9223372036854775807,"note":"","ok":true,"seen":"0001-01-01T00:00:00Z","ts":"9999-12-31T23:59:59.999999999Z","value":-0,"x":1.7976931348623157e+308}
{"device":"d3","id":"0193a1b2-0000-7000-8000-000000000003","metric":"m","n":-9223372036854775808,"note":null,"ok":false,"seen":null,"ts":"2026-11-24T12:00:00+02:00","value":5e-324,"x":null}
{"_ingested_at":"2026-11-24T10:00:01Z","_origin":"azure","_trace_id":"00f067aa0ba902b700f067aa0ba902b7"}
{"device":"d4","id":"b-1","metric":"net","ts":"2026-11-24T10:00:00.000001Z","value":1e21,"n":0}
`,
	// Earlier versions: every line self-contained, keys in any order,
	// blank lines and spaces, a member the schema does not have.
	` {"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t1","device":"d","id":"a-1","metric":"cpu","ts":"2026-11-24T10:00:00Z","value":42}

{"id":"a-2","value":0.1,"_trace_id":"t1","device":"d","metric":"cpu","ts":"2026-11-24T10:00:00Z","_origin":"aws","_ingested_at":"2026-11-24T10:00:00Z","extra":"ignored"}  `,
	// A record line's own system members win over the shared line's.
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t1"}
{"_origin":"azure","device":"d","id":"a-1","metric":"cpu","ts":"2026-11-24T10:00:00Z","value":1}
{"_trace_id":"t2","device":"d","id":"a-2","metric":"cpu","ts":"2026-11-24T10:00:00Z","value":2}
`,
}

// unusualObjects are left to the reference path (a fault, or a shape the
// fast path does not take).
var unusualObjects = []string{
	`{"id":"a","device":"d","metric":"m","value":1,"ts":"2026-11-24T10:00:00Z"}`, // no system members anywhere
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
{"id":"a","device":"d","metric":"m","value":"1","ts":"2026-11-24T10:00:00Z"}`, // a number as a string
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
{"id":"a","device":"d","metric":"m","value":1,"ts":"2026-11-24T10:00:00Z","n":1.5}`, // not an integer
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
{"id":"a","device":"d","metric":"m","value":1e400,"ts":"2026-11-24T10:00:00Z"}`, // out of range
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
{"id":"a","device":"d","metric":"m","value":1,"ts":"2026-11-24"}`, // not RFC 3339
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
{"id":"a","device":"d","device":"e","metric":"m","value":1,"ts":"2026-11-24T10:00:00Z"}`, // a key twice
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
{"id":"a","device":"d","value":1,"ts":"2026-11-24T10:00:00Z"}`, // a required field missing
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
{"id":"a","device":"d` + "\xff" + `","metric":"m","value":1,"ts":"2026-11-24T10:00:00Z"}`, // invalid UTF-8: U+FFFD
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
{"id":"a","device":"d","metric":"m","value":1,"ts":"2026-11-24T10:00:00Z","x":[1]}`, // nested
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t","device":"d"}`, // a field in a shared line
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
{"id":"","device":"d","metric":"m","value":1,"ts":"2026-11-24T10:00:00Z"}`, // an empty id
	`{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}
not json`,
}

func TestRowReaderCommonShapeIsFast(t *testing.T) {
	r := NewRowReader(rowsSchema(t), sqlite.Dialect{})
	for i, obj := range commonObjects {
		fast, ok := r.fast([]byte(obj))
		if !ok {
			t.Fatalf("object %d: the fast path declined:\n%s", i, obj)
		}
		ref, err := referenceRows(r, []byte(obj))
		if err != nil {
			t.Fatalf("object %d: reference: %v", i, err)
		}
		if !sameRows(fast, ref) {
			t.Fatalf("object %d:\nfast      %#v\nreference %#v", i, fast, ref)
		}
		got, err := r.Read([]byte(obj))
		if err != nil || !sameRows(got, ref) {
			t.Fatalf("object %d: Read = %#v, %v", i, got, err)
		}
	}
	// The boundaries as SQLite binds them.
	got, _ := r.Read([]byte(commonObjects[0]))
	want := [][]any{
		{"0193a1b2-0000-7000-8000-000000000001", "d1", "cpu", 1.25, "2026-11-24T09:59:58.500000Z", nil, nil, nil, nil, nil, "aws", "4bf92f3577b34da6a3ce929d0e0e4736", "2026-11-24T10:00:00.123456Z"},
		{"0193a1b2-0000-7000-8000-000000000002", `<d> "q" \ é😀`, "", math.Copysign(0, -1), "9999-12-31T23:59:59.999999Z", int64(math.MaxInt64), int64(1), "", "0001-01-01T00:00:00.000000Z", math.MaxFloat64, "aws", "4bf92f3577b34da6a3ce929d0e0e4736", "2026-11-24T10:00:00.123456Z"},
		{"0193a1b2-0000-7000-8000-000000000003", "d3", "m", 5e-324, "2026-11-24T10:00:00.000000Z", int64(math.MinInt64), int64(0), nil, nil, nil, "aws", "4bf92f3577b34da6a3ce929d0e0e4736", "2026-11-24T10:00:00.123456Z"},
		{"b-1", "d4", "net", 1e21, "2026-11-24T10:00:00.000001Z", int64(0), nil, nil, nil, nil, "azure", "00f067aa0ba902b700f067aa0ba902b7", "2026-11-24T10:00:01.000000Z"},
	}
	for i, w := range want {
		if !reflect.DeepEqual(got.Row(i), w) {
			t.Errorf("row %d = %#v\nwant     %#v", i, got.Row(i), w)
		}
	}
}

func TestRowReaderUnusualShapesLikeReference(t *testing.T) {
	r := NewRowReader(rowsSchema(t), sqlite.Dialect{})
	for i, obj := range unusualObjects {
		if _, ok := r.fast([]byte(obj)); ok {
			t.Errorf("object %d: the fast path took it:\n%s", i, obj)
		}
		ref, rerr := referenceRows(r, []byte(obj))
		got, err := r.Read([]byte(obj))
		if (err == nil) != (rerr == nil) || err != nil && err.Error() != rerr.Error() || !sameRows(got, ref) && rerr == nil {
			t.Errorf("object %d: Read = %v, %v; reference %v, %v", i, got, err, ref, rerr)
		}
	}
	// Invalid UTF-8 reads as encoding/json reads it.
	got, err := r.Read([]byte(unusualObjects[7]))
	if err != nil || got.Row(0)[1] != "d\uFFFD" {
		t.Errorf("invalid UTF-8: %v, %v", got.Values, err)
	}
}

// FuzzRowReader checks the fast path against ReadStored and Row: every
// object it takes gives the reference's rows, and the reference accepts
// it.
func FuzzRowReader(f *testing.F) {
	for _, s := range append(append([]string{}, commonObjects...), unusualObjects...) {
		f.Add([]byte(s))
	}
	schema := rowsSchema(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewRowReader(schema, sqlite.Dialect{})
		fast, ok := r.fast(data)
		ref, err := referenceRows(r, data)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("the fast path took %q, the reference refuses it: %v", data, err)
		}
		if !sameRows(fast, ref) {
			t.Fatalf("%q:\nfast      %#v\nreference %#v", data, fast, ref)
		}
		if strings.Count(string(data), "\n")+1 < fast.Len() {
			t.Fatalf("%q: more rows than lines", data)
		}
	})
}

func BenchmarkRowReader(b *testing.B) {
	r := NewRowReader(config.Default(b.TempDir()).Schema, sqlite.Dialect{})
	data := benchObject(b, 1000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/record")
}

// BenchmarkReadStoredRows is the reference path: ReadStored and Row.
func BenchmarkReadStoredRows(b *testing.B) {
	r := NewRowReader(config.Default(b.TempDir()).Schema, sqlite.Dialect{})
	data := benchObject(b, 1000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := referenceRows(r, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/record")
}

// benchObject is a raw object as the API writes it: n records, a shared
// line per 100.
func benchObject(b *testing.B, n int) []byte {
	var data []byte
	at := time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)
	for i := range n {
		if i%100 == 0 {
			data = append(AppendShared(data, Shared{Origin: "aws", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", IngestedAt: at.Add(time.Duration(i))}), '\n')
		}
		rec := Record{ID: "0193a1b2-0000-7000-8000-" + strings.Repeat("0", 6) + time.Duration(i).String(), Fields: map[string]any{
			"device": "device-17", "metric": "cpu", "value": float64(i) / 7, "ts": at.Add(time.Duration(i) * time.Millisecond)}}
		var err error
		if data, err = rec.AppendCompact(data); err != nil {
			b.Fatal(err)
		}
		data = append(data, '\n')
	}
	return data
}
