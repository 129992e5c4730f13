package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/apierr"
)

// echo reads the whole body and answers its length, or the read error as
// the handlers of intercloud do.
func echo(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		if IsBodyTooSlow(err) {
			apierr.Write(w, BodyTooSlow())
			return
		}
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%v", err))
		return
	}
	fmt.Fprintf(w, "%d", len(b))
}

func start(t *testing.T, lim Limits, h http.HandlerFunc) *Server {
	t.Helper()
	s, err := Listen(Config{Name: "test", Addr: "127.0.0.1:0", Handler: h, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// A body that trickles in (one byte every 200 ms, the slowloris pattern) is
// cut once it falls below the minimum rate after the grace, with a JSON
// 408, in bounded time; a steady body is taken.
func TestSlowBodyIsCut(t *testing.T) {
	s := start(t, Limits{MinBodyRate: 100, BodyGrace: 500 * time.Millisecond}, echo)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
	begin := time.Now()
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	defer close(stop)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a slow body: %v", err)
	}
	took := time.Since(begin)
	e := apierr.Read(resp)
	if resp.StatusCode != http.StatusRequestTimeout || e == nil || e.Code != CodeRequestTimeout {
		t.Fatalf("got %d %v, want 408 %s", resp.StatusCode, e, CodeRequestTimeout)
	}
	if took > 10*time.Second {
		t.Fatalf("cut after %s", took)
	}
	if s.Stats().SlowBodies != 1 {
		t.Errorf("stats %+v", s.Stats())
	}

	// A body at a steady rate above the minimum is read whole.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 10; i++ {
			_, _ = pw.Write([]byte(strings.Repeat("y", 100)))
			time.Sleep(50 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, s.URL(), pr)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "1000" {
		t.Fatalf("steady body: %d %s", resp.StatusCode, b)
	}
}

// Headers over MaxHeaderBytes get a JSON 431.
func TestLargeHeaderIsJSON(t *testing.T) {
	s := start(t, Limits{MaxHeaderBytes: 1 << 10, HardHeaderBytes: 1 << 20}, echo)
	req, _ := http.NewRequest(http.MethodGet, s.URL(), nil)
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if e := apierr.Read(resp); resp.StatusCode != 431 || e == nil || e.Code != CodeHeaderTooLarge || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %v %q", resp.StatusCode, e, resp.Header.Get("Content-Type"))
	}
}

// One address may hold MaxConnsPerIP connections; more are closed at once,
// and a closed one frees its place.
func TestConnsPerIP(t *testing.T) {
	s := start(t, Limits{MaxConnsPerIP: 2}, echo)
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// A request makes sure the server accepted it.
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatal(err)
		}
	}
	c3, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c3, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := c3.Read(make([]byte, 1)); err == nil {
		t.Fatal("a third connection was served")
	}
	c3.Close()
	if s.Stats().ConnsRefused != 1 {
		t.Errorf("stats %+v", s.Stats())
	}
	conns[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.URL())
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection did not free its place: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conns[1].Close()
}

// One key may have MaxRequestsPerKey requests in flight; the next gets a
// JSON 429, another key is not affected.
func TestRequestsPerKey(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	s := start(t, Limits{MaxRequestsPerKey: 2}, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered.Done()
			<-release
		}
	})
	get := func(path, key string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+path, nil)
		req.Header.Set("Authorization", "bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return nil
		}
		return resp
	}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Go(func() {
			if r := get("/hold", "k1"); r != nil {
				r.Body.Close()
			}
		})
	}
	entered.Wait()
	r := get("/", "k1")
	var body struct{ Error apierr.Error }
	_ = json.NewDecoder(r.Body).Decode(&body)
	r.Body.Close()
	if r.StatusCode != 429 || body.Error.Code != CodeTooManyInFlight || r.Header.Get("Retry-After") == "" {
		t.Fatalf("third request: %d %+v", r.StatusCode, body)
	}
	if r := get("/", "k2"); r.StatusCode != 200 {
		t.Fatalf("another key: %d", r.StatusCode)
	}
	close(release)
	wg.Wait()
	if r := get("/", "k1"); r.StatusCode != 200 {
		t.Fatalf("after the others ended: %d", r.StatusCode)
	}
}

// A file served through the per-address cap goes out through the
// connection's ReadFrom (sendfile on TCP) and arrives whole.
func TestFileThroughConnCap(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	path := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, Limits{MaxConnsPerIP: 4}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Length", strconv.Itoa(len(want)))
		_, _ = io.Copy(w, f)
	}))
	resp, err := http.Get(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%d of %d bytes, equal %v, err %v", len(got), len(want), bytes.Equal(got, want), err)
	}
}
