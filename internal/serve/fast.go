package serve

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// A FastHandler answers the simplest requests of an HTTP/1.1 connection
// without net/http: a server with one (Config.Fast) reads each request
// head itself and asks the FastHandler first; whatever it declines, and
// every request head the server does not parse as plain (see
// ParseFastRequest), is served by net/http and the Handler, which own the
// connection from then on. A FastHandler is only an accelerator: what it
// answers must be byte for byte what the Handler would answer.
type FastHandler interface {
	// ServeFast writes the whole answer to r into w — status line and
	// header appended to w.Head, the body (not copied; it must stay unchanged) to
	// w.Body, the status to w.Status — and returns true; or it returns
	// false and leaves w alone. r and its strings are valid only during
	// the call. It is called concurrently.
	ServeFast(w *FastResponse, r *FastRequest) bool
}

// FastRequest is a request head the fast path takes: a GET or HEAD of
// HTTP/1.1 without a body, Expect, Upgrade or Authorization. Its strings
// point into the connection's buffer.
type FastRequest struct {
	// Method is "GET" or "HEAD".
	Method string
	// Target is the request-target in origin form ("/path?query"), as
	// sent: printable ASCII, no '%' in the path, no '#'. Path is the part
	// before the first '?', RawQuery the part after it ("" if none).
	Target, Path, RawQuery string
	// Header holds the fields but Host and Connection, in the order sent,
	// names as sent and values without surrounding whitespace.
	Header []FastField
	// Close is set when the client asked to close the connection after
	// the answer (Connection: close); the server then adds
	// "Connection: close" to the answer (see FastResponse) and closes it.
	Close bool
	// RemoteAddr is the client's address, as net/http's
	// Request.RemoteAddr has it.
	RemoteAddr string
}

// FastField is a header field of a FastRequest.
type FastField struct{ Name, Value string }

// FastResponse is the answer a FastHandler writes.
type FastResponse struct {
	// Head is the status line and the header fields, each line ending
	// with CRLF, without the empty line ending the header: the server
	// appends "Connection: close" when the request asked for it (as
	// net/http does, after the fields it writes itself), then the empty
	// line.
	Head []byte
	// Body follows the header; nil for a HEAD and a bodyless status.
	Body []byte
	// Status is the answer's status code.
	Status int
}

// Limits of the fast path's own parsing: a request head larger than the
// buffer, or with more fields, goes to net/http.
const (
	fastBufSize   = 4 << 10
	fastMaxFields = 32
	// fastInline is the largest body copied into the output buffer; a
	// larger one is written next to it (writev).
	fastInline = 16 << 10
	// rstAvoidanceDelay is how long a closing connection waits after its
	// last answer before it is closed, as net/http waits, so the client
	// reads the answer before a reset.
	rstAvoidanceDelay = 500 * time.Millisecond
)

var errFastDecline = errors.New("serve: not a fast request")

// ParseFastRequest parses the request head in head (request line and
// fields, each ending with CRLF, up to and including the empty line) into
// r, reusing r's field slice. It accepts only what net/http would read
// the same way and the fast path may answer: GET or HEAD, HTTP/1.1, an
// origin-form target of printable ASCII (no '%' in the path, no '#'), one
// Host of host[:port] characters, field names of token characters, values
// of visible ASCII, spaces and tabs, at most 32 fields, Connection
// holding only "close" and "keep-alive", and no Content-Length,
// Transfer-Encoding, Expect, Upgrade, Trailer or Authorization field.
// Anything else returns an error, and the request goes to net/http (which
// answers a malformed one with 400). The strings of r point into head.
func ParseFastRequest(head []byte, r *FastRequest) error {
	r.Header = r.Header[:0]
	r.Close = false
	line, rest, ok := cutLine(head)
	if !ok {
		return errFastDecline
	}
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		r.Method, line = "GET", line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		r.Method, line = "HEAD", line[5:]
	default:
		return errFastDecline
	}
	target, ok := bytes.CutSuffix(line, []byte(" HTTP/1.1"))
	if !ok || len(target) == 0 || target[0] != '/' {
		return errFastDecline
	}
	q := bytes.IndexByte(target, '?')
	path := target
	if q >= 0 {
		path = target[:q]
	}
	for i, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' || (c == '%' && (q < 0 || i < q)) {
			return errFastDecline
		}
	}
	r.Target, r.Path, r.RawQuery = view(target), view(path), ""
	if q >= 0 {
		r.RawQuery = view(target[q+1:])
	}
	hosts := 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return errFastDecline
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !IsToken(view(name)) || !visible(value) {
			return errFastDecline
		}
		value = bytes.Trim(value, " \t")
		switch {
		case fold(name, "Host"):
			if hosts++; hosts > 1 || len(value) == 0 || !hostChars(value) {
				return errFastDecline
			}
			continue
		case fold(name, "Connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				switch tok = bytes.Trim(tok, " \t"); {
				case fold(tok, "close"):
					r.Close = true
				case fold(tok, "keep-alive"), len(tok) == 0:
				default:
					return errFastDecline
				}
			}
			continue
		case fold(name, "Content-Length"), fold(name, "Transfer-Encoding"), fold(name, "Expect"),
			fold(name, "Upgrade"), fold(name, "Trailer"), fold(name, "Authorization"):
			return errFastDecline
		}
		if len(r.Header) == fastMaxFields {
			return errFastDecline
		}
		r.Header = append(r.Header, FastField{view(name), view(value)})
	}
	if hosts != 1 || len(rest) != 0 {
		return errFastDecline
	}
	return nil
}

// cutLine cuts a CRLF-terminated line off b.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

// view is b as a string without a copy, valid while b is unchanged.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// fold compares b with the ASCII string s, ignoring case.
func fold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// IsToken reports whether s is made of RFC 9110 token characters (a
// field name, a method), and not empty.
func IsToken(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// visible reports whether b holds only visible ASCII, spaces and tabs.
func visible(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// hostChars reports whether b is made of the characters of a host name,
// an IP literal and a port.
func hostChars(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// fastConn is a connection in the fast path's loop.
type fastConn struct {
	c    net.Conn
	buf  []byte // read buffer: unread bytes are buf[r:w]
	r, w int
	out  []byte
	req  FastRequest
	resp FastResponse
	idle atomic.Bool // waiting for a request
	raw  rawIO       // raw reads and writes when raw.rc is set
}

// read reads from the connection, raw when it can.
func (fc *fastConn) read(p []byte) (int, error) {
	if fc.raw.rc != nil {
		return fc.raw.read(p)
	}
	return fc.c.Read(p)
}

var fastPool = sync.Pool{New: func() any {
	return &fastConn{buf: make([]byte, fastBufSize), out: make([]byte, 0, fastBufSize),
		req: FastRequest{Header: make([]FastField, 0, fastMaxFields)}}
}}

// fastState tracks the connections in the fast path's loop, for Shutdown
// and Close.
type fastState struct {
	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*fastConn]struct{}
	wg      sync.WaitGroup
}

// enter registers fc; it fails once the server is closing.
func (f *fastState) enter(fc *fastConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		return false
	}
	if f.conns == nil {
		f.conns = map[*fastConn]struct{}{}
	}
	f.conns[fc] = struct{}{}
	f.wg.Add(1)
	return true
}

func (f *fastState) leave(fc *fastConn) {
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
	f.wg.Done()
}

// setIdle marks fc as waiting for a request (or not); it reports false
// when the server is closing (the loop looks only before it waits: after,
// a closed connection's read has already returned nothing). Marking before looking at closing (and
// close doing the reverse) makes sure an idle connection is either
// closed by close or sees closing.
func (f *fastState) setIdle(fc *fastConn, idle bool) bool {
	fc.idle.Store(idle)
	return !f.closing.Load()
}

// close stops the loops: idle connections (all with force) are closed,
// the others close after their answer.
func (f *fastState) close(force bool) {
	f.closing.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		if force || fc.idle.Load() {
			_ = fc.c.Close()
		}
	}
}

// wait waits for the loops to end.
func (f *fastState) wait(done <-chan struct{}) bool {
	ch := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(ch)
	}()
	select {
	case <-ch:
		return true
	case <-done:
		return false
	}
}

// serveFast runs the fast path's loop on c (a plain or TLS connection
// speaking HTTP/1.1). It returns the connection to hand to net/http with
// the bytes it read and did not answer, or nil when it closed c.
func (s *Server) serveFast(c net.Conn) (handoff net.Conn) {
	fc := fastPool.Get().(*fastConn)
	fc.c, fc.r, fc.w, fc.out = c, 0, 0, fc.out[:0]
	fc.req.RemoteAddr = c.RemoteAddr().String()
	if fc.raw.rc = rawConn(c); fc.raw.rc != nil {
		fc.raw.init()
	}
	defer func() {
		fc.raw.rc = nil
		fc.c, fc.req.Target, fc.req.Path, fc.req.RawQuery, fc.req.RemoteAddr = nil, "", "", "", ""
		clear(fc.req.Header[:cap(fc.req.Header)])
		fc.resp = FastResponse{}
		if cap(fc.out) > 4*fastInline {
			fc.out = make([]byte, 0, fastBufSize)
		}
		fastPool.Put(fc)
	}()
	if !s.fast.enter(fc) {
		_ = c.Close()
		return nil
	}
	defer s.fast.leave(fc)
	lim := &s.lim
	headerTimeout := lim.ReadHeaderTimeout
	if headerTimeout == 0 {
		headerTimeout = lim.ReadTimeout
	}
	idleTimeout := lim.IdleTimeout
	if idleTimeout == 0 {
		idleTimeout = lim.ReadTimeout
	}
	first, start := true, time.Now()
	for {
		if fc.r == fc.w {
			// Nothing buffered: answer what was, then wait for the next
			// request.
			fc.r, fc.w = 0, 0
			if !s.fastFlush(fc) {
				return nil
			}
			wait := idleTimeout
			if first {
				wait = headerTimeout
			}
			setReadDeadline(c, wait)
			if !s.fast.setIdle(fc, true) {
				_ = c.Close()
				return nil
			}
			n, _ := fc.read(fc.buf)
			s.fast.setIdle(fc, false)
			if n == 0 {
				// The client went away or stayed idle too long: net/http
				// closes such a connection without an answer too.
				_ = c.Close()
				return nil
			}
			fc.w = n
		}
		size := scanHead(fc.buf[fc.r:fc.w])
		if size == 0 {
			if !s.fastFlush(fc) {
				return nil
			}
			var ok bool
			if !first {
				start = time.Now()
			}
			if size, ok = s.readHead(fc, start, headerTimeout); !ok {
				return nil
			}
		}
		if size < 0 {
			return s.handoff(fc)
		}
		first = false
		head := fc.buf[fc.r : fc.r+size]
		if err := ParseFastRequest(head, &fc.req); err != nil || !s.fitsHeaderCap(head) {
			return s.handoff(fc)
		}
		fc.resp = FastResponse{Head: fc.out}
		if !s.cfg.Fast.ServeFast(&fc.resp, &fc.req) {
			fc.resp = FastResponse{}
			return s.handoff(fc)
		}
		s.stats.fast.Add(1)
		fc.r += len(head)
		fc.out = fc.resp.Head
		if fc.req.Close {
			fc.out = append(fc.out, "Connection: close\r\n"...)
		}
		fc.out = append(fc.out, "\r\n"...)
		body := fc.resp.Body
		if len(body) <= fastInline {
			fc.out = append(fc.out, body...)
			body = nil
		}
		if body != nil || fc.req.Close || len(fc.out) >= fastInline {
			if !s.fastWrite(fc, body) {
				return nil
			}
		}
		fc.resp = FastResponse{}
		if fc.req.Close {
			// As net/http: no further request on this connection.
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			time.Sleep(rstAvoidanceDelay)
			_ = c.Close()
			return nil
		}
	}
}

// scanHead returns the length of the request head at the start of b, up
// to and including the empty line ending it (CRLF or a bare LF, which
// ParseFastRequest declines); 0 while b holds only part of a head that
// may be one the fast path takes; -1 when it cannot be one (its method is
// neither GET nor HEAD), so that net/http gets it without waiting for
// more.
func scanHead(b []byte) int {
	if m := b[:min(len(b), 5)]; !bytes.HasPrefix([]byte("HEAD "), m) && !bytes.HasPrefix([]byte("GET "), m[:min(len(m), 4)]) {
		return -1
	}
	for i := 0; ; i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
}

// readHead reads until the buffer holds a whole request head (the head's
// first byte arrived at start; it must be whole within timeout from then)
// and returns its length (see scanHead); -1 when it cannot be one the fast
// path takes, does not fit the buffer, or the client closed the
// connection in the middle of it (net/http answers that). A timeout closes
// the connection, as net/http does (ok false).
func (s *Server) readHead(fc *fastConn, start time.Time, timeout time.Duration) (size int, ok bool) {
	if fc.r > 0 {
		fc.w = copy(fc.buf, fc.buf[fc.r:fc.w])
		fc.r = 0
	}
	if timeout > 0 {
		_ = fc.c.SetReadDeadline(start.Add(timeout))
	}
	for fc.w < len(fc.buf) {
		n, err := fc.read(fc.buf[fc.w:])
		fc.w += n
		if size := scanHead(fc.buf[:fc.w]); size != 0 {
			return size, true
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				_ = fc.c.Close()
				return 0, false
			}
			return -1, true
		}
	}
	return -1, true
}

// fitsHeaderCap reports whether net/http's size of the request's headers
// (see headerSize) is surely within MaxHeaderBytes: it is at most the
// head's length plus one byte per line (a field sent without a space
// after its colon counts one byte more).
func (s *Server) fitsHeaderCap(head []byte) bool {
	return s.lim.MaxHeaderBytes <= 0 || len(head)+bytes.Count(head, []byte("\n")) <= s.lim.MaxHeaderBytes
}

// fastFlush writes the answers buffered so far.
func (s *Server) fastFlush(fc *fastConn) bool {
	if len(fc.out) == 0 {
		return true
	}
	return s.fastWrite(fc, nil)
}

// fastWrite writes the buffered answers and body, within WriteTimeout; a
// failure closes the connection. No write deadline is left set after it:
// a raw write sets one only when it has to wait (see rawIO.write), which
// spares the runtime's timer a change per answer.
func (s *Server) fastWrite(fc *fastConn, body []byte) bool {
	var err error
	if body == nil && fc.raw.rc != nil {
		err = fc.raw.write(fc.out, fc.c, s.lim.WriteTimeout)
	} else {
		timeout := s.lim.WriteTimeout
		if timeout > 0 {
			_ = fc.c.SetWriteDeadline(time.Now().Add(timeout))
		}
		if body == nil {
			_, err = fc.c.Write(fc.out)
		} else {
			bufs := net.Buffers{fc.out, body}
			_, err = bufs.WriteTo(fc.c)
		}
		if timeout > 0 && err == nil {
			_ = fc.c.SetWriteDeadline(time.Time{})
		}
	}
	fc.out = fc.out[:0]
	if err != nil {
		_ = fc.c.Close()
		return false
	}
	return true
}

// handoff gives the connection to net/http with the bytes read and not
// answered, after writing the answers buffered so far.
func (s *Server) handoff(fc *fastConn) net.Conn {
	if !s.fastFlush(fc) {
		return nil
	}
	rest := bytes.Clone(fc.buf[fc.r:fc.w])
	return &replayConn{Conn: fc.c, buf: rest}
}

func setReadDeadline(c net.Conn, d time.Duration) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	_ = c.SetReadDeadline(t)
}

// replayConn is a connection whose first reads return bytes already read
// from it.
type replayConn struct {
	net.Conn
	buf []byte
}

// Read implements net.Conn.
func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection when it can.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
