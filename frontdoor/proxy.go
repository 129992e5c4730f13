package frontdoor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/google/uuid"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/internal/serve"
)

var _ http.Handler = (*FrontDoor)(nil)

// hopByHop lists the connection-specific header fields that a proxy must
// not forward (RFC 9110 section 7.6.1, plus the legacy ones that
// httputil.ReverseProxy also drops).
var hopByHop = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// copyBufs holds the buffers used to stream answers back.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ServeHTTP serves the front door's own endpoints (GET /healthz, GET
// /v1/status) and routes every other /v1/... request to a backend.
func (f *FrontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/healthz":
		full := f.cfg.Keys == nil || f.cfg.Keys.Check(r.Header.Get("Authorization"), auth.ScopeRead) == nil
		f.serveStatus(w, r, true, full)
	case p == "/v1/status":
		if f.cfg.Keys != nil {
			if err := f.cfg.Keys.Check(r.Header.Get("Authorization"), auth.ScopeRead); err != nil {
				auth.Deny(w, err)
				return
			}
		}
		f.serveStatus(w, r, false, true)
	case strings.HasPrefix(p, "/v1/"):
		if hasDotSegment(p) {
			apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "path %q has dot segments", p))
			return
		}
		f.proxy(w, r)
	default:
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no route for %s", p))
	}
}

// statusBody is the JSON answer of GET /healthz and GET /v1/status.
type statusBody struct {
	Healthy  bool            `json:"healthy"`
	Backends []BackendStatus `json:"backends"`
}

// serveStatus answers the front door's health (503 when no backend is
// healthy, if unhealthy503) with every backend's status; without full,
// only each backend's name and state (no URL, errors or problems: those
// need a key of scope read).
func (f *FrontDoor) serveStatus(w http.ResponseWriter, r *http.Request, unhealthy503, full bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "%s %s: use GET", r.Method, r.URL.Path))
		return
	}
	body := statusBody{Healthy: f.anyHealthy(), Backends: f.Status()}
	if !full {
		for i, b := range body.Backends {
			body.Backends[i] = BackendStatus{Name: b.Name, Healthy: b.Healthy, Degraded: b.Degraded, Checked: b.Checked}
		}
	}
	code := http.StatusOK
	if !body.Healthy && unhealthy503 {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method == http.MethodHead {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}

// proxy buffers the request and tries the candidate backends in order
// until one gives an answer that can be passed through.
func (f *FrontDoor) proxy(w http.ResponseWriter, r *http.Request) {
	body, err := f.readBody(r)
	if err != nil {
		apierr.Write(w, err)
		return
	}
	hdr := f.outboundHeader(r)
	traceID := traceIDOf(hdr.Get(HeaderTraceparent))

	var tried []string
	cands := f.candidates()
	failOpen := !cands[0].isHealthy()
	for i, b := range cands {
		// A candidate the checks declared down since the list was made is
		// skipped while a later one may still be healthy (a cut-off cloud
		// drops packets: waiting on it would take the whole timeout).
		if !failOpen && !b.isHealthy() && i < len(cands)-1 {
			tried = append(tried, fmt.Sprintf("%s (declared down)", b.name))
			continue
		}
		reason, done := f.attempt(w, r, b, hdr, body, traceID)
		if done {
			if len(tried) > 0 {
				f.retried.Add(1)
			}
			return
		}
		tried = append(tried, fmt.Sprintf("%s (%s)", b.name, reason))
		if b.markFailed("request: " + reason) {
			f.logChange(b, false, "request failed", reason)
		}
		f.log.Warn("frontdoor: attempt failed, trying the next backend",
			"trace_id", traceID, "backend", b.name, "method", r.Method, "path", r.URL.Path, "err", reason)
	}
	f.log.Error("frontdoor: no backend could take the request",
		"trace_id", traceID, "method", r.Method, "path", r.URL.Path, "tried", strings.Join(tried, ", "))
	f.unavailable.Add(1)
	w.Header().Set("Retry-After", "1")
	apierr.Write(w, apierr.New(http.StatusServiceUnavailable, CodeNoHealthyCloud,
		"no cloud could take the request; tried %s", strings.Join(tried, ", ")))
}

// attempt sends one attempt of r to b. It reports done when the request
// is finished (answered, or the client went away); otherwise the attempt
// failed over and reason says why.
func (f *FrontDoor) attempt(w http.ResponseWriter, r *http.Request, b *backend, hdr http.Header, body []byte,
	traceID string) (reason string, done bool) {
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.Timeout)
	defer cancel()
	// When the health checks declare the backend down meanwhile (its
	// cloud cut off: packets dropped, nothing refused), an attempt whose
	// request has not been sent in full (still connecting, or its body
	// not all handed over) gives up at once and fails over, instead of
	// waiting for its timeout: the backend cannot have acted on it. One
	// sent in full is left to finish (or time out): the backend may be
	// working on it, merely slow to answer its health checks, and sending
	// it to the next backend too would do the work twice.
	gate := &sendGate{}
	var watching chan struct{}
	var declaredDown atomic.Bool
	if down := b.downSignal(); down != nil {
		watching = make(chan struct{})
		go func() {
			select {
			case <-down:
				if gate.stop() {
					declaredDown.Store(true)
					cancel()
				}
			case <-watching:
			case <-ctx.Done():
			}
		}()
	}
	resp, err := f.client.Do(b.request(ctx, r, hdr, body, gate))
	if watching != nil {
		close(watching)
	}
	if err != nil && declaredDown.Load() && r.Context().Err() == nil {
		return "declared down by the health checks while waiting", false
	}
	if r.Context().Err() != nil {
		// The client went away: nothing to answer, nothing learnt.
		if err == nil {
			_ = resp.Body.Close()
		}
		return "", true
	}
	if err != nil {
		return describeErr(err), false
	}
	if failoverStatus(resp.StatusCode) && !backPressure(resp) {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		return fmt.Sprintf("status %d", resp.StatusCode), false
	}
	f.relay(w, resp, b, traceID)
	return "", true
}

// candidates returns the healthy backends in priority order, those that
// are not degraded first, or, when none is healthy, every backend (fail
// open: health state may be stale, and trying costs less than refusing).
//
// The replicas of one cloud (a group) share its place in the order and
// take turns leading it, so that requests spread over them.
func (f *FrontDoor) candidates() []*backend {
	order := f.backends
	if len(f.groups) < len(f.backends) {
		turn := f.turn.Add(1)
		order = make([]*backend, 0, len(f.backends))
		for _, g := range f.groups {
			first := int(turn % uint64(len(g)))
			for i := range g {
				order = append(order, g[(first+i)%len(g)])
			}
		}
	}
	out := make([]*backend, 0, len(order))
	for _, b := range order {
		if b.isPreferred() {
			out = append(out, b)
		}
	}
	for _, b := range order {
		if b.isHealthy() && !b.isPreferred() {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return order
	}
	return out
}

// failoverStatus reports whether a backend answer means the backend could
// not take the request, so that it is retried elsewhere.
func failoverStatus(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// backPressure reports whether an answer asks the client to slow down (a
// 503 with Retry-After, such as an ingest API's admission control while
// the pipeline behind it catches up): it is passed through, not retried
// elsewhere, and the backend stays healthy.
func backPressure(resp *http.Response) bool {
	return resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""
}

// readBody buffers the request body, bounded by MaxBodyBytes.
func (f *FrontDoor) readBody(r *http.Request) ([]byte, error) {
	max := f.cfg.MaxBodyBytes
	tooLarge := apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeTooLarge,
		"request body is larger than %d bytes", max)
	if r.ContentLength > max {
		return nil, tooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		if serve.IsBodyTooSlow(err) {
			return nil, serve.BodyTooSlow()
		}
		return nil, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "read request body: %v", err)
	}
	if n > max {
		return nil, tooLarge
	}
	return buf.Bytes(), nil
}

// outboundHeader returns the headers every attempt of r carries: r's
// headers without hop-by-hop fields, with X-Forwarded-* set and an
// Idempotency-Key (a UUIDv7, made once for every attempt) and a valid
// traceparent added when missing.
func (f *FrontDoor) outboundHeader(r *http.Request) http.Header {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	removeHopByHop(h)
	h.Del("Expect") // the body is already buffered
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // do not send Go's default
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := h.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		h.Set("X-Forwarded-For", ip)
	}
	h.Set("X-Forwarded-Host", r.Host)
	if r.TLS != nil {
		h.Set("X-Forwarded-Proto", "https")
	} else {
		h.Set("X-Forwarded-Proto", "http")
	}
	if strings.TrimSpace(h.Get(HeaderIdempotencyKey)) == "" {
		h.Set(HeaderIdempotencyKey, uuid.Must(uuid.NewV7()).String())
	}
	if tp := h.Values(HeaderTraceparent); len(tp) != 1 || !validTraceparent(tp[0]) {
		// Missing or unparseable: restart the trace (W3C Trace Context
		// says tracestate is then dropped too).
		if len(tp) > 0 {
			h.Del(HeaderTracestate)
		}
		h.Set(HeaderTraceparent, newTraceparent())
	}
	return h
}

// removeHopByHop deletes the hop-by-hop fields and those named in
// Connection from h.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// request builds one attempt of r on b, its body passed through gate.
func (b *backend) request(ctx context.Context, r *http.Request, hdr http.Header, body []byte, gate *sendGate) *http.Request {
	u := &url.URL{
		Scheme:   b.url.Scheme,
		Host:     b.url.Host,
		User:     b.url.User,
		Path:     joinPath(b.url.Path, r.URL.Path),
		RawQuery: r.URL.RawQuery,
	}
	if r.URL.RawPath != "" {
		u.RawPath = joinPath(b.url.EscapedPath(), r.URL.EscapedPath())
	}
	out := &http.Request{
		Method:     r.Method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       u.Host,
	}
	if len(body) > 0 {
		out.ContentLength = int64(len(body))
		out.Body = &gatedBody{gate: gate, rest: body}
		out.GetBody = func() (io.ReadCloser, error) { return &gatedBody{gate: gate, rest: body}, nil }
	}
	return out.WithContext(ctx)
}

// sendGate tells an attempt whose request was sent in full from one that
// can still be stopped before the backend has all of it. The zero value
// is an open gate.
type sendGate struct {
	mu      sync.Mutex
	sent    bool // the end of the body was handed to the transport
	stopped bool
}

// stop closes the gate unless the whole body was handed over already; it
// reports whether it did, and then the backend never gets all of the
// body (the transport writes the declared Content-Length, so a short body
// is no request). A request without a body cannot be held back this way:
// it is always stoppable (such requests, like GET /v1/status, change
// nothing).
func (g *sendGate) stop() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sent {
		return false
	}
	g.stopped = true
	return true
}

// errNotSent fails the body of an attempt stopped before it was sent.
var errNotSent = errors.New("frontdoor: attempt stopped before its body was sent")

// gatedBody is an attempt's body: it hands out its bytes until its gate is
// stopped, and marks the gate sent when it hands out the last of them.
type gatedBody struct {
	gate *sendGate
	rest []byte
}

func (g *gatedBody) Read(p []byte) (int, error) {
	if len(g.rest) == 0 {
		return 0, io.EOF
	}
	g.gate.mu.Lock()
	defer g.gate.mu.Unlock()
	if g.gate.stopped {
		return 0, errNotSent
	}
	n := copy(p, g.rest)
	g.rest = g.rest[n:]
	if len(g.rest) == 0 {
		g.gate.sent = true
	}
	return n, nil
}

func (g *gatedBody) Close() error { return nil }

// relay passes a backend's answer through unchanged, streaming its body,
// with X-Served-By added.
func (f *FrontDoor) relay(w http.ResponseWriter, resp *http.Response, b *backend, traceID string) {
	defer resp.Body.Close()
	b.requests.Add(1)
	removeHopByHop(resp.Header)
	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	h.Set(HeaderServedBy, b.name)
	w.WriteHeader(resp.StatusCode)
	readErr, writeErr := copyBody(w, resp.Body, resp.ContentLength == -1)
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	if readErr != nil {
		// The status is already sent: abort the connection so the client
		// sees a truncated answer rather than a short one that looks whole.
		f.log.Warn("frontdoor: answer cut off by backend", "trace_id", traceID, "backend", b.name, "err", describeErr(readErr))
		panic(http.ErrAbortHandler)
	}
	if writeErr != nil {
		f.log.Debug("frontdoor: client went away", "trace_id", traceID, "backend", b.name, "err", writeErr)
		return
	}
	f.log.Debug("frontdoor: served", "trace_id", traceID, "backend", b.name, "status", resp.StatusCode)
}

// copyBody copies src to w, flushing after every write if flush, and tells
// read errors from write errors.
func copyBody(w http.ResponseWriter, src io.Reader, flush bool) (readErr, writeErr error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil, werr
			}
			if flush {
				_ = rc.Flush()
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// describeErr turns an attempt's error into a short reason naming the
// failure, without the URL (which could carry credentials).
func describeErr(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// joinPath joins a base path and a request path with exactly one slash.
func joinPath(base, p string) string {
	switch {
	case base == "" || base == "/":
		return p
	case strings.HasSuffix(base, "/") && strings.HasPrefix(p, "/"):
		return base + p[1:]
	case !strings.HasSuffix(base, "/") && !strings.HasPrefix(p, "/"):
		return base + "/" + p
	}
	return base + p
}

// hasDotSegment reports whether a path has a "." or ".." segment, which
// could make a backend see another path than the one routed.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
