package telemetry

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TestTracing: the middleware continues the client's trace and hands the
// handler its own traceparent; hops land under the record's root span;
// the store keeps the newest spans up to its bound.
func TestTracing(t *testing.T) {
	tr, err := NewTracing(context.Background(), TracingOptions{Service: "test", Keep: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	const tid, client = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	var seen, logged string
	h := tr.Middleware("ingest", "ingest", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Get("Traceparent")
		logged = TraceID(r.Context())
		w.WriteHeader(http.StatusAccepted)
	}))
	req := httptest.NewRequest(http.MethodPost, "/v1/records", nil)
	req.Header.Set("Traceparent", "00-"+tid+"-"+client+"-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	spans := tr.Store().Trace(tid)
	if len(spans) != 1 || spans[0].ParentID != client || spans[0].Attrs["http.response.status_code"] != "202" {
		t.Fatalf("spans %+v", spans)
	}
	if seen != "00-"+tid+"-"+spans[0].SpanID+"-01" || logged != tid {
		t.Fatalf("handler saw traceparent %q, trace id %q", seen, logged)
	}
	now := time.Now()
	tr.Hop("load", "load x", []string{tid, "not-a-trace-id"}, now, now.Add(time.Second))
	spans = tr.Store().Trace(tid)
	id, _ := trace.TraceIDFromHex(tid)
	if len(spans) != 2 || spans[1].Name != "load x" || spans[1].ParentID != RootSpanID(id).String() || spans[1].Service != "test" {
		t.Fatalf("hop spans %+v", spans)
	}
	for i := 0; i < 4; i++ {
		tr.Hop("load", "other", []string{strings.Repeat("a", 31) + string(rune('1'+i))}, now, now)
	}
	if n := len(tr.Store().Trace(tid)); n != 0 {
		t.Fatalf("%d spans of the first trace kept past the bound", n)
	}
}

// TestSpanStoreKeepsAttributes: what the store packs (attributes of every
// type, odd strings included, the error, parent and service) reads back as
// the span had it.
func TestSpanStoreKeepsAttributes(t *testing.T) {
	tr, err := NewTracing(context.Background(), TracingOptions{Service: "svc", Keep: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	long := strings.Repeat("é", 300)
	ctx, parent := tr.Tracer("comp").Start(context.Background(), "parent")
	_, sp := tr.Tracer("comp").Start(ctx, "child", trace.WithAttributes(
		attribute.String("empty", ""), attribute.String("nul", "a\x00b"), attribute.String("long", long),
		attribute.Int64("int", -9223372036854775808), attribute.Bool("bool", true),
		attribute.Float64("float", 0.1), attribute.StringSlice("slice", []string{"x", "y"}),
	))
	sp.SetStatus(codes.Error, "it broke\nbadly")
	sp.End()
	parent.End()
	spans := tr.Store().Trace(sp.SpanContext().TraceID().String())
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2: %+v", len(spans), spans)
	}
	var child Span
	for _, s := range spans {
		if s.Name == "child" {
			child = s
		}
	}
	want := map[string]string{
		"empty": "", "nul": "a\x00b", "long": long, "int": "-9223372036854775808",
		"bool": "true", "float": "0.1", "slice": `["x","y"]`,
	}
	if !maps.Equal(child.Attrs, want) {
		t.Fatalf("attributes %q, want %q", child.Attrs, want)
	}
	if child.StatusErr != "it broke\nbadly" || child.Service != "svc" || !strings.HasSuffix(child.Scope, "/comp") ||
		child.ParentID != parent.SpanContext().SpanID().String() || child.SpanID != sp.SpanContext().SpanID().String() {
		t.Fatalf("span %+v", child)
	}
	if got := tr.Store().Trace("not hex"); got != nil {
		t.Fatalf("bad trace id gave %v", got)
	}
}
