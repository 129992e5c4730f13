package origin_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/intercloud/intercloud/origin"
)

// FuzzCheckKey checks that an accepted key never escapes its prefix and
// that the rules CheckKey states hold for everything it accepts.
func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"results/a.json", "results/../x", "results//a", "a\x00b", "\xff", ".", "results/./a", "results/a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if origin.CheckKey(key) != nil {
			return
		}
		if key == "" || len(key) > origin.MaxKeyLen || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
			t.Fatalf("accepted %q", key)
		}
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q with segment %q", key, seg)
			}
		}
	})
}

// FuzzServePath sends arbitrary paths through the handler: it must answer
// with a known status, never serve a key outside the prefix, and never
// panic.
func FuzzServePath(f *testing.F) {
	b := newBucket(f)
	put(f, b, "results/a.json", `{"a":1}`, "application/json")
	put(f, b, "private.json", `{"private":1}`, "application/json")
	h := origin.New(origin.Config{Bucket: b, Prefix: "results/", Logger: slog.New(slog.DiscardHandler)})
	for _, s := range []string{"/results/a.json", "/results/../private.json", "/private.json", "/results/%2e%2e/private.json", "/results/a.json%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		req := httptest.NewRequestWithContext(context.Background(), "GET", "/", nil)
		req.URL.Path = path
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		switch rec.Code {
		case http.StatusOK:
			if string(body) != `{"a":1}` {
				t.Fatalf("%q served %q", path, body)
			}
		case http.StatusBadRequest, http.StatusNotFound:
			if strings.Contains(string(body), `"private":1`) {
				t.Fatalf("%q leaked %q", path, body)
			}
		default:
			t.Fatalf("%q: status %d", path, rec.Code)
		}
	})
}
