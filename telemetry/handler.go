package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/intercloud/intercloud/internal/redact"
)

// Options configures NewLogger.
type Options struct {
	// Cloud is added to every record as "cloud" ("aws", "azure"); empty for
	// the parts that belong to no cloud (front door, central log store).
	Cloud string
	// Level is the minimum level logged; nil means slog.LevelInfo.
	Level slog.Leveler
	// Writer receives every record as one JSON line (os.Stderr or a file);
	// nil writes nothing locally.
	Writer io.Writer
	// Text writes the lines for Writer as text a person reads
	// ("15:04:05.000 INFO  aws/load rows loaded rows=3") instead of JSON,
	// colored by level when Color is set. The Sink still gets JSON.
	Text, Color bool
	// Sink receives every record as a one-line batch, synchronously, from
	// the logging goroutine. Pass a *Shipper, which only buffers, so a slow
	// or unreachable central store never slows the code that logs; nil ships
	// nothing.
	Sink Sink
}

// Redacted replaces the value of an attribute whose key names a secret.
const Redacted = "[redacted]"

// NewLogger returns a logger whose records are JSON lines (keys "time",
// "level", "msg", then attributes) carrying "cloud" (when set) and
// "trace_id" (when the context passed to the ...Context methods has one,
// see WithTrace), with secrets redacted. Callers add their component with
// .With("component", "load").
func NewLogger(opts Options) *slog.Logger {
	return slog.New(NewHandler(opts))
}

// NewHandler returns the slog.Handler behind NewLogger.
func NewHandler(opts Options) slog.Handler {
	lw := &lineWriter{w: opts.Writer, sink: opts.Sink, text: opts.Text, color: opts.Color}
	level := opts.Level
	if level == nil {
		level = slog.LevelInfo
	}
	raw := slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr})
	h := &handler{raw: raw}
	if opts.Cloud != "" {
		h.top = []slog.Attr{slog.String("cloud", opts.Cloud)}
	}
	h.inner = h.build(h.top)
	return h
}

// handler writes each key once at the top level of a record: an attribute
// added with With replaces an earlier one of the same key (a component's
// logger given to a package that adds "component" itself), and a record's
// own attribute replaces both; it adds the context's trace id unless the
// record has one. The JSON handler does the formatting and redaction.
// Attributes added after a group are inside it and kept as they are.
type handler struct {
	raw   slog.Handler // the JSON handler, no attributes
	top   []slog.Attr  // top-level attributes, one per key, in order
	ops   []op         // groups and their attributes, after top
	inner slog.Handler // raw with top and ops applied
}

type op struct {
	group string
	attrs []slog.Attr
}

var _ slog.Handler = (*handler)(nil)

// build applies top-level attributes and then the groups to the JSON handler.
func (h *handler) build(top []slog.Attr) slog.Handler {
	hh := h.raw
	if len(top) > 0 {
		hh = hh.WithAttrs(top)
	}
	for _, o := range h.ops {
		if o.group != "" {
			hh = hh.WithGroup(o.group)
		} else {
			hh = hh.WithAttrs(o.attrs)
		}
	}
	return hh
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	id := TraceID(ctx)
	needTrace := id != "" && !hasKey(h.top, "trace_id")
	var drop []string
	if len(h.ops) == 0 {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "trace_id" {
				needTrace = false
			}
			if hasKey(h.top, a.Key) {
				drop = append(drop, a.Key)
			}
			return true
		})
	}
	if len(drop) == 0 && !needTrace {
		return h.inner.Handle(ctx, r)
	}
	top := make([]slog.Attr, 0, len(h.top)+1)
	for _, a := range h.top {
		if !slices.Contains(drop, a.Key) {
			top = append(top, a)
		}
	}
	if needTrace {
		top = append(top, slog.String("trace_id", id))
	}
	return h.build(top).Handle(ctx, r)
}

func hasKey(attrs []slog.Attr, key string) bool {
	for _, a := range attrs {
		if a.Key == key {
			return true
		}
	}
	return false
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := h.clone()
	if len(c.ops) > 0 {
		c.ops = append(c.ops, op{attrs: attrs})
		c.inner = h.inner.WithAttrs(attrs)
		return c
	}
	for _, a := range attrs {
		if a.Equal(slog.Attr{}) {
			continue
		}
		if i := slices.IndexFunc(c.top, func(b slog.Attr) bool { return b.Key == a.Key }); i >= 0 {
			c.top[i] = a
		} else {
			c.top = append(c.top, a)
		}
	}
	c.inner = c.build(c.top)
	return c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := h.clone()
	c.inner = h.inner.WithGroup(name)
	c.ops = append(c.ops, op{group: name})
	return c
}

func (h *handler) clone() *handler {
	c := *h
	c.top = slices.Clone(h.top)
	c.ops = slices.Clone(h.ops)
	return &c
}

// lineWriter receives each formatted record (the JSON handler writes one
// line per Write, serialized by its own mutex) and fans it out.
type lineWriter struct {
	mu          sync.Mutex
	w           io.Writer
	sink        Sink
	text, color bool
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	var err error
	if lw.w != nil {
		if lw.text {
			_, err = lw.w.Write(TextLine(p, lw.color))
		} else {
			_, err = lw.w.Write(p)
		}
	}
	if lw.sink != nil {
		line := bytes.TrimRight(p, "\n")
		_ = lw.sink.Write([][]byte{append([]byte(nil), line...)}) // the handler's buffer is reused
	}
	return len(p), err
}

// redactAttr is the JSON handler's ReplaceAttr: secret keys (or keys inside
// a group named like a secret) lose their value; passwords and secret query
// parameters inside URLs in string, error and URL values are masked.
func redactAttr(groups []string, a slog.Attr) slog.Attr {
	if redact.SecretName(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	for _, g := range groups {
		if redact.SecretName(g) {
			return slog.String(a.Key, Redacted)
		}
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); strings.Contains(s, "@") || strings.Contains(s, "=") {
			a.Value = slog.StringValue(redact.Text(s))
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case *url.URL:
			if v != nil {
				a.Value = slog.StringValue(redact.Text(v.String()))
			}
		case url.URL:
			a.Value = slog.StringValue(redact.Text(v.String()))
		case error:
			a.Value = slog.StringValue(redact.Text(v.Error()))
		}
	}
	return a
}
