package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/internal/serve"
)

// DefaultMaxBody bounds a webhook request body.
const DefaultMaxBody = 1 << 20

// S3Webhook is an http.Handler that receives S3 event notifications
// (POSTed JSON, as versitygw's --event-webhook-url sends them) and calls
// the callback for every created object. It answers 204 when every
// callback succeeded, 400 for a malformed body, 413 for one over MaxBody
// and 500 when a callback failed.
type S3Webhook struct {
	cb   Callback
	log  *slog.Logger
	opts WebhookOptions
}

// WebhookOptions tune an S3Webhook.
type WebhookOptions struct {
	// MaxBody bounds a request body (default DefaultMaxBody).
	MaxBody int64
	// RawKeys says the sender puts object keys in as they are instead of
	// URL-encoding them as S3 does (versitygw).
	RawKeys bool
}

var _ http.Handler = (*S3Webhook)(nil)

// NewS3Webhook returns the handler.
func NewS3Webhook(cb Callback, opts WebhookOptions, log *slog.Logger) *S3Webhook {
	if log == nil {
		log = slog.Default()
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	return &S3Webhook{cb: cb, log: log.With("component", "notify"), opts: opts}
}

// ServeHTTP implements http.Handler.
func (h *S3Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "POST S3 event notifications here"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			apierr.Write(w, apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeTooLarge, "notification over %d bytes", h.opts.MaxBody))
			return
		}
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "read body: %v", err))
		return
	}
	parse := ParseS3Event
	if h.opts.RawKeys {
		parse = ParseS3EventRawKeys
	}
	evs, err := parse(body)
	if err != nil {
		h.log.WarnContext(r.Context(), "malformed S3 notification", "err", err)
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%v", err))
		return
	}
	if err := DeliverAll(r.Context(), h.cb, evs); err != nil {
		h.log.ErrorContext(r.Context(), "notification callback failed", "err", err)
		apierr.Write(w, apierr.New(http.StatusInternalServerError, apierr.CodeInternal, "delivering %d events failed", len(evs)))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// WebhookServer serves an S3Webhook on its own listener.
type WebhookServer struct {
	ln   net.Listener
	srv  *http.Server
	path string
	once sync.Once
}

var _ Listener = (*WebhookServer)(nil)

// ListenWebhook listens on the host:port of a webhook://HOST:PORT/PATH URL
// (PATH defaults to /) at once; Run serves it. Query parameters: max_body
// bounds a request body in bytes; keys=raw says the sender does not
// URL-encode object keys (versitygw), keys=urlencoded (S3's way) is the
// default.
func ListenWebhook(u *url.URL, cb Callback, log *slog.Logger) (*WebhookServer, error) {
	if u.Host == "" {
		return nil, errors.New("notify: webhook URL needs host:port (webhook://127.0.0.1:9000/path)")
	}
	var opts WebhookOptions
	for k, vs := range u.Query() {
		switch k {
		case "max_body":
			if _, err := fmt.Sscan(vs[0], &opts.MaxBody); err != nil || opts.MaxBody <= 0 {
				return nil, fmt.Errorf("notify: max_body must be a positive byte count, not %q", vs[0])
			}
		case "keys":
			switch vs[0] {
			case "raw":
				opts.RawKeys = true
			case "urlencoded":
			default:
				return nil, fmt.Errorf("notify: keys must be raw or urlencoded, not %q", vs[0])
			}
		default:
			return nil, fmt.Errorf("notify: unknown webhook URL parameter %q (known: max_body, keys)", k)
		}
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("notify: webhook: listen %s: %w", u.Host, err)
	}
	mux := http.NewServeMux()
	mux.Handle(path, NewS3Webhook(cb, opts, log))
	srv, sln := serve.HTTPServer(mux, serve.Limits{}, log, ln)
	return &WebhookServer{ln: sln, path: path, srv: srv}, nil
}

// URL returns the http URL to give the store (its --event-webhook-url).
func (s *WebhookServer) URL() string { return "http://" + s.ln.Addr().String() + s.path }

// Run serves until ctx is cancelled, then finishes the requests in flight.
func (s *WebhookServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("notify: webhook: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
		return nil
	}
}

// Close stops listening.
func (s *WebhookServer) Close() error {
	var err error
	s.once.Do(func() {
		err = s.srv.Close()
		if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = cerr
		}
	})
	return err
}
