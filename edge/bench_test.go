package edge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/origin"
)

// benchBody is a typical published result: a few KiB of JSON.
var benchBody = `{"rows":[` + strings.Repeat(`{"group":"eu","count":12,"sum":34.5},`, 100) + `{}]}`

// discardWriter is a ResponseWriter that keeps nothing, so the benchmarks
// measure the handlers rather than a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func benchGets(b *testing.B, h http.Handler) {
	b.Helper()
	req := httptest.NewRequestWithContext(context.Background(), "GET", "/results/summary.json", nil)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != 0 && w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkEdgeHit serves cached GETs through the edge handler.
func BenchmarkEdgeHit(b *testing.B) {
	o := newOrigin(b)
	o.put(b, "results/summary.json", benchBody)
	e, _, _ := newEdge(b, Config{TTL: 1 << 40}, o)
	benchGets(b, e) // the first GET fills the cache
	if o.reqs.Load() != 1 {
		b.Fatalf("origin requests = %d, want 1", o.reqs.Load())
	}
}

// BenchmarkOriginDirect serves the same GETs straight from the origin
// handler over the file bucket: what every request would cost without
// the edge (before any network hop).
func BenchmarkOriginDirect(b *testing.B) {
	o := newOrigin(b)
	o.put(b, "results/summary.json", benchBody)
	benchGets(b, origin.New(origin.Config{Bucket: o.bucket, Prefix: "results/", Logger: quiet}))
}
