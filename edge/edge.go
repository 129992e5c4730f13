// Package edge is the CDN edge: a shared HTTP cache (RFC 9111) in front of
// any HTTP origin. Routes map path prefixes to origins, tried in order for
// failover. GET and HEAD are served from a memory tier and an optional
// disk tier that survives restarts, following the origin's caching
// headers: storing rules, freshness (s-maxage, max-age, Expires, heuristic),
// age, Vary, validation with If-None-Match and If-Modified-Since,
// must-revalidate, request directives, the targeted CDN-Cache-Control
// field (RFC 9213) and stale-while-revalidate / stale-if-error (RFC 5861).
// Bodies stream through while they are stored; concurrent misses share one
// origin request. Other methods are forwarded and invalidate what is
// stored for their URL. Stored responses can be purged by path, prefix or
// Surrogate-Key / Cache-Tag (POST /purge).
//
// docs/edge.md lists which requirements of the RFCs are covered and by
// which tests.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/edge/cachecontrol"
)

const (
	// PurgePath is the purge endpoint.
	PurgePath = "/purge"
	// MaxPathLen bounds a request path in bytes.
	MaxPathLen = 1024
	// errorBackoff is how long after every origin failed the edge serves
	// an allowed stale response without asking the origins again.
	errorBackoff = 5 * time.Second
	// passBackoff is how long after an unstorable response concurrent
	// misses for the URL go to the origin each without waiting for one
	// another.
	passBackoff = 5 * time.Second
	// maxErrorBody bounds the body of an origin's 5xx the edge shares
	// with the requests waiting on it.
	maxErrorBody = 64 << 10
)

// X-Cache values.
const (
	Hit         = "HIT"         // served from the cache without contacting an origin
	Stale       = "STALE"       // a stale response served (stale-while-revalidate, stale-if-error, max-stale)
	Revalidated = "REVALIDATED" // served from the cache after the origin answered 304
	Miss        = "MISS"        // fetched from the origin and stored
	Pass        = "PASS"        // forwarded, not stored
)

// ErrBadPath is returned by CheckPath for a path that may not be served.
var ErrBadPath = errors.New("edge: bad path")

// Stats are the edge's counters since New.
type Stats struct {
	// Hits are responses served from the cache without contacting an
	// origin (including requests that shared another request's fetch).
	Hits int64 `json:"hits"`
	// Misses are responses fetched from an origin and stored.
	Misses int64 `json:"misses"`
	// StaleServed are stale responses served.
	StaleServed int64 `json:"stale_served"`
	// Revalidations are origin 304s that refreshed a stored response.
	Revalidations int64 `json:"revalidations"`
	// Passes are responses forwarded without storing.
	Passes int64 `json:"passes"`
	// OriginRequests are requests sent to origins (every attempt).
	OriginRequests int64 `json:"origin_requests"`
	// OriginErrors are origin attempts that failed (connection error,
	// timeout or a 500, 502, 503 or 504).
	OriginErrors int64 `json:"origin_errors"`
	// Purges are purge operations; Purged the responses they removed.
	Purges int64 `json:"purges"`
	Purged int64 `json:"purged"`
	// Evictions are bodies dropped from a tier to stay within its bound.
	Evictions int64 `json:"evictions"`
	// Entries, MemoryBytes and DiskBytes describe the cache now.
	Entries     int   `json:"entries"`
	MemoryBytes int64 `json:"memory_bytes"`
	DiskBytes   int64 `json:"disk_bytes"`
}

// Edge is the caching proxy. It is safe for concurrent use.
type Edge struct {
	cfg       Config
	purgeOnce sync.Once
	purgeRing *auth.Keyring
	routes    []route
	store     *store
	transport http.RoundTripper
	h1        *h1Client // nil with a configured Transport
	log       *slog.Logger
	now       func() time.Time
	tmpDir    string

	fillMu    sync.Mutex
	fills     map[string]*fill
	passUntil map[string]time.Time

	bg     context.Context
	cancel context.CancelFunc
	bgWG   sync.WaitGroup

	hits, misses, staleServed, revalidations, passes atomic.Int64
	originReqs, originErrs                           atomic.Int64
	purges, purged                                   atomic.Int64
}

var _ http.Handler = (*Edge)(nil)

// New checks cfg and returns an Edge. With a disk tier it creates
// cfg.DiskDir if needed and indexes the responses stored there.
func New(cfg Config) (*Edge, error) {
	routes, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	e := &Edge{cfg: cfg, routes: routes, log: cfg.Logger.With("component", "edge"), now: time.Now,
		fills: map[string]*fill{}, passUntil: map[string]time.Time{}, tmpDir: os.TempDir()}
	e.transport = cfg.Transport
	if e.transport == nil {
		d := &net.Dialer{Timeout: cfg.OriginTimeout, KeepAlive: 30 * time.Second}
		e.transport = &http.Transport{
			DialContext:           d.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   cfg.OriginTimeout,
			ResponseHeaderTimeout: cfg.OriginTimeout,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
		}
		e.h1 = &h1Client{next: e.transport, dial: d.DialContext, headerTimeout: cfg.OriginTimeout,
			maxIdle: 256, idleTimeout: 90 * time.Second}
	}
	e.store = newStore(cfg.MemoryBytes, cfg.MemoryObjectBytes, cfg.DiskBytes, "", e.log)
	if cfg.DiskDir != "" {
		dir, err := filepath.Abs(cfg.DiskDir)
		if err != nil {
			return nil, fmt.Errorf("edge: config: disk_dir: %w", err)
		}
		e.store.dir = dir
		if err := e.store.load(cfg.TargetedFields, cfg.TTL); err != nil {
			return nil, err
		}
		e.tmpDir = e.store.tmpDir()
	}
	e.bg, e.cancel = context.WithCancel(context.Background())
	if e.store.dir != "" {
		e.bgWG.Add(1)
		go e.flushLoop()
	}
	return e, nil
}

// flushLoop persists refreshed metas of the disk tier every second.
func (e *Edge) flushLoop() {
	defer e.bgWG.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.bg.Done():
			return
		case now := <-t.C:
			e.store.flush(now, false)
		}
	}
}

// Close stops background fetches and waits for them. What is stored in the
// disk tier stays for the next start.
func (e *Edge) Close() error {
	e.cancel()
	e.bgWG.Wait()
	e.store.flush(time.Now(), true)
	if t, ok := e.transport.(*http.Transport); ok && e.cfg.Transport == nil {
		t.CloseIdleConnections()
	}
	if e.h1 != nil {
		e.h1.closeIdle(true)
	}
	return nil
}

// CheckPath reports whether p is a path the edge may serve: it starts with
// "/", is at most MaxPathLen bytes, is valid UTF-8 without control
// characters (NUL included) and has no "." or ".." segments and no empty
// segment but a trailing one ("/" and "/dir/" are fine). The error wraps
// ErrBadPath.
func CheckPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: must start with /", ErrBadPath)
	case len(p) > MaxPathLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadPath, MaxPathLen)
	case !utf8.ValidString(p):
		return fmt.Errorf("%w: not valid UTF-8", ErrBadPath)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: control character %U", ErrBadPath, rune(c))
		}
	}
	rest := p[1:]
	for rest != "" {
		seg, tail, more := strings.Cut(rest, "/")
		switch {
		case seg == "" && more:
			return fmt.Errorf("%w: empty path segment", ErrBadPath)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: %q path segment", ErrBadPath, seg)
		}
		rest = tail
	}
	return nil
}

// match returns the route for path: the longest matching prefix.
func (e *Edge) match(path string) *route {
	for i := range e.routes {
		if strings.HasPrefix(path, e.routes[i].prefix) {
			return &e.routes[i]
		}
	}
	return nil
}

// cacheKey is the primary cache key of a request: its path (as sent) and
// query.
func cacheKey(r *http.Request) string {
	p := r.URL.RawPath
	if p == "" {
		p = r.URL.Path
	}
	if r.URL.RawQuery != "" {
		return p + "?" + r.URL.RawQuery
	}
	return p
}

// ServeHTTP serves GET and HEAD from the cache, forwards other methods,
// and serves POST /purge.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == PurgePath {
		e.servePurge(w, r)
		return
	}
	if err := CheckPath(r.URL.Path); err != nil {
		writeError(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%v", err))
		return
	}
	rt := e.match(r.URL.Path)
	if rt == nil {
		writeError(w, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no route for %s", r.URL.Path))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		e.serveCacheable(w, r, rt)
	default:
		e.forward(w, r, rt)
	}
}

// writeError writes an error generated by the edge itself.
func writeError(w http.ResponseWriter, err *apierr.Error) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Via", "1.1 "+Pseudonym)
	apierr.Write(w, err)
}

// requestDirectives are the request's cache directives; Pragma: no-cache
// counts as Cache-Control: no-cache when there is no Cache-Control (RFC
// 7234 §5.4, kept for HTTP/1.0 clients).
func requestDirectives(h http.Header) cachecontrol.Directives {
	if lines, ok := h["Cache-Control"]; ok {
		return cachecontrol.ParseLines(lines)
	}
	var d cachecontrol.Directives
	for _, v := range h["Pragma"] {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "no-cache") {
				d.NoCache = true
			}
		}
	}
	return d
}

// use is how a stored response may serve a request.
type use int

const (
	useFresh    use = iota // fresh: serve it
	useStale               // stale, but the client accepts it (max-stale)
	useSWR                 // stale within stale-while-revalidate: serve it, revalidate in the background
	useValidate            // ask the origin first
)

func secs(s cachecontrol.Seconds) time.Duration { return time.Duration(s.Value) * time.Second }

// decide applies RFC 9111 §4 and §4.2.4 and RFC 5861 §3.
func decide(m *meta, rcc *cachecontrol.Directives, now time.Time, invalid bool) use {
	if invalid || rcc.NoCache || (m.cc.NoCache && len(m.cc.NoCacheFields) == 0) {
		return useValidate
	}
	age := m.currentAge(now)
	if rcc.MaxAge.Present && (!rcc.MaxAge.Valid || age > secs(rcc.MaxAge)) {
		return useValidate
	}
	if m.lifetime > age {
		if rcc.MinFresh.OK() && m.lifetime-age < secs(rcc.MinFresh) {
			return useValidate
		}
		return useFresh
	}
	if m.noStale {
		return useValidate
	}
	staleFor := age - m.lifetime
	if rcc.MaxStale.OK() && staleFor <= secs(rcc.MaxStale) {
		return useStale
	}
	if m.cc.StaleWhileRevalidate.OK() && staleFor <= secs(m.cc.StaleWhileRevalidate) {
		return useSWR
	}
	return useValidate
}

// staleOnError reports whether m may be served when validating it failed
// (RFC 9111 §4.2.4, RFC 5861 §4): never when the response forbids stale
// use; else within the edge's StaleIfError or a longer stale-if-error of
// the response or the request.
func (e *Edge) staleOnError(m *meta, rcc *cachecontrol.Directives, now time.Time) bool {
	if m.cc.NoCache && len(m.cc.NoCacheFields) == 0 {
		return false
	}
	age := m.currentAge(now)
	if m.lifetime > age {
		return true
	}
	if m.noStale {
		return false
	}
	window := e.cfg.StaleIfError
	if m.cc.StaleIfError.OK() {
		window = max(window, secs(m.cc.StaleIfError))
	}
	if rcc.StaleIfError.OK() {
		window = max(window, secs(rcc.StaleIfError))
	}
	return age-m.lifetime <= window
}

// serveCacheable serves a GET or HEAD.
func (e *Edge) serveCacheable(w http.ResponseWriter, r *http.Request, rt *route) {
	rcc := requestDirectives(r.Header)
	key := cacheKey(r)
	now := e.now()
	st, ok := e.store.lookup(key, r.Header)
	if ok {
		m := st.meta
		switch decide(m, &rcc, now, st.obj.invalid.Load()) {
		case useFresh:
			e.hits.Add(1)
			e.serveStored(w, r, rt, st, Hit)
			return
		case useStale:
			e.staleServed.Add(1)
			e.serveStored(w, r, rt, st, Stale)
			return
		case useSWR:
			e.staleServed.Add(1)
			e.revalidateAsync(r, rt, &rcc, st.obj)
			e.serveStored(w, r, rt, st, Stale)
			return
		}
		if rcc.OnlyIfCached {
			writeError(w, apierr.New(http.StatusGatewayTimeout, "not_cached", "only-if-cached: no usable stored response for %s", r.URL.Path))
			return
		}
		if r.Method == http.MethodHead {
			// Forwarded as a HEAD, whose answer freshens or invalidates
			// the stored response (RFC 9111 §4.3.5).
			e.forward(w, r, rt)
			return
		}
		if now.UnixNano() < st.obj.errUntil.Load() && e.staleOnError(m, &rcc, now) {
			// Every origin failed a moment ago: do not wait for them again.
			e.staleServed.Add(1)
			e.serveStored(w, r, rt, st, Stale)
			return
		}
		e.fetchAndServe(w, r, rt, key, &rcc, st.obj)
		return
	}
	if rcc.OnlyIfCached {
		writeError(w, apierr.New(http.StatusGatewayTimeout, "not_cached", "only-if-cached: nothing stored for %s", r.URL.Path))
		return
	}
	if r.Method == http.MethodHead || len(r.Header["Range"]) > 0 {
		// A miss for part of an object (or its header only) is forwarded
		// as is: the edge never pulls a whole object for it.
		e.forward(w, r, rt)
		return
	}
	e.fetchAndServe(w, r, rt, key, &rcc, nil)
}

// serveStored serves a stored response, or forwards the request if its
// body has just been evicted.
func (e *Edge) serveStored(w http.ResponseWriter, r *http.Request, rt *route, st stored, xc string) {
	b, done, err := e.store.open(st)
	if err != nil {
		e.forward(w, r, rt)
		return
	}
	defer done()
	e.respond(w, r, st.meta, b, xc, true)
}

// revalidateAsync validates a stored response in the background (once at
// a time per response).
func (e *Edge) revalidateAsync(r *http.Request, rt *route, rcc *cachecontrol.Directives, o *object) {
	if !o.revalidating.CompareAndSwap(false, true) {
		return
	}
	req := r.Clone(e.bg)
	req.Method = http.MethodGet
	req.Header.Del("Range")
	cc := *rcc
	e.bgWG.Add(1)
	go func() {
		defer e.bgWG.Done()
		defer o.revalidating.Store(false)
		f, leader := e.joinFill("v\x00"+o.id, cacheKey(req))
		if !leader {
			<-f.ready
			return
		}
		e.runFill(nil, f, req, rt, cacheKey(req), &cc, o)
		e.dropFill(f)
	}()
}

// dropFill lets go of what runFill left to a leader that answers no
// client with it: the response to pass on, its reference to the body.
func (e *Edge) dropFill(f *fill) {
	switch f.kind {
	case fillPass:
		_ = f.resp.Body.Close()
	case fillBody:
		f.buf.release()
	}
}

// isServerError reports the statuses RFC 5861 counts as errors.
func isServerError(status int) bool {
	switch status {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Stats returns the counters and the cache's size.
func (e *Edge) Stats() Stats {
	n, mem, disk := e.store.counts()
	return Stats{
		Hits: e.hits.Load(), Misses: e.misses.Load(), StaleServed: e.staleServed.Load(),
		Revalidations: e.revalidations.Load(), Passes: e.passes.Load(),
		OriginRequests: e.originReqs.Load(), OriginErrors: e.originErrs.Load(),
		Purges: e.purges.Load(), Purged: e.purged.Load(), Evictions: e.store.evictions.Load(),
		Entries: n, MemoryBytes: mem, DiskBytes: disk,
	}
}
