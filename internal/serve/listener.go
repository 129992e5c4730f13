package serve

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intercloud/intercloud/apierr"
)

// Codes of the errors answered for requests Go's HTTP server refuses
// before any handler runs.
const (
	CodeMalformed      = apierr.CodeMalformed // 400
	CodeNotImplemented = "not_implemented"    // 501
	CodePlainHTTP      = "plain_http_on_tls"  // 400
)

// goErrorHeaders ends the status line of the plain-text answers Go's
// HTTP/1 server writes itself (431 for headers past MaxHeaderBytes, 400 for
// a malformed request, 501 for an unknown transfer coding): Content-Type
// before Connection and nothing else, an order no response of a handler
// has (Go writes a handler's fields sorted, with Date).
const goErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// jsonConn turns the plain-text answers Go's HTTP/1 server writes directly
// to the connection into intercloud's JSON error answers. Each is one
// Write of the whole answer.
type jsonConn struct {
	net.Conn
	s *Server
}

// Write implements net.Conn.
func (c *jsonConn) Write(p []byte) (int, error) {
	if e := c.s.goError(p); e != nil {
		if _, err := c.Conn.Write(errorResponse(e)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite lets Go's server half-close after an error answer, so that
// the client reads it before the connection is reset.
func (c *jsonConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// jsonTLSConn is a jsonConn over a TLS connection whose handshake is done:
// Go's HTTP/1 server reads the request's TLS state from ConnectionState.
type jsonTLSConn struct {
	jsonConn
	tc *tls.Conn
}

// ConnectionState returns the TLS connection's state.
func (c *jsonTLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// goError returns the JSON error for a plain-text answer of Go's HTTP/1
// server, or nil when p is not one, and counts it.
func (s *Server) goError(p []byte) *apierr.Error {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(p, []byte(proto)) || len(p) < len(proto)+3 {
		return nil
	}
	// Go's status line is short; a response's own header block is not
	// searched past it.
	end := bytes.Index(p[:min(len(p), 512)], []byte(goErrorHeaders))
	if end < 0 || bytes.IndexByte(p[:end], '\n') >= 0 {
		return nil
	}
	code, err := strconv.Atoi(string(p[len(proto) : len(proto)+3]))
	if err != nil {
		return nil
	}
	detail := string(p[end+len(goErrorHeaders):])
	switch code {
	case http.StatusRequestHeaderFieldsTooLarge:
		s.stats.headerTooLarge.Add(1)
		return apierr.New(code, CodeHeaderTooLarge, "the request's headers are larger than %d bytes", s.lim.MaxHeaderBytes)
	case http.StatusNotImplemented:
		s.stats.malformed.Add(1)
		return apierr.New(code, CodeNotImplemented, "unsupported transfer encoding")
	case http.StatusBadRequest:
		s.stats.malformed.Add(1)
		msg := "malformed HTTP request"
		if _, why, ok := bytes.Cut([]byte(detail), []byte(": ")); ok {
			msg += ": " + string(why)
		}
		return apierr.New(code, CodeMalformed, "%s", msg)
	}
	s.stats.malformed.Add(1)
	return apierr.New(code, apierr.CodeMalformed, "%s", detail)
}

// errorResponse is a whole HTTP/1.1 answer carrying e, closing the
// connection.
func errorResponse(e *apierr.Error) []byte {
	rec := &bufferWriter{h: http.Header{}}
	apierr.Write(rec, e)
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", e.Status, http.StatusText(e.Status))
	rec.h.Set("Connection", "close")
	rec.h.Set("Content-Length", strconv.Itoa(rec.body.Len()))
	_ = rec.h.Write(&b)
	b.WriteString("\r\n")
	b.Write(rec.body.Bytes())
	return b.Bytes()
}

// bufferWriter is an http.ResponseWriter into memory.
type bufferWriter struct {
	h    http.Header
	body bytes.Buffer
}

func (w *bufferWriter) Header() http.Header         { return w.h }
func (w *bufferWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *bufferWriter) WriteHeader(int)             {}

// listener counts the connections it accepts and hands them over as
// jsonConns; with TLS, it does the handshake itself (bounded by the
// ReadHeaderTimeout) before it hands a connection over: an HTTP/2 one as
// the *tls.Conn Go's server serves, an HTTP/1 one as a jsonTLSConn. A
// client that speaks plain HTTP to it gets a JSON 400.
type listener struct {
	net.Listener
	s       *Server
	tls     *tls.Config
	timeout time.Duration

	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func newListener(ln net.Listener, s *Server, tc *tls.Config) *listener {
	l := &listener{Listener: ln, s: s, tls: tc, timeout: s.lim.ReadHeaderTimeout,
		conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	if l.timeout <= 0 {
		l.timeout = DefaultReadHeaderTimeout
	}
	if tc != nil || s.cfg.Fast != nil {
		go l.acceptLoop()
	}
	return l
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	if l.tls == nil && l.s.cfg.Fast == nil {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.stats.accepted.Add(1)
		return &jsonConn{Conn: l.counted(c), s: l.s}, nil
	}
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// acceptLoop accepts connections and starts each on its own: the TLS
// handshake, then the fast path's loop.
func (l *listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// Serve stops at an error that is not temporary, and backs
			// off before it accepts again after one that is.
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.s.stats.accepted.Add(1)
		go l.start(l.counted(c))
	}
}

// start does the TLS handshake of c, runs the fast path's loop and hands
// the connection over to net/http unless that loop closed it.
func (l *listener) start(c net.Conn) {
	if l.tls == nil {
		if c = l.s.serveFast(c); c != nil {
			l.handOver(&jsonConn{Conn: c, s: l.s})
		}
		return
	}
	tc := tls.Server(c, l.tls)
	_ = c.SetDeadline(time.Now().Add(l.timeout))
	err := tc.Handshake()
	if err != nil {
		l.s.stats.tlsFailures.Add(1)
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			l.s.stats.plainHTTP.Add(1)
			_, _ = re.Conn.Write(errorResponse(apierr.New(http.StatusBadRequest, CodePlainHTTP,
				"this port speaks HTTPS only; send the request to https://%s", l.Addr())))
			// Half-close and read what the client still sends for a
			// moment, so that closing does not reset the connection
			// before the client read the answer.
			if cw, ok := re.Conn.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			_ = re.Conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, _ = io.Copy(io.Discard, io.LimitReader(re.Conn, 256<<10))
		}
		l.s.log.Debug("TLS handshake failed", "server", l.s.cfg.Name, "remote", c.RemoteAddr().String(), "err", err)
		_ = c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		l.handOver(tc)
		return
	}
	var in net.Conn = tc
	if l.s.cfg.Fast != nil {
		if in = l.s.serveFast(tc); in == nil {
			return
		}
	}
	l.handOver(&jsonTLSConn{jsonConn: jsonConn{Conn: in, s: l.s}, tc: tc})
}

// handOver hands c to net/http (through Accept), or closes it when the
// listener is closed.
func (l *listener) handOver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// looksLikeHTTP reports whether the first bytes of a connection, read as a
// TLS record header, are a plain HTTP request (as net/http tells them).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH":
		return true
	}
	return false
}

// counted counts c as open until it is closed.
func (l *listener) counted(c net.Conn) net.Conn {
	l.s.stats.open.Add(1)
	return &countedConn{Conn: c, open: &l.s.stats.open}
}

type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
