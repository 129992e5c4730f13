package telemetry

import (
	"context"
	"crypto/sha256"
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
	ring  []Span
	next  int
	count int
}

var _ sdktrace.SpanExporter = (*SpanStore)(nil)

// ExportSpans implements sdktrace.SpanExporter.
func (s *SpanStore) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring == nil {
		s.ring = make([]Span, s.keep)
	}
	for _, sp := range spans {
		out := Span{
			TraceID: sp.SpanContext().TraceID().String(), SpanID: sp.SpanContext().SpanID().String(),
			Name: sp.Name(), Scope: sp.InstrumentationScope().Name, Start: sp.StartTime(), End: sp.EndTime(),
		}
		if p := sp.Parent(); p.IsValid() {
			out.ParentID = p.SpanID().String()
		}
		if v, ok := sp.Resource().Set().Value(semconv.ServiceNameKey); ok {
			out.Service = v.AsString()
		}
		if len(sp.Attributes()) > 0 {
			out.Attrs = map[string]string{}
			for _, a := range sp.Attributes() {
				out.Attrs[string(a.Key)] = a.Value.String()
			}
		}
		if sp.Status().Description != "" {
			out.StatusErr = sp.Status().Description
		}
		s.ring[s.next] = out
		s.next = (s.next + 1) % s.keep
		s.count = min(s.count+1, s.keep)
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (s *SpanStore) Shutdown(context.Context) error { return nil }

// Trace returns the spans of a trace, oldest first.
func (s *SpanStore) Trace(traceID string) []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Span
	for i := 0; i < s.count; i++ {
		if sp := s.ring[i]; sp.TraceID == traceID {
			out = append(out, sp)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Start.Before(out[b].Start) })
	return out
}
