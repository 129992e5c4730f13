package serve

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// okFast answers GET and HEAD of /fast with "ok", and declines the rest.
type okFast struct{}

func (okFast) ServeFast(w *FastResponse, r *FastRequest) bool {
	if r.Path != "/fast" {
		return false
	}
	w.Head = append(w.Head, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Path: fast\r\n"...)
	if r.Method == "GET" {
		w.Body = []byte("ok")
	}
	w.Status = http.StatusOK
	return true
}

// slowAnswer answers every request net/http serves with "slow".
func slowAnswer(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Path", "net/http")
	_, _ = io.WriteString(w, "slow")
}

func startFast(t *testing.T, lim Limits, tc *tls.Config) *Server {
	t.Helper()
	s, err := Listen(Config{Name: "test", Addr: "127.0.0.1:0", Handler: http.HandlerFunc(slowAnswer), Fast: okFast{}, Limits: lim, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// answers reads n answers from br (to GETs but those heads says are to
// HEADs) and returns each one's X-Path and body.
func answers(t *testing.T, br *bufio.Reader, n int, heads ...int) []string {
	t.Helper()
	var out []string
	for i := range n {
		req := &http.Request{Method: "GET"}
		if slices.Contains(heads, i) {
			req.Method = "HEAD"
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("after %v: %v", out, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, resp.Header.Get("X-Path")+" "+string(b))
	}
	return out
}

// Requests the fast path takes are answered there, the first it declines
// and all after it by net/http on the same connection, over plain HTTP and
// TLS; HTTP/2 goes to net/http.
func TestFastPathHandsOver(t *testing.T) {
	stc, ctc := testTLS(t)
	ctc.NextProtos = []string{"http/1.1"}
	plain := startFast(t, Limits{}, nil)
	secure := startFast(t, Limits{}, stc)
	for _, srv := range []dialServer{plainServer("plain", plain), tlsServer("tls", secure, ctc)} {
		t.Run(srv.name, func(t *testing.T) {
			c, err := srv.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			get := func(p string) string { return "GET " + p + " HTTP/1.1\r\nHost: x\r\n\r\n" }
			// One at a time, then pipelined in one write.
			for _, p := range []string{"/fast", "/fast"} {
				_, _ = io.WriteString(c, get(p))
				if got := answers(t, br, 1); got[0] != "fast ok" {
					t.Fatalf("got %v", got)
				}
			}
			_, _ = io.WriteString(c, get("/fast")+"HEAD /fast HTTP/1.1\r\nHost: x\r\n\r\n"+get("/other")+get("/fast"))
			got := strings.Join(answers(t, br, 4, 1), ", ")
			if want := "fast ok, fast , net/http slow, net/http slow"; got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			if n := srv.s.Stats().Fast; n != 4 {
				t.Fatalf("%d fast answers, want 4", n)
			}
		})
	}
	// HTTP/2 is net/http's.
	ctc.NextProtos = nil
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ctc, ForceAttemptHTTP2: true}}
	resp, err := client.Get(secure.URL() + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "slow" {
		t.Fatalf("HTTP/%d %q", resp.ProtoMajor, b)
	}
}

// waitClosed reads from c until the server closes it, and fails if that
// takes longer than within or if it answers anything.
func waitClosed(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(within + 5*time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed: %v", err)
	}
	if len(b) > 0 {
		t.Fatalf("answered %q", b)
	}
	if d := time.Since(start); d > within+time.Second {
		t.Fatalf("closed after %s, want about %s", d, within)
	}
}

// The fast path keeps the server's limits: a request head must arrive
// within ReadHeaderTimeout (first request, from the connection's start,
// and later ones), a kept-alive
// connection is closed after IdleTimeout, a head past MaxHeaderBytes gets
// net/http's JSON 431 even when it fits the fast path's buffer, and the
// per-address cap counts the fast path's connections.
func TestFastPathLimits(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := startFast(t, Limits{ReadHeaderTimeout: timeout, IdleTimeout: 2 * timeout, MaxHeaderBytes: 1024}, nil)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("silent", func(t *testing.T) {
		waitClosed(t, dial(), timeout)
	})
	t.Run("slow first head", func(t *testing.T) {
		c := dial()
		_, _ = io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\n")
		waitClosed(t, c, timeout)
	})
	t.Run("slow second head", func(t *testing.T) {
		c := dial()
		_, _ = io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		answers(t, br, 1)
		_, _ = io.WriteString(c, "GET /fast HTTP/1.1\r\n")
		time.Sleep(timeout / 2)
		_, _ = io.WriteString(c, "Host: x\r\n")
		waitClosed(t, c, timeout/2)
	})
	t.Run("idle", func(t *testing.T) {
		c := dial()
		_, _ = io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
		answers(t, bufio.NewReader(c), 1)
		waitClosed(t, c, 2*timeout)
	})
	t.Run("header cap", func(t *testing.T) {
		for _, size := range []int{1100, 3000, 200 << 10} {
			c := dial()
			go func() {
				_, _ = io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\nX-Big:"+strings.Repeat("a", size)+"\r\n\r\n")
			}()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d-byte field: %d %s", size, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}
		if s.Stats().Fast != 2 {
			t.Fatalf("stats %+v", s.Stats())
		}
	})
	t.Run("connections per address", func(t *testing.T) {
		s = startFast(t, Limits{MaxConnsPerIP: 3}, nil)
		var cs []net.Conn
		for range 3 {
			c := dial()
			_, _ = io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
			answers(t, bufio.NewReader(c), 1)
			cs = append(cs, c)
		}
		c := dial()
		_, _ = io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
		waitClosed(t, c, 0)
		if s.Stats().ConnsRefused != 1 {
			t.Fatalf("stats %+v", s.Stats())
		}
		for _, c := range cs {
			c.Close()
		}
	})
}

// Close closes the fast path's connections at once; Shutdown closes the
// idle ones and returns.
func TestFastPathCloseAndShutdown(t *testing.T) {
	for _, shutdown := range []bool{false, true} {
		s := startFast(t, Limits{}, nil)
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
		answers(t, bufio.NewReader(c), 1)
		if shutdown {
			ctx, cancel := contextWithTimeout(5 * time.Second)
			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
		} else {
			_ = s.Close()
		}
		waitClosed(t, c, 0)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// A request the fast path cannot take reaches net/http as soon as that is
// clear, not after the header timeout: a head ending with bare LFs, a
// method other than GET or HEAD (with its body), a head larger than the
// fast path's buffer.
func TestFastPathHandsOverAtOnce(t *testing.T) {
	s := startFast(t, Limits{ReadHeaderTimeout: time.Minute}, nil)
	for _, req := range []string{
		"GET /fast HTTP/1.1\nHost: x\n\n",
		"GET /fast HTTP/1.1\r\nHost: x\n\r\n",
		"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET /fast HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 5000) + "\r\n\r\n",
	} {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, req)
		if got := answers(t, bufio.NewReader(c), 1); got[0] != "net/http slow" {
			t.Fatalf("%.40q: %v", req, got)
		}
		c.Close()
	}
	if n := s.Stats().Fast; n != 0 {
		t.Fatalf("%d fast answers", n)
	}
}
