package serve

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/deadend"
)

// bigFast answers GET /big/<n> with n bytes of a pattern that names each
// answer's first bytes, so that a lost or repeated piece shows.
type bigFast struct{}

func (bigFast) ServeFast(w *FastResponse, r *FastRequest) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(r.Path, "/big/"))
	if err != nil || !strings.HasPrefix(r.Path, "/big/") {
		return false
	}
	w.Head = fmt.Appendf(w.Head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n", n)
	w.Body = bigBody(n)
	w.Status = http.StatusOK
	return true
}

func bigBody(n int) []byte {
	return bytes.Repeat([]byte(strconv.Itoa(n)+"-"), n)[:n]
}

// The fast path reads and writes a plain TCP connection with raw system
// calls (see rawIO), through package serve's own wrappers of it; other
// connections (TLS) keep their Read and Write.
func TestRawConn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("raw I/O is on Linux only")
	}
	addr := deadend.Silent(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	capped := &capConn{Conn: c, l: &capListener{open: map[string]int{}}}
	for _, tt := range []struct {
		name string
		c    net.Conn
		raw  bool
	}{
		{"tcp", c, true},
		{"counted", &countedConn{Conn: c}, true},
		{"counted, capped", &countedConn{Conn: capped}, true},
		{"tls", tls.Client(c, &tls.Config{}), false},
		{"replayed", &replayConn{Conn: c}, false},
		{"pipe", func() net.Conn { a, b := net.Pipe(); b.Close(); return a }(), false},
	} {
		if got := rawConn(tt.c) != nil; got != tt.raw {
			t.Errorf("%s: raw %v, want %v", tt.name, got, tt.raw)
		}
	}
}

// dialSmall connects to s with a small receive buffer, so that the
// server's writes soon fill the socket's buffers.
func dialSmall(t *testing.T, s *Server) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tc := c.(*net.TCPConn)
	if err := tc.SetReadBuffer(128 << 10); err != nil {
		t.Fatal(err)
	}
	return tc
}

func startBig(t *testing.T, lim Limits) *Server {
	t.Helper()
	s, err := Listen(Config{Name: "test", Addr: "127.0.0.1:0", Handler: http.HandlerFunc(slowAnswer), Fast: bigFast{}, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitOpen waits until s has fewer than n connections open.
func waitOpen(t *testing.T, s *Server, n int64, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); s.Stats().Open >= n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after %s", s.Stats().Open, within)
		}
	}
}

// Answers that fill the socket's buffers while the client does not read
// (a raw write sees EAGAIN and short writes, and waits for the poller)
// all arrive whole and in order once it reads; a client that never reads
// is cut off after WriteTimeout; one that closes in the middle of a head
// is let go.
func TestFastPathRawWrites(t *testing.T) {
	t.Run("slow reader", func(t *testing.T) {
		// The default WriteTimeout: a zero window's probes back off
		// past a short one.
		c := dialSmall(t, startBig(t, Limits{}))
		sizes := []int{10 << 10, 3, 15 << 10, 200 << 10, 1, 12 << 10}
		var req strings.Builder
		for range 40 {
			for _, n := range sizes {
				fmt.Fprintf(&req, "GET /big/%d HTTP/1.1\r\nHost: x\r\n\r\n", n)
			}
		}
		go func() { _, _ = io.WriteString(c, req.String()) }()
		time.Sleep(100 * time.Millisecond) // the server's writes fill the buffers
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		for i := range 40 * len(sizes) {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if n := sizes[i%len(sizes)]; err != nil || !bytes.Equal(b, bigBody(n)) {
				t.Fatalf("answer %d: %d bytes (%v), want %d", i, len(b), err, n)
			}
		}
	})
	t.Run("reader that never reads", func(t *testing.T) {
		const writeTimeout = 300 * time.Millisecond
		s := startBig(t, Limits{WriteTimeout: writeTimeout})
		c := dialSmall(t, s)
		go func() {
			for {
				if _, err := io.WriteString(c, "GET /big/16000 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					return
				}
			}
		}()
		waitOpen(t, s, 1, writeTimeout+5*time.Second)
	})
	t.Run("answers after WriteTimeout", func(t *testing.T) {
		// No write deadline outlives its write: answers (a small one
		// written raw, a large one with its body next to it) come later
		// than WriteTimeout after the earlier ones.
		const writeTimeout = 200 * time.Millisecond
		s := startBig(t, Limits{WriteTimeout: writeTimeout})
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		for i, n := range []int{100 << 10, 10, 100 << 10, 10, 10} {
			if i > 0 {
				time.Sleep(writeTimeout + 100*time.Millisecond)
			}
			fmt.Fprintf(c, "GET /big/%d HTTP/1.1\r\nHost: x\r\n\r\n", n)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(b, bigBody(n)) {
				t.Fatalf("answer %d: %d bytes (%v), want %d", i, len(b), err, n)
			}
		}
	})
	t.Run("answer after a write that waited", func(t *testing.T) {
		// A raw write that had to wait set the write deadline; it is
		// cleared when the write is done, so an answer later than
		// WriteTimeout after it goes out.
		const writeTimeout = time.Second
		s := startBig(t, Limits{WriteTimeout: writeTimeout})
		c := dialSmall(t, s)
		const n, size = 300, 15 << 10 // 4.5 MB of answers written raw: more than the sockets hold
		go func() {
			_, _ = io.WriteString(c, strings.Repeat(fmt.Sprintf("GET /big/%d HTTP/1.1\r\nHost: x\r\n\r\n", size), n))
		}()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		read := func(i, size int) {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(b, bigBody(size)) {
				t.Fatalf("answer %d: %d bytes (%v), want %d", i, len(b), err, size)
			}
		}
		for i := range n {
			read(i, size)
		}
		time.Sleep(writeTimeout + 200*time.Millisecond)
		_, _ = io.WriteString(c, "GET /big/10 HTTP/1.1\r\nHost: x\r\n\r\n")
		read(n, 10)
	})
	t.Run("closed in a head", func(t *testing.T) {
		s := startBig(t, Limits{})
		c := dialSmall(t, s)
		_, _ = io.WriteString(c, "GET /big/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /big/2 HTTP/1.1\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		_ = c.CloseWrite()
		// net/http gets the part of a head and closes.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.ReadAll(br)
		waitOpen(t, s, 1, 5*time.Second)
	})
}

// fixedFast answers every GET with the same preallocated answer.
type fixedFast []byte

func (f fixedFast) ServeFast(w *FastResponse, r *FastRequest) bool {
	w.Head = append(w.Head, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Path: fast\r\n"...)
	w.Body, w.Status = f, http.StatusOK
	return true
}

// A fast answer allocates nothing, the connection's raw reads and writes
// included.
func TestFastPathDoesNotAllocate(t *testing.T) {
	s, err := Listen(Config{Name: "test", Addr: "127.0.0.1:0", Handler: http.HandlerFunc(slowAnswer), Fast: fixedFast("ok")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
	want := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Path: fast\r\n\r\nok"
	buf := make([]byte, len(want))
	exchange := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
			t.Fatalf("%q, %v", buf, err)
		}
	}
	exchange()
	if n := testing.AllocsPerRun(200, exchange); n > 0 {
		t.Errorf("%.1f allocations per answer", n)
	}
}
