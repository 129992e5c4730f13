package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// h1Client sends the edge's own GET requests that no client waits on
// for informational responses (validations and fills of the fast path,
// background revalidations) to plain-HTTP origins, on the calling
// goroutine: net/http writes each request (Request.Write) and parses each
// response (ReadResponse), as its Transport does, without the Transport's
// two goroutines per connection and the hand-offs between them and the
// caller, which cost a validation about as much CPU as the rest of it.
// Connections are kept alive and reused as the Transport's are: one
// request at a time, back in the pool once the response's body was read
// to its end, unless the origin asked to close; an idle connection with
// anything to read (an unsolicited byte, the origin's close) is not
// reused; a request on a reused connection that the origin had closed is
// sent again on a new one (GET is idempotent); a connection idle longer
// than idleTimeout is closed by a timer, whether or not traffic follows
// (the Transport's idle timer). Any other request (another scheme or
// method, a request with a body) goes to next.
type h1Client struct {
	next          http.RoundTripper
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	headerTimeout time.Duration // for writing the request and reading the response's header; 0: none
	maxIdle       int           // idle connections kept per origin
	idleTimeout   time.Duration

	mu     sync.Mutex
	idle   map[string][]*h1Conn // per origin, oldest first
	reaper *time.Timer          // closes connections idle past idleTimeout; nil: none idle
	closed bool
}

// h1MaxHeaderBytes bounds a response's header, informational responses
// included (the Transport's default).
const h1MaxHeaderBytes = 10 << 20

var errH1HeaderTooLarge = fmt.Errorf("edge: origin response header exceeds %d bytes", h1MaxHeaderBytes)

// h1Conn is one connection to an origin.
type h1Conn struct {
	c      net.Conn
	cr     countReader
	br     *bufio.Reader
	bw     *bufio.Writer
	addr   string
	idleAt time.Time

	raw   syscall.RawConn // nil: cannot look at the socket
	peek  func(fd uintptr) bool
	empty bool // what peek saw
}

// countReader reads the connection within a limit, counting what it read.
type countReader struct {
	c     net.Conn
	limit int64
	read  int64
}

func (r *countReader) Read(p []byte) (int, error) {
	if r.limit <= 0 {
		return 0, errH1HeaderTooLarge
	}
	if int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	n, err := r.c.Read(p)
	r.read += int64(n)
	r.limit -= int64(n)
	return n, err
}

// RoundTrip implements http.RoundTripper.
func (cl *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.Method != http.MethodGet || (req.Body != nil && req.Body != http.NoBody) {
		return cl.next.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for {
		pc, reused, err := cl.get(req.Context(), addr)
		if err != nil {
			return nil, err
		}
		resp, err := cl.exchange(pc, req)
		if err == nil {
			return resp, nil
		}
		_ = pc.c.Close()
		var ne net.Error
		if !reused || pc.cr.read > 0 || req.Context().Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, err
		}
		// The origin closed the idle connection as the request went out:
		// nothing came back, so send it again on a new one.
	}
}

// get returns an idle connection to addr that is still usable, else a
// new one.
func (cl *h1Client) get(ctx context.Context, addr string) (*h1Conn, bool, error) {
	now := time.Now()
	for {
		cl.mu.Lock()
		list := cl.idle[addr]
		if len(list) == 0 {
			cl.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		cl.idle[addr] = list[:len(list)-1]
		cl.mu.Unlock()
		if now.Sub(pc.idleAt) < cl.idleTimeout && pc.br.Buffered() == 0 && pc.quiet() {
			return pc, true, nil
		}
		_ = pc.c.Close()
	}
	c, err := cl.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	pc := &h1Conn{c: c, addr: addr, cr: countReader{c: c}}
	pc.br = bufio.NewReaderSize(&pc.cr, 4<<10)
	pc.bw = bufio.NewWriterSize(c, 4<<10)
	if sc, ok := c.(syscall.Conn); ok {
		if pc.raw, err = sc.SyscallConn(); err != nil {
			_ = c.Close()
			return nil, false, err
		}
		pc.peek = func(fd uintptr) bool {
			pc.empty = peekEmpty(fd)
			return true
		}
	}
	return pc, false, nil
}

// quiet reports whether nothing waits to be read on an idle connection:
// neither bytes (an unsolicited response) nor the peer's close.
func (pc *h1Conn) quiet() bool {
	if pc.raw == nil {
		return true
	}
	pc.empty = false
	if err := pc.raw.Read(pc.peek); err != nil {
		return false
	}
	return pc.empty
}

// put returns a connection whose response was read whole to the pool.
func (cl *h1Client) put(pc *h1Conn) {
	pc.idleAt = time.Now()
	cl.mu.Lock()
	if !cl.closed && cl.idleTimeout > 0 && len(cl.idle[pc.addr]) < cl.maxIdle {
		if cl.idle == nil {
			cl.idle = map[string][]*h1Conn{}
		}
		cl.idle[pc.addr] = append(cl.idle[pc.addr], pc)
		pc = nil
		if cl.reaper == nil {
			cl.reaper = time.AfterFunc(cl.idleTimeout, cl.reap)
		}
	}
	cl.mu.Unlock()
	if pc != nil {
		_ = pc.c.Close()
	}
}

// reap closes the connections idle for idleTimeout or longer (those an
// origin closed would otherwise hold their sockets half-closed until
// picked, which the LIFO pool may never do) and sets the timer for the
// next one to expire.
func (cl *h1Client) reap() {
	var expired []*h1Conn
	cl.mu.Lock()
	now := time.Now()
	var next time.Time
	for addr, list := range cl.idle {
		n := 0
		for n < len(list) && now.Sub(list[n].idleAt) >= cl.idleTimeout {
			n++
		}
		expired = append(expired, list[:n]...)
		switch {
		case n == len(list):
			delete(cl.idle, addr)
			continue
		case n > 0:
			rest := copy(list, list[n:])
			clear(list[rest:])
			list = list[:rest]
			cl.idle[addr] = list
		}
		if next.IsZero() || list[0].idleAt.Before(next) {
			next = list[0].idleAt
		}
	}
	switch {
	case cl.reaper == nil: // closeIdle ran meanwhile
	case next.IsZero():
		cl.reaper = nil
	default:
		cl.reaper.Reset(next.Add(cl.idleTimeout).Sub(now))
	}
	cl.mu.Unlock()
	for _, pc := range expired {
		_ = pc.c.Close()
	}
}

// closeIdle closes the idle connections; with stop, none are kept after.
func (cl *h1Client) closeIdle(stop bool) {
	cl.mu.Lock()
	idle := cl.idle
	cl.idle = nil
	cl.closed = cl.closed || stop
	if cl.reaper != nil {
		cl.reaper.Stop()
		cl.reaper = nil
	}
	cl.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			_ = pc.c.Close()
		}
	}
}

// aLongTimeAgo is a deadline in the past: it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// exchange sends req on pc and reads the response's header; the body
// returns pc to the pool (or closes it) when read to its end or closed.
func (cl *h1Client) exchange(pc *h1Conn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cl.headerTimeout > 0 {
		_ = pc.c.SetDeadline(time.Now().Add(cl.headerTimeout))
	}
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { _ = pc.c.SetDeadline(aLongTimeAgo) })
	}
	pc.cr.read, pc.cr.limit = 0, h1MaxHeaderBytes
	resp, err := cl.send(pc, req)
	if err != nil {
		stop()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	pc.cr.limit = 1<<63 - 1
	_ = pc.c.SetDeadline(time.Time{})
	if err := ctx.Err(); err != nil {
		// Cancelled after the header was read: the cancellation's past
		// deadline may have just been cleared, so the body would read
		// with none.
		stop()
		_ = pc.c.Close()
		return nil, err
	}
	keep := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody || resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = http.NoBody
		if stop() && keep { // (a cancellation that fired has spoilt pc's deadline)
			cl.put(pc)
		} else {
			_ = pc.c.Close()
		}
		return resp, nil
	}
	resp.Body = &h1Body{ctx: ctx, rc: resp.Body, pc: pc, cl: cl, keep: keep, stop: stop}
	return resp, nil
}

// send writes req and reads its final response's header, skipping
// informational responses (no client waits on them).
func (cl *h1Client) send(pc *h1Conn, req *http.Request) (*http.Response, error) {
	if err := req.Write(pc.bw); err != nil {
		return nil, err
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode <= 199 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		return resp, nil
	}
}

// h1Body is a response body on an h1Conn. Close interrupts a Read in
// progress (it sets a past deadline on the connection, which it then
// closes), as closing the Transport's body does.
type h1Body struct {
	ctx    context.Context
	mu     sync.Mutex // held by Read and by Close's release of the connection
	rc     io.ReadCloser
	pc     *h1Conn
	cl     *h1Client
	keep   bool
	stop   func() bool
	done   bool // the connection is released
	eof    bool
	closed bool

	// amu guards aborted and released, never held during I/O: Close
	// interrupts a Read only while the connection is still the body's,
	// and a connection Close interrupted is never pooled.
	amu      sync.Mutex
	aborted  bool // Close was called
	released bool // finish ran
}

var errBodyClosed = errors.New("edge: read on a closed response body")

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, errBodyClosed
	case b.eof:
		return 0, io.EOF
	case b.done:
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		b.finish(b.keep)
	case err != nil:
		b.finish(false)
		switch {
		case b.ctx.Err() != nil:
			err = fmt.Errorf("%w (%w)", b.ctx.Err(), err)
		case b.isAborted():
			err = errBodyClosed
		}
	}
	return n, err
}

func (b *h1Body) isAborted() bool {
	b.amu.Lock()
	defer b.amu.Unlock()
	return b.aborted
}

// Close closes the body; a body not read to its end closes the
// connection.
func (b *h1Body) Close() error {
	b.amu.Lock()
	b.aborted = true
	if !b.released {
		_ = b.pc.c.SetDeadline(aLongTimeAgo) // end a Read in progress
	}
	b.amu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(keep bool) {
	b.done = true
	b.amu.Lock()
	b.released = true
	keep = keep && !b.aborted
	b.amu.Unlock()
	if b.stop() && keep {
		_ = b.rc.Close()
		b.cl.put(b.pc)
		return
	}
	_ = b.pc.c.Close()
}
