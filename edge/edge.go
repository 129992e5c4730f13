// Package edge is the CDN edge: a caching reverse proxy over one or more
// result origins (tried in order, so a replica takes over when the first
// fails). It serves GET and HEAD under /results/ from an in-memory LRU cache
// with TTLs, ETag / If-None-Match, Range, revalidation of expired entries,
// coalescing of concurrent misses, negative caching of 404s, purge by path
// or prefix, and stale-if-error when every origin fails.
//
// Freshness rule: a 200 from an origin is fresh for min(TTL, max-age) where
// max-age is the origin's Cache-Control s-maxage, else max-age, else TTL;
// no-cache makes it stale at once (every use revalidates); no-store and
// private responses are served but never stored. A 404 is remembered for
// min(TTL, 5s). Expires and the origin's Age header are not consulted.
package edge

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/internal/redact"
)

// Defaults for the zero values of Config.
const (
	DefaultTTL          = 60 * time.Second
	DefaultStaleIfError = 24 * time.Hour
	DefaultMaxBytes     = 256 << 20
	// DefaultTimeout bounds one origin attempt when Config.Client is nil.
	DefaultTimeout = 10 * time.Second
)

const (
	// Prefix is the path prefix the edge serves.
	Prefix = "/results/"
	// PurgePath is the purge endpoint.
	PurgePath = "/purge"
	// MaxPathLen bounds a request path in bytes.
	MaxPathLen = 1024
	// negativeTTL bounds how long a 404 is remembered.
	negativeTTL = 5 * time.Second
	// entryOverhead is the bytes an entry is charged beyond key and body.
	entryOverhead = 256
	// maxPurgeBody bounds a purge request body.
	maxPurgeBody = 1 << 20
)

// X-Cache values.
const (
	Hit   = "HIT"
	Miss  = "MISS"
	Stale = "STALE"
)

// ErrBadPath is returned by CheckPath for a path that may not be served.
var ErrBadPath = errors.New("edge: bad path")

// Config configures an Edge.
type Config struct {
	// Origins are base URLs of the result origins, tried in order, e.g.
	// http://127.0.0.1:8085. At least one is required. A request for
	// /results/x goes to <origin>/results/x (the origin's own path is kept
	// as a prefix, its query string is sent as is).
	Origins []string
	// TTL is the freshness when the origin gives no max-age, and the upper
	// bound when it does (default 60s).
	TTL time.Duration
	// StaleIfError is how long past expiry a stale copy may be served while
	// every origin fails (default 24h).
	StaleIfError time.Duration
	// MaxBytes bounds the cache; least recently used entries are evicted
	// (default 256 MiB). An object larger than MaxBytes is refused with 502.
	MaxBytes int64
	// PurgeKey is the bearer key POST /purge requires; empty means no
	// authentication.
	PurgeKey string
	// Client fetches from the origins; default an http.Client with a
	// DefaultTimeout timeout. A client without a Timeout gets
	// DefaultTimeout per origin attempt.
	Client *http.Client
	// Logger receives the edge's logs; default slog.Default().
	Logger *slog.Logger
}

// Stats are the edge's counters since New.
type Stats struct {
	// Hits are responses served from a fresh (or revalidated) entry.
	Hits int64 `json:"hits"`
	// Misses are responses that needed a full origin response.
	Misses int64 `json:"misses"`
	// StaleServed are responses served stale because every origin failed.
	StaleServed int64 `json:"stale_served"`
	// Revalidations are origin 304s that refreshed an entry.
	Revalidations int64 `json:"revalidations"`
	// OriginRequests are requests sent to origins (every attempt).
	OriginRequests int64 `json:"origin_requests"`
	// OriginErrors are origin attempts that failed (connection error,
	// timeout, 5xx or another unusable status).
	OriginErrors int64 `json:"origin_errors"`
	// Purges are purge operations; Purged the entries they removed.
	Purges int64 `json:"purges"`
	Purged int64 `json:"purged"`
	// Evictions are entries dropped to stay under MaxBytes.
	Evictions int64 `json:"evictions"`
	// Entries and Bytes describe the cache now.
	Entries int   `json:"entries"`
	Bytes   int64 `json:"bytes"`
}

// entry is one cached response. Entries are immutable once in the cache;
// a refresh replaces the entry.
type entry struct {
	path         string
	status       int // 200 or 404
	body         []byte
	contentType  string
	etag         string
	lastModified time.Time
	stored       time.Time // when the origin last vouched for it
	expires      time.Time
	retryAfter   time.Time // while serving stale, origins are not retried before this
	size         int64
}

// call is one in-flight origin fetch that concurrent misses share.
type call struct {
	done   chan struct{}
	out    outcome
	purged bool // a purge matched while in flight: do not store the result
	joined int  // requests that joined after the first; e.mu guards it
}

// outcome is what a fetch gives its waiters.
type outcome struct {
	ent   *entry // nil on error
	cache string
	err   *apierr.Error
}

// Edge is the caching proxy. It is safe for concurrent use.
type Edge struct {
	origins  []*url.URL
	ttl      time.Duration
	stale    time.Duration
	maxBytes int64
	purgeKey string
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]*list.Element // of *entry
	lru     *list.List               // front = most recently used
	bytes   int64
	flights map[string]*call

	hits, misses, staleServed, revalidations atomic.Int64
	originReqs, originErrs                   atomic.Int64
	purges, purged, evictions                atomic.Int64
}

var _ http.Handler = (*Edge)(nil)

// New checks cfg and returns an Edge. It has no side effects.
func New(cfg Config) (*Edge, error) {
	if len(cfg.Origins) == 0 {
		return nil, errors.New("edge: config: origins: at least one origin is required")
	}
	e := &Edge{
		ttl: cfg.TTL, stale: cfg.StaleIfError, maxBytes: cfg.MaxBytes,
		purgeKey: cfg.PurgeKey, client: cfg.Client, log: cfg.Logger, now: time.Now,
		entries: map[string]*list.Element{}, lru: list.New(), flights: map[string]*call{},
	}
	for i, o := range cfg.Origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("edge: config: origins[%d] %s: want an http(s) base URL", i, redact.URL(o))
		}
		e.origins = append(e.origins, u)
	}
	if e.ttl < 0 || e.stale < 0 || e.maxBytes < 0 {
		return nil, errors.New("edge: config: ttl, stale_if_error and max_bytes must not be negative")
	}
	if e.ttl == 0 {
		e.ttl = DefaultTTL
	}
	if e.stale == 0 {
		e.stale = DefaultStaleIfError
	}
	if e.maxBytes == 0 {
		e.maxBytes = DefaultMaxBytes
	}
	if e.client == nil {
		e.client = &http.Client{Timeout: DefaultTimeout}
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.log = e.log.With("component", "edge")
	return e, nil
}

// CheckPath reports whether p is a path the edge may serve: it starts with
// "/", is at most MaxPathLen bytes, is valid UTF-8 without control
// characters (NUL included) and has no empty, "." or ".." segments. The
// error wraps ErrBadPath.
func CheckPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: must start with /", ErrBadPath)
	case len(p) > MaxPathLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadPath, MaxPathLen)
	case !utf8.ValidString(p):
		return fmt.Errorf("%w: not valid UTF-8", ErrBadPath)
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: control character %U", ErrBadPath, c)
		}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: empty path segment", ErrBadPath)
		case ".", "..":
			return fmt.Errorf("%w: %q path segment", ErrBadPath, seg)
		}
	}
	return nil
}

// ServeHTTP serves GET and HEAD under /results/ and POST /purge.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := apierr.NewResponseWriter(w)
	if r.URL.Path == PurgePath {
		e.servePurge(rw, r)
	} else {
		e.serveGet(rw, r)
	}
	e.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rw.Status), slog.String("cache", rw.Header().Get("X-Cache")),
		slog.Int64("bytes", rw.Bytes), slog.Duration("dur", time.Since(start)))
}

func (e *Edge) serveGet(w *apierr.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "method %s not allowed; use GET or HEAD", r.Method))
		return
	}
	p := r.URL.Path
	if err := CheckPath(p); err != nil && p != "/" {
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%v", err))
		return
	}
	if !strings.HasPrefix(p, Prefix) {
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no object at %s", p))
		return
	}
	out := e.lookup(r.Context(), p)
	e.respond(w, r, out)
}

// lookup returns what to serve for path: a fresh entry, or the outcome of
// a (shared) origin fetch.
func (e *Edge) lookup(ctx context.Context, path string) outcome {
	now := e.now()
	e.mu.Lock()
	var old *entry
	if el, ok := e.entries[path]; ok {
		ent := el.Value.(*entry)
		switch {
		case now.Before(ent.expires):
			e.lru.MoveToFront(el)
			e.mu.Unlock()
			return outcome{ent: ent, cache: Hit}
		case ent.status == http.StatusOK && now.Before(ent.retryAfter) && now.Before(ent.expires.Add(e.stale)):
			// Origins failed a moment ago: serve stale without retrying.
			e.lru.MoveToFront(el)
			e.mu.Unlock()
			return outcome{ent: ent, cache: Stale}
		case ent.status == http.StatusOK:
			old = ent
		}
	}
	c, ok := e.flights[path]
	if ok {
		c.joined++
	} else {
		c = &call{done: make(chan struct{})}
		e.flights[path] = c
		// The fetch outlives the request that started it: others may wait.
		go e.fetch(context.WithoutCancel(ctx), path, old, c)
	}
	e.mu.Unlock()
	select {
	case <-c.done:
		return c.out
	case <-ctx.Done():
		return outcome{err: apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "request cancelled")}
	}
}

// fetch asks the origins in order for path, revalidating old when there
// is one, stores the result unless a purge intervened, and wakes the
// waiters.
func (e *Edge) fetch(ctx context.Context, path string, old *entry, c *call) {
	out := e.fetchOrigins(ctx, path, old)
	now := e.now()
	e.mu.Lock()
	if e.flights[path] == c {
		delete(e.flights, path)
	}
	if !c.purged {
		switch {
		case out.ent != nil && out.cache != Stale && !out.ent.expires.IsZero():
			e.store(out.ent)
		case out.ent != nil && out.cache != Stale:
			// The origin now forbids storing: forget the old copy too.
			if el, ok := e.entries[path]; ok {
				e.remove(el)
			}
		case out.cache == Stale:
			// Remember the failure so the next requests are served stale
			// without waiting for every origin again.
			retry := *old
			retry.retryAfter = now.Add(min(e.ttl, negativeTTL))
			e.store(&retry)
			out.ent = &retry
		}
	}
	c.out = out
	e.mu.Unlock()
	close(c.done)
}

// fetchOrigins runs the failover loop.
func (e *Edge) fetchOrigins(ctx context.Context, path string, old *entry) outcome {
	var lastErr error
	answered := false
	for _, o := range e.origins {
		ent, revalidated, err := e.fetchOne(ctx, o, path, old)
		if err != nil {
			e.originErrs.Add(1)
			var se *statusError
			answered = answered || errors.As(err, &se)
			lastErr = err
			e.log.Warn("origin failed", "origin", redact.URL(o.String()), "path", path, "err", err)
			continue
		}
		if revalidated {
			e.revalidations.Add(1)
			return outcome{ent: ent, cache: Hit}
		}
		return outcome{ent: ent, cache: Miss}
	}
	now := e.now()
	if old != nil && now.Before(old.expires.Add(e.stale)) {
		e.log.Warn("every origin failed; serving stale", "path", path, "expired_for", now.Sub(old.expires).Round(time.Second), "err", lastErr)
		return outcome{ent: old, cache: Stale}
	}
	e.log.Error("every origin failed", "path", path, "err", lastErr)
	if answered {
		return outcome{err: apierr.New(http.StatusBadGateway, apierr.CodeBadGateway, "every origin failed for %s", path)}
	}
	return outcome{err: apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "no origin is reachable for %s", path)}
}

// statusError is an origin answer the edge cannot use.
type statusError struct{ status int }

func (s *statusError) Error() string { return "origin answered " + strconv.Itoa(s.status) }

// fetchOne asks one origin. It returns the entry to serve (expires zero
// when it must not be stored) and whether it is old refreshed by a 304.
func (e *Edge) fetchOne(ctx context.Context, base *url.URL, path string, old *entry) (*entry, bool, error) {
	if e.client.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	u := *base
	u.Path = strings.TrimSuffix(base.Path, "/") + path
	u.RawPath = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, false, fmt.Errorf("edge: fetch %s: %w", path, err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", "intercloud-edge")
	if old != nil && old.etag != "" {
		req.Header.Set("If-None-Match", old.etag)
	}
	e.originReqs.Add(1)
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("edge: fetch %s: %w", path, redact.URLError(err))
	}
	defer resp.Body.Close()
	now := e.now()
	fresh, store := e.freshness(resp.Header.Get("Cache-Control"))
	switch {
	case resp.StatusCode == http.StatusNotModified && old != nil:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		ent := *old
		ent.stored, ent.expires, ent.retryAfter = now, now.Add(fresh), time.Time{}
		if !store {
			ent.expires = time.Time{}
		}
		return &ent, true, nil
	case resp.StatusCode == http.StatusNotFound:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		ent := &entry{path: path, status: http.StatusNotFound, stored: now}
		if store {
			ent.expires = now.Add(min(fresh, negativeTTL))
		}
		ent.size = int64(len(path)) + entryOverhead
		return ent, false, nil
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, false, fmt.Errorf("edge: fetch %s: %w", path, &statusError{resp.StatusCode})
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, e.maxBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("edge: fetch %s: read body: %w", path, redact.URLError(err))
	}
	if int64(len(body)) > e.maxBytes {
		return nil, false, fmt.Errorf("edge: fetch %s: object larger than the cache (%d bytes): %w", path, e.maxBytes, &statusError{resp.StatusCode})
	}
	ent := &entry{
		path: path, status: http.StatusOK, body: body,
		contentType: resp.Header.Get("Content-Type"),
		etag:        resp.Header.Get("ETag"),
		stored:      now,
		size:        int64(len(path)+len(body)) + entryOverhead,
	}
	if ent.contentType == "" {
		ent.contentType = "application/octet-stream"
	}
	if ent.etag == "" {
		sum := sha256.Sum256(body)
		ent.etag = `"` + hex.EncodeToString(sum[:16]) + `"`
	}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		ent.lastModified = t
	}
	if store {
		ent.expires = now.Add(fresh)
	}
	return ent, false, nil
}

// freshness applies the freshness rule to an origin's Cache-Control: how
// long the response is fresh, and whether it may be stored at all.
func (e *Edge) freshness(cc string) (time.Duration, bool) {
	fresh := e.ttl
	maxAge, sMaxAge := -1, -1
	for d := range strings.SplitSeq(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		val = strings.Trim(strings.TrimSpace(val), `"`)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-store", "private":
			return 0, false
		case "no-cache":
			fresh = 0
		case "max-age":
			if n, err := strconv.Atoi(val); err == nil && n >= 0 {
				maxAge = n
			}
		case "s-maxage":
			if n, err := strconv.Atoi(val); err == nil && n >= 0 {
				sMaxAge = n
			}
		}
	}
	if sMaxAge >= 0 {
		maxAge = sMaxAge
	}
	if maxAge >= 0 {
		fresh = min(fresh, time.Duration(maxAge)*time.Second)
	}
	return fresh, true
}

// store puts ent in the cache (replacing any entry for its path) and
// evicts least recently used entries beyond MaxBytes. e.mu must be held.
func (e *Edge) store(ent *entry) {
	if el, ok := e.entries[ent.path]; ok {
		e.remove(el)
	}
	if ent.size > e.maxBytes {
		return
	}
	e.entries[ent.path] = e.lru.PushFront(ent)
	e.bytes += ent.size
	for e.bytes > e.maxBytes {
		e.remove(e.lru.Back())
		e.evictions.Add(1)
	}
}

// remove drops one entry. e.mu must be held.
func (e *Edge) remove(el *list.Element) {
	ent := e.lru.Remove(el).(*entry)
	delete(e.entries, ent.path)
	e.bytes -= ent.size
}

// respond writes an outcome.
func (e *Edge) respond(w *apierr.ResponseWriter, r *http.Request, out outcome) {
	if out.err != nil {
		w.Header().Set("Cache-Control", "no-store")
		apierr.Write(w, out.err)
		return
	}
	ent := out.ent
	now := e.now()
	h := w.Header()
	h.Set("X-Cache", out.cache)
	age := max(now.Sub(ent.stored), 0)
	h.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
	remaining := max(ent.expires.Sub(now), 0)
	switch {
	case ent.expires.IsZero(): // not storable: the origin said no-store or private
		h.Set("Cache-Control", "no-store")
	case out.cache == Stale:
		h.Set("Cache-Control", "public, max-age=0")
		h.Set("Warning", `110 - "Response is Stale"`)
	default:
		h.Set("Cache-Control", "public, max-age="+strconv.FormatInt(int64(remaining/time.Second), 10))
	}
	switch out.cache {
	case Hit:
		e.hits.Add(1)
	case Miss:
		e.misses.Add(1)
	case Stale:
		e.staleServed.Add(1)
	}
	if ent.status == http.StatusNotFound {
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no object at %s", ent.path))
		return
	}
	h.Set("Content-Type", ent.contentType)
	h.Set("ETag", ent.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	w.JSONErrors = true
	http.ServeContent(w, r, "", ent.lastModified, bytes.NewReader(ent.body))
}

// Purge removes cached entries: exact paths, or prefixes ending in "*"
// ("/results/hourly/*"; "/*" removes everything). A fetch in flight for a
// matching path still answers its waiters but does not store its result,
// and later requests start a fresh fetch. It returns the entries removed.
func (e *Edge) Purge(paths ...string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, p := range paths {
		prefix, isPrefix := strings.CutSuffix(p, "*")
		match := func(k string) bool {
			if isPrefix {
				return strings.HasPrefix(k, prefix)
			}
			return k == p
		}
		if isPrefix {
			for k, el := range e.entries {
				if match(k) {
					e.remove(el)
					n++
				}
			}
		} else if el, ok := e.entries[p]; ok {
			e.remove(el)
			n++
		}
		for k, c := range e.flights {
			if match(k) {
				c.purged = true
				delete(e.flights, k)
			}
		}
	}
	e.purges.Add(1)
	e.purged.Add(int64(n))
	return n
}

// purgeRequest is the body of POST /purge.
type purgeRequest struct {
	Paths []string `json:"paths"`
}

// maxPurgePaths bounds the paths of one purge request.
const maxPurgePaths = 10000

func (e *Edge) servePurge(w *apierr.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "method %s not allowed; use POST", r.Method))
		return
	}
	if e.purgeKey != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(e.purgeKey)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edge"`)
			apierr.Write(w, apierr.New(http.StatusUnauthorized, apierr.CodeUnauthenticated, "purge needs a valid bearer key"))
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPurgeBody+1))
	if err != nil {
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "read body: %v", err))
		return
	}
	if len(body) > maxPurgeBody {
		apierr.Write(w, apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeTooLarge, "purge body larger than %d bytes", maxPurgeBody))
		return
	}
	req, err := parsePurge(body)
	if err != nil {
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%v", err))
		return
	}
	n := e.Purge(req.Paths...)
	e.log.Info("purge", "paths", len(req.Paths), "purged", n)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Purged int `json:"purged"`
	}{n})
}

// parsePurge decodes and checks a purge body: {"paths":[...]} where each
// path is a valid path (see CheckPath) with no "*" but an optional final
// one.
func parsePurge(body []byte) (*purgeRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req purgeRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("edge: purge body: %w", err)
	}
	if dec.More() {
		return nil, errors.New("edge: purge body: trailing data after the JSON object")
	}
	if len(req.Paths) == 0 {
		return nil, errors.New("edge: purge body: paths: at least one path is required")
	}
	if len(req.Paths) > maxPurgePaths {
		return nil, fmt.Errorf("edge: purge body: paths: more than %d", maxPurgePaths)
	}
	for i, p := range req.Paths {
		if err := checkPurgePath(p); err != nil {
			return nil, fmt.Errorf("edge: purge body: paths[%d]: %w", i, err)
		}
	}
	return &req, nil
}

func checkPurgePath(p string) error {
	if p == "/*" {
		return nil
	}
	prefix, isPrefix := strings.CutSuffix(p, "*")
	if strings.Contains(prefix, "*") {
		return fmt.Errorf("%w: only a trailing * is allowed", ErrBadPath)
	}
	if !isPrefix {
		return CheckPath(p)
	}
	// "/results/hourly/*" and "/results/day-*" are prefixes; check the
	// prefix with a stand-in last segment so a trailing "/" is allowed.
	return CheckPath(prefix + "x")
}

// Stats returns the counters and the cache's size.
func (e *Edge) Stats() Stats {
	e.mu.Lock()
	n, b := len(e.entries), e.bytes
	e.mu.Unlock()
	return Stats{
		Hits: e.hits.Load(), Misses: e.misses.Load(), StaleServed: e.staleServed.Load(),
		Revalidations: e.revalidations.Load(), OriginRequests: e.originReqs.Load(),
		OriginErrors: e.originErrs.Load(), Purges: e.purges.Load(), Purged: e.purged.Load(),
		Evictions: e.evictions.Load(), Entries: n, Bytes: b,
	}
}
