package serve

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/apierr"
)

// testTLS returns a server TLS config and a client config that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	return &tls.Config{Certificates: ts.TLS.Certificates, MinVersion: tls.VersionTLS12}, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func startTLS(t *testing.T, lim Limits, h http.HandlerFunc) (*Server, *tls.Config) {
	t.Helper()
	stc, ctc := testTLS(t)
	s, err := Listen(Config{Name: "test", Addr: "127.0.0.1:0", Handler: h, Limits: lim, TLS: stc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, ctc
}

// dialServer is a server under test and how to connect to it.
type dialServer struct {
	name string
	s    *Server
	dial func() (net.Conn, error)
}

func plainServer(name string, s *Server) dialServer {
	return dialServer{name, s, func() (net.Conn, error) { return net.Dial("tcp", s.Addr().String()) }}
}

func tlsServer(name string, s *Server, tc *tls.Config) dialServer {
	return dialServer{name, s, func() (net.Conn, error) { return tls.Dial("tcp", s.Addr().String(), tc) }}
}

// rawExchange sends req on a new connection (made by dial) while it reads
// the answer, and returns the answer and its JSON error.
func rawExchange(t *testing.T, dial func() (net.Conn, error), req string) (*http.Response, *apierr.Error) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = io.WriteString(c, req) }() // the server may stop reading: write while the answer is read
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no HTTP answer to %.60q...: %v", req, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("answer %d %q, Content-Type %q: not JSON", resp.StatusCode, b, ct)
	}
	e := apierr.Read(resp)
	if e == nil {
		t.Fatalf("answer %d without a JSON error", resp.StatusCode)
	}
	return resp, e
}

// Every request Go's HTTP/1 server refuses itself, before any handler —
// with or without a fast path in front of it —
// headers past the hard limit (here 2 MiB against 1 MiB), a request
// without Host, a garbled request line, an unknown transfer coding — gets
// a JSON error, over plain HTTP and over TLS.
func TestGoErrorsAreJSON(t *testing.T) {
	plain := start(t, Limits{}, echo)
	secure, ctc := startTLS(t, Limits{}, echo)
	plainFast := startFast(t, Limits{}, nil)
	stc, _ := testTLS(t)
	secureFast := startFast(t, Limits{}, stc)
	ctc = ctc.Clone()
	ctc.NextProtos = []string{"http/1.1"}
	huge := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n"
	tests := []struct {
		name, req string
		status    int
		code      string
	}{
		{"2 MiB header", huge, 431, CodeHeaderTooLarge},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, CodeMalformed},
		{"garbled request line", "GARBAGE\r\n\r\n", 400, CodeMalformed},
		{"bad header line", "GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, CodeMalformed},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: rot13\r\n\r\n", 501, CodeNotImplemented},
	}
	for _, srv := range []dialServer{
		plainServer("plain", plain), tlsServer("tls", secure, ctc),
		plainServer("plain with a fast path", plainFast), tlsServer("tls with a fast path", secureFast, ctc),
	} {
		for _, tt := range tests {
			t.Run(srv.name+"/"+tt.name, func(t *testing.T) {
				resp, e := rawExchange(t, srv.dial, tt.req)
				if resp.StatusCode != tt.status || e.Code != tt.code {
					t.Fatalf("got %d %s %q, want %d %s", resp.StatusCode, e.Code, e.Message, tt.status, tt.code)
				}
				t.Logf("%d %s: %s", resp.StatusCode, e.Code, e.Message)
			})
		}
		st := srv.s.Stats()
		if st.HeaderTooLarge != 1 || st.Malformed != 4 || st.Accepted < int64(len(tests)) {
			t.Errorf("%s: stats %+v, want 1 header too large, 4 malformed, %d accepted", srv.name, st, len(tests))
		}
	}
}

// Plain HTTP sent to a TLS port gets a JSON 400 that names the scheme to
// use, and is counted as a failed handshake.
func TestPlainHTTPOnTLSPortIsJSON(t *testing.T) {
	s, _ := startTLS(t, Limits{}, echo)
	for _, req := range []string{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"} {
		resp, e := rawExchange(t, func() (net.Conn, error) { return net.Dial("tcp", s.Addr().String()) }, req)
		if resp.StatusCode != 400 || e.Code != CodePlainHTTP || !strings.Contains(e.Message, "https://") {
			t.Fatalf("got %d %s %q", resp.StatusCode, e.Code, e.Message)
		}
	}
	// What a browser's address bar does: http:// to the https port.
	resp, err := http.Get(strings.Replace(s.URL(), "https://", "http://", 1) + "/")
	if err != nil {
		t.Fatal(err)
	}
	e := apierr.Read(resp)
	resp.Body.Close()
	if resp.StatusCode != 400 || e == nil || e.Code != CodePlainHTTP {
		t.Fatalf("http.Get: %d %v", resp.StatusCode, e)
	}
	if st := s.Stats(); st.PlainHTTPOnTLS != 3 || st.TLSHandshakeFailures != 3 {
		t.Errorf("stats %+v, want 3 plain HTTP requests, 3 failed handshakes", st)
	}
}

// Over TLS, handlers see the connection's TLS state on HTTP/1.1 and on
// HTTP/2, and a failed handshake is counted; connections are counted as
// accepted and open.
func TestTLSStateAndCounters(t *testing.T) {
	s, ctc := startTLS(t, Limits{}, func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || !r.TLS.HandshakeComplete {
			http.Error(w, "no TLS state", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s %s", r.Proto, r.TLS.NegotiatedProtocol)
	})
	for _, tt := range []struct {
		protos []string
		h2     bool
		want   string
	}{{[]string{"http/1.1"}, false, "HTTP/1.1 http/1.1"}, {nil, true, "HTTP/2.0 h2"}, {nil, false, "HTTP/1.1 "}} {
		cc := ctc.Clone()
		cc.NextProtos = tt.protos
		tr := &http.Transport{TLSClientConfig: cc, ForceAttemptHTTP2: tt.h2}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(s.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != 200 || string(b) != tt.want {
			t.Errorf("ALPN %v: %d %q, want %q", tt.protos, resp.StatusCode, b, tt.want)
		}
	}
	// A client that does not trust the server's certificate gives up.
	if _, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("an untrusting client completed the handshake")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Stats()
		if st.Accepted == 4 && st.TLSHandshakeFailures == 1 && st.Open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 4 accepted, 1 failed handshake, 0 open", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
