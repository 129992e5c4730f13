package frontdoor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/intercloud/intercloud/apierr"
)

// seen is one request as a backend received it.
type seen struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// cloud is a real HTTP server standing in for one cloud's API. It records
// every /v1 request that arrived whole (a body cut short is no request, as
// for the ingest API) and answers with its handler (default: 202 JSON).
type cloud struct {
	name    string
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []seen
	handler atomic.Pointer[http.HandlerFunc]
	// sick makes /healthz answer 503, degraded a 200 saying "degraded".
	sick, degraded atomic.Bool
}

func newCloud(t testing.TB, name string) *cloud {
	t.Helper()
	c := &cloud{name: name}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if c.sick.Load() {
				http.Error(w, "sick", http.StatusServiceUnavailable)
				return
			}
			if c.degraded.Load() {
				_, _ = io.WriteString(w, `{"cloud":"`+name+`","status":"degraded","problems":["database unreachable"]}`)
				return
			}
			_, _ = io.WriteString(w, "ok")
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		c.mu.Unlock()
		if h := c.handler.Load(); h != nil {
			(*h)(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Cloud", name)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"cloud":%q,"bytes":%d}`, name, len(body))
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *cloud) handle(h http.HandlerFunc) { c.handler.Store(&h) }

func (c *cloud) requests() []seen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]seen(nil), c.reqs...)
}

// closedURL returns the URL of a port on which nothing listens.
func closedURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	_ = l.Close()
	return u
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// start returns a FrontDoor over backends and a real server in front of it.
func start(t testing.TB, cfg Config, backends ...Backend) (*FrontDoor, *httptest.Server) {
	t.Helper()
	cfg.Backends = backends
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func post(t testing.TB, url string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return b
}

func statusOf(t testing.TB, f *FrontDoor, name string) BackendStatus {
	t.Helper()
	for _, s := range f.Status() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no backend %q in status", name)
	return BackendStatus{}
}

func TestRoutesToPriorityBackend(t *testing.T) {
	aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
	f, fd := start(t, Config{}, Backend{Name: "aws", URL: aws.srv.URL}, Backend{Name: "azure", URL: azure.srv.URL})

	for i := range 3 {
		body := []byte(fmt.Sprintf(`{"n":%d}`, i))
		resp := post(t, fd.URL+"/v1/records?mode=x&n=1", body, map[string]string{"Content-Type": "application/json"})
		got := readAll(t, resp)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
		if s := resp.Header.Get(HeaderServedBy); s != "aws" {
			t.Errorf("X-Served-By = %q, want aws", s)
		}
		if resp.Header.Get("X-Cloud") != "aws" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("backend headers not passed through: %v", resp.Header)
		}
		if want := fmt.Sprintf(`{"cloud":"aws","bytes":%d}`, len(body)); string(got) != want {
			t.Errorf("body = %s, want %s", got, want)
		}
	}
	reqs := aws.requests()
	if len(reqs) != 3 || len(azure.requests()) != 0 {
		t.Fatalf("aws got %d, azure got %d requests; want 3, 0", len(reqs), len(azure.requests()))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/v1/records" || r.Query != "mode=x&n=1" ||
		string(r.Body) != `{"n":0}` || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("backend saw %+v", r)
	}
	if got := statusOf(t, f, "aws").Requests; got != 3 {
		t.Errorf("aws Requests = %d, want 3", got)
	}
}

func TestBackendBasePath(t *testing.T) {
	aws := newCloud(t, "aws")
	_, fd := start(t, Config{}, Backend{Name: "aws", URL: aws.srv.URL + "/api/"})
	readAll(t, post(t, fd.URL+"/v1/records", []byte("x"), nil))
	if r := aws.requests(); len(r) != 1 || r[0].Path != "/api/v1/records" {
		t.Fatalf("backend saw %+v, want path /api/v1/records", r)
	}
}

// resetAfterBody reads the whole request and then resets the connection
// without answering.
func resetAfterBody(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func TestFailover(t *testing.T) {
	body := bytes.Repeat([]byte(`{"id":"r1","v":1.5}`+"\n"), 5000) // ~100 KB
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", code) }
	}
	tests := []struct {
		name    string
		primary http.HandlerFunc // nil: primary is not listening
		reached bool             // the primary saw the request
		reason  string
	}{
		{"connection refused", nil, false, "connection refused"},
		{"connection reset", resetAfterBody, true, "connection reset"},
		{"502", status(http.StatusBadGateway), true, "status 502"},
		{"503", status(http.StatusServiceUnavailable), true, "status 503"},
		{"504", status(http.StatusGatewayTimeout), true, "status 504"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, true, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
			awsURL := aws.srv.URL
			if tt.primary == nil {
				awsURL = closedURL(t)
			} else {
				aws.handle(tt.primary)
			}
			f, fd := start(t, Config{Timeout: 300 * time.Millisecond},
				Backend{Name: "aws", URL: awsURL}, Backend{Name: "azure", URL: azure.srv.URL})

			resp := post(t, fd.URL+"/v1/records", body, map[string]string{"Content-Type": "application/x-ndjson"})
			got := readAll(t, resp)
			if resp.StatusCode != http.StatusAccepted || resp.Header.Get(HeaderServedBy) != "azure" {
				t.Fatalf("status %d served by %q: %s", resp.StatusCode, resp.Header.Get(HeaderServedBy), got)
			}
			az := azure.requests()
			if len(az) != 1 {
				t.Fatalf("azure got %d requests, want 1", len(az))
			}
			if !bytes.Equal(az[0].Body, body) {
				t.Errorf("azure got a body of %d bytes, want the %d sent", len(az[0].Body), len(body))
			}
			key := az[0].Header.Get(HeaderIdempotencyKey)
			tp := az[0].Header.Get(HeaderTraceparent)
			if key == "" || tp == "" {
				t.Fatalf("azure got no Idempotency-Key/traceparent: %v", az[0].Header)
			}
			prim := aws.requests()
			if tt.reached != (len(prim) > 0) {
				t.Fatalf("primary saw %d requests, reached = %v", len(prim), tt.reached)
			}
			for _, p := range prim {
				if p.Header.Get(HeaderIdempotencyKey) != key || p.Header.Get(HeaderTraceparent) != tp {
					t.Errorf("primary saw key %q traceparent %q, secondary %q %q",
						p.Header.Get(HeaderIdempotencyKey), p.Header.Get(HeaderTraceparent), key, tp)
				}
				if !bytes.Equal(p.Body, body) {
					t.Errorf("primary got a body of %d bytes, want %d", len(p.Body), len(body))
				}
			}
			st := statusOf(t, f, "aws")
			if st.Healthy || st.Failures != 1 || !strings.Contains(st.LastError, tt.reason) {
				t.Errorf("aws status after failure = %+v, want unhealthy with 1 failure and %q", st, tt.reason)
			}

			// The next request goes straight to azure.
			readAll(t, post(t, fd.URL+"/v1/records", []byte("{}"), nil))
			if n := len(aws.requests()); n != len(prim) {
				t.Errorf("unhealthy primary got %d more requests", n-len(prim))
			}
			if n := len(azure.requests()); n != 2 {
				t.Errorf("azure got %d requests, want 2", n)
			}
		})
	}
}

// TestAnswersPassedThroughNotRetried: answers about the request, and a 503
// with Retry-After (back-pressure), are the client's to see; they are not
// retried on another cloud and the backend stays healthy.
func TestAnswersPassedThroughNotRetried(t *testing.T) {
	for _, code := range []int{http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound,
		http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
			aws.handle(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				apierr.Write(w, apierr.New(code, "code_x", "answer %d", code))
			})
			f, fd := start(t, Config{}, Backend{Name: "aws", URL: aws.srv.URL}, Backend{Name: "azure", URL: azure.srv.URL})
			resp := post(t, fd.URL+"/v1/records", []byte(`{"bad":true}`), nil)
			got := readAll(t, resp)
			if resp.StatusCode != code || resp.Header.Get(HeaderServedBy) != "aws" || resp.Header.Get("Retry-After") != "7" {
				t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
			}
			want := fmt.Sprintf(`{"error":{"code":"code_x","message":"answer %d"}}`+"\n", code)
			if string(got) != want {
				t.Errorf("body = %q, want %q", got, want)
			}
			if n := len(azure.requests()); n != 0 {
				t.Errorf("azure got %d requests, want none", n)
			}
			if st := statusOf(t, f, "aws"); !st.Healthy || st.Failures != 0 {
				t.Errorf("aws status = %+v, want healthy", st)
			}
		})
	}
}

func TestNoHealthyCloud(t *testing.T) {
	azure := newCloud(t, "azure")
	azure.handle(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusServiceUnavailable) })
	f, fd := start(t, Config{}, Backend{Name: "aws", URL: closedURL(t)}, Backend{Name: "azure", URL: azure.srv.URL})

	for round := range 2 { // the second round runs with both already unhealthy (fail open)
		resp := post(t, fd.URL+"/v1/records", []byte(`{}`), nil)
		e := apierr.Read(resp)
		_ = resp.Body.Close()
		if e == nil || e.Status != http.StatusServiceUnavailable || e.Code != CodeNoHealthyCloud {
			t.Fatalf("round %d: got %+v, want 503 %s", round, e, CodeNoHealthyCloud)
		}
		if !strings.Contains(e.Message, "aws (connection refused)") || !strings.Contains(e.Message, "azure (status 503)") {
			t.Errorf("message %q does not name what was tried", e.Message)
		}
		if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("headers %v", resp.Header)
		}
		for _, s := range f.Status() {
			if s.Healthy {
				t.Errorf("%s still healthy", s.Name)
			}
		}
	}
	if n := len(azure.requests()); n != 2 {
		t.Errorf("azure got %d requests, want 2", n)
	}

	// The front door's own health follows.
	resp, err := http.Get(fd.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var body statusBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || body.Healthy || len(body.Backends) != 2 {
		t.Errorf("/healthz = %d %+v", resp.StatusCode, body)
	}
}

func TestHealthHysteresis(t *testing.T) {
	aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
	f, _ := start(t, Config{FailAfter: 3, RiseAfter: 2, HealthTimeout: time.Second},
		Backend{Name: "aws", URL: aws.srv.URL}, Backend{Name: "azure", URL: azure.srv.URL})
	ctx := context.Background()
	healthy := func() bool { return statusOf(t, f, "aws").Healthy }

	if s := statusOf(t, f, "aws"); !s.Healthy || s.Checked {
		t.Fatalf("before any check: %+v, want healthy and unchecked", s)
	}
	f.checkAll(ctx)
	if s := statusOf(t, f, "aws"); !s.Healthy || !s.Checked || s.LastCheck.IsZero() {
		t.Fatalf("after a good check: %+v", s)
	}
	aws.sick.Store(true)
	for i := 1; i <= 3; i++ {
		f.checkAll(ctx)
		if want := i < 3; healthy() != want {
			t.Fatalf("after %d failed checks healthy = %v, want %v", i, healthy(), want)
		}
	}
	if s := statusOf(t, f, "aws"); !strings.Contains(s.LastError, "status 503") {
		t.Errorf("LastError = %q", s.LastError)
	}
	aws.sick.Store(false)
	for i := 1; i <= 2; i++ {
		f.checkAll(ctx)
		if want := i >= 2; healthy() != want {
			t.Fatalf("after %d good checks healthy = %v, want %v", i, healthy(), want)
		}
	}
	if s := statusOf(t, f, "aws"); s.LastError != "" {
		t.Errorf("LastError after recovery = %q", s.LastError)
	}
	// A failure streak broken by a good check starts over.
	aws.sick.Store(true)
	f.checkAll(ctx)
	f.checkAll(ctx)
	aws.sick.Store(false)
	f.checkAll(ctx)
	aws.sick.Store(true)
	f.checkAll(ctx)
	f.checkAll(ctx)
	if !healthy() {
		t.Error("interrupted failure streak marked the backend down")
	}
	if !statusOf(t, f, "azure").Healthy {
		t.Error("azure went down")
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunHealthChecks(t *testing.T) {
	aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
	f, fd := start(t, Config{HealthInterval: 10 * time.Millisecond, HealthTimeout: time.Second},
		Backend{Name: "aws", URL: aws.srv.URL}, Backend{Name: "azure", URL: azure.srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	waitFor(t, "first check", func() bool { return statusOf(t, f, "aws").Checked })
	if err := f.Run(ctx); err == nil {
		t.Error("a second concurrent Run did not fail")
	}
	aws.sick.Store(true)
	waitFor(t, "aws down", func() bool { return !statusOf(t, f, "aws").Healthy })
	resp := post(t, fd.URL+"/v1/records", []byte(`{}`), nil)
	readAll(t, resp)
	if by := resp.Header.Get(HeaderServedBy); by != "azure" {
		t.Errorf("served by %q while aws is down, want azure", by)
	}
	aws.sick.Store(false)
	waitFor(t, "aws up", func() bool { return statusOf(t, f, "aws").Healthy })
	resp = post(t, fd.URL+"/v1/records", []byte(`{}`), nil)
	readAll(t, resp)
	if by := resp.Header.Get(HeaderServedBy); by != "aws" {
		t.Errorf("served by %q after aws recovered, want aws", by)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunReturnsWhileCheckHangs(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hang:
		}
	}))
	defer slow.Close()
	defer close(hang)
	f, _ := start(t, Config{HealthTimeout: time.Minute}, Backend{Name: "aws", URL: slow.URL})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return while a check hung")
	}
	if s := statusOf(t, f, "aws"); s.Checked {
		t.Errorf("a check cut short by shutdown was recorded: %+v", s)
	}
}

func TestGeneratedHeaders(t *testing.T) {
	const givenTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name    string
		hdr     map[string]string
		wantKey string // "" means a generated UUIDv7
		wantTP  string // "" means a generated traceparent
		wantTS  string
	}{
		{"none given", nil, "", "", ""},
		{"both given", map[string]string{HeaderIdempotencyKey: "client-key-1", HeaderTraceparent: givenTP, HeaderTracestate: "a=b"},
			"client-key-1", givenTP, "a=b"},
		{"future version kept", map[string]string{HeaderTraceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab"},
			"", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab", ""},
		{"invalid traceparent replaced", map[string]string{HeaderTraceparent: "00-XYZ-1", HeaderTracestate: "a=b"}, "", "", ""},
		{"zero trace id replaced", map[string]string{HeaderTraceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aws := newCloud(t, "aws")
			_, fd := start(t, Config{}, Backend{Name: "aws", URL: aws.srv.URL})
			readAll(t, post(t, fd.URL+"/v1/records", []byte(`{}`), tt.hdr))
			readAll(t, post(t, fd.URL+"/v1/records", []byte(`{}`), tt.hdr))
			reqs := aws.requests()
			h := reqs[0].Header
			key, tp := h.Get(HeaderIdempotencyKey), h.Get(HeaderTraceparent)
			if tt.wantKey != "" {
				if key != tt.wantKey {
					t.Errorf("Idempotency-Key = %q, want %q", key, tt.wantKey)
				}
			} else {
				u, err := uuid.Parse(key)
				if err != nil || u.Version() != 7 {
					t.Errorf("Idempotency-Key = %q, want a UUIDv7 (%v)", key, err)
				}
				if other := reqs[1].Header.Get(HeaderIdempotencyKey); other == key {
					t.Errorf("two requests got the same generated key %q", key)
				}
			}
			if tt.wantTP != "" {
				if tp != tt.wantTP {
					t.Errorf("traceparent = %q, want %q", tp, tt.wantTP)
				}
			} else {
				if !validTraceparent(tp) || !strings.HasPrefix(tp, "00-") {
					t.Errorf("traceparent = %q, want a fresh valid one", tp)
				}
				if other := reqs[1].Header.Get(HeaderTraceparent); traceIDOf(other) == traceIDOf(tp) {
					t.Errorf("two requests got the same trace id %q", traceIDOf(tp))
				}
			}
			if ts := h.Get(HeaderTracestate); ts != tt.wantTS {
				t.Errorf("tracestate = %q, want %q", ts, tt.wantTS)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 1000
	tests := []struct {
		name    string
		size    int
		chunked bool
		want    int
	}{
		{"at limit", limit, false, http.StatusAccepted},
		{"over limit", limit + 1, false, http.StatusRequestEntityTooLarge},
		{"chunked at limit", limit, true, http.StatusAccepted},
		{"chunked over limit", limit * 3, true, http.StatusRequestEntityTooLarge},
		{"empty", 0, false, http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aws := newCloud(t, "aws")
			_, fd := start(t, Config{MaxBodyBytes: limit}, Backend{Name: "aws", URL: aws.srv.URL})
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("a"), tt.size))
			if tt.chunked {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, fd.URL+"/v1/records", body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusRequestEntityTooLarge {
				e := apierr.Read(resp)
				if e.Code != apierr.CodeTooLarge {
					t.Errorf("error %+v", e)
				}
				if n := len(aws.requests()); n != 0 {
					t.Errorf("backend got %d requests", n)
				}
				return
			}
			readAll(t, resp)
			if r := aws.requests(); len(r) != 1 || len(r[0].Body) != tt.size {
				t.Errorf("backend got %+v", r)
			}
		})
	}
}

func TestHopByHopHeaders(t *testing.T) {
	aws := newCloud(t, "aws")
	aws.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Resp-Private")
		w.Header().Set("X-Resp-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Resp-Public", "yes")
		w.WriteHeader(http.StatusOK)
	})
	_, fd := start(t, Config{}, Backend{Name: "aws", URL: aws.srv.URL})
	resp := post(t, fd.URL+"/v1/records", []byte(`{}`), map[string]string{
		"Connection":          "keep-alive, X-Private",
		"X-Private":           "hop",
		"Keep-Alive":          "timeout=5",
		"Proxy-Authorization": "Basic Zm9vOmJhcg==",
		"Proxy-Connection":    "keep-alive",
		"Te":                  "trailers",
		"Upgrade":             "websocket",
		"X-Public":            "end-to-end",
		"Authorization":       "Bearer token-1",
		"X-Forwarded-For":     "203.0.113.9",
	})
	readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := aws.requests()[0].Header
	for _, name := range []string{"Connection", "X-Private", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Upgrade"} {
		if v, ok := h[name]; ok {
			t.Errorf("backend got hop-by-hop %s: %q", name, v)
		}
	}
	if h.Get("X-Public") != "end-to-end" || h.Get("Authorization") != "Bearer token-1" {
		t.Errorf("end-to-end headers lost: %v", h)
	}
	if got := h.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") == "" {
		t.Errorf("X-Forwarded-Proto/Host = %q/%q", h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
	}
	if ua := h.Get("User-Agent"); ua != "Go-http-client/1.1" {
		t.Errorf("User-Agent = %q, want the client's", ua)
	}
	if resp.Header.Get("X-Resp-Private") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("client got hop-by-hop answer headers: %v", resp.Header)
	}
	if resp.Header.Get("X-Resp-Public") != "yes" {
		t.Errorf("client lost end-to-end answer headers: %v", resp.Header)
	}
}

func TestStreamsAnswer(t *testing.T) {
	release := make(chan struct{})
	aws := newCloud(t, "aws")
	aws.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		<-release
		_, _ = io.WriteString(w, "second\n")
	})
	_, fd := start(t, Config{}, Backend{Name: "aws", URL: aws.srv.URL})
	resp, err := http.Get(fd.URL + "/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("first chunk %q, %v", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestTruncatedAnswerAborts(t *testing.T) {
	aws := newCloud(t, "aws")
	aws.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "only ten b")
		http.NewResponseController(w).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		_ = conn.Close()
	})
	_, fd := start(t, Config{}, Backend{Name: "aws", URL: aws.srv.URL})
	// The client must see an error: either before the status (nothing was
	// flushed yet) or while reading the body.
	resp, err := http.Get(fd.URL + "/v1/x")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("a cut-off answer reached the client as if whole")
	}
}

func TestOwnEndpoints(t *testing.T) {
	aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
	f, fd := start(t, Config{}, Backend{Name: "aws", URL: aws.srv.URL}, Backend{Name: "azure", URL: azure.srv.URL})
	get := func(method, path string) (int, statusBody, *apierr.Error) {
		req, _ := http.NewRequest(method, fd.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 400 && resp.StatusCode != http.StatusServiceUnavailable {
			return resp.StatusCode, statusBody{}, apierr.Read(resp)
		}
		var b statusBody
		if method != http.MethodHead {
			if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
		}
		return resp.StatusCode, b, nil
	}
	code, b, _ := get("GET", "/healthz")
	if code != 200 || !b.Healthy || len(b.Backends) != 2 || b.Backends[0].Name != "aws" || b.Backends[1].URL != azure.srv.URL {
		t.Errorf("/healthz = %d %+v", code, b)
	}
	if err := f.SetHealthy("aws", false); err != nil {
		t.Fatal(err)
	}
	if err := f.SetHealthy("gcp", false); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("SetHealthy(unknown) = %v", err)
	}
	code, b, _ = get("GET", "/healthz")
	if code != 200 || b.Backends[0].Healthy || !b.Backends[1].Healthy {
		t.Errorf("/healthz with aws down = %d %+v", code, b)
	}
	_ = f.SetHealthy("azure", false)
	if code, b, _ = get("GET", "/healthz"); code != 503 || b.Healthy {
		t.Errorf("/healthz with all down = %d %+v", code, b)
	}
	if code, b, _ = get("GET", "/v1/status"); code != 200 || b.Healthy || len(b.Backends) != 2 {
		t.Errorf("/v1/status = %d %+v", code, b)
	}
	if code, _, _ = get("HEAD", "/healthz"); code != 503 {
		t.Errorf("HEAD /healthz = %d", code)
	}
	if code, _, e := get("POST", "/healthz"); code != 405 || e.Code != apierr.CodeMethod {
		t.Errorf("POST /healthz = %d %+v", code, e)
	}
	if code, _, e := get("GET", "/other"); code != 404 || e.Code != apierr.CodeNotFound {
		t.Errorf("GET /other = %d %+v", code, e)
	}
	if code, _, e := get("GET", "/v1/%2e%2e/admin"); code != 400 || e.Code != apierr.CodeMalformed {
		t.Errorf("GET /v1/%%2e%%2e/admin = %d %+v", code, e)
	}
	if len(aws.requests())+len(azure.requests()) != 0 {
		t.Error("own endpoints reached a backend")
	}
}

func TestNewValidates(t *testing.T) {
	ok := []Backend{{Name: "aws", URL: "http://127.0.0.1:1"}}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no backends", Config{}, "at least one backend"},
		{"no name", Config{Backends: []Backend{{Name: "", URL: "http://a"}}}, "name is required"},
		{"duplicate", Config{Backends: []Backend{{Name: "a", URL: "http://a"}, {Name: "a", URL: "http://b"}}}, `duplicate name "a"`},
		{"bad scheme", Config{Backends: []Backend{{Name: "a", URL: "ftp://a"}}}, "want http(s)"},
		{"no host", Config{Backends: []Backend{{Name: "a", URL: "http://"}}}, "want http(s)"},
		{"query", Config{Backends: []Backend{{Name: "a", URL: "http://a/?x=1"}}}, "query"},
		{"credentials redacted", Config{Backends: []Backend{{Name: "a", URL: "ftp://u:hunter2@a"}}}, "xxxxx"},
		{"negative", Config{Backends: ok, Timeout: -1}, "negative"},
		{"relative health path", Config{Backends: ok, HealthPath: "healthz"}, "must start with /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a password: %v", err)
			}
		})
	}
	f, err := New(Config{Backends: ok})
	if err != nil {
		t.Fatal(err)
	}
	c := f.cfg
	if c.HealthInterval != time.Second || c.HealthPath != "/healthz" || c.FailAfter != 2 || c.RiseAfter != 2 ||
		c.Timeout != 30*time.Second || c.MaxBodyBytes != 8<<20 || c.HealthTimeout != time.Second {
		t.Errorf("defaults not applied: %+v", c)
	}
}

// TestConcurrent runs requests while health flips, for the race detector.
func TestConcurrent(t *testing.T) {
	aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
	f, fd := start(t, Config{HealthInterval: 5 * time.Millisecond, FailAfter: 1, RiseAfter: 1, HealthTimeout: time.Second},
		Backend{Name: "aws", URL: aws.srv.URL}, Backend{Name: "azure", URL: azure.srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { _ = f.Run(ctx); close(runDone) }()
	defer func() { cancel(); <-runDone }()

	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				if g == 0 {
					aws.sick.Store(i%2 == 0)
					_ = f.SetHealthy("azure", true)
				}
				resp := post(t, fd.URL+"/v1/records", []byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)), nil)
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
				}
				_ = f.Status()
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed", n)
	}
	// A request sent to a backend the checks then declare down is left
	// to finish there: no request reaches both.
	if n := len(aws.requests()) + len(azure.requests()); n != 200 {
		t.Errorf("backends got %d requests, want 200", n)
	}
}

func TestValidTraceparent(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false}, // uppercase
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false}, // forbidden version
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", false}, // v00 has no extra fields
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01ab", false},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x y", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", false},
		{"", false},
		{"00-4bf9", false},
	}
	for _, tt := range tests {
		if got := validTraceparent(tt.in); got != tt.want {
			t.Errorf("validTraceparent(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for range 100 {
		if tp := newTraceparent(); !validTraceparent(tp) {
			t.Fatalf("newTraceparent() = %q is not valid", tp)
		}
	}
}

func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"", "00-", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validTraceparent(s) {
			return
		}
		// Anything accepted is passed on as is, so it must be plain
		// lowercase hex fields a downstream parser reads the same way.
		if len(s) < 55 || s[:2] == "ff" || strings.ToLower(s[:55]) != s[:55] {
			t.Fatalf("accepted %q", s)
		}
		id := traceIDOf(s)
		if len(id) != 32 || id == strings.Repeat("0", 32) || !lowerHex(id) {
			t.Fatalf("accepted %q with trace id %q", s, id)
		}
		if strings.Trim(s, "0123456789abcdef-") != "" {
			t.Fatalf("accepted a header-breaking value %q", s)
		}
	})
}

// TestDegradedIsAvoided: a backend whose health says "degraded" gets
// requests only while no other healthy backend is not degraded.
func TestDegradedIsAvoided(t *testing.T) {
	aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
	f, fd := start(t, Config{HealthInterval: 10 * time.Millisecond, HealthTimeout: time.Second},
		Backend{Name: "aws", URL: aws.srv.URL}, Backend{Name: "azure", URL: azure.srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Run(ctx) }()
	servedBy := func() string {
		resp := post(t, fd.URL+"/v1/records", []byte(`{}`), nil)
		readAll(t, resp)
		return resp.Header.Get(HeaderServedBy)
	}
	waitFor(t, "first check", func() bool { return statusOf(t, f, "aws").Checked })
	if by := servedBy(); by != "aws" {
		t.Fatalf("served by %q, want aws (priority)", by)
	}
	aws.degraded.Store(true)
	waitFor(t, "aws degraded", func() bool { return statusOf(t, f, "aws").Degraded })
	if st := statusOf(t, f, "aws"); !st.Healthy || len(st.Problems) != 1 || st.Problems[0] != "database unreachable" {
		t.Fatalf("aws status %+v", st)
	}
	if by := servedBy(); by != "azure" {
		t.Fatalf("served by %q while aws is degraded, want azure", by)
	}
	// Both degraded: priority again, nothing refused.
	azure.degraded.Store(true)
	waitFor(t, "azure degraded", func() bool { return statusOf(t, f, "azure").Degraded })
	if by := servedBy(); by != "aws" {
		t.Fatalf("served by %q with both degraded, want aws", by)
	}
	// A degraded backend is still preferred to one that is down.
	azure.degraded.Store(false)
	azure.sick.Store(true)
	waitFor(t, "azure down", func() bool { return !statusOf(t, f, "azure").Healthy })
	if by := servedBy(); by != "aws" {
		t.Fatalf("served by %q, want the degraded aws over the down azure", by)
	}
	azure.sick.Store(false)
	waitFor(t, "azure up", func() bool { return statusOf(t, f, "azure").Healthy && !statusOf(t, f, "azure").Degraded })
	if by := servedBy(); by != "azure" {
		t.Fatalf("served by %q, want azure", by)
	}
	aws.degraded.Store(false)
	waitFor(t, "aws recovered", func() bool { return !statusOf(t, f, "aws").Degraded })
	if by := servedBy(); by != "aws" {
		t.Fatalf("served by %q after aws recovered, want aws", by)
	}
}

// TestReplicasOfACloud: the replicas of one cloud share its place in the
// priority order, take its requests in turn, and cover for each other
// before the next cloud is tried.
func TestReplicasOfACloud(t *testing.T) {
	aws1, aws2, azure := newCloud(t, "aws-1"), newCloud(t, "aws-2"), newCloud(t, "azure")
	f, fd := start(t, Config{Timeout: 2 * time.Second},
		Backend{Name: "aws-1", Group: "aws", URL: aws1.srv.URL},
		Backend{Name: "azure", URL: azure.srv.URL},
		Backend{Name: "aws-2", Group: "aws", URL: aws2.srv.URL})
	served := map[string]int{}
	for range 20 {
		resp := post(t, fd.URL+"/v1/records", []byte(`{}`), nil)
		readAll(t, resp)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d", resp.StatusCode)
		}
		served[resp.Header.Get(HeaderServedBy)]++
	}
	if served["aws-1"] != 10 || served["aws-2"] != 10 || served["azure"] != 0 {
		t.Fatalf("served %v, want aws-1 and aws-2 10 each, azure 0", served)
	}
	// One replica down: the other takes everything, azure nothing.
	aws1.handle(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	clear(served)
	for range 10 {
		resp := post(t, fd.URL+"/v1/records", []byte(`{}`), nil)
		readAll(t, resp)
		served[resp.Header.Get(HeaderServedBy)]++
	}
	if served["aws-2"] != 10 {
		t.Fatalf("served %v with aws-1 down, want aws-2 10", served)
	}
	if statusOf(t, f, "aws-1").Healthy {
		t.Error("aws-1 still healthy after failing")
	}
	// Both replicas down: azure.
	aws2.handle(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	resp := post(t, fd.URL+"/v1/records", []byte(`{}`), nil)
	readAll(t, resp)
	if by := resp.Header.Get(HeaderServedBy); by != "azure" {
		t.Fatalf("served by %q with every aws replica down, want azure", by)
	}
}

// TestInFlightFailsOverWhenDeclaredDown: a cloud cut off drops packets
// instead of refusing them; a request still connecting to it fails over
// as soon as the health checks declare it down, not after the attempt's
// timeout (the cloud cannot have acted on it).
func TestInFlightFailsOverWhenDeclaredDown(t *testing.T) {
	aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
	awsAddr := strings.TrimPrefix(aws.srv.URL, "http://")
	// Connections to aws hang like a SYN into a dropped link; health
	// checks to it therefore time out too.
	var dialer net.Dialer
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == awsAddr {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return dialer.DialContext(ctx, network, addr)
	}
	f, fd := start(t, Config{HealthInterval: 20 * time.Millisecond, HealthTimeout: 100 * time.Millisecond, Timeout: 30 * time.Second,
		Client: &http.Client{Transport: tr}},
		Backend{Name: "aws", URL: aws.srv.URL}, Backend{Name: "azure", URL: azure.srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Run(ctx) }()
	start := time.Now()
	resp := post(t, fd.URL+"/v1/records", []byte(`{}`), nil)
	readAll(t, resp)
	took := time.Since(start)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get(HeaderServedBy) != "azure" {
		t.Fatalf("status %d served by %q", resp.StatusCode, resp.Header.Get(HeaderServedBy))
	}
	if took > 5*time.Second {
		t.Fatalf("failed over after %v, want about the health checks' time", took)
	}
	if st := statusOf(t, f, "aws"); st.Healthy {
		t.Errorf("aws status %+v", st)
	}
	if n := len(aws.requests()); n != 0 {
		t.Errorf("aws got %d requests, want 0", n)
	}
	t.Logf("failed over after %v (attempt timeout 30s)", took.Round(time.Millisecond))
}

// TestInFlightNotCancelledWhenDeclaredDown: a request sent in full to a
// cloud that the health checks then declare down (a cloud slow under load
// answers its checks late) is left to finish there: only new requests go
// to the other cloud, and no request is done by both.
func TestInFlightNotCancelledWhenDeclaredDown(t *testing.T) {
	aws, azure := newCloud(t, "aws"), newCloud(t, "azure")
	entered, release := make(chan struct{}, 1), make(chan struct{})
	aws.handle(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"cloud":"aws"}`)
	})
	f, fd := start(t, Config{HealthInterval: 20 * time.Millisecond, HealthTimeout: 100 * time.Millisecond, Timeout: 30 * time.Second},
		Backend{Name: "aws", URL: aws.srv.URL}, Backend{Name: "azure", URL: azure.srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Run(ctx) }()

	type answer struct {
		status int
		by     string
	}
	first := make(chan answer, 1)
	go func() {
		resp := post(t, fd.URL+"/v1/records", []byte(`{"n":1}`), nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		first <- answer{resp.StatusCode, resp.Header.Get(HeaderServedBy)}
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first request never reached aws")
	}
	aws.sick.Store(true) // its health checks fail: declared down
	deadline := time.Now().Add(30 * time.Second)
	for statusOf(t, f, "aws").Healthy {
		if time.Now().After(deadline) {
			t.Fatal("aws never declared down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A new request goes to azure at once.
	resp := post(t, fd.URL+"/v1/records", []byte(`{"n":2}`), nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get(HeaderServedBy) != "azure" {
		t.Fatalf("second request: status %d served by %q, want 202 by azure", resp.StatusCode, resp.Header.Get(HeaderServedBy))
	}
	// The first one is still waiting on aws, and aws answers it.
	select {
	case a := <-first:
		t.Fatalf("the request in flight was answered (%d by %q) before aws answered it", a.status, a.by)
	default:
	}
	close(release)
	a := <-first
	if a.status != http.StatusAccepted || a.by != "aws" {
		t.Fatalf("first request: status %d served by %q, want 202 by aws", a.status, a.by)
	}
	if n, m := len(aws.requests()), len(azure.requests()); n != 1 || m != 1 {
		t.Errorf("aws got %d requests and azure %d, want 1 each (nothing done twice)", n, m)
	}
}

// TestSkipsCandidateDeclaredDownMeanwhile: of the candidates listed when a
// request came in, one the health checks declared down while the request
// waited on another (until that attempt's timeout) is skipped, not waited
// on.
func TestSkipsCandidateDeclaredDownMeanwhile(t *testing.T) {
	aws1, aws2, azure := newCloud(t, "aws-1"), newCloud(t, "aws-2"), newCloud(t, "azure")
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	aws1.handle(hang)
	aws2.handle(hang)
	f, fd := start(t, Config{Timeout: time.Second},
		Backend{Name: "aws-1", Group: "aws", URL: aws1.srv.URL},
		Backend{Name: "aws-2", Group: "aws", URL: aws2.srv.URL},
		Backend{Name: "azure", URL: azure.srv.URL})
	// Both AWS replicas are declared down while the request waits on the
	// first of them.
	go func() {
		for len(aws1.requests())+len(aws2.requests()) == 0 {
			time.Sleep(time.Millisecond)
		}
		_ = f.SetHealthy("aws-2", false)
		_ = f.SetHealthy("aws-1", false)
	}()
	start := time.Now()
	resp := post(t, fd.URL+"/v1/records", []byte(`{}`), nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get(HeaderServedBy) != "azure" {
		t.Fatalf("status %d served by %q", resp.StatusCode, resp.Header.Get(HeaderServedBy))
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("took %v: waited on a replica declared down", took)
	}
	if n := len(aws1.requests()) + len(aws2.requests()); n != 1 {
		t.Errorf("the AWS replicas got %d requests, want 1", n)
	}
}
