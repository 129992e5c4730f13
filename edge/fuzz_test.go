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
		{"/results/a.json", true},
		{"/results/hourly/2024/01/02.json", true},
		{"/results/..a", true},
		{"/results/ü.json", true},
		{"", false},
		{"results/a", false},
		{"/", false},
		{"/results/", false},
		{"/results//a", false},
		{"/results/../a", false},
		{"/results/./a", false},
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
	for _, s := range []string{"/results/a.json", "/results/../x", "/results//a", "/a\x00b", "/\xff", "/.", "/results/a/", "//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || len(p) > MaxPathLen || !utf8.ValidString(p) || strings.ContainsAny(p, "\x00\r\n") {
			t.Fatalf("accepted %q", p)
		}
		for seg := range strings.SplitSeq(p[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q with segment %q", p, seg)
			}
		}
	})
}

// FuzzParsePurge feeds arbitrary purge bodies: an accepted body names only
// valid paths or prefixes, and purging them never panics.
func FuzzParsePurge(f *testing.F) {
	for _, s := range []string{
		`{"paths":["/results/summary.json","/results/hourly/*"]}`,
		`{"paths":["/*"]}`, `{"paths":[]}`, `{"paths":["/results/../x"]}`, `{"paths":["a*b*"]}`, `{`, `null`, `{"paths":null}`,
	} {
		f.Add([]byte(s))
	}
	e, err := New(Config{Origins: []string{"http://127.0.0.1:1"}, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parsePurge(body)
		if err != nil {
			return
		}
		if len(req.Paths) == 0 {
			t.Fatal("accepted no paths")
		}
		for _, p := range req.Paths {
			if !strings.HasPrefix(p, "/") || strings.Contains(strings.TrimSuffix(p, "*"), "*") || !utf8.ValidString(p) {
				t.Fatalf("accepted path %q", p)
			}
		}
		e.Purge(req.Paths...)
	})
}

// FuzzServePath sends arbitrary paths through the edge: a bad path never
// reaches the origin and every answer has a known status.
func FuzzServePath(f *testing.F) {
	o := newOrigin(f)
	o.put(f, "results/a.json", `{"a":1}`)
	o.put(f, "private.json", `{"private":1}`)
	e, err := New(Config{Origins: []string{o.srv.URL}, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/results/a.json", "/results/../private.json", "/private.json", "/results/%2e%2e/private.json", "/purge"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		before := o.reqs.Load()
		req := httptest.NewRequestWithContext(context.Background(), "GET", "/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		bad := CheckPath(p) != nil
		if bad && o.reqs.Load() != before {
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
