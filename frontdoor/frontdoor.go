// Package frontdoor is the global router in front of the clouds' ingest
// APIs, in the role of an AWS global load balancer or Azure Front Door.
//
// A FrontDoor is an http.Handler. It sends every /v1/... request to the
// first healthy backend in priority order. The request body is buffered (up
// to Config.MaxBodyBytes) so that a request that failed on one cloud before
// it was answered (connection refused or reset, timeout, 502/503/504) can be
// replayed on the next one with the same Idempotency-Key and traceparent
// headers; the ingest API derives the record ids from the key, so the
// retry is the same logical request and nothing is stored twice. A key the
// front door makes is a UUIDv7, whose time the ids take: they are
// time-ordered.
//
// Backend health comes from two sources: Run polls every backend's health
// path with FailAfter/RiseAfter hysteresis (active checks), and a failed
// attempt marks its backend unhealthy at once (passive checks). A backend
// that was never checked counts as healthy. A healthy backend whose health
// answer says {"status": "degraded"} (its cloud takes writes but its
// database is down, say) is tried only after the healthy backends that are
// not degraded. When no backend is healthy the
// front door fails open and tries them all in priority order, since health
// state may be stale; only when every attempt fails does the client get
// 503 no_healthy_cloud.
//
// A backend declared down gets no new requests. Of the attempts in flight
// to it, those whose request has not been sent in full (still connecting,
// body not all handed over) fail over at once; those sent in full are
// left to finish or time out, since the backend may be acting on them
// and the next one would do the same work again.
package frontdoor

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/internal/redact"
)

// Defaults for zero Config fields.
const (
	DefaultHealthInterval = time.Second
	DefaultHealthPath     = "/healthz"
	DefaultFailAfter      = 2
	DefaultRiseAfter      = 2
	DefaultTimeout        = 30 * time.Second
	DefaultMaxBodyBytes   = 8 << 20
	// maxHealthTimeout caps the default health check timeout.
	maxHealthTimeout = 2 * time.Second
)

// StatusDegraded is the "status" of a backend health answer (2xx, JSON)
// that says the backend takes requests but something behind it fails: the
// front door then prefers the other backends.
const StatusDegraded = "degraded"

// CodeNoHealthyCloud is the apierr code of the 503 answered when no backend
// could take a request.
const CodeNoHealthyCloud = "no_healthy_cloud"

// Header names the front door reads or sets.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderTraceparent    = "Traceparent"
	HeaderTracestate     = "Tracestate"
	HeaderServedBy       = "X-Served-By"
)

// ErrUnknownBackend is returned for a backend name that is not configured.
var ErrUnknownBackend = errors.New("frontdoor: unknown backend")

// Backend is one cloud's API, or one replica of it.
type Backend struct {
	// Name identifies the backend in logs, status and X-Served-By ("aws").
	Name string
	// Group is the cloud the backend belongs to when a cloud has several
	// replicas ("aws" for backends "aws-1", "aws-2"); default Name. The
	// backends of a group share one place in the priority order (that of
	// the group's first backend) and take its requests in turn.
	Group string
	// URL is the base URL of the API (http://127.0.0.1:8081). Request paths
	// are appended to its path.
	URL string
}

// Config configures a FrontDoor. Zero fields take the defaults named.
type Config struct {
	// Backends in priority order; at least one, names unique.
	Backends []Backend
	// HealthInterval is the time between health check rounds (default 1s).
	HealthInterval time.Duration
	// HealthPath is the path checked on every backend (default "/healthz").
	// A 2xx answer is healthy.
	HealthPath string
	// HealthTimeout bounds one health check (default HealthInterval, at
	// most 2s).
	HealthTimeout time.Duration
	// FailAfter is the number of consecutive failed checks before a
	// backend is unhealthy (default 2).
	FailAfter int
	// RiseAfter is the number of consecutive good checks before an
	// unhealthy backend is healthy again (default 2).
	RiseAfter int
	// Timeout bounds one attempt on one backend, including streaming its
	// answer back (default 30s).
	Timeout time.Duration
	// MaxBodyBytes bounds the buffered request body (default 8 MiB); a
	// larger body is answered 413.
	MaxBodyBytes int64
	// Client sends attempts and health checks. The default has a pooled
	// transport and does not follow redirects (they are passed through).
	// Set it to use TLS or mutual TLS towards the backends.
	Client *http.Client
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Keys authorizes GET /v1/status (scope read); nil leaves it open.
	// /healthz is always open.
	Keys *auth.Keyring
}

// BackendStatus is a snapshot of one backend's state.
type BackendStatus struct {
	Name string `json:"name"`
	// URL is the backend URL with any credentials redacted.
	URL string `json:"url"`
	// Healthy reports whether requests are routed to the backend.
	Healthy bool `json:"healthy"`
	// Degraded reports that its last health check said "degraded": it
	// takes requests only when no healthy backend is not degraded.
	Degraded bool `json:"degraded,omitempty"`
	// Problems are what a degraded backend said was wrong.
	Problems []string `json:"problems,omitempty"`
	// Checked reports whether a health check or attempt has judged the
	// backend yet; an unchecked backend counts as healthy.
	Checked bool `json:"checked"`
	// LastCheck is the time of the last active health check (zero if none).
	LastCheck time.Time `json:"last_check,omitzero"`
	// LastError is the last failure seen by a check or an attempt, cleared
	// by a good check.
	LastError string `json:"last_error,omitempty"`
	// Requests counts the answers served by the backend (any status passed
	// through to a client).
	Requests uint64 `json:"requests"`
	// Failures counts attempts that failed over away from the backend.
	Failures uint64 `json:"failures"`
}

// FrontDoor routes requests to the healthiest, highest-priority backend.
// It is safe for concurrent use.
type FrontDoor struct {
	cfg      Config
	log      *slog.Logger
	client   *http.Client
	backends []*backend
	// groups are the backends by group, in priority order.
	groups  [][]*backend
	turn    atomic.Uint64 // rotates the backends within a group
	running atomic.Bool
	// retried counts requests answered after a failed attempt elsewhere;
	// unavailable those no backend could take (503).
	retried, unavailable atomic.Uint64
}

// Stats are the front door's routing counters beyond each backend's.
type Stats struct {
	// Retried counts requests answered by a backend after an attempt on
	// another one failed (a failover of that request).
	Retried uint64 `json:"retried"`
	// Unavailable counts requests no backend could take (answered 503).
	Unavailable uint64 `json:"unavailable"`
}

// Stats returns the routing counters.
func (f *FrontDoor) Stats() Stats {
	return Stats{Retried: f.retried.Load(), Unavailable: f.unavailable.Load()}
}

// backend is one backend's configuration and state.
type backend struct {
	name     string
	group    string
	url      *url.URL
	redacted string
	health   *url.URL

	requests atomic.Uint64
	failures atomic.Uint64

	mu      sync.Mutex
	healthy bool
	// down is closed when the backend turns unhealthy (a fresh one while
	// it is healthy): attempts in flight to it that have not been sent in
	// full give up and fail over.
	down      chan struct{}
	degraded  bool
	problems  []string
	checked   bool
	fails     int // consecutive failed checks
	rises     int // consecutive good checks
	lastCheck time.Time
	lastErr   string
}

// New validates cfg, applies defaults and returns a FrontDoor. It starts
// nothing: call Run for active health checks and serve the FrontDoor as an
// http.Handler.
func New(cfg Config) (*FrontDoor, error) {
	if len(cfg.Backends) == 0 {
		return nil, errors.New("frontdoor: config: backends: at least one backend is required")
	}
	if cfg.HealthInterval < 0 || cfg.HealthTimeout < 0 || cfg.Timeout < 0 || cfg.MaxBodyBytes < 0 ||
		cfg.FailAfter < 0 || cfg.RiseAfter < 0 {
		return nil, errors.New("frontdoor: config: durations, counts and sizes must not be negative")
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.HealthPath == "" {
		cfg.HealthPath = DefaultHealthPath
	}
	if cfg.HealthPath[0] != '/' {
		return nil, fmt.Errorf("frontdoor: config: health path %q must start with /", cfg.HealthPath)
	}
	if cfg.HealthTimeout == 0 {
		cfg.HealthTimeout = min(cfg.HealthInterval, maxHealthTimeout)
	}
	if cfg.FailAfter == 0 {
		cfg.FailAfter = DefaultFailAfter
	}
	if cfg.RiseAfter == 0 {
		cfg.RiseAfter = DefaultRiseAfter
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &FrontDoor{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "frontdoor"),
		client: cfg.Client,
	}
	if f.client == nil {
		f.client = defaultClient()
	}
	seen := map[string]bool{}
	for i, b := range cfg.Backends {
		if b.Name == "" {
			return nil, fmt.Errorf("frontdoor: config: backends[%d]: name is required", i)
		}
		if seen[b.Name] {
			return nil, fmt.Errorf("frontdoor: config: backends[%d]: duplicate name %q", i, b.Name)
		}
		seen[b.Name] = true
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("frontdoor: config: backends[%d] (%s): url %q: want http(s)://host[:port][/path]",
				i, b.Name, redact.URL(b.URL))
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("frontdoor: config: backends[%d] (%s): url %q: must not have a query or fragment",
				i, b.Name, redact.URL(b.URL))
		}
		hu := *u
		hu.Path = joinPath(u.Path, cfg.HealthPath)
		hu.RawPath = ""
		group := b.Group
		if group == "" {
			group = b.Name
		}
		nb := &backend{
			name:     b.Name,
			group:    group,
			url:      u,
			redacted: redact.URL(b.URL),
			health:   &hu,
			healthy:  true,
			down:     make(chan struct{}),
		}
		f.backends = append(f.backends, nb)
		placed := false
		for gi, g := range f.groups {
			if g[0].group == group {
				f.groups[gi] = append(g, nb)
				placed = true
			}
		}
		if !placed {
			f.groups = append(f.groups, []*backend{nb})
		}
	}
	return f, nil
}

// defaultClient returns a client with a connection pool sized for a proxy
// that does not follow redirects.
func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Status returns every backend's state in priority order.
func (f *FrontDoor) Status() []BackendStatus {
	out := make([]BackendStatus, 0, len(f.backends))
	for _, b := range f.backends {
		out = append(out, b.status())
	}
	return out
}

// SetHealthy is a manual override for operators and tests: it sets the
// backend's state at once, as if the hysteresis threshold had just been
// reached. It is not sticky: later health checks and failed attempts still
// change the state as usual.
func (f *FrontDoor) SetHealthy(name string, ok bool) error {
	b := f.backend(name)
	if b == nil {
		return fmt.Errorf("%w %q", ErrUnknownBackend, name)
	}
	b.mu.Lock()
	changed := b.healthy != ok
	b.setHealthyLocked(ok)
	b.checked = true
	b.fails, b.rises = 0, 0
	b.mu.Unlock()
	if changed {
		f.logChange(b, ok, "manual override", "")
	}
	return nil
}

// backend returns the backend called name, or nil.
func (f *FrontDoor) backend(name string) *backend {
	for _, b := range f.backends {
		if b.name == name {
			return b
		}
	}
	return nil
}

// anyHealthy reports whether at least one backend is healthy.
func (f *FrontDoor) anyHealthy() bool {
	for _, b := range f.backends {
		if b.isHealthy() {
			return true
		}
	}
	return false
}

// logChange logs a health state change: a backend going down at warn, one
// coming back at info.
func (f *FrontDoor) logChange(b *backend, healthy bool, reason, lastErr string) {
	args := []any{"backend", b.name, "healthy", healthy, "reason", reason}
	if healthy {
		f.log.Info("frontdoor: backend healthy", args...)
		return
	}
	if lastErr != "" {
		args = append(args, "err", lastErr)
	}
	f.log.Warn("frontdoor: backend unhealthy", args...)
}

func (b *backend) isHealthy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.healthy
}

func (b *backend) status() BackendStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BackendStatus{
		Name:      b.name,
		URL:       b.redacted,
		Healthy:   b.healthy,
		Degraded:  b.degraded,
		Problems:  b.problems,
		Checked:   b.checked,
		LastCheck: b.lastCheck,
		LastError: b.lastErr,
		Requests:  b.requests.Load(),
		Failures:  b.failures.Load(),
	}
}

// setDegraded records what a good health check said; it reports whether
// the degraded state changed.
func (b *backend) setDegraded(rep healthReport) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := b.degraded != rep.degraded()
	b.degraded = rep.degraded()
	b.problems = nil
	if b.degraded {
		b.problems = rep.Problems
	}
	return changed
}

// isPreferred reports whether the backend is healthy and not degraded.
func (b *backend) isPreferred() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.healthy && !b.degraded
}

// markFailed records a failed attempt (passive health): the backend is
// unhealthy at once. It reports whether the state changed.
// setHealthyLocked sets the health and, when it turns bad, tells the
// attempts in flight (b.mu held).
func (b *backend) setHealthyLocked(ok bool) {
	switch {
	case b.healthy && !ok:
		close(b.down)
	case !b.healthy && ok:
		b.down = make(chan struct{})
	}
	b.healthy = ok
}

// downSignal returns a channel closed when the backend, healthy now,
// turns unhealthy; nil (never ready) when it is unhealthy already.
func (b *backend) downSignal() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.healthy {
		return nil
	}
	return b.down
}

func (b *backend) markFailed(reason string) bool {
	b.failures.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := b.healthy
	b.setHealthyLocked(false)
	b.checked = true
	b.rises = 0
	b.lastErr = reason
	return changed
}

// observe records one active health check result and applies the
// hysteresis. It reports whether the state changed.
func (b *backend) observe(at time.Time, err error, failAfter, riseAfter int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.checked = true
	b.lastCheck = at
	if err != nil {
		b.lastErr = err.Error()
		b.rises = 0
		b.fails++
		if b.healthy && b.fails >= failAfter {
			b.setHealthyLocked(false)
			return true
		}
		return false
	}
	b.lastErr = ""
	b.fails = 0
	b.rises++
	if !b.healthy && b.rises >= riseAfter {
		b.setHealthyLocked(true)
		return true
	}
	return false
}
