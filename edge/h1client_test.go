package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/deadend"
)

func newTestH1Client() *h1Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return &h1Client{next: http.DefaultTransport, dial: d.DialContext, headerTimeout: 2 * time.Second,
		maxIdle: 4, idleTimeout: time.Minute}
}

// rawOrigin is a TCP server that answers the first request on each
// connection with raw and every later one with rawSecond; after an
// answer it waits a moment for the next request, then closes.
type rawOrigin struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

const rawSecond = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Second: yes\r\n\r\nsecond"

func startRawOrigin(t testing.TB, raw []byte) *rawOrigin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{ln: ln}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.conns.Add(1)
			o.wg.Add(1)
			go func() {
				defer o.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					wait := 100 * time.Millisecond // for a next request
					if n == 0 {
						wait = 10 * time.Second
					}
					_ = c.SetReadDeadline(time.Now().Add(wait))
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					answer := raw
					if n > 0 {
						answer = []byte(rawSecond)
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		o.wg.Wait()
	})
	return o
}

// exchangeResult is what a client made of one response.
type exchangeResult struct {
	Err     bool
	Status  int
	Header  http.Header
	Body    string
	BodyErr bool
}

func (r exchangeResult) String() string {
	return fmt.Sprintf("err=%v status=%d header=%v body=%q bodyErr=%v", r.Err, r.Status, r.Header, r.Body, r.BodyErr)
}

func doGet(rt http.RoundTripper, url string) exchangeResult {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("If-None-Match", `"x"`)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return exchangeResult{Err: true}
	}
	b, berr := io.ReadAll(resp.Body)
	resp.Body.Close()
	res := exchangeResult{Status: resp.StatusCode, Header: resp.Header, Body: string(b), BodyErr: berr != nil}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		res.Body, res.BodyErr = "", false // the Transport hands the connection over
	}
	return res
}

// checkH1Client sends two requests for raw through the edge's client
// and one through net/http's Transport: the first answer must be what
// the Transport makes of raw, the second either the origin's second
// answer on the same connection or raw's again on a new one, never what
// raw left over.
func checkH1Client(t *testing.T, raw []byte) {
	o := startRawOrigin(t, raw)
	url := "http://" + o.ln.Addr().String() + "/a"
	tr := &http.Transport{DisableCompression: true, ResponseHeaderTimeout: 2 * time.Second}
	defer tr.CloseIdleConnections()
	want := doGet(tr, url)
	cl := newTestH1Client()
	defer cl.closeIdle(true)
	got := doGet(cl, url)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("response %q:\nedge client %v\nTransport   %v", raw, got, want)
	}
	second := doGet(cl, url)
	fresh := exchangeResult{Status: 200, Header: http.Header{"Content-Length": {"6"}, "X-Second": {"yes"}}, Body: "second"}
	if !reflect.DeepEqual(second, fresh) && !reflect.DeepEqual(second, want) {
		t.Fatalf("response %q: second request got %v", raw, second)
	}
}

var h1Seeds = []string{
	"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nCache-Control: max-age=1\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello",              // a 304 has no body: what follows is not an answer
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n\r\n", // unsolicited bytes after the body
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\n\r\nuntil the close",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
	"HTTP/1.1 2000 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
	"HTTP/1.1 200 OK\r\n X-Folded: yes\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	"garbage\r\n\r\n",
	"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
	"",
}

// TestH1ClientResponseForms: every form of response (bodyless statuses,
// lengths, chunks and trailers, close-delimited bodies, HTTP/1.0,
// informational responses, malformed ones, bytes after the answer) reads
// as net/http's Transport reads it, and a kept connection never serves
// leftovers as the next answer.
func TestH1ClientResponseForms(t *testing.T) {
	for _, raw := range h1Seeds {
		t.Run(strings.SplitN(raw, "\r\n", 2)[0], func(t *testing.T) {
			t.Parallel()
			checkH1Client(t, []byte(raw))
		})
	}
}

// FuzzH1Client: the same for any bytes an origin may send.
func FuzzH1Client(f *testing.F) {
	for _, raw := range h1Seeds {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkH1Client(t, raw)
	})
}

// TestH1ClientReusesConnections: conditional requests to a real origin
// go over one kept-alive connection, one after the other; an origin that
// closes idle connections costs a new connection, not an error.
func TestH1ClientReusesConnections(t *testing.T) {
	var conns, idles atomic.Int64
	closeIdle := atomic.Bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v"`)
		_, _ = io.WriteString(w, "body")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.Add(1)
		case http.StateIdle:
			idles.Add(1)
			if closeIdle.Load() {
				c.Close()
			}
		}
	}
	srv.Start()
	defer srv.Close()
	cl := newTestH1Client()
	defer cl.closeIdle(true)
	get := func(inm string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := cl.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get(""); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for range 50 {
		if resp := get(`"v"`); resp.StatusCode != http.StatusNotModified {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 51 requests in a row, want 1", n)
	}
	for idles.Load() < 51 { // the origin may mark its connection idle after the client read the answer
		time.Sleep(time.Millisecond)
	}
	closeIdle.Store(true)
	for range 5 {
		get(`"v"`)
		time.Sleep(20 * time.Millisecond) // the close arrives while idle
	}
	if n := conns.Load(); n != 5 {
		t.Fatalf("%d connections, want 5 (the kept one, then one more per request once the origin closes idle ones)", n)
	}
}

// TestH1ClientTimeoutAndCancel: an origin that never answers fails the
// request after the header timeout; a cancelled context ends it at once.
func TestH1ClientTimeoutAndCancel(t *testing.T) {
	addr := deadend.Silent(t)
	cl := newTestH1Client()
	cl.headerTimeout = 200 * time.Millisecond
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	start := time.Now()
	_, err := cl.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v: want a timeout after 200ms", err, time.Since(start))
	}
	cl.headerTimeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = cl.RoundTrip(req.WithContext(ctx))
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v: want context.Canceled at once", err, time.Since(start))
	}
}

// startStallingOrigin is a TCP server that answers each request with
// head and then sends nothing more, keeping the connection open until
// the test ends.
func startStallingOrigin(t *testing.T, head string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				_, _ = io.WriteString(c, head)
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(done)
		wg.Wait()
	})
	return ln.Addr().String()
}

// cancelAfterHeaderConn cancels its request's context once the
// response's header has been read, and waits until the cancellation has
// set its past deadline, so that the deadline is set before the client
// clears it.
type cancelAfterHeaderConn struct {
	net.Conn
	cancel context.CancelFunc
	past   chan struct{} // closed when a past deadline is set
	once   sync.Once
	got    []byte
}

func (c *cancelAfterHeaderConn) SetDeadline(t time.Time) error {
	if !t.IsZero() && time.Until(t) < 0 {
		c.once.Do(func() { close(c.past) })
	}
	return c.Conn.SetDeadline(t)
}

func (c *cancelAfterHeaderConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.got = append(c.got, p[:n]...)
	if strings.Contains(string(c.got), "\r\n\r\n") && c.cancel != nil {
		c.cancel()
		c.cancel = nil
		<-c.past
	}
	return n, err
}

// TestH1ClientCancelAfterHeader: a context cancelled just after the
// response's header was read ends the request with the context's error;
// the cancellation's deadline is not lost, so no body read waits on a
// stalled origin.
func TestH1ClientCancelAfterHeader(t *testing.T) {
	addr := startStallingOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := newTestH1Client()
	defer cl.closeIdle(true)
	d := &net.Dialer{Timeout: 2 * time.Second}
	cl.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &cancelAfterHeaderConn{Conn: c, cancel: cancel, past: make(chan struct{})}, nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := cl.RoundTrip(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the body read still waits on the stalled origin 3s after the cancellation")
	}
}

// TestH1ClientBodyAbort: closing a body from another goroutine ends a
// Read blocked on a stalled origin at once (as closing the Transport's
// body does), and a cancelled context ends it with the context's error.
func TestH1ClientBodyAbort(t *testing.T) {
	addr := startStallingOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
	for _, tc := range []struct {
		name    string
		abort   func(resp *http.Response, cancel context.CancelFunc)
		wantErr func(error) bool
	}{
		{"close", func(resp *http.Response, _ context.CancelFunc) { resp.Body.Close() },
			func(err error) bool { return errors.Is(err, errBodyClosed) }},
		{"cancel", func(_ *http.Response, cancel context.CancelFunc) { cancel() },
			func(err error) bool { return errors.Is(err, context.Canceled) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newTestH1Client()
			defer cl.closeIdle(true)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
			resp, err := cl.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("read %q, %v", buf, err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := resp.Body.Read(buf) // blocks: the origin stalls
				done <- err
			}()
			time.Sleep(50 * time.Millisecond)
			closed := make(chan struct{})
			go func() {
				tc.abort(resp, cancel)
				close(closed)
			}()
			select {
			case err := <-done:
				if !tc.wantErr(err) {
					t.Fatalf("blocked read ended with %v", err)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("the blocked read still waits 3s after the abort")
			}
			select {
			case <-closed:
			case <-time.After(3 * time.Second):
				t.Fatal("the abort still waits 3s on")
			}
			resp.Body.Close()
		})
	}
}

// TestH1ClientIdleReaped: connections idle longer than the idle timeout
// are closed without waiting for another request to the origin (the
// origin sees them closed), and none stay in the pool.
func TestH1ClientIdleReaped(t *testing.T) {
	const n = 3
	var open atomic.Int64
	release := make(chan struct{})
	var started sync.WaitGroup
	var reqs atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reqs.Add(1) <= n {
			started.Done()
			<-release // hold the first n requests until all are in: one connection each
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()
	cl := newTestH1Client()
	defer cl.closeIdle(true)
	cl.idleTimeout = 300 * time.Millisecond
	started.Add(n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := doGet(cl, srv.URL+"/"); r.Err || r.Body != "ok" {
				t.Errorf("got %v", r)
			}
		}()
	}
	started.Wait()
	close(release)
	wg.Wait()
	cl.mu.Lock()
	pooled := len(cl.idle[srv.Listener.Addr().String()])
	cl.mu.Unlock()
	if pooled != n {
		t.Fatalf("%d idle connections after %d parallel requests, want %d", pooled, n, n)
	}
	if got := doGet(cl, srv.URL+"/"); got.Body != "ok" { // one stays fresh a while longer
		t.Fatalf("got %v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != 0 || pooled != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open at the origin, %d pooled, 5s after the last request (idle timeout %v)",
				open.Load(), pooled, cl.idleTimeout)
		}
		time.Sleep(20 * time.Millisecond)
		cl.mu.Lock()
		pooled = len(cl.idle[srv.Listener.Addr().String()])
		cl.mu.Unlock()
	}
}
