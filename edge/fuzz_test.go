package edge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/", true},
		{"/results/a.json", true},
		{"/results/", true},
		{"/dir/sub/", true},
		{"/results/..a", true},
		{"/results/ü.json", true},
		{"", false},
		{"results/a", false},
		{"//", false},
		{"/results//a", false},
		{"/results/../a", false},
		{"/results/./a", false},
		{"/results/..", false},
		{"/results/a\x00", false},
		{"/results/a\n", false},
		{"/results/\xc3", false},
		{"/" + strings.Repeat("a", MaxPathLen), false},
	}
	for _, tc := range tests {
		err := CheckPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadPath) {
			t.Errorf("CheckPath(%q): %v does not wrap ErrBadPath", tc.path, err)
		}
	}
}

// FuzzCheckPath checks the rules CheckPath promises for whatever it accepts.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/results/a.json", "/results/../x", "/results//a", "/a\x00b", "/\xff", "/.", "/results/a/", "//", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || len(p) > MaxPathLen || !utf8.ValidString(p) || strings.ContainsAny(p, "\x00\r\n") {
			t.Fatalf("accepted %q", p)
		}
		segs := strings.Split(p[1:], "/")
		for i, seg := range segs {
			if (seg == "" && i < len(segs)-1) || seg == "." || seg == ".." {
				t.Fatalf("accepted %q with segment %q", p, seg)
			}
		}
	})
}

// FuzzParsePurge feeds arbitrary purge bodies: an accepted body names only
// valid paths, prefixes and tags, and purging them never panics.
func FuzzParsePurge(f *testing.F) {
	for _, s := range []string{
		`{"paths":["/results/summary.json","/results/hourly/*"]}`, `{"tags":["metric:cpu","results"]}`,
		`{"paths":["/*"]}`, `{"paths":[]}`, `{"paths":["/results/../x"]}`, `{"paths":["a*b*"]}`, `{`, `null`, `{"paths":null}`, `{"tags":["a b"]}`,
	} {
		f.Add([]byte(s))
	}
	e, err := New(Config{Routes: []Route{{Prefix: "/", Origins: []string{"http://127.0.0.1:1"}}}, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parsePurge(body)
		if err != nil {
			return
		}
		if len(req.Paths)+len(req.Tags) == 0 {
			t.Fatal("accepted nothing to purge")
		}
		for _, p := range req.Paths {
			if !strings.HasPrefix(p, "/") || strings.Contains(strings.TrimSuffix(p, "*"), "*") || !utf8.ValidString(p) {
				t.Fatalf("accepted path %q", p)
			}
		}
		for _, tag := range req.Tags {
			if tag == "" || strings.ContainsAny(tag, " ,\t\r\n") {
				t.Fatalf("accepted tag %q", tag)
			}
		}
		e.Purge(*req)
	})
}

// FuzzParseRange checks that accepted ranges lie inside the body and do
// not ask for more than it holds.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-5", "bytes=5-", "bytes=1-2,4-5", "bytes=9999999999999999999-", "bytes=-", "bytes=0-1,,", "items=1-2", "bytes=5-1"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, s string, size int64) {
		if size < 0 {
			return
		}
		ranges, err := parseRange(s, size)
		if err != nil {
			return
		}
		var total int64
		for _, r := range ranges {
			if r.start < 0 || r.length <= 0 || r.start+r.length > size {
				t.Fatalf("%q size %d: range %+v", s, size, r)
			}
			total += r.length
		}
		if len(ranges) == 0 || len(ranges) > maxRanges || total > size {
			t.Fatalf("%q size %d: %d ranges, %d bytes", s, size, len(ranges), total)
		}
	})
}

// FuzzServePath sends arbitrary paths through the edge: a bad path never
// reaches the origin, nothing outside the route leaks, and every answer
// has a known status.
func FuzzServePath(f *testing.F) {
	c := newClock()
	o := newTestOrigin(f, c)
	o.static("/results/a.json", 200, `{"a":1}`, "Cache-Control: max-age=60")
	o.static("/private.json", 200, `{"private":1}`, "Cache-Control: max-age=60")
	e, err := New(Config{Routes: []Route{{Prefix: "/results/", Origins: []string{o.srv.URL}}}, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/results/a.json", "/results/../private.json", "/private.json", "/results/%2e%2e/private.json", "/purge", "/results/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		o.mu.Lock()
		before := len(o.hits)
		o.mu.Unlock()
		req := httptest.NewRequestWithContext(context.Background(), "GET", "/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		o.mu.Lock()
		after := len(o.hits)
		o.mu.Unlock()
		if CheckPath(p) != nil && p != PurgePath && after != before {
			t.Fatalf("bad path %q reached the origin", p)
		}
		if strings.Contains(rec.Body.String(), `"private":1`) {
			t.Fatalf("%q leaked %q", p, rec.Body.String())
		}
		switch rec.Code {
		case http.StatusOK:
			if p != "/results/a.json" {
				t.Fatalf("%q served %q", p, rec.Body.String())
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
		default:
			t.Fatalf("%q: status %d", p, rec.Code)
		}
	})
}
