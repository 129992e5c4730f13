package telemetry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// TracingOptions configure NewTracing.
type TracingOptions struct {
	// Service names the process in every span's resource (service.name).
	Service string
	// OTLP, when set, also exports every span to an OTLP/HTTP collector
	// (its base URL, e.g. http://127.0.0.1:4318; /v1/traces is added).
	OTLP string
	// Keep bounds the spans the embedded store keeps (default 20000); the
	// oldest go first.
	Keep int
}

// Tracing is a process's OpenTelemetry tracing: a tracer provider whose
// spans go to the embedded store (for the console) and, when configured,
// to an OTLP collector, and the W3C trace-context propagator. Spans of one
// record share its trace id on both clouds: a hop that has no parent span
// in its context (a load of a raw object, a replicated batch) starts under
// the record's root span, whose id is derived from the trace id (see
// RootSpanID).
type Tracing struct {
	provider   *sdktrace.TracerProvider
	store      *SpanStore
	propagator propagation.TextMapPropagator
}

// NewTracing starts tracing for a process.
func NewTracing(ctx context.Context, o TracingOptions) (*Tracing, error) {
	if o.Keep <= 0 {
		o.Keep = 20000
	}
	if o.Service == "" {
		o.Service = "intercloud"
	}
	store := &SpanStore{keep: o.Keep}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSyncer(store),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(o.Service))),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	if o.OTLP != "" {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(o.OTLP+"/v1/traces"))
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter %s: %w", o.OTLP, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return &Tracing{provider: sdktrace.NewTracerProvider(opts...), store: store, propagator: propagation.TraceContext{}}, nil
}

// Tracer returns the tracer of a component ("ingest", "load", ...).
func (t *Tracing) Tracer(component string) trace.Tracer {
	return t.provider.Tracer("github.com/intercloud/intercloud/" + component)
}

// Store returns the embedded span store.
func (t *Tracing) Store() *SpanStore { return t.store }

// Shutdown flushes and stops the exporters.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// Middleware starts a server span for each request, as the child of the
// request's W3C traceparent when it has one (a root span otherwise), and
// replaces the request's traceparent with the span's, so the handler (and
// whatever it forwards to) carries the same trace id.
func (t *Tracing) Middleware(component, name string, h http.Handler) http.Handler {
	tr := t.Tracer(component)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		r = r.WithContext(WithTrace(ctx, span.SpanContext().TraceID().String()))
		r.Header.Del("Traceparent")
		t.propagator.Inject(ctx, propagation.HeaderCarrier(r.Header))
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// RootSpanID is the span id of a record's root span: derived from its
// trace id, so every hop on either cloud finds the same parent from the
// trace id alone (a row carries only the trace id).
func RootSpanID(traceID trace.TraceID) trace.SpanID {
	sum := sha256.Sum256(traceID[:])
	var id trace.SpanID
	copy(id[:], sum[:8])
	if !id.IsValid() {
		id[7] = 1
	}
	return id
}

// Hop records a finished step of one or more records' path (a load of a
// raw object, a replicated batch, a publish) as one span per trace id,
// under each record's root span, from start to end.
func (t *Tracing) Hop(component, name string, traceIDs []string, start, end time.Time, attrs ...attribute.KeyValue) {
	t.HopErr(component, name, traceIDs, start, end, nil, attrs...)
}

// HopErr is Hop for a step that may have failed: a non-nil err is recorded
// on each span and sets its status to Error.
func (t *Tracing) HopErr(component, name string, traceIDs []string, start, end time.Time, err error, attrs ...attribute.KeyValue) {
	tr := t.Tracer(component)
	for _, id := range traceIDs {
		tid, perr := trace.TraceIDFromHex(id)
		if perr != nil {
			continue
		}
		parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: RootSpanID(tid), TraceFlags: trace.FlagsSampled, Remote: true})
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
		_, span := tr.Start(ctx, name, trace.WithTimestamp(start), trace.WithAttributes(attrs...))
		if err != nil {
			span.RecordError(err, trace.WithTimestamp(end))
			span.SetStatus(codes.Error, err.Error())
		}
		span.End(trace.WithTimestamp(end))
	}
}

// Span is a finished span as the embedded store keeps it.
type Span struct {
	TraceID   string            `json:"trace_id"`
	SpanID    string            `json:"span_id"`
	ParentID  string            `json:"parent_id,omitempty"`
	Name      string            `json:"name"`
	Service   string            `json:"service"`
	Scope     string            `json:"scope"`
	Start     time.Time         `json:"start"`
	End       time.Time         `json:"end"`
	Attrs     map[string]string `json:"attributes,omitempty"`
	StatusErr string            `json:"error,omitempty"`
}

// SpanStore keeps the latest finished spans in memory, indexed by trace
// id: the embedded trace store the console reads when no OTLP collector
// is configured. It is a sdktrace.SpanExporter; safe for concurrent use.
type SpanStore struct {
	keep  int
	mu    sync.Mutex
	ring  []storedSpan
	next  int
	count int
}

// storedSpan is a Span as the ring keeps it: ids as bytes and the
// attributes packed in one string, so that the spans kept are about one
// object each for the garbage collector to mark (a Span is six or more:
// three hex ids, a map and its entries) and cost no work to store beyond
// that one string.
type storedSpan struct {
	trace                trace.TraceID
	span, parent         trace.SpanID
	name, service, scope string
	start, end           time.Time
	attrs                string // uvarint-length-prefixed key, value, key, value ...
	err                  string
}

var _ sdktrace.SpanExporter = (*SpanStore)(nil)

// ExportSpans implements sdktrace.SpanExporter.
func (s *SpanStore) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	var buf []byte
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring == nil {
		s.ring = make([]storedSpan, s.keep)
	}
	for _, sp := range spans {
		out := storedSpan{
			trace: sp.SpanContext().TraceID(), span: sp.SpanContext().SpanID(),
			name: sp.Name(), scope: sp.InstrumentationScope().Name, start: sp.StartTime(), end: sp.EndTime(),
			err: sp.Status().Description,
		}
		if p := sp.Parent(); p.IsValid() {
			out.parent = p.SpanID()
		}
		if v, ok := sp.Resource().Set().Value(semconv.ServiceNameKey); ok {
			out.service = v.AsString()
		}
		if attrs := sp.Attributes(); len(attrs) > 0 {
			buf = buf[:0]
			for _, a := range attrs {
				buf = appendPacked(buf, string(a.Key))
				buf = appendPacked(buf, a.Value.String())
			}
			out.attrs = string(buf)
		}
		s.ring[s.next] = out
		s.next = (s.next + 1) % s.keep
		s.count = min(s.count+1, s.keep)
	}
	return nil
}

func appendPacked(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// unpacked returns the next string of a packed attribute list and the rest.
func unpacked(s string) (string, string) {
	n, w := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
	if w <= 0 || uint64(len(s)-w) < n {
		return "", ""
	}
	return s[w : w+int(n)], s[w+int(n):]
}

// toSpan renders a kept span as the console and the API show it.
func (st *storedSpan) toSpan() Span {
	out := Span{
		TraceID: st.trace.String(), SpanID: st.span.String(),
		Name: st.name, Service: st.service, Scope: st.scope, Start: st.start, End: st.end, StatusErr: st.err,
	}
	if st.parent.IsValid() {
		out.ParentID = st.parent.String()
	}
	if st.attrs != "" {
		out.Attrs = map[string]string{}
		for rest := st.attrs; rest != ""; {
			var k, v string
			k, rest = unpacked(rest)
			v, rest = unpacked(rest)
			out.Attrs[k] = v
		}
	}
	return out
}

// Trace returns the spans of a trace, oldest first.
func (s *SpanStore) Trace(traceID string) []Span {
	id, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Span
	for i := 0; i < s.count; i++ {
		if st := &s.ring[i]; st.trace == id {
			out = append(out, st.toSpan())
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Start.Before(out[b].Start) })
	return out
}

// Shutdown implements sdktrace.SpanExporter.
func (s *SpanStore) Shutdown(context.Context) error { return nil }
