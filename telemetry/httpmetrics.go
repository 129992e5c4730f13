package telemetry

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/intercloud/intercloud/internal/serve"
	"github.com/prometheus/client_golang/prometheus"
)

// InstrumentHandler observes the latency of every request h serves in
// duration, labelled by status code ("code", as
// promhttp.InstrumentHandlerDuration does), and, when bytes is not nil,
// counts the body bytes h writes. The series of a status code is resolved
// on its first request and kept, so a request costs one small allocation
// and no label hashing. The writer h gets passes Flush and ReadFrom
// (sendfile) through and unwraps for http.ResponseController.
func InstrumentHandler(h http.Handler, duration *prometheus.HistogramVec, bytes prometheus.Counter) http.Handler {
	obs := &codeObservers{vec: duration}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		mw := &metricsWriter{ResponseWriter: w, bytes: bytes}
		h.ServeHTTP(mw, r)
		obs.get(mw.status).Observe(time.Since(start).Seconds())
	})
}

// InstrumentFast observes the answers of a server's fast path (see
// serve.FastHandler) in the same duration and bytes series as
// InstrumentHandler: the time ServeFast took and the body bytes it
// answered with.
func InstrumentFast(f serve.FastHandler, duration *prometheus.HistogramVec, bytes prometheus.Counter) serve.FastHandler {
	return &fastMetrics{f: f, obs: &codeObservers{vec: duration}, bytes: bytes}
}

type fastMetrics struct {
	f     serve.FastHandler
	obs   *codeObservers
	bytes prometheus.Counter
}

func (m *fastMetrics) ServeFast(w *serve.FastResponse, r *serve.FastRequest) bool {
	start := time.Now()
	if !m.f.ServeFast(w, r) {
		return false
	}
	m.obs.get(w.Status).Observe(time.Since(start).Seconds())
	if m.bytes != nil && len(w.Body) > 0 {
		m.bytes.Add(float64(len(w.Body)))
	}
	return true
}

// codeObservers are the series of a histogram by status code.
type codeObservers struct {
	vec    *prometheus.HistogramVec
	byCode [600]atomic.Pointer[observer]
}

type observer struct{ prometheus.Observer }

// get returns the series of a status code; 0 (nothing written) counts as
// 200, as net/http answers then.
func (c *codeObservers) get(code int) prometheus.Observer {
	if code == 0 {
		code = http.StatusOK
	}
	if code < 0 || code >= len(c.byCode) {
		return c.vec.WithLabelValues(strconv.Itoa(code))
	}
	if o := c.byCode[code].Load(); o != nil {
		return o.Observer
	}
	o := &observer{c.vec.WithLabelValues(strconv.Itoa(code))}
	c.byCode[code].Store(o)
	return o.Observer
}

// metricsWriter records the final status code and counts body bytes.
type metricsWriter struct {
	http.ResponseWriter
	bytes  prometheus.Counter
	status int
}

func (w *metricsWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// body notes that a body is written: without a final status so far, the
// response is a 200.
func (w *metricsWriter) body() {
	if w.status < http.StatusOK {
		w.status = http.StatusOK
	}
}

func (w *metricsWriter) count(n int64) {
	if w.bytes != nil && n > 0 {
		w.bytes.Add(float64(n))
	}
}

func (w *metricsWriter) Write(p []byte) (int, error) {
	w.body()
	n, err := w.ResponseWriter.Write(p)
	w.count(int64(n))
	return n, err
}

// ReadFrom lets net/http send a file with sendfile(2).
func (w *metricsWriter) ReadFrom(r io.Reader) (int64, error) {
	w.body()
	n, err := io.Copy(w.ResponseWriter, r)
	w.count(n)
	return n, err
}

// Flush sends what is buffered, when the underlying writer can.
func (w *metricsWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		w.body()
		f.Flush()
	}
}

// Unwrap is for http.ResponseController.
func (w *metricsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
