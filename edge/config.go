package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/internal/redact"
)

// Defaults for the zero values of Config.
const (
	// DefaultTTL bounds heuristic freshness (RFC 9111 §4.2.2).
	DefaultTTL = 60 * time.Second
	// DefaultStaleIfError is how long past expiry the edge may serve a
	// stale response while every origin fails, where the response allows
	// stale use at all.
	DefaultStaleIfError = 24 * time.Hour
	// DefaultMemoryBytes bounds the memory tier.
	DefaultMemoryBytes = 256 << 20
	// DefaultDiskBytes bounds the disk tier when DiskDir is set.
	DefaultDiskBytes = 10 << 30
	// DefaultOriginTimeout bounds connecting to an origin and waiting for
	// its response header (not the body, which may stream for long).
	DefaultOriginTimeout = 10 * time.Second
	// DefaultTargetedField is the targeted cache-control field (RFC 9213).
	DefaultTargetedField = "CDN-Cache-Control"
)

// Route sends requests whose path starts with Prefix to Origins.
type Route struct {
	// Prefix is a path prefix starting with "/"; the longest matching
	// prefix wins.
	Prefix string
	// Origins are http(s) base URLs tried in order (failover). The path of
	// an origin URL is kept as a prefix: with origin http://o/base a
	// request for /static/a.css goes to http://o/base/static/a.css. The
	// request's query string is appended to the origin's.
	Origins []string
}

// Config configures an Edge.
type Config struct {
	// Routes map path prefixes to origins. At least one is required.
	Routes []Route
	// TTL is the upper bound of heuristic freshness, given to responses
	// without explicit freshness from their Last-Modified (10% of their
	// age); default DefaultTTL.
	TTL time.Duration
	// StaleIfError is how long past expiry a stale response may be served
	// while every origin fails, for responses that do not forbid stale use
	// (no-cache, must-revalidate, proxy-revalidate, s-maxage). A
	// stale-if-error directive of the response or request can extend it.
	// Default DefaultStaleIfError; negative disables it.
	StaleIfError time.Duration
	// MemoryBytes bounds the memory tier (default DefaultMemoryBytes).
	MemoryBytes int64
	// MemoryObjectBytes is the largest body the memory tier holds
	// (default MemoryBytes/16).
	MemoryObjectBytes int64
	// DiskDir holds the disk tier; empty means no disk tier. The tier
	// survives a restart.
	DiskDir string
	// DiskBytes bounds the disk tier (default DefaultDiskBytes).
	DiskBytes int64
	// TargetedFields are the targeted cache-control fields this edge obeys
	// (RFC 9213 §2.1), first valid one wins; default CDN-Cache-Control.
	TargetedFields []string
	// PurgeKey is the bearer key POST /purge requires; empty means no
	// authentication.
	PurgeKey string
	// Keys, when set, authorizes POST /purge instead (scope purge).
	Keys *auth.Keyring
	// Transport reaches the origins; default an http.Transport with
	// OriginTimeout for connecting and for the response header, and no
	// transparent decompression.
	Transport http.RoundTripper
	// OriginTimeout: see DefaultOriginTimeout.
	OriginTimeout time.Duration
	// Logger receives the edge's logs; default slog.Default().
	Logger *slog.Logger
}

// route is a validated Route.
type route struct {
	prefix  string
	origins []*url.URL
}

// validate checks cfg, fills its defaults and returns the routes, longest
// prefix first.
func (cfg *Config) validate() ([]route, error) {
	if len(cfg.Routes) == 0 {
		return nil, errors.New("edge: config: routes: at least one route is required")
	}
	var routes []route
	seen := map[string]bool{}
	for i, r := range cfg.Routes {
		if !strings.HasPrefix(r.Prefix, "/") {
			return nil, fmt.Errorf("edge: config: routes[%d].prefix %q: must start with /", i, r.Prefix)
		}
		if seen[r.Prefix] {
			return nil, fmt.Errorf("edge: config: routes[%d].prefix %q: duplicate", i, r.Prefix)
		}
		seen[r.Prefix] = true
		if len(r.Origins) == 0 {
			return nil, fmt.Errorf("edge: config: routes[%d].origins: at least one origin is required", i)
		}
		rt := route{prefix: r.Prefix}
		for j, o := range r.Origins {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
				return nil, fmt.Errorf("edge: config: routes[%d].origins[%d] %s: want an http(s) base URL", i, j, redact.URL(o))
			}
			u.Path = strings.TrimSuffix(u.Path, "/")
			u.RawPath = strings.TrimSuffix(u.RawPath, "/")
			rt.origins = append(rt.origins, u)
		}
		routes = append(routes, rt)
	}
	slices.SortStableFunc(routes, func(a, b route) int { return len(b.prefix) - len(a.prefix) })
	if cfg.TTL < 0 || cfg.MemoryBytes < 0 || cfg.MemoryObjectBytes < 0 || cfg.DiskBytes < 0 || cfg.OriginTimeout < 0 {
		return nil, errors.New("edge: config: ttl, memory_bytes, memory_object_bytes, disk_bytes and origin_timeout must not be negative")
	}
	for i, f := range cfg.TargetedFields {
		if f == "" || strings.ContainsFunc(f, func(c rune) bool { return c > 0x7e || !isTchar(byte(c)) }) {
			return nil, fmt.Errorf("edge: config: targeted_fields[%d] %q: not a field name", i, f)
		}
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	switch {
	case cfg.StaleIfError == 0:
		cfg.StaleIfError = DefaultStaleIfError
	case cfg.StaleIfError < 0:
		cfg.StaleIfError = 0
	}
	if cfg.MemoryBytes == 0 {
		cfg.MemoryBytes = DefaultMemoryBytes
	}
	if cfg.MemoryObjectBytes == 0 {
		cfg.MemoryObjectBytes = cfg.MemoryBytes / 16
	}
	cfg.MemoryObjectBytes = min(cfg.MemoryObjectBytes, cfg.MemoryBytes)
	if cfg.DiskBytes == 0 {
		cfg.DiskBytes = DefaultDiskBytes
	}
	if len(cfg.TargetedFields) == 0 {
		cfg.TargetedFields = []string{DefaultTargetedField}
	}
	cfg.TargetedFields = slices.Clone(cfg.TargetedFields)
	for i, f := range cfg.TargetedFields {
		cfg.TargetedFields[i] = http.CanonicalHeaderKey(f)
	}
	if cfg.OriginTimeout == 0 {
		cfg.OriginTimeout = DefaultOriginTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return routes, nil
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
