package record

import (
	"encoding/json"
	"math"
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
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseStored(s, b)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Origin != in.Origin || out.TraceID != in.TraceID || !out.IngestedAt.Equal(in.IngestedAt) {
		t.Fatalf("system fields: %+v", out)
	}
	for k, v := range in.Fields {
		got := out.Fields[k]
		if tv, ok := v.(time.Time); ok {
			if !got.(time.Time).Equal(tv) {
				t.Errorf("%s = %v, want %v", k, got, v)
			}
		} else if got != v {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
}

func TestParseStoredErrors(t *testing.T) {
	s := config.Default(t.TempDir()).Schema
	base := `"id":"x","_origin":"aws","_trace_id":"t","_ingested_at":"2026-11-24T10:00:00Z"`
	for name, tc := range map[string]struct{ line, want string }{
		"not json":         {`{`, "stored line"},
		"no id":            {`{"_origin":"aws","_trace_id":"t","_ingested_at":"2026-11-24T10:00:00Z"}`, `lacks "id"`},
		"missing required": {`{` + base + `,"device":"d","metric":"m","value":1}`, `lacks required "ts"`},
		"wrong type":       {`{` + base + `,"device":1,"metric":"m","value":1,"ts":"2026-11-24T10:00:00Z"}`, `stored "device"`},
		"bad ingested":     {`{"id":"x","_origin":"aws","_trace_id":"t","_ingested_at":"now"}`, `_ingested_at`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseStored(s, []byte(tc.line))
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
