// Package telemetry sets up intercloud's structured logging: a JSON slog
// handler that stamps every record with its cloud and the request's trace id,
// redacts secrets, and hands each line to a local writer and to a Shipper
// that sends batches to the central log store (or to Elasticsearch's bulk
// API) without ever blocking the code that logs.
//
// Wiring, once per process (or per cloud part):
//
//	sh := telemetry.NewShipper(telemetry.NewHTTPSink(storeURL, key, nil), telemetry.ShipperOptions{})
//	go sh.Run(ctx)
//	log := telemetry.NewLogger(telemetry.Options{Cloud: "aws", Writer: os.Stderr, Sink: sh})
//	loadLog := log.With("component", "load")
//	loadLog.InfoContext(telemetry.WithTrace(ctx, id), "loaded", "rows", n)
package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

type traceKey struct{}

// WithTrace returns a context that carries traceID; records logged with it
// (log.InfoContext(ctx, ...)) get a "trace_id" attribute. An empty traceID
// returns ctx unchanged.
func WithTrace(ctx context.Context, traceID string) context.Context {
	if traceID == "" {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, traceID)
}

// TraceID returns the trace id ctx carries, or "".
func TraceID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(traceKey{}).(string)
	return id
}

// NewTraceID returns a new random trace id: 32 lowercase hex characters
// (128 bits, the W3C trace-context size).
func NewTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
