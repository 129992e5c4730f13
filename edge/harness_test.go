package edge

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/serve"
)

var quiet = slog.New(slog.DiscardHandler)

// clock is a settable time source shared by the edge and the test origin
// (which dates its responses with it).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second).Add(-time.Hour)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testOrigin is a real HTTP server standing for any origin: each test
// scripts its answers per path and counts the requests that reach it.
type testOrigin struct {
	srv   *httptest.Server
	clock *clock

	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	hits     map[string]int
	last     map[string]*http.Request
}

func newTestOrigin(t testing.TB, c *clock) *testOrigin {
	t.Helper()
	o := &testOrigin{clock: c, handlers: map[string]http.HandlerFunc{}, hits: map[string]int{}, last: map[string]*http.Request{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.hits[r.URL.Path]++
		o.last[r.URL.Path] = r.Clone(context.Background())
		h := o.handlers[r.URL.Path]
		o.mu.Unlock()
		if h == nil {
			http.Error(w, "no such test path", http.StatusNotFound)
			return
		}
		h(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// handle sets the handler for path.
func (o *testOrigin) handle(path string, h http.HandlerFunc) {
	o.mu.Lock()
	o.handlers[path] = h
	o.mu.Unlock()
}

// static answers path with status, header fields ("Name: value" lines)
// and body; Date is the test clock's unless given ("Date:" alone omits
// it). A request whose If-None-Match or If-Modified-Since matches gets a
// 304 with the same fields.
func (o *testOrigin) static(path string, status int, body string, fields ...string) {
	o.handle(path, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Date", o.clock.Now().Format(http.TimeFormat))
		for _, f := range fields {
			k, v, _ := strings.Cut(f, ":")
			v = strings.TrimSpace(v)
			if v == "" {
				h[k] = nil
				continue
			}
			h.Add(k, v)
		}
		if status == http.StatusOK && notModifiedAtOrigin(r, h) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

func notModifiedAtOrigin(r *http.Request, h http.Header) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return h.Get("Etag") != "" && weakEqual(inm, h.Get("Etag"))
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" && h.Get("Last-Modified") != "" {
		a, err1 := http.ParseTime(ims)
		b, err2 := http.ParseTime(h.Get("Last-Modified"))
		return err1 == nil && err2 == nil && !b.After(a)
	}
	return false
}

func (o *testOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[path]
}

func (o *testOrigin) lastRequest(path string) *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last[path]
}

// testEdge is an edge with a fake clock in front of origins, behind a
// real HTTP server: package serve's, with the edge's fast path on.
type testEdge struct {
	*Edge
	srv    *edgeServer
	client *http.Client // does not follow redirects
	clock  *clock
}

// newTestEdge starts an edge routing "/" to the origins.
func newTestEdge(t testing.TB, cfg Config, c *clock, origins ...*testOrigin) *testEdge {
	t.Helper()
	if cfg.Routes == nil {
		var urls []string
		for _, o := range origins {
			urls = append(urls, o.srv.URL)
		}
		cfg.Routes = []Route{{Prefix: "/", Origins: urls}}
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.now = c.Now
	srv := startEdgeServer(t, e, e)
	t.Cleanup(func() {
		srv.Close()
		_ = e.Close()
	})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &testEdge{Edge: e, srv: srv, clock: c, client: client}
}

// edgeServer is an edge served as `intercloud up` serves it, on a free
// loopback port.
type edgeServer struct {
	*serve.Server
	URL string
}

// startEdgeServer serves h (with fast, when not nil, as its fast path)
// with package serve's default limits.
func startEdgeServer(t testing.TB, h http.Handler, fast serve.FastHandler) *edgeServer {
	t.Helper()
	s, err := serve.Listen(serve.Config{Name: "edge", Addr: "127.0.0.1:0", Handler: h, Fast: fast, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &edgeServer{Server: s, URL: s.URL()}
}

// result is a response as a client saw it.
type result struct {
	status int
	header http.Header
	body   string
}

func (r result) cache() string { return r.header.Get("X-Cache") }

// do sends a request through the edge; fields are "Name: value" lines.
func (te *testEdge) do(t testing.TB, method, path, body string, fields ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, te.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := te.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

func (te *testEdge) get(t testing.TB, path string, fields ...string) result {
	t.Helper()
	return te.do(t, http.MethodGet, path, "", fields...)
}

// want checks a result's status, body and X-Cache.
func (r result) want(t testing.TB, status int, body, xcache string) {
	t.Helper()
	if r.status != status || (body != "*" && r.body != body) || (xcache != "" && r.cache() != xcache) {
		t.Fatalf("got %d %q X-Cache %q, want %d %q %q (header %v)", r.status, r.body, r.cache(), status, body, xcache, r.header)
	}
}

// errCode decodes the project's JSON error body.
func (r result) errCode(t testing.TB) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not a JSON error body: %d %q (%v)", r.status, r.body, err)
	}
	return e.Error.Code
}

// hits checks how many requests for path reached the origin.
func (o *testOrigin) want(t testing.TB, path string, n int) {
	t.Helper()
	if got := o.count(path); got != n {
		t.Fatalf("origin saw %d requests for %s, want %d", got, path, n)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
