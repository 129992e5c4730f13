package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/internal/serve"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func newDurationVec() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "test_request_duration_seconds", Help: "h"}, []string{"code"})
}

func sampleCount(t *testing.T, vec *prometheus.HistogramVec, code string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := vec.WithLabelValues(code).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestInstrumentHandler serves real requests through the instrumented
// handler: each is observed under its final status code, body bytes are
// counted whether written, copied from a file (sendfile) or flushed, and
// the client gets the same responses as without it.
func TestInstrumentHandler(t *testing.T) {
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, []byte(strings.Repeat("f", 100_000)), 0o600); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusNotFound) })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "after hints")
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(file)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("the instrumented writer hides ReadFrom")
		}
		_, _ = io.Copy(w, io.LimitReader(f, 100_000))
	})
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Error(err)
		}
		_, _ = io.WriteString(w, "rest")
	})
	vec := newDurationVec()
	bytes := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_bytes_total", Help: "b"})
	srv := httptest.NewServer(InstrumentHandler(mux, vec, bytes))
	defer srv.Close()

	for _, tt := range []struct {
		path   string
		status int
		body   string
		n      int
	}{
		{"/write", 200, "hello", 2},
		{"/missing", 404, "nope\n", 1},
		{"/empty", 200, "", 1},
		{"/early", 200, "after hints", 1},
		{"/file", 200, strings.Repeat("f", 100_000), 1},
		{"/flush", 200, "partrest", 1},
	} {
		for range tt.n {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || string(b) != tt.body {
				t.Errorf("%s: %d %q, want %d %q", tt.path, resp.StatusCode, b, tt.status, tt.body)
			}
		}
	}
	// Six 200s (two /write), one 404; no series for the 103.
	if n := sampleCount(t, vec, "200"); n != 6 {
		t.Errorf("%d requests observed as 200, want 6", n)
	}
	if n := sampleCount(t, vec, "404"); n != 1 {
		t.Errorf("%d requests observed as 404, want 1", n)
	}
	if n := testutil.CollectAndCount(vec); n != 2 {
		t.Errorf("%d series, want 2 (200 and 404)", n)
	}
	want := float64(2*len("hello") + len("nope\n") + len("after hints") + 100_000 + len("partrest"))
	if got := testutil.ToFloat64(bytes); got != want {
		t.Errorf("%v bytes counted, want %v", got, want)
	}
}

// BenchmarkInstrumentHandler: the cost per request of InstrumentHandler
// next to promhttp.InstrumentHandlerDuration with a byte-counting writer
// (what the edge, front door and ingest used before).
func BenchmarkInstrumentHandler(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("x")) })
	r := httptest.NewRequest("GET", "/", nil)
	bytes := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_bytes_total", Help: "b"})
	run := func(b *testing.B, ih http.Handler) {
		w := &nopWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			ih.ServeHTTP(w, r)
		}
	}
	b.Run("promhttp", func(b *testing.B) {
		ph := promhttp.InstrumentHandlerDuration(newDurationVec(), h)
		run(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ph.ServeHTTP(&countingWriter{ResponseWriter: w, n: bytes}, r)
		}))
	})
	b.Run("telemetry", func(b *testing.B) { run(b, InstrumentHandler(h, newDurationVec(), bytes)) })
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(int)             {}
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// countingWriter is the byte-counting writer the benchmark's baseline
// wraps around promhttp's.
type countingWriter struct {
	http.ResponseWriter
	n prometheus.Counter
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(float64(n))
	return n, err
}

// fixedFast answers /ok with a 200 and /nm with a 304, and declines the
// rest.
type fixedFast struct{}

func (fixedFast) ServeFast(w *serve.FastResponse, r *serve.FastRequest) bool {
	switch r.Path {
	case "/ok":
		w.Head = append(w.Head, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"...)
		w.Body, w.Status = []byte("hello"), http.StatusOK
	case "/nm":
		w.Head = append(w.Head, "HTTP/1.1 304 Not Modified\r\n"...)
		w.Status = http.StatusNotModified
	default:
		return false
	}
	return true
}

// TestInstrumentFast: the answers of a fast path are observed in the
// same series as the handler's, under their status, with their body
// bytes; declined requests are observed once, by the handler.
func TestInstrumentFast(t *testing.T) {
	vec := newDurationVec()
	bytes := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_bytes_total", Help: "b"})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusNotFound) })
	s, err := serve.Listen(serve.Config{Name: "test", Addr: "127.0.0.1:0", Handler: InstrumentHandler(h, vec, bytes), Fast: InstrumentFast(fixedFast{}, vec, bytes)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{"/ok", "/ok", "/nm", "/other"} {
		resp, err := http.Get(s.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if a, b, c := sampleCount(t, vec, "200"), sampleCount(t, vec, "304"), sampleCount(t, vec, "404"); a != 2 || b != 1 || c != 1 {
		t.Errorf("observed 200: %d, 304: %d, 404: %d; want 2, 1, 1", a, b, c)
	}
	if got, want := testutil.ToFloat64(bytes), float64(2*len("hello")+len("nope\n")); got != want {
		t.Errorf("%v bytes counted, want %v", got, want)
	}
	if st := s.Stats(); st.Fast != 3 {
		t.Errorf("%d fast answers, want 3", st.Fast)
	}
}
