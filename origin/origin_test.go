package origin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/origin"
)

func newBucket(t testing.TB) *objects.Bucket {
	t.Helper()
	b, err := objects.Open(context.Background(), "file://"+t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func put(t testing.TB, b *objects.Bucket, key, body, ct string) {
	t.Helper()
	if err := b.Put(context.Background(), key, []byte(body), &objects.PutOptions{ContentType: ct}); err != nil {
		t.Fatal(err)
	}
}

func newServer(t testing.TB) (*httptest.Server, *objects.Bucket) {
	t.Helper()
	b := newBucket(t)
	srv := httptest.NewServer(origin.New(origin.Config{Bucket: b, Prefix: "results/", Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	return srv, b
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// errCode decodes the project's JSON error body.
func errCode(t *testing.T, resp *http.Response, body string) string {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type = %q, body %q", ct, body)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not a JSON error body: %q (%v)", body, err)
	}
	return e.Error.Code
}

func TestGetHeaders(t *testing.T) {
	srv, b := newServer(t)
	const body = `{"count":3}`
	put(t, b, "results/summary.json", body, "application/json")

	resp, got := do(t, "GET", srv.URL+"/results/summary.json", nil)
	if resp.StatusCode != 200 || got != body {
		t.Fatalf("GET = %d %q", resp.StatusCode, got)
	}
	h := resp.Header
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	if et := h.Get("ETag"); len(et) < 3 || et[0] != '"' || et[len(et)-1] != '"' {
		t.Errorf("ETag = %q, want quoted", et)
	}
	if h.Get("Last-Modified") == "" {
		t.Error("no Last-Modified")
	}
	if h.Get("Content-Length") != "11" {
		t.Errorf("Content-Length = %q", h.Get("Content-Length"))
	}
	if h.Get("Cache-Control") != "public, max-age=60" {
		t.Errorf("Cache-Control = %q", h.Get("Cache-Control"))
	}
	if h.Get("Accept-Ranges") != "bytes" {
		t.Errorf("Accept-Ranges = %q", h.Get("Accept-Ranges"))
	}

	resp, got = do(t, "HEAD", srv.URL+"/results/summary.json", nil)
	if resp.StatusCode != 200 || got != "" || resp.Header.Get("Content-Length") != "11" || resp.Header.Get("ETag") != h.Get("ETag") {
		t.Fatalf("HEAD = %d %q %v", resp.StatusCode, got, resp.Header)
	}

	// A query string does not change the key.
	if resp, got = do(t, "GET", srv.URL+"/results/summary.json?x=1", nil); resp.StatusCode != 200 || got != body {
		t.Fatalf("GET with query = %d %q", resp.StatusCode, got)
	}
}

// TestSurrogateKey: an object's tags metadata is served as Surrogate-Key,
// the header the edge indexes for purge by tag.
func TestSurrogateKey(t *testing.T) {
	srv, b := newServer(t)
	put(t, b, "results/plain.json", "{}", "application/json")
	md := map[string]string{origin.MetadataSurrogateKey: "results metric:cpu"}
	if err := b.Put(context.Background(), "results/tagged.json", []byte("{}"), &objects.PutOptions{ContentType: "application/json", Metadata: md}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, "GET", srv.URL+"/results/tagged.json", nil); resp.Header.Get("Surrogate-Key") != "results metric:cpu" {
		t.Errorf("Surrogate-Key = %q", resp.Header.Get("Surrogate-Key"))
	}
	if resp, _ := do(t, "GET", srv.URL+"/results/plain.json", nil); resp.Header["Surrogate-Key"] != nil {
		t.Errorf("untagged object has Surrogate-Key %q", resp.Header.Get("Surrogate-Key"))
	}
}

func TestConditional(t *testing.T) {
	srv, b := newServer(t)
	put(t, b, "results/a.json", `{"a":1}`, "application/json")
	resp, _ := do(t, "GET", srv.URL+"/results/a.json", nil)
	et, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")

	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"if-none-match same", map[string]string{"If-None-Match": et}, 304},
		{"if-none-match list", map[string]string{"If-None-Match": `"x", ` + et}, 304},
		{"if-none-match star", map[string]string{"If-None-Match": "*"}, 304},
		{"if-none-match other", map[string]string{"If-None-Match": `"other"`}, 200},
		{"if-modified-since", map[string]string{"If-Modified-Since": lm}, 304},
		{"if-match other", map[string]string{"If-Match": `"other"`}, 412},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+"/results/a.json", tc.hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (%q)", resp.StatusCode, tc.want, body)
			}
			switch tc.want {
			case 304:
				if body != "" || resp.Header.Get("ETag") != et {
					t.Fatalf("304 body %q etag %q", body, resp.Header.Get("ETag"))
				}
			case 412:
				errCode(t, resp, body)
			}
		})
	}
}

func TestRange(t *testing.T) {
	srv, b := newServer(t)
	put(t, b, "results/digits.txt", "0123456789", "text/plain")
	tests := []struct {
		rng, want, contentRange string
		status                  int
	}{
		{"bytes=2-5", "2345", "bytes 2-5/10", 206},
		{"bytes=7-", "789", "bytes 7-9/10", 206},
		{"bytes=-3", "789", "bytes 7-9/10", 206},
		{"bytes=0-0", "0", "bytes 0-0/10", 206},
		{"bytes=20-30", "", "bytes */10", 416},
	}
	for _, tc := range tests {
		t.Run(tc.rng, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+"/results/digits.txt", map[string]string{"Range": tc.rng})
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if resp.Header.Get("Content-Range") != tc.contentRange {
				t.Errorf("Content-Range = %q, want %q", resp.Header.Get("Content-Range"), tc.contentRange)
			}
			if tc.status == 416 {
				if c := errCode(t, resp, body); c != "range_not_satisfiable" {
					t.Errorf("code = %q", c)
				}
				return
			}
			if body != tc.want {
				t.Errorf("body = %q, want %q", body, tc.want)
			}
		})
	}
	// Multiple ranges are answered as multipart by http.ServeContent.
	resp, body := do(t, "GET", srv.URL+"/results/digits.txt", map[string]string{"Range": "bytes=0-1,8-9"})
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || !strings.Contains(body, "01") || !strings.Contains(body, "89") {
		t.Fatalf("multi-range = %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestErrors(t *testing.T) {
	srv, b := newServer(t)
	put(t, b, "results/a.json", `{}`, "application/json")
	put(t, b, "private/secret.json", `{"secret":1}`, "application/json")
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/results/missing.json", 404, "not_found"},
		{"GET", "/results/hourly", 404, "not_found"},
		{"GET", "/private/secret.json", 404, "not_found"},
		{"GET", "/results", 404, "not_found"},
		{"GET", "/", 404, "not_found"},
		{"GET", "/results/", 400, "malformed"},
		{"GET", "/results//a.json", 400, "malformed"},
		{"GET", "/results/../private/secret.json", 400, "malformed"},
		{"GET", "/results/%2e%2e/private/secret.json", 400, "malformed"},
		{"GET", "/results/%2E%2E%2Fprivate%2Fsecret.json", 400, "malformed"},
		{"GET", "/results/./a.json", 400, "malformed"},
		{"GET", "/results/a%00.json", 400, "malformed"},
		{"GET", "/results/a%0a.json", 400, "malformed"},
		{"GET", "/results/%ff.json", 400, "malformed"},
		{"GET", "/results/" + strings.Repeat("a", 1100), 400, "malformed"},
		{"POST", "/results/a.json", 405, "method_not_allowed"},
		{"PUT", "/results/a.json", 405, "method_not_allowed"},
		{"DELETE", "/results/a.json", 405, "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, body := do(t, tc.method, srv.URL+tc.path, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (%q)", resp.StatusCode, tc.status, body)
			}
			if c := errCode(t, resp, body); c != tc.code {
				t.Fatalf("code = %q, want %q", c, tc.code)
			}
			if strings.Contains(body, `"secret":1`) {
				t.Fatalf("body leaks content: %q", body)
			}
		})
	}
	// The stored file is still intact after all that.
	if resp, body := do(t, "GET", srv.URL+"/results/a.json", nil); resp.StatusCode != 200 || body != "{}" {
		t.Fatalf("after attacks: %d %q", resp.StatusCode, body)
	}
}

func TestStoreFailure(t *testing.T) {
	b := newBucket(t)
	put(t, b, "results/a.json", `{}`, "application/json")
	srv := httptest.NewServer(origin.New(origin.Config{Bucket: b, Prefix: "results/", Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	b.Close() // every further call fails: the store is gone
	resp, body := do(t, "GET", srv.URL+"/results/a.json", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("status = %d, want 503 (%q)", resp.StatusCode, body)
	}
	if c := errCode(t, resp, body); c != "unavailable" {
		t.Fatalf("code = %q", c)
	}
}

func TestReplacedObject(t *testing.T) {
	srv, b := newServer(t)
	put(t, b, "results/a.json", `{"v":1}`, "application/json")
	resp, _ := do(t, "GET", srv.URL+"/results/a.json", nil)
	et := resp.Header.Get("ETag")
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	put(t, b, "results/a.json", `{"v":22}`, "application/json")
	resp, body := do(t, "GET", srv.URL+"/results/a.json", map[string]string{"If-None-Match": et})
	if resp.StatusCode != 200 || body != `{"v":22}` || resp.Header.Get("ETag") == et {
		t.Fatalf("after replace: %d %q etag %q (old %q)", resp.StatusCode, body, resp.Header.Get("ETag"), et)
	}
}

func TestCheckKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"results/a.json", true},
		{"results/hourly/2024/01/02/03.json", true},
		{"results/ünïcode.json", true},
		{"results/a..b.json", true},
		{"results/.hidden", true},
		{"", false},
		{"/results/a", false},
		{"results/", false},
		{"results//a", false},
		{"results/../a", false},
		{"..", false},
		{"results/.", false},
		{"results/a\x00", false},
		{"results/a\x7f", false},
		{"results/\xff", false},
		{strings.Repeat("a", origin.MaxKeyLen+1), false},
	}
	for _, tc := range tests {
		err := origin.CheckKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("CheckKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, origin.ErrBadKey) {
			t.Errorf("CheckKey(%q) error %v does not wrap ErrBadKey", tc.key, err)
		}
	}
}
