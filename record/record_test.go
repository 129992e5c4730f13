package record

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
)

func TestStoredRoundTrip(t *testing.T) {
	s := config.Default(t.TempDir()).Schema
	s.Fields = append(s.Fields, config.Field{Name: "n", Type: config.TypeInteger}, config.Field{Name: "ok", Type: config.TypeBoolean})
	in := Record{ID: "r-1", Origin: "aws", TraceID: "abc", IngestedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Fields: map[string]any{
		"device": "d😀", "metric": "cpu", "value": 1.25, "ts": time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC), "n": int64(1) << 60, "ok": true,
	}}
	self, err := in.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	compact, err := in.AppendCompact(append(AppendShared(nil, Shared{Origin: in.Origin, TraceID: in.TraceID, IngestedAt: in.IngestedAt}), '\n'))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"self-contained": self, "shared": compact} {
		var out []Record
		if err := ReadStored(s, data, func(_ int, r Record) error { out = append(out, r); return nil }); err != nil || len(out) != 1 {
			t.Fatalf("%s: %d records, %v", name, len(out), err)
		}
		if !reflect.DeepEqual(out[0], in) {
			t.Errorf("%s: read %+v\nwant %+v", name, out[0], in)
		}
	}
}

// TestReadStoredShared checks which shared line a record line takes its
// system members from: the last one before it; its own members win.
func TestReadStoredShared(t *testing.T) {
	s := config.Default(t.TempDir()).Schema
	f := `"device":"d","metric":"m","value":1,"ts":"2026-11-24T10:00:00Z"`
	data := `{"_ingested_at":"2026-11-24T10:00:01Z","_origin":"aws","_trace_id":"t1"}
{"id":"a",` + f + `}

{"id":"b",` + f + `}
{"_ingested_at":"2026-11-24T10:00:02.5Z","_origin":"azure","_trace_id":"t2"}
{"id":"c",` + f + `}
{"id":"d","_ingested_at":"2026-11-24T10:00:03Z","_origin":"aws","_trace_id":"t3",` + f + `}
{"id":"e",` + f + `,"_trace_id":"t4"}
`
	var got []string
	err := ReadStored(s, []byte(data), func(line int, r Record) error {
		got = append(got, fmt.Sprintf("%d %s %s %s %s", line, r.ID, r.Origin, r.TraceID, r.IngestedAt.Format(time.RFC3339Nano)))
		return nil
	})
	want := []string{
		"2 a aws t1 2026-11-24T10:00:01Z",
		"4 b aws t1 2026-11-24T10:00:01Z",
		"6 c azure t2 2026-11-24T10:00:02.5Z",
		"7 d aws t3 2026-11-24T10:00:03Z",
		"8 e azure t4 2026-11-24T10:00:02.5Z",
	}
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("read %v:\n%s\nwant\n%s", err, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReadStoredErrors(t *testing.T) {
	s := config.Default(t.TempDir()).Schema
	base := `"id":"x","_origin":"aws","_trace_id":"t","_ingested_at":"2026-11-24T10:00:00Z"`
	shared := `{"_origin":"aws","_trace_id":"t","_ingested_at":"2026-11-24T10:00:00Z"}` + "\n"
	fields := `"device":"d","metric":"m","value":1,"ts":"2026-11-24T10:00:00Z"`
	for name, tc := range map[string]struct{ data, want string }{
		"not json":            {`{`, "line 1"},
		"missing required":    {`{` + base + `,"device":"d","metric":"m","value":1}`, `lacks required "ts"`},
		"wrong type":          {`{` + base + `,"device":1,"metric":"m","value":1,"ts":"2026-11-24T10:00:00Z"}`, `stored "device"`},
		"bad ingested":        {`{"id":"x","_origin":"aws","_trace_id":"t","_ingested_at":"now",` + fields + `}`, `_ingested_at`},
		"no shared line":      {`{"id":"x",` + fields + `}`, `record x lacks "_origin"`},
		"shared line lacks":   {`{"_origin":"aws","_trace_id":"t"}` + "\n" + `{"id":"x",` + fields + `}`, `lacks "_ingested_at"`},
		"shared line's field": {`{"_origin":"aws","device":"d"}` + "\n" + `{"id":"x",` + fields + `}`, `shared line (no "id") holds "device"`},
		"bad shared time":     {`{"_origin":"aws","_trace_id":"t","_ingested_at":"now"}` + "\n" + `{"id":"x",` + fields + `}`, `_ingested_at`},
		"second line":         {shared + `{"id":"x",` + fields + "}\n[]", "line 3"},
		"null id":             {shared + `{"id":null,` + fields + "}", `"id" is empty or null`},
		"empty id":            {shared + `{"id":"",` + fields + "}", `"id" is empty or null`},
		// StoredIDs (completeness, dead letters) refuses these too: both
		// readers tell a shared line by its "_origin".
		"empty line object": {`{}`, "line 1 has no record id"},
		"no id, no origin":  {`{"_trace_id":"t"}` + "\n" + `{"id":"x",` + fields + `}`, "line 1 has no record id"},
	} {
		t.Run(name, func(t *testing.T) {
			err := ReadStored(s, []byte(tc.data), func(int, Record) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTable(t *testing.T) {
	tb := Table(config.Default(t.TempDir()).Schema)
	if tb.Name != "records" || len(tb.PrimaryKey) != 1 || tb.PrimaryKey[0] != ColID {
		t.Fatalf("table %+v", tb)
	}
	want := []string{"id", "device", "metric", "value", "ts", "_origin", "_trace_id", "_ingested_at"}
	if got := strings.Join(tb.ColumnNames(), ","); got != strings.Join(want, ",") {
		t.Fatalf("columns = %s", got)
	}
}

// TestAppendJSONLikeEncodingJSON checks the hand-written encoder against
// encoding/json's encoding of the same map, byte for byte.
func TestAppendJSONLikeEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", `q"uote\back`, "<a href='x'>&</a>", "ctl\x00\x01\x1f\b\f\n\r\t\x7f", "bad\xff\xfeutf8", "line\u2028sep\u2029", "😀 é ß", "\x80"}
	nums := []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e-6, 9.99e-7, 1e20, 1e21, 1.5e21, -2.5e-10, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for i, s := range strs {
		for j, f := range nums {
			r := Record{ID: s, Origin: "aws", TraceID: strs[(i+1)%len(strs)], IngestedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000*j, time.UTC),
				Fields: map[string]any{"device": s, "value": f, "n": int64(j) - 5, "ok": j%2 == 0, "ts": time.Date(2026, 1, 2, 3, 0, 0, j, time.FixedZone("x", 3600)), "z<": nil}}
			got, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]any{ColID: r.ID, ColOrigin: r.Origin, ColTraceID: r.TraceID, ColIngestedAt: r.IngestedAt.UTC().Format(time.RFC3339Nano)}
			for k, v := range r.Fields {
				if tv, ok := v.(time.Time); ok {
					v = tv.UTC().Format(time.RFC3339Nano)
				}
				m[k] = v
			}
			want, _ := json.Marshal(m)
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			// The compact line is the same map without the shared
			// members, and the shared line those members alone.
			shared := map[string]any{}
			for _, k := range []string{ColOrigin, ColTraceID, ColIngestedAt} {
				shared[k] = m[k]
				delete(m, k)
			}
			got, err = r.AppendCompact(nil)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ = json.Marshal(m); string(got) != string(want) {
				t.Fatalf("compact: got  %s\nwant %s", got, want)
			}
			got = AppendShared(nil, Shared{Origin: r.Origin, TraceID: r.TraceID, IngestedAt: r.IngestedAt})
			if want, _ = json.Marshal(shared); string(got) != string(want) {
				t.Fatalf("shared: got  %s\nwant %s", got, want)
			}
		}
	}
	if _, err := (Record{Fields: map[string]any{"v": math.NaN()}}).MarshalJSON(); err == nil {
		t.Error("NaN encoded")
	}
}

func BenchmarkMarshalJSON(b *testing.B) {
	r := Record{ID: "01a22aa8-4529-7990-baba-7d3e29e737b3", Origin: "aws", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", IngestedAt: time.Now(),
		Fields: map[string]any{"device": "dev-001", "metric": "cpu", "value": 12.5, "ts": time.Now()}}
	for b.Loop() {
		if _, err := r.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStoredIDs(t *testing.T) {
	shared := `{"_ingested_at":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t"}` + "\n"
	for name, tc := range map[string]struct{ data, want, err string }{
		"both layouts": {data: shared + `{"id":"a","device":"d"}` + "\n\n" + `{"id":"b","_origin":"aws"}` + "\n", want: "a,b"},
		"neither":      {data: shared + `{"device":"d"}`, err: "line 2 has no record id"},
		"null id":      {data: `{"id":null,"_origin":"aws"}`, err: "line 1 has no record id"},
		"number id":    {data: `{"id":1}`, err: "line 1 has no record id"},
		"not json":     {data: shared + "{", err: "line 2"},
		"empty object": {data: `{}`, err: "line 1 has no record id"},
		"no origin":    {data: `{"_trace_id":"t"}`, err: "line 1 has no record id"},
	} {
		t.Run(name, func(t *testing.T) {
			ids, err := StoredIDs([]byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(ids, ",") != tc.want {
				t.Fatalf("ids = %v, %v; want %s", ids, err, tc.want)
			}
		})
	}
}
