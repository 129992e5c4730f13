package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/origin"
)

var quiet = slog.New(slog.DiscardHandler)

// clock is a settable time source for the edge.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

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

// originServer is the real origin over a real file bucket, behind a real
// HTTP server, with a request counter and an optional gate that holds each
// response (after the origin produced it) until released.
type originServer struct {
	srv    *httptest.Server
	bucket *objects.Bucket
	reqs   atomic.Int64
	inm    atomic.Int64 // requests carrying If-None-Match
	held   atomic.Int64 // responses produced and held at the gate

	mu   sync.Mutex
	gate chan struct{}
}

func newOrigin(t testing.TB) *originServer {
	t.Helper()
	b, err := objects.Open(context.Background(), "file://"+t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	o := &originServer{bucket: b}
	h := origin.New(origin.Config{Bucket: b, Prefix: "results/", Logger: quiet})
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.reqs.Add(1)
		if r.Header.Get("If-None-Match") != "" {
			o.inm.Add(1)
		}
		o.mu.Lock()
		gate := o.gate
		o.mu.Unlock()
		if gate == nil {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		o.held.Add(1)
		<-gate
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *originServer) put(t testing.TB, key, body string) {
	t.Helper()
	if err := o.bucket.Put(context.Background(), key, []byte(body), &objects.PutOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
}

// hold makes the origin hold its responses until the returned func runs.
func (o *originServer) hold() (release func()) {
	g := make(chan struct{})
	o.mu.Lock()
	o.gate = g
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		o.gate = nil
		o.mu.Unlock()
		close(g)
	}
}

func newEdge(t testing.TB, cfg Config, origins ...*originServer) (*Edge, *httptest.Server, *clock) {
	t.Helper()
	for _, o := range origins {
		cfg.Origins = append(cfg.Origins, o.srv.URL)
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.now = clk.Now
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv, clk
}

type result struct {
	status int
	body   string
	h      http.Header
}

func get(t testing.TB, url string, hdr ...string) result {
	t.Helper()
	return do(t, "GET", url, "", hdr...)
}

func do(t testing.TB, method, url, body string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, string(b), resp.Header}
}

func (r result) want(t testing.TB, status int, body, xcache string) {
	t.Helper()
	if r.status != status || (body != "" && r.body != body) || (xcache != "" && r.h.Get("X-Cache") != xcache) {
		t.Fatalf("got %d %q X-Cache=%q; want %d %q X-Cache=%q", r.status, r.body, r.h.Get("X-Cache"), status, body, xcache)
	}
}

func (r result) errCode(t testing.TB) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if r.h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(r.body), &e) != nil || e.Error.Code == "" {
		t.Fatalf("not a JSON error: %d %q %q", r.status, r.h.Get("Content-Type"), r.body)
	}
	return e.Error.Code
}

func TestMissThenHit(t *testing.T) {
	o := newOrigin(t)
	o.put(t, "results/summary.json", `{"n":1}`)
	e, srv, clk := newEdge(t, Config{TTL: 30 * time.Second}, o)

	r := get(t, srv.URL+"/results/summary.json")
	r.want(t, 200, `{"n":1}`, Miss)
	if r.h.Get("ETag") == "" || r.h.Get("Content-Type") != "application/json" || r.h.Get("Last-Modified") == "" {
		t.Fatalf("headers: %v", r.h)
	}
	if cc := r.h.Get("Cache-Control"); cc != "public, max-age=30" {
		t.Fatalf("Cache-Control = %q", cc)
	}
	clk.Add(10 * time.Second)
	r2 := get(t, srv.URL+"/results/summary.json?ignored=1")
	r2.want(t, 200, `{"n":1}`, Hit)
	if r2.h.Get("Age") != "10" || r2.h.Get("Cache-Control") != "public, max-age=20" || r2.h.Get("ETag") != r.h.Get("ETag") {
		t.Fatalf("hit headers: %v", r2.h)
	}
	r3 := do(t, "HEAD", srv.URL+"/results/summary.json", "")
	r3.want(t, 200, "", Hit)
	if r3.body != "" || r3.h.Get("Content-Length") != "7" {
		t.Fatalf("HEAD: %q %v", r3.body, r3.h)
	}
	if n := o.reqs.Load(); n != 1 {
		t.Fatalf("origin requests = %d, want 1", n)
	}
	s := e.Stats()
	if s.Hits != 2 || s.Misses != 1 || s.OriginRequests != 1 || s.Entries != 1 || s.Bytes <= 7 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestExpiryRevalidation(t *testing.T) {
	o := newOrigin(t)
	o.put(t, "results/a.json", `{"v":1}`)
	e, srv, clk := newEdge(t, Config{TTL: 10 * time.Second}, o)

	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":1}`, Miss)
	clk.Add(11 * time.Second)
	// Unchanged at the origin: a 304 refreshes the entry.
	r := get(t, srv.URL+"/results/a.json")
	r.want(t, 200, `{"v":1}`, Hit)
	if r.h.Get("Age") != "0" || r.h.Get("Cache-Control") != "public, max-age=10" {
		t.Fatalf("after revalidation: %v", r.h)
	}
	if o.reqs.Load() != 2 || o.inm.Load() != 1 || e.Stats().Revalidations != 1 {
		t.Fatalf("origin reqs %d, conditional %d, stats %+v", o.reqs.Load(), o.inm.Load(), e.Stats())
	}
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":1}`, Hit)
	if o.reqs.Load() != 2 {
		t.Fatalf("refreshed entry not used: origin reqs %d", o.reqs.Load())
	}
	// Changed at the origin: the new body replaces the entry once expired.
	o.put(t, "results/a.json", `{"v":222}`)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":1}`, Hit)
	clk.Add(11 * time.Second)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":222}`, Miss)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":222}`, Hit)
}

func TestOriginMaxAgeBoundsTTL(t *testing.T) {
	o := newOrigin(t) // the origin says max-age=60
	o.put(t, "results/a.json", `{}`)
	_, srv, clk := newEdge(t, Config{TTL: time.Hour}, o)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{}`, Miss)
	clk.Add(59 * time.Second)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{}`, Hit)
	clk.Add(2 * time.Second)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{}`, Hit) // revalidated
	if o.inm.Load() != 1 {
		t.Fatalf("conditional origin requests = %d, want 1", o.inm.Load())
	}
}

func TestFreshness(t *testing.T) {
	e := &Edge{ttl: 60 * time.Second}
	tests := []struct {
		cc    string
		fresh time.Duration
		store bool
	}{
		{"", 60 * time.Second, true},
		{"public, max-age=30", 30 * time.Second, true},
		{"max-age=600", 60 * time.Second, true},
		{"max-age=600, s-maxage=5", 5 * time.Second, true},
		{`max-age="20"`, 20 * time.Second, true},
		{"max-age=-1", 60 * time.Second, true},
		{"max-age=junk", 60 * time.Second, true},
		{"no-cache", 0, true},
		{"no-store", 0, false},
		{"Private, max-age=30", 0, false},
		{"public, max-age=0", 0, true},
	}
	for _, tc := range tests {
		fresh, store := e.freshness(tc.cc)
		if fresh != tc.fresh || store != tc.store {
			t.Errorf("freshness(%q) = %v %v, want %v %v", tc.cc, fresh, store, tc.fresh, tc.store)
		}
	}
}

func TestNegativeCache(t *testing.T) {
	o := newOrigin(t)
	_, srv, clk := newEdge(t, Config{TTL: time.Minute}, o)
	r := get(t, srv.URL+"/results/late.json")
	r.want(t, 404, "", Miss)
	if r.errCode(t) != "not_found" {
		t.Fatal(r.body)
	}
	o.put(t, "results/late.json", `{"late":true}`)
	r = get(t, srv.URL+"/results/late.json")
	r.want(t, 404, "", Hit)
	if r.h.Get("Cache-Control") != "public, max-age=5" || o.reqs.Load() != 1 {
		t.Fatalf("negative hit: %v, origin reqs %d", r.h, o.reqs.Load())
	}
	clk.Add(6 * time.Second)
	get(t, srv.URL+"/results/late.json").want(t, 200, `{"late":true}`, Miss)
}

func TestConditionalAndRange(t *testing.T) {
	o := newOrigin(t)
	o.put(t, "results/digits.json", `"0123456789"`)
	_, srv, _ := newEdge(t, Config{}, o)
	url := srv.URL + "/results/digits.json"
	get(t, url).want(t, 200, `"0123456789"`, Miss)
	for range 2 { // twice: served from the entry each time
		et := get(t, url).h.Get("ETag")
		r := get(t, url, "If-None-Match", et)
		r.want(t, 304, "", Hit)
		if r.body != "" || r.h.Get("ETag") != et {
			t.Fatalf("304: %q %v", r.body, r.h)
		}
		get(t, url, "If-None-Match", `"other"`).want(t, 200, `"0123456789"`, Hit)
		r = get(t, url, "Range", "bytes=3-6")
		r.want(t, 206, "2345", Hit)
		if r.h.Get("Content-Range") != "bytes 3-6/12" {
			t.Fatalf("Content-Range = %q", r.h.Get("Content-Range"))
		}
		r = get(t, url, "Range", "bytes=100-")
		r.want(t, 416, "", "")
		if r.errCode(t) != "range_not_satisfiable" || r.h.Get("Content-Range") != "bytes */12" {
			t.Fatalf("416: %q %v", r.body, r.h)
		}
	}
	// If-None-Match on the very first (missing) request also gets a 304.
	o.put(t, "results/other.json", `{}`)
	et := get(t, o.srv.URL+"/results/other.json").h.Get("ETag")
	get(t, srv.URL+"/results/other.json", "If-None-Match", et).want(t, 304, "", Miss)
}

func TestPurge(t *testing.T) {
	o := newOrigin(t)
	o.put(t, "results/summary.json", `{"v":1}`)
	o.put(t, "results/hourly/01.json", `{"h":1}`)
	o.put(t, "results/hourly/02.json", `{"h":2}`)
	o.put(t, "results/hourlyx.json", `{"x":1}`)
	e, srv, _ := newEdge(t, Config{PurgeKey: "k3y"}, o)
	paths := []string{"/results/summary.json", "/results/hourly/01.json", "/results/hourly/02.json", "/results/hourlyx.json"}
	for _, p := range paths {
		get(t, srv.URL+p).want(t, 200, "", Miss)
	}
	o.put(t, "results/summary.json", `{"v":2}`)
	o.put(t, "results/hourly/01.json", `{"h":11}`)
	o.put(t, "results/hourly/02.json", `{"h":22}`)
	get(t, srv.URL+"/results/summary.json").want(t, 200, `{"v":1}`, Hit)

	purge := func(body string, hdr ...string) result {
		return do(t, "POST", srv.URL+"/purge", body, hdr...)
	}
	auth := []string{"Authorization", "Bearer k3y", "Content-Type", "application/json"}

	// Refused purges change nothing.
	for _, tc := range []struct {
		name   string
		r      result
		status int
		code   string
	}{
		{"no key", purge(`{"paths":["/results/summary.json"]}`), 401, "unauthenticated"},
		{"wrong key", purge(`{"paths":["/results/summary.json"]}`, "Authorization", "Bearer nope"), 401, "unauthenticated"},
		{"bad json", purge(`{"paths":[`, auth...), 400, "malformed"},
		{"unknown field", purge(`{"path":["/results/summary.json"]}`, auth...), 400, "malformed"},
		{"no paths", purge(`{"paths":[]}`, auth...), 400, "malformed"},
		{"bad path", purge(`{"paths":["/results/../x"]}`, auth...), 400, "malformed"},
		{"relative path", purge(`{"paths":["results/summary.json"]}`, auth...), 400, "malformed"},
		{"inner star", purge(`{"paths":["/results/*/x*"]}`, auth...), 400, "malformed"},
		{"trailing data", purge(`{"paths":["/results/summary.json"]} {}`, auth...), 400, "malformed"},
		{"GET", do(t, "GET", srv.URL+"/purge", "", auth...), 405, "method_not_allowed"},
		{"DELETE", do(t, "DELETE", srv.URL+"/purge", "", auth...), 405, "method_not_allowed"},
	} {
		if tc.r.status != tc.status || tc.r.errCode(t) != tc.code {
			t.Fatalf("%s: %d %q", tc.name, tc.r.status, tc.r.body)
		}
	}
	if s := e.Stats(); s.Entries != 4 || s.Purges != 0 {
		t.Fatalf("refused purges changed the cache: %+v", s)
	}

	r := purge(`{"paths":["/results/summary.json"]}`, auth...)
	if r.status != 200 || strings.TrimSpace(r.body) != `{"purged":1}` {
		t.Fatalf("purge: %d %q", r.status, r.body)
	}
	get(t, srv.URL+"/results/summary.json").want(t, 200, `{"v":2}`, Miss)
	get(t, srv.URL+"/results/hourly/01.json").want(t, 200, `{"h":1}`, Hit)

	r = purge(`{"paths":["/results/hourly/*"]}`, auth...)
	if r.status != 200 || strings.TrimSpace(r.body) != `{"purged":2}` {
		t.Fatalf("prefix purge: %d %q", r.status, r.body)
	}
	get(t, srv.URL+"/results/hourly/01.json").want(t, 200, `{"h":11}`, Miss)
	get(t, srv.URL+"/results/hourly/02.json").want(t, 200, `{"h":22}`, Miss)
	get(t, srv.URL+"/results/hourlyx.json").want(t, 200, `{"x":1}`, Hit)

	if n := e.Purge("/*"); n != 4 {
		t.Fatalf("purge all = %d", n)
	}
	if s := e.Stats(); s.Entries != 0 || s.Bytes != 0 || s.Purges != 3 || s.Purged != 7 {
		t.Fatalf("stats after purge all: %+v", s)
	}
}

func TestPurgeDuringFetch(t *testing.T) {
	o := newOrigin(t)
	o.put(t, "results/a.json", `{"v":"old"}`)
	e, srv, _ := newEdge(t, Config{}, o)
	release := o.hold()
	done := make(chan result, 1)
	go func() { done <- get(t, srv.URL+"/results/a.json") }()
	// The origin has produced the old body and holds it; now the object
	// changes and the path is purged.
	waitFor(t, func() bool { return o.held.Load() == 1 })
	o.put(t, "results/a.json", `{"v":"new"}`)
	e.Purge("/results/a.json")
	release()
	(<-done).want(t, 200, `{"v":"old"}`, Miss) // its request began before the purge
	if s := e.Stats(); s.Entries != 0 {
		t.Fatalf("the in-flight fetch stored its pre-purge body: %+v", s)
	}
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":"new"}`, Miss)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":"new"}`, Hit)
}

func TestStaleIfError(t *testing.T) {
	o := newOrigin(t)
	o.put(t, "results/a.json", `{"v":1}`)
	e, srv, clk := newEdge(t, Config{TTL: 10 * time.Second, StaleIfError: time.Minute}, o)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":1}`, Miss)
	o.srv.Close() // the origin is gone

	// Still fresh: served as usual.
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":1}`, Hit)

	clk.Add(30 * time.Second)
	r := get(t, srv.URL+"/results/a.json")
	r.want(t, 200, `{"v":1}`, Stale)
	if r.h.Get("Warning") != `110 - "Response is Stale"` || r.h.Get("Cache-Control") != "public, max-age=0" || r.h.Get("Age") != "30" {
		t.Fatalf("stale headers: %v", r.h)
	}
	errs := e.Stats().OriginErrors
	// Right after a failure the origins are not retried for every request.
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":1}`, Stale)
	if e.Stats().OriginErrors != errs {
		t.Fatalf("origins retried at once: %+v", e.Stats())
	}
	clk.Add(10 * time.Second)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":1}`, Stale)
	if e.Stats().OriginErrors != errs+1 {
		t.Fatalf("origins not retried after the back-off: %+v", e.Stats())
	}

	// Past expiry + StaleIfError: an error, not the stale copy.
	clk.Add(time.Minute)
	r = get(t, srv.URL+"/results/a.json")
	if r.status != 503 || r.errCode(t) != "unavailable" || strings.Contains(r.body, `"v"`) {
		t.Fatalf("beyond stale-if-error: %d %q", r.status, r.body)
	}
	// A path never cached fails the same way.
	if r = get(t, srv.URL+"/results/never.json"); r.status != 503 {
		t.Fatalf("uncached with origin down: %d %q", r.status, r.body)
	}
	if s := e.Stats(); s.StaleServed != 3 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestStaleWhenOriginAnswers5xx(t *testing.T) {
	o := newOrigin(t)
	o.put(t, "results/a.json", `{"v":1}`)
	_, srv, clk := newEdge(t, Config{TTL: 10 * time.Second, StaleIfError: time.Minute}, o)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":1}`, Miss)
	o.bucket.Close() // the origin answers 503 from now on
	clk.Add(20 * time.Second)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"v":1}`, Stale)
	clk.Add(2 * time.Minute)
	r := get(t, srv.URL+"/results/a.json")
	if r.status != 502 || r.errCode(t) != "bad_gateway" {
		t.Fatalf("beyond stale-if-error with a 5xx origin: %d %q", r.status, r.body)
	}
}

func TestFailover(t *testing.T) {
	down := newOrigin(t)
	down.srv.Close() // connection refused
	broken := newOrigin(t)
	broken.bucket.Close() // answers 503
	replica := newOrigin(t)
	replica.put(t, "results/a.json", `{"from":"replica"}`)
	e, srv, _ := newEdge(t, Config{}, down, broken, replica)
	get(t, srv.URL+"/results/a.json").want(t, 200, `{"from":"replica"}`, Miss)
	if s := e.Stats(); s.OriginErrors != 2 || s.OriginRequests != 3 || broken.reqs.Load() != 1 || replica.reqs.Load() != 1 {
		t.Fatalf("stats %+v, broken %d, replica %d", s, broken.reqs.Load(), replica.reqs.Load())
	}
	// A 404 is an answer: it does not fail over.
	first := newOrigin(t)
	second := newOrigin(t)
	second.put(t, "results/b.json", `{}`)
	_, srv2, _ := newEdge(t, Config{}, first, second)
	get(t, srv2.URL+"/results/b.json").want(t, 404, "", Miss)
	if second.reqs.Load() != 0 {
		t.Fatal("a 404 failed over")
	}
}

func TestCoalescing(t *testing.T) {
	o := newOrigin(t)
	o.put(t, "results/a.json", `{"v":1}`)
	e, srv, _ := newEdge(t, Config{}, o)
	const n = 20
	release := o.hold()
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Go(func() { results[i] = get(t, srv.URL+"/results/a.json") })
	}
	waitFor(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		c := e.flights["/results/a.json"]
		return c != nil && c.joined == n-1
	})
	release()
	wg.Wait()
	for _, r := range results {
		r.want(t, 200, `{"v":1}`, Miss)
	}
	if got := o.reqs.Load(); got != 1 {
		t.Fatalf("origin requests = %d, want 1", got)
	}
}

func TestLRUBound(t *testing.T) {
	o := newOrigin(t)
	body := strings.Repeat("x", 1000)
	const per = int64(1000 + len("/results/0.json") + entryOverhead)
	e, srv, _ := newEdge(t, Config{MaxBytes: 3*per + 10}, o)
	for i := range 5 {
		o.put(t, fmt.Sprintf("results/%d.json", i), body)
	}
	for i := range 5 {
		get(t, srv.URL+fmt.Sprintf("/results/%d.json", i)).want(t, 200, body, Miss)
		if s := e.Stats(); s.Bytes > 3*per+10 {
			t.Fatalf("over the bound: %+v", s)
		}
	}
	if s := e.Stats(); s.Entries != 3 || s.Evictions != 2 || s.Bytes != 3*per {
		t.Fatalf("stats = %+v", s)
	}
	get(t, srv.URL+"/results/4.json").want(t, 200, body, Hit)
	get(t, srv.URL+"/results/2.json").want(t, 200, body, Hit)  // now most recent
	get(t, srv.URL+"/results/0.json").want(t, 200, body, Miss) // evicts 3
	get(t, srv.URL+"/results/2.json").want(t, 200, body, Hit)
	get(t, srv.URL+"/results/3.json").want(t, 200, body, Miss)

	// An object larger than the whole cache is refused, not stored.
	o.put(t, "results/huge.json", strings.Repeat("y", int(4*per)))
	r := get(t, srv.URL+"/results/huge.json")
	if r.status != 502 || r.errCode(t) != "bad_gateway" {
		t.Fatalf("huge: %d %q", r.status, r.body)
	}
}

func TestRequestErrors(t *testing.T) {
	o := newOrigin(t)
	o.put(t, "private.json", `{"private":1}`)
	_, srv, _ := newEdge(t, Config{}, o)
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/", 404, "not_found"},
		{"GET", "/private.json", 404, "not_found"},
		{"GET", "/results", 404, "not_found"},
		{"GET", "/results/", 400, "malformed"},
		{"GET", "/results//a.json", 400, "malformed"},
		{"GET", "/results/../private.json", 400, "malformed"},
		{"GET", "/results/%2e%2e/private.json", 400, "malformed"},
		{"GET", "/results/./a.json", 400, "malformed"},
		{"GET", "/results/a%00.json", 400, "malformed"},
		{"GET", "/results/%ff.json", 400, "malformed"},
		{"GET", "/results/" + strings.Repeat("a", MaxPathLen), 400, "malformed"},
		{"POST", "/results/a.json", 405, "method_not_allowed"},
		{"PUT", "/results/a.json", 405, "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := do(t, tc.method, srv.URL+tc.path, "")
			if r.status != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("got %d %q; want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	if o.reqs.Load() != 0 {
		t.Fatalf("bad requests reached the origin: %d", o.reqs.Load())
	}
}

func TestNewConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{Origins: []string{"http://127.0.0.1:1"}}, true},
		{"no origins", Config{}, false},
		{"bad scheme", Config{Origins: []string{"ftp://x"}}, false},
		{"no host", Config{Origins: []string{"http://"}}, false},
		{"negative ttl", Config{Origins: []string{"http://x"}, TTL: -1}, false},
	} {
		e, err := New(tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if err == nil && (e.ttl != DefaultTTL || e.stale != DefaultStaleIfError || e.maxBytes != DefaultMaxBytes) {
			t.Errorf("%s: defaults not applied", tc.name)
		}
	}
	_, err := New(Config{Origins: []string{"ftp://u:hunter2@x/?sig=secret"}})
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("credentials in error: %v", err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
