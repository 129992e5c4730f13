// Package serve is the one way intercloud's listeners serve HTTP: TLS when
// configured (HTTP/2 where Go offers it), timeouts on every phase of a
// request, a minimum rate for request bodies, caps on the connections of
// one client address and on the requests in flight of one key, and a JSON
// error body (package apierr) for every error it answers itself.
//
// The limits, and what happens past them:
//
//   - the request line and headers must arrive within ReadHeaderTimeout
//     (the connection is closed);
//   - headers larger than MaxHeaderBytes get a JSON 431; past
//     HardHeaderBytes Go's server stops reading them and its answer, a
//     431 too, is turned into JSON like its other answers (400 for a
//     malformed request, 501 for an unknown transfer coding), over TLS
//     too (HTTP/2 has its own frames for these); plain HTTP sent to a TLS
//     port gets a JSON 400;
//   - a body must arrive at MinBodyRate bytes per second on average after
//     a BodyGrace: a slower one fails the handler's read with
//     ErrBodyTooSlow (a handler answers it with a 408, see IsBodyTooSlow),
//     and ReadTimeout bounds the whole request;
//   - WriteTimeout bounds a response, IdleTimeout a kept-alive connection;
//   - more than MaxConnsPerIP open connections from one address: the new
//     one is closed at once (counted in Stats);
//   - more than MaxRequestsPerKey requests in flight with one bearer key: a
//     JSON 429 with Retry-After.
//
// A server may have a fast path (Config.Fast, see FastHandler): each
// HTTP/1.1 connection is read by a loop of this package that parses the
// request heads itself, lets the FastHandler answer the plain ones, and
// hands the connection to net/http, with the bytes it read, at the first
// request the FastHandler declines or this package does not parse as
// plain. The limits above hold on the fast path too.
package serve

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/auth"
)

// Defaults of a zero Limits field.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 10 * time.Minute
	DefaultWriteTimeout      = 10 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultHardHeaderBytes   = 1 << 20
	DefaultMinBodyRate       = 4 << 10 // bytes per second
	DefaultBodyGrace         = 10 * time.Second
	DefaultMaxConnsPerIP     = 512
	DefaultMaxRequestsPerKey = 1024
)

// Codes of the errors this package answers.
const (
	CodeHeaderTooLarge  = "header_too_large"            // 431
	CodeRequestTimeout  = "request_timeout"             // 408
	CodeTooManyInFlight = "too_many_requests_in_flight" // 429
)

// Limits bound what one request and one client may take. Zero fields take
// the defaults above; a negative one turns that limit off.
type Limits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	HardHeaderBytes   int
	// MinBodyRate is in bytes per second, averaged from the moment the
	// handler starts reading the body, after BodyGrace.
	MinBodyRate       int64
	BodyGrace         time.Duration
	MaxConnsPerIP     int
	MaxRequestsPerKey int
}

func (l Limits) withDefaults() Limits {
	d := func(v *time.Duration, def time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		}
	}
	i := func(v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		}
	}
	d(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	d(&l.ReadTimeout, DefaultReadTimeout)
	d(&l.WriteTimeout, DefaultWriteTimeout)
	d(&l.IdleTimeout, DefaultIdleTimeout)
	d(&l.BodyGrace, DefaultBodyGrace)
	i(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	i(&l.HardHeaderBytes, DefaultHardHeaderBytes)
	i(&l.MaxConnsPerIP, DefaultMaxConnsPerIP)
	i(&l.MaxRequestsPerKey, DefaultMaxRequestsPerKey)
	switch {
	case l.MinBodyRate == 0:
		l.MinBodyRate = DefaultMinBodyRate
	case l.MinBodyRate < 0:
		l.MinBodyRate = 0
	}
	if l.HardHeaderBytes > 0 && l.HardHeaderBytes < l.MaxHeaderBytes {
		l.HardHeaderBytes = l.MaxHeaderBytes
	}
	return l
}

// Config configures a Server.
type Config struct {
	// Name names the server in logs ("frontdoor", "aws-api", ...).
	Name string
	// Addr is the address to listen on ("127.0.0.1:8080", ":0").
	Addr string
	// Handler serves the requests.
	Handler http.Handler
	// TLS, when set, makes the server speak TLS only (with HTTP/2 offered
	// by ALPN). Its certificates may be reloaded through GetCertificate /
	// GetConfigForClient.
	TLS *tls.Config
	// Limits bound requests and clients.
	Limits Limits
	// Logger receives the server's own logs (default slog.Default()).
	Logger *slog.Logger
	// Fast, when set, answers what it can of HTTP/1.1 requests before
	// net/http (see FastHandler), within the same limits: the request
	// head must arrive within ReadHeaderTimeout (IdleTimeout between
	// requests) and fit MaxHeaderBytes, each answer is written within
	// WriteTimeout, and the per-address connection cap counts these
	// connections too. It works on plain and TLS connections; HTTP/2
	// ones go to net/http.
	Fast FastHandler
}

// Stats count the server's connections and what it refused itself.
type Stats struct {
	// Accepted counts the connections accepted; Open those open now.
	Accepted, Open int64
	// TLSHandshakeFailures counts connections whose TLS handshake failed
	// (no or a refused client certificate, a timeout, plain HTTP, ...);
	// PlainHTTPOnTLS those of them that sent plain HTTP (answered with a
	// JSON 400).
	TLSHandshakeFailures, PlainHTTPOnTLS int64
	// ConnsRefused counts connections closed because their address had
	// MaxConnsPerIP open already.
	ConnsRefused int64
	// SlowBodies counts request bodies cut for arriving below MinBodyRate
	// (answered with a JSON 408).
	SlowBodies int64
	// KeyLimited counts requests refused for MaxRequestsPerKey.
	KeyLimited int64
	// HeaderTooLarge counts requests refused for MaxHeaderBytes or
	// HardHeaderBytes.
	HeaderTooLarge int64
	// Malformed counts requests refused as malformed before any handler
	// ran (a bad request line or header, an unknown transfer coding).
	Malformed int64
	// Fast counts the requests Config.Fast answered.
	Fast int64
}

// Server is a listening HTTP server.
type Server struct {
	cfg   Config
	lim   Limits
	log   *slog.Logger
	ln    net.Listener
	srv   *http.Server
	url   string
	done  chan struct{}
	keys  keyCounter
	fast  fastState
	stats struct {
		accepted, open, tlsFailures, plainHTTP                          atomic.Int64
		connsRefused, slowBodies, keyLimited, headerTooLarge, malformed atomic.Int64
		fast                                                            atomic.Int64
	}
}

// Listen opens cfg.Addr and starts serving. It returns once the listener
// is open.
func Listen(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("serve: a handler is required")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("serve: %s: listen %s: %w", cfg.Name, cfg.Addr, err)
	}
	return Serve(cfg, ln), nil
}

// Serve serves on ln, which the Server owns from then on.
func Serve(cfg Config, ln net.Listener) *Server {
	s, ln := newServer(cfg, ln)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("server failed", "server", cfg.Name, "err", err)
		}
	}()
	return s
}

// newServer makes the Server of cfg and the listener to serve it on, made
// from ln: the per-address cap, then the TLS handshake and the JSON
// answers for what Go's server refuses itself (see listener).
func newServer(cfg Config, ln net.Listener) (*Server, net.Listener) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, lim: cfg.Limits.withDefaults(), log: cfg.Logger, keys: keyCounter{n: map[[sha256.Size]byte]int{}}}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	s.url = scheme + "://" + ln.Addr().String()
	if s.lim.MaxConnsPerIP > 0 {
		ln = &capListener{Listener: ln, max: s.lim.MaxConnsPerIP, open: map[string]int{}, refused: &s.stats.connsRefused}
	}
	s.srv = &http.Server{
		Handler:           s.wrap(cfg.Handler),
		ReadHeaderTimeout: s.lim.ReadHeaderTimeout,
		ReadTimeout:       s.lim.ReadTimeout,
		WriteTimeout:      s.lim.WriteTimeout,
		IdleTimeout:       s.lim.IdleTimeout,
		MaxHeaderBytes:    s.lim.HardHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	var tc *tls.Config
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
		if len(tc.NextProtos) == 0 {
			tc.NextProtos = []string{"h2", "http/1.1"}
		}
		s.srv.TLSConfig = tc
	}
	s.ln = newListener(ln, s, tc)
	return s, s.ln
}

// HTTPServer returns an http.Server with the limits of lim, and the
// listener made from ln to serve it on (srv.Serve(l)), for a plain-HTTP
// server whose lifecycle its owner keeps.
func HTTPServer(h http.Handler, lim Limits, log *slog.Logger, ln net.Listener) (srv *http.Server, l net.Listener) {
	s, l := newServer(Config{Handler: h, Limits: lim, Logger: log}, ln)
	return s.srv, l
}

// URL is the server's base URL: http:// or https:// and the address it
// listens on.
func (s *Server) URL() string { return s.url }

// Addr is the address it listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Shutdown stops taking connections and waits for the requests in flight
// (see http.Server.Shutdown).
func (s *Server) Shutdown(ctx context.Context) error {
	s.fast.close(false)
	err := s.srv.Shutdown(ctx)
	if err == nil && !s.fast.wait(ctx.Done()) {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("serve: %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.fast.close(true)
	return s.srv.Close()
}

// Stats returns what the server refused.
func (s *Server) Stats() Stats {
	return Stats{
		Accepted:             s.stats.accepted.Load(),
		Open:                 s.stats.open.Load(),
		TLSHandshakeFailures: s.stats.tlsFailures.Load(),
		PlainHTTPOnTLS:       s.stats.plainHTTP.Load(),
		ConnsRefused:         s.stats.connsRefused.Load(),
		SlowBodies:           s.stats.slowBodies.Load(),
		KeyLimited:           s.stats.keyLimited.Load(),
		HeaderTooLarge:       s.stats.headerTooLarge.Load(),
		Malformed:            s.stats.malformed.Load(),
		Fast:                 s.stats.fast.Load(),
	}
}

// wrap applies the per-request limits in front of h.
func (s *Server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.lim.MaxHeaderBytes > 0 && headerSize(r) > s.lim.MaxHeaderBytes {
			s.stats.headerTooLarge.Add(1)
			w.Header().Set("Connection", "close")
			apierr.Write(w, apierr.New(http.StatusRequestHeaderFieldsTooLarge, CodeHeaderTooLarge,
				"the request's headers are larger than %d bytes", s.lim.MaxHeaderBytes))
			return
		}
		if s.lim.MaxRequestsPerKey > 0 {
			if key, ok := auth.BearerKey(r.Header.Get("Authorization")); ok {
				k := sha256.Sum256([]byte(key))
				if !s.keys.enter(k, s.lim.MaxRequestsPerKey) {
					s.stats.keyLimited.Add(1)
					w.Header().Set("Retry-After", "1")
					apierr.Write(w, apierr.New(http.StatusTooManyRequests, CodeTooManyInFlight,
						"more than %d requests in flight with this key; retry after 1 s", s.lim.MaxRequestsPerKey))
					return
				}
				defer s.keys.leave(k)
			}
		}
		if s.lim.MinBodyRate > 0 && r.Body != nil && r.Body != http.NoBody {
			r.Body = &rateBody{rc: r.Body, ctl: http.NewResponseController(w), rate: s.lim.MinBodyRate, grace: s.lim.BodyGrace, slow: &s.stats.slowBodies}
		}
		h.ServeHTTP(w, r)
	})
}

// headerSize approximates the bytes of a request's line and headers as
// they were sent.
func headerSize(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n + len(r.Host) + 8
}

type keyCounter struct {
	mu sync.Mutex
	n  map[[sha256.Size]byte]int
}

func (c *keyCounter) enter(k [sha256.Size]byte, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] >= max {
		return false
	}
	c.n[k]++
	return true
}

func (c *keyCounter) leave(k [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k]--; c.n[k] <= 0 {
		delete(c.n, k)
	}
}

// ErrBodyTooSlow is the error a request body's Read returns when the body
// arrives below the minimum rate.
var ErrBodyTooSlow = errors.New("serve: the request body arrives too slowly")

// IsBodyTooSlow reports whether err (from reading a request body) means
// the body was cut for its rate, to be answered with BodyTooSlow.
func IsBodyTooSlow(err error) bool { return errors.Is(err, ErrBodyTooSlow) }

// BodyTooSlow is the 408 answered for a body cut for its rate.
func BodyTooSlow() *apierr.Error {
	return apierr.New(http.StatusRequestTimeout, CodeRequestTimeout, "the request body arrived too slowly; send it at a steady rate")
}

// rateBody cuts a body that arrives below rate bytes per second on average
// (after grace) by moving the connection's read deadline ahead of each
// read: the byte after those read so far must arrive by
// start + grace + bytes/rate.
type rateBody struct {
	rc    io.ReadCloser
	ctl   *http.ResponseController
	rate  int64
	grace time.Duration
	slow  *atomic.Int64

	start time.Time
	n     int64
	off   bool // the connection does not support deadlines
	cut   bool
}

func (b *rateBody) Read(p []byte) (int, error) {
	if b.cut {
		return 0, ErrBodyTooSlow
	}
	if b.start.IsZero() {
		b.start = time.Now()
	}
	if !b.off {
		next := b.n + 1
		deadline := b.start.Add(b.grace + time.Duration(float64(next)/float64(b.rate)*float64(time.Second)))
		if err := b.ctl.SetReadDeadline(deadline); err != nil {
			b.off = true
		}
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		b.cut = true
		b.slow.Add(1)
		return n, fmt.Errorf("%w (%d bytes in %s)", ErrBodyTooSlow, b.n, time.Since(b.start).Round(time.Millisecond))
	}
	if err == io.EOF && !b.off {
		_ = b.ctl.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (b *rateBody) Close() error { return b.rc.Close() }

// capListener closes the connections of an address that has max open.
type capListener struct {
	net.Listener
	max     int
	refused *atomic.Int64

	mu   sync.Mutex
	open map[string]int
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := hostOf(c.RemoteAddr())
		l.mu.Lock()
		ok := l.open[host] < l.max
		if ok {
			l.open[host]++
		}
		l.mu.Unlock()
		if !ok {
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		return &capConn{Conn: c, l: l, host: host}, nil
	}
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

type capConn struct {
	net.Conn
	l    *capListener
	host string
	once sync.Once
}

// CloseWrite half-closes the connection when it can.
func (c *capConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// capConn keeps the connection's ReadFrom, through which net/http sends
// files with sendfile(2).
var _ io.ReaderFrom = (*capConn)(nil)

// ReadFrom is the connection's own when it has one.
func (c *capConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

func (c *capConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.host]--; c.l.open[c.host] <= 0 {
			delete(c.l.open, c.host)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
