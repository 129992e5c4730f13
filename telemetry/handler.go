package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/url"
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
	lw := &lineWriter{w: opts.Writer, sink: opts.Sink}
	level := opts.Level
	if level == nil {
		level = slog.LevelInfo
	}
	var base slog.Handler = slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr})
	if opts.Cloud != "" {
		base = base.WithAttrs([]slog.Attr{slog.String("cloud", opts.Cloud)})
	}
	return &handler{base: base, inner: base}
}

// handler adds the context's trace id at the top level of each record. The
// JSON handler does the formatting and redaction; WithAttrs/WithGroup are
// also recorded so that a record logged inside a group can have its trace
// id rebuilt outside the group.
type handler struct {
	base     slog.Handler // JSON handler with the cloud attribute only
	inner    slog.Handler // base with ops applied
	ops      []op
	grouped  bool // some op is a group
	hasTrace bool // a top-level trace_id attribute was added with With
}

type op struct {
	group string
	attrs []slog.Attr
}

var _ slog.Handler = (*handler)(nil)

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	id := TraceID(ctx)
	if id == "" || h.hasTrace {
		return h.inner.Handle(ctx, r)
	}
	if !h.grouped {
		present := false
		r.Attrs(func(a slog.Attr) bool {
			present = a.Key == "trace_id"
			return !present
		})
		if present {
			return h.inner.Handle(ctx, r)
		}
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", id))
		return h.inner.Handle(ctx, r)
	}
	// Inside a group: rebuild the chain with trace_id before the groups.
	hh := h.base.WithAttrs([]slog.Attr{slog.String("trace_id", id)})
	for _, o := range h.ops {
		if o.group != "" {
			hh = hh.WithGroup(o.group)
		} else {
			hh = hh.WithAttrs(o.attrs)
		}
	}
	return hh.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := h.clone()
	c.inner = h.inner.WithAttrs(attrs)
	c.ops = append(c.ops, op{attrs: attrs})
	if !h.grouped {
		for _, a := range attrs {
			if a.Key == "trace_id" {
				c.hasTrace = true
			}
		}
	}
	return c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := h.clone()
	c.inner = h.inner.WithGroup(name)
	c.ops = append(c.ops, op{group: name})
	c.grouped = true
	return c
}

func (h *handler) clone() *handler {
	c := *h
	c.ops = append([]op(nil), h.ops...)
	return &c
}

// lineWriter receives each formatted record (the JSON handler writes one
// line per Write, serialized by its own mutex) and fans it out.
type lineWriter struct {
	mu   sync.Mutex
	w    io.Writer
	sink Sink
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	var err error
	if lw.w != nil {
		_, err = lw.w.Write(p)
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
