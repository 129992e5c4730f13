package record

import (
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
