// Package origin is the publishing cloud's public result endpoint: what a
// storage account's web endpoint (or an S3 website) is for the CDN. It serves
// the objects of an [objects.Bucket] under one key prefix over plain HTTP
// GET and HEAD, with validators (ETag, Last-Modified), conditional requests,
// byte ranges and the objects' tags (Surrogate-Key), so the edge can cache,
// revalidate and purge them.
package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/objects"
)

// CacheControl is the Cache-Control header of every object response.
const CacheControl = "public, max-age=60"

// MetadataSurrogateKey is the object metadata served as the Surrogate-Key
// header: the tags a CDN can purge the object's cached copies by.
const MetadataSurrogateKey = "surrogate-key"

// MaxKeyLen bounds a key in bytes (the S3 and Azure limit is 1024).
const MaxKeyLen = 1024

// ErrBadKey is returned by [CheckKey] for a key that may not be served.
var ErrBadKey = errors.New("origin: bad key")

// Config configures a Server.
type Config struct {
	// Bucket holds the objects. Required.
	Bucket *objects.Bucket
	// Prefix limits the served keys to those starting with it, e.g.
	// "results/". Empty serves every key.
	Prefix string
	// Logger receives one debug line per request; default slog.Default().
	Logger *slog.Logger
}

// Server serves a bucket's objects. It is safe for concurrent use.
type Server struct {
	bucket *objects.Bucket
	prefix string
	log    *slog.Logger
}

var _ http.Handler = (*Server)(nil)

// New returns a Server for cfg. It panics if cfg.Bucket is nil, a
// programming error.
func New(cfg Config) *Server {
	if cfg.Bucket == nil {
		panic("origin: Config.Bucket is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{bucket: cfg.Bucket, prefix: cfg.Prefix, log: log.With("component", "origin")}
}

// CheckKey reports whether key is acceptable as an object key taken from a
// URL path: a valid object key (objects.ValidateKey: not empty, valid
// UTF-8, no empty, "." or ".." segments), at most MaxKeyLen bytes, and no
// control characters (NUL included). The error wraps ErrBadKey and says
// what is wrong.
func CheckKey(key string) error {
	if err := objects.ValidateKey(key); err != nil {
		return fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadKey, MaxKeyLen)
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: control character %U", ErrBadKey, c)
		}
	}
	return nil
}

// KeyOf returns the key a request URL names (objects.KeyOfPath of its
// path as sent), checked with CheckKey.
func KeyOf(u *url.URL) (string, error) {
	key, err := objects.KeyOfPath(u.EscapedPath())
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// ServeHTTP serves GET and HEAD /<key>.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := apierr.NewResponseWriter(w)
	s.serve(rw, r)
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rw.Status), slog.Int64("bytes", rw.Bytes),
		slog.Duration("dur", time.Since(start)))
}

func (s *Server) serve(w *apierr.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "method %s not allowed; use GET or HEAD", r.Method))
		return
	}
	// The decoded path must be a servable key too (no dot segments, no
	// control characters: what the edge refuses as well), then the path as
	// sent names the key (objects.KeyOfPath: "a%2Fb" is the key segment
	// "a%2Fb", the metric "a/b").
	decoded := strings.TrimPrefix(r.URL.Path, "/")
	if err := CheckKey(decoded); err != nil && decoded != "" {
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%v", err))
		return
	}
	var key string
	if decoded != "" {
		var err error
		if key, err = KeyOf(r.URL); err != nil {
			apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%v", err))
			return
		}
	}
	if key == "" || !strings.HasPrefix(key, s.prefix) {
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no object at %s", r.URL.Path))
		return
	}
	ctx := r.Context()
	attrs, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		s.storeError(w, r, key, err)
		return
	}
	h := w.Header()
	ct := attrs.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("ETag", etag(attrs))
	h.Set("Cache-Control", CacheControl)
	if tags := attrs.Metadata[MetadataSurrogateKey]; tags != "" {
		h.Set("Surrogate-Key", tags)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.JSONErrors = true
	w.Fallback = apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "the object could not be read")
	content := &rangeSeeker{ctx: ctx, b: s.bucket, key: key, size: attrs.Size}
	defer content.Close()
	http.ServeContent(w, r, "", attrs.ModTime, content)
	if content.err != nil && !errors.Is(content.err, context.Canceled) {
		s.log.Warn("read object", "key", key, "err", content.err)
	}
}

// storeError answers a failed Attributes call: 404 when the object does not
// exist (or is a key the store cannot hold), 503 otherwise.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, key string, err error) {
	if errors.Is(err, objects.ErrNotFound) || gcerrors.Code(err) == gcerrors.InvalidArgument {
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no object at %s", r.URL.Path))
		return
	}
	if r.Context().Err() == nil {
		s.log.Warn("object store failed", "key", key, "err", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", "1")
	apierr.Write(w, apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "the object store is unavailable"))
}

// etag returns the store's ETag, quoted, or one derived from the
// modification time and size when the store has none.
func etag(a *objects.Attributes) string {
	t := a.ETag
	switch {
	case t == "":
		return `"` + strconv.FormatInt(a.ModTime.UnixNano(), 16) + "-" + strconv.FormatInt(a.Size, 16) + `"`
	case strings.HasPrefix(t, `W/"`), len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"':
		return t
	default:
		return `"` + strings.ReplaceAll(t, `"`, "") + `"`
	}
}

// rangeSeeker is an io.ReadSeeker over an object that opens a range reader
// lazily at the current offset, so http.ServeContent can answer HEAD and
// Range requests without reading the whole object.
type rangeSeeker struct {
	ctx  context.Context // the request's; lives only as long as the request
	b    *objects.Bucket
	key  string
	size int64
	off  int64
	r    io.ReadCloser
	err  error // first read error, for the log
}

func (s *rangeSeeker) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	if s.r == nil {
		r, err := s.b.NewRangeReader(s.ctx, s.key, s.off, -1)
		if err != nil {
			s.err = err
			return 0, err
		}
		s.r = r
	}
	n, err := s.r.Read(p)
	s.off += int64(n)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

func (s *rangeSeeker) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = s.off + offset
	case io.SeekEnd:
		abs = s.size + offset
	default:
		return 0, errors.New("origin: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("origin: negative position")
	}
	if abs != s.off {
		s.Close()
		s.off = abs
	}
	return abs, nil
}

// Close releases the open range reader, if any.
func (s *rangeSeeker) Close() {
	if s.r != nil {
		_ = s.r.Close()
		s.r = nil
	}
}
