package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/cputime"
	"github.com/intercloud/intercloud/internal/serve"
)

// benchOrigin serves /1k/<n> fresh for an hour and /reval/<n> fresh for
// one second, with validators.
func benchOrigin(b *testing.B) *httptest.Server {
	body := bytes.Repeat([]byte("a"), 1<<10)
	mod := time.Now().Add(-time.Hour)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		maxAge := 3600
		if strings.HasPrefix(r.URL.Path, "/reval/") {
			maxAge = 1
		}
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", maxAge))
		w.Header().Set("ETag", `"`+r.URL.Path+`"`)
		http.ServeContent(w, r, "", mod, bytes.NewReader(body))
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchRequests(b *testing.B, h http.Handler, path func() string) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(srv.URL + path())
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkHit1K: cache hits of a 1 KiB object over real HTTP, next to
// BenchmarkOriginDirect1K (the same requests straight to the origin).
func BenchmarkHit1K(b *testing.B) {
	o := benchOrigin(b)
	e, err := New(Config{Routes: []Route{{Prefix: "/", Origins: []string{o.URL}}}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	benchRequests(b, e, func() string { return "/1k/0" })
}

// BenchmarkOriginDirect1K is the baseline of BenchmarkHit1K.
func BenchmarkOriginDirect1K(b *testing.B) {
	o := benchOrigin(b)
	benchRequests(b, o.Config.Handler, func() string { return "/1k/0" })
}

// BenchmarkRevalidationMix: 2,000 objects fresh for one second, requested
// at random: most requests revalidate.
func BenchmarkRevalidationMix(b *testing.B) {
	o := benchOrigin(b)
	e, err := New(Config{Routes: []Route{{Prefix: "/", Origins: []string{o.URL}}}, DiskDir: b.TempDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	for i := range 2000 {
		if resp, err := http.Get(fmt.Sprintf("%s/reval/%d", o.URL, i)); err == nil {
			resp.Body.Close()
		}
	}
	warm := httptest.NewRecorder()
	for i := range 2000 {
		e.ServeHTTP(warm, httptest.NewRequest("GET", fmt.Sprintf("/reval/%d", i), nil))
	}
	b.ResetTimer()
	benchRequests(b, e, func() string { return fmt.Sprintf("/reval/%d", rand.IntN(2000)) })
	st := e.Stats()
	b.ReportMetric(float64(st.Revalidations)/float64(b.N), "revalidations/op")
}

// discardWriter is the least a ResponseWriter can be: a fresh header map
// per request, as net/http gives, and a body written nowhere. It isolates
// the edge's own work per request from net/http's.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// warmEdge is an edge in front of benchOrigin with /1k/0 stored.
func warmEdge(b *testing.B) *Edge {
	o := benchOrigin(b)
	e, err := New(Config{Routes: []Route{{Prefix: "/", Origins: []string{o.URL}}}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/1k/0", nil))
	return e
}

// BenchmarkHit1KHandler: the edge's own work for a 1 KiB cache hit (no
// network, no net/http), the part of BenchmarkHit1K the edge controls.
func BenchmarkHit1KHandler(b *testing.B) {
	e := warmEdge(b)
	r := httptest.NewRequest("GET", "/1k/0", nil)
	r.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		e.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
	if st := e.Stats(); st.Hits < int64(b.N) {
		b.Fatalf("%d hits for %d requests", st.Hits, b.N)
	}
}

// BenchmarkHit1KFastHandler: the edge's own work for a 1 KiB cache hit on
// the fast path (no network), next to BenchmarkHit1KHandler.
func BenchmarkHit1KFastHandler(b *testing.B) {
	e := warmEdge(b)
	head := []byte("GET /1k/0 HTTP/1.1\r\nHost: edge\r\nUser-Agent: bench\r\n\r\n")
	var req serve.FastRequest
	if err := serve.ParseFastRequest(head, &req); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := serve.FastResponse{Head: buf[:0]}
		if !e.ServeFast(&w, &req) || w.Status != http.StatusOK || len(w.Body) != 1<<10 {
			b.Fatalf("not answered: %d", w.Status)
		}
	}
}

// BenchmarkHit1KConn: 1 KiB cache hits over loopback on kept-alive
// connections, one request at a time per connection, through package
// serve with the fast path ("fast") and without it ("net/http"); the
// client reads the answers with a fixed-size read, so most of the time
// and all allocations are the server's.
func BenchmarkHit1KConn(b *testing.B) {
	e := warmEdge(b)
	for _, fast := range []bool{true, false} {
		name := "net/http"
		var fh serve.FastHandler
		if fast {
			name, fh = "fast", e
		}
		b.Run(name, func(b *testing.B) {
			srv := startEdgeServer(b, e, fh)
			req := []byte("GET /1k/0 HTTP/1.1\r\nHost: edge\r\nUser-Agent: bench\r\n\r\n")
			// The answer's length, from one exchange.
			c, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			_, _ = c.Write(req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				b.Fatal(err)
			}
			var sb strings.Builder
			_ = resp.Write(&sb)
			c.Close()
			size := sb.Len()
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				buf := make([]byte, size)
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRevalidateFast: a stale 1 KiB response validated on the fast
// path, every request (the origin answers 304 over loopback): the cost
// of one revalidation, the origin's own work (an httptest server in this
// process) included.
func BenchmarkRevalidateFast(b *testing.B) {
	o := benchOrigin(b)
	e, err := New(Config{Routes: []Route{{Prefix: "/", Origins: []string{o.URL}}}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/reval/0", nil))
	st, ok := e.store.lookupMemory("/reval/0")
	if !ok {
		b.Fatal("not stored")
	}
	head := []byte("GET /reval/0 HTTP/1.1\r\nHost: edge\r\nUser-Agent: bench\r\n\r\n")
	var req serve.FastRequest
	if err := serve.ParseFastRequest(head, &req); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	before := e.Stats().Revalidations
	b.ReportAllocs()
	cpu0 := cputime.Used(b)
	for b.Loop() {
		st.obj.invalid.Store(true) // must be validated (RFC 9111 §4.3.5)
		w := serve.FastResponse{Head: buf[:0]}
		if !e.ServeFast(&w, &req) || w.Status != http.StatusOK {
			b.Fatalf("not answered: %d", w.Status)
		}
	}
	b.ReportMetric(float64(cputime.Used(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if n := e.Stats().Revalidations - before; n < int64(b.N) {
		b.Fatalf("%d revalidations for %d requests", n, b.N)
	}
}
