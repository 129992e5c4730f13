package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// exchange writes raw to a new connection to addr in one write and
// returns everything the server answers until it closes the connection
// (the last request of raw asks it to).
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v (read %q)", raw, err, b)
	}
	return string(b)
}

// fastPair is one edge behind two servers: one with the fast path, one
// with net/http only.
type fastPair struct {
	*testEdge
	fast, slow *edgeServer
	origin     *testOrigin
}

func newFastPair(t *testing.T) *fastPair {
	c := newClock()
	o := newTestOrigin(t, c)
	o.static("/plain", 200, strings.Repeat("a", 1024), "Cache-Control: max-age=600", `ETag: "v1"`,
		"Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT", "Content-Type: text/plain", "X-Multi: one", "X-Multi: two",
		"Accept-Ranges: bytes", "Surrogate-Key: a b", "Content-Language: en")
	o.static("/notype", 200, "<html>guess me</html>", "Cache-Control: max-age=600", "Content-Type:")
	o.static("/nodate", 200, "no date", "Cache-Control: public, max-age=600", "Date:", `ETag: W/"w"`)
	o.static("/q", 200, "query", "Cache-Control: max-age=600")
	o.static("/empty", 200, "", "Cache-Control: max-age=600", `ETag: "e"`)
	o.static("/vary", 200, "vary", "Cache-Control: max-age=600", "Vary: Accept-Language")
	o.static("/stale", 200, "stale", "Cache-Control: max-age=1", `ETag: "s"`)
	o.static("/missing", 404, "gone", "Cache-Control: max-age=600")
	te := newTestEdge(t, Config{}, c, o)
	for _, p := range []string{"/plain", "/notype", "/nodate", "/q?a=1&b=2", "/empty", "/vary", "/stale", "/missing"} {
		te.get(t, p)
	}
	c.Add(2 * time.Second) // /stale is stale now; the others are 2 s old
	return &fastPair{testEdge: te, fast: te.srv, slow: startEdgeServer(t, te.Edge, nil), origin: o}
}

var dateField = regexp.MustCompile(`(?m)^Date: .*\r$`)

// A fresh memory-tier hit answered on the fast path is byte for byte what
// net/http answers for the same requests: GET, HEAD, If-None-Match (304
// and not), several requests in one write (pipelined), Connection: close;
// and every one of them was answered on the fast path.
func TestFastPathAnswersAsNetHTTP(t *testing.T) {
	p := newFastPair(t)
	req := func(method, target string, fields ...string) string {
		s := method + " " + target + " HTTP/1.1\r\nHost: edge.test\r\nUser-Agent: test\r\n"
		for _, f := range fields {
			s += f + "\r\n"
		}
		return s + "\r\n"
	}
	closing := req("GET", "/plain", "Connection: close")
	tests := []struct {
		name string
		raw  string
		fast int64 // requests answered on the fast path
	}{
		{"GET", req("GET", "/plain") + closing, 2},
		{"HEAD", req("HEAD", "/plain") + closing, 2},
		{"no Content-Type stays without", req("GET", "/notype") + closing, 2},
		{"no Date gets net/http's", req("GET", "/nodate") + req("HEAD", "/nodate") + closing, 3},
		{"query", req("GET", "/q?a=1&b=2") + closing, 2},
		{"empty body", req("GET", "/empty") + req("HEAD", "/empty") + closing, 3},
		{"If-None-Match matching: 304", req("GET", "/plain", `If-None-Match: "v0", W/"v1"`) + closing, 2},
		{"If-None-Match *", req("HEAD", "/plain", `If-None-Match: *`) + closing, 2},
		{"If-None-Match weak on a weak tag", req("GET", "/nodate", `If-None-Match: W/"w"`) + closing, 2},
		{"If-None-Match not matching: 200", req("GET", "/plain", `If-None-Match: "v2"`) + closing, 2},
		{"pipelined", strings.Repeat(req("GET", "/plain")+req("HEAD", "/q?a=1&b=2")+req("GET", "/empty"), 5) + closing, 16},
		{"other fields and spellings", req("GET", "/plain", "accept: */*", "X-Custom:\tvalue\t", "Connection: keep-alive", "accept-encoding: gzip") + closing, 2},
		{"close, keep-alive", req("GET", "/plain", "Connection: keep-alive, close"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.fast.Stats().Fast
			got := exchange(t, p.fast.Addr().String(), tt.raw)
			mid := p.fast.Stats().Fast
			want := exchange(t, p.slow.Addr().String(), tt.raw)
			if strings.Contains(tt.name, "Date") {
				// net/http dates each answer when the stored response has no Date.
				if n := len(dateField.FindAllString(got, -1)); n != strings.Count(tt.raw, "HTTP/1.1\r\n") {
					t.Fatalf("%d Date fields in %q", n, got)
				}
				got, want = dateField.ReplaceAllString(got, "Date: X\r"), dateField.ReplaceAllString(want, "Date: X\r")
			}
			if got != want {
				t.Fatalf("fast path answered\n%q\nnet/http answered\n%q", got, want)
			}
			if n := mid - before; n != tt.fast {
				t.Fatalf("%d requests answered on the fast path, want %d", n, tt.fast)
			}
			if p.slow.Stats().Fast != 0 {
				t.Fatal("the server without a fast path counted fast answers")
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
			if err != nil || resp.Header.Get("X-Cache") != Hit {
				t.Fatalf("first answer %v, X-Cache %q: want a hit", err, resp.Header.Get("X-Cache"))
			}
			t.Logf("%.300q", got)
		})
	}
}

// Whatever the fast path declines reaches net/http and gets its full
// answer there, on the same connection as the fast answers before it.
func TestFastPathDeclines(t *testing.T) {
	p := newFastPair(t)
	plain := "GET /plain HTTP/1.1\r\nHost: edge.test\r\n\r\n"
	closing := "GET /plain HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n"
	tests := []struct {
		name, head string
		status     int
		xcache     string
	}{
		{"Cache-Control", "GET /plain HTTP/1.1\r\nHost: x\r\nCache-Control: max-age=0\r\n\r\n", 200, Revalidated},
		{"Pragma", "GET /plain HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n", 200, Revalidated},
		{"Range", "GET /plain HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n", 206, Hit},
		{"If-Modified-Since", "GET /plain HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n", 304, Hit},
		{"two If-None-Match", "GET /plain HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v1\"\r\nIf-None-Match: \"v2\"\r\n\r\n", 304, Hit},
		{"Authorization", "GET /plain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n", 200, Hit},
		{"Vary", "GET /vary HTTP/1.1\r\nHost: x\r\n\r\n", 200, Hit},
		{"404 stored", "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 404, Hit},
		{"miss", "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404, Pass},
		{"percent-encoded path (another cache key)", "GET /pl%61in HTTP/1.1\r\nHost: x\r\n\r\n", 200, Miss},
		{"POST", "POST /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 200, Pass},
		{"Expect", "GET /plain HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", 200, Hit},
		{"bare LF", "GET /plain HTTP/1.1\nHost: x\n\n", 200, Hit},
		{"HTTP/1.0", "GET /plain HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", 200, Hit},
		{"absolute form", "GET http://x/plain HTTP/1.1\r\nHost: x\r\n\r\n", 200, Hit},
		{"purge", "GET /purge HTTP/1.1\r\nHost: x\r\n\r\n", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.fast.Stats().Fast
			out := exchange(t, p.fast.Addr().String(), plain+tt.head+closing)
			if n := p.fast.Stats().Fast - before; n != 1 {
				t.Fatalf("%d requests answered on the fast path, want only the first", n)
			}
			br := bufio.NewReader(strings.NewReader(out))
			var got []*http.Response
			for {
				resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
				if err != nil {
					break
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				got = append(got, resp)
			}
			if len(got) != 3 {
				t.Fatalf("%d answers, want 3: %q", len(got), out)
			}
			r := got[1]
			if r.StatusCode != tt.status || r.Header.Get("X-Cache") != tt.xcache {
				t.Fatalf("declined request answered %d X-Cache %q, want %d %q: %q", r.StatusCode, r.Header.Get("X-Cache"), tt.status, tt.xcache, out)
			}
			if got[2].StatusCode != 200 || got[2].Header.Get("X-Cache") == "" {
				t.Fatalf("the request after it answered %d", got[2].StatusCode)
			}
		})
	}
}

// A GET of a stale memory-tier hit is validated on the fast path and
// answered byte for byte as net/http answers it (REVALIDATED, then hits),
// with the same conditional request to the origin, once per validation;
// the connection stays on the fast path.
func TestFastPathRevalidates(t *testing.T) {
	p := newFastPair(t)
	get := "GET /stale HTTP/1.1\r\nHost: edge.test\r\nUser-Agent: test\r\nX-Forwarded-For: 192.0.2.1\r\nAccept: */*\r\naccept: text/plain\r\n\r\n"
	raw := get + get + "GET /stale HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n"
	type run struct {
		answer string
		fast   int64
		asked  int
		req    *http.Request
	}
	do := func(s *edgeServer) run {
		before, asked := s.Stats().Fast, p.origin.count("/stale")
		// The origin dates its answers by the test's clock.
		answer := dateField.ReplaceAllString(exchange(t, s.Addr().String(), raw), "Date: X\r")
		return run{answer, s.Stats().Fast - before, p.origin.count("/stale") - asked, p.origin.lastRequest("/stale")}
	}
	got := do(p.fast)
	p.clock.Add(2 * time.Second) // stale again
	want := do(p.slow)
	if got.answer != want.answer {
		t.Fatalf("fast path answered\n%q\nnet/http answered\n%q", got.answer, want.answer)
	}
	if got.fast != 3 || got.asked != 1 || want.asked != 1 {
		t.Fatalf("fast path answered %d of 3; origin asked %d and %d times, want once each", got.fast, got.asked, want.asked)
	}
	for _, k := range []string{"If-None-Match", "Via", "X-Forwarded-For", "User-Agent", "Accept"} {
		if g, w := got.req.Header[k], want.req.Header[k]; !slices.Equal(g, w) || len(g) == 0 {
			t.Errorf("origin got %s %q from the fast path, %q from net/http", k, g, w)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got.answer)), nil)
	if err != nil || resp.Header.Get("X-Cache") != Revalidated {
		t.Fatalf("first answer %v, X-Cache %q: want %s", err, resp.Header.Get("X-Cache"), Revalidated)
	}
	t.Logf("%.400q", got.answer)
}
