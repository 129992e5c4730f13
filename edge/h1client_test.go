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
	var conns atomic.Int64
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	cl := newTestH1Client()
	cl.headerTimeout = 200 * time.Millisecond
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
	start := time.Now()
	_, err = cl.RoundTrip(req)
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
