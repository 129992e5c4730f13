package objects

import (
	"errors"
	"net/url"
	"testing"
)

func TestKeySegment(t *testing.T) {
	for in, want := range map[string]string{
		"cpu":         "cpu",
		"a.b-c_d":     "a.b-c_d",
		"a/b":         "a%2Fb",
		"..":          "%2E%2E",
		".":           "%2E",
		"":            "%00",
		"x y":         "x%20y",
		"é":           "%C3%A9",
		"../../etc":   "..%2F..%2Fetc",
		"%2F":         "%252F",
		"a\x00b":      "a%00b",
		"C:\\win.ini": "C%3A%5Cwin.ini",
	} {
		if got := KeySegment(in); got != want {
			t.Errorf("KeySegment(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestKeyOfPath checks that the key of a value's segment is reachable at
// its URL path, in every spelling of that path's escapes, and that the
// path of a key is the key (hostile values included).
func TestKeyOfPath(t *testing.T) {
	hostile := []string{"cpu", "a/b", "a/../b", "..", ".", "", "x y", "é", "../../etc", "%2F", "%252F", "a\x00b",
		"C:\\win.ini", "?q=1", "#frag", "a;b", "a+b", "~user", "\xff", "a\nb", "/", "//", "a%b"}
	for _, v := range hostile {
		key := "results/hourly/" + KeySegment(v) + "/2026-11-24T10.json"
		if err := ValidateKey(key); err != nil {
			t.Errorf("%q: key %q is not valid: %v", v, key, err)
		}
		// As a client sends it: url.URL with the key as its raw path.
		u, err := url.Parse("https://edge.example/" + key)
		if err != nil {
			t.Fatalf("%q: key %q is not a URL path: %v", v, key, err)
		}
		got, err := KeyOfPath(u.EscapedPath())
		if err != nil || got != key {
			t.Errorf("%q: KeyOfPath(%q) = %q, %v; want %q", v, u.EscapedPath(), got, err, key)
		}
	}
	for path, want := range map[string]string{
		"/results/a%2fb/x.json":   "results/a%2Fb/x.json",
		"/results/%61%2Fb/x.json": "results/a%2Fb/x.json",
		"/results/summary.json":   "results/summary.json",
		"/results/%2e%2e/x":       "results/%2E%2E/x",
		"/results/a%20b":          "results/a%20b",
		"/results/a b":            "results/a%20b",
	} {
		if got, err := KeyOfPath(path); err != nil || got != want {
			t.Errorf("KeyOfPath(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	for _, path := range []string{"", "/", "results/a", "/results//a", "/results/a/", "/results/%zz", "/results/a%2"} {
		if got, err := KeyOfPath(path); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("KeyOfPath(%q) = %q, %v; want ErrInvalidKey", path, got, err)
		}
	}
}

// FuzzKeyOfPath checks that every key KeyOfPath returns is a valid,
// printable-ASCII key that names itself as a path (the mapping is
// canonical), and that nothing else is returned without ErrInvalidKey.
func FuzzKeyOfPath(f *testing.F) {
	for _, s := range []string{"/results/a%2Fb/x.json", "/results/%2e%2e/x", "/a//b", "/%zz", "/..", "/./a", "/a%00b", "/\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		key, err := KeyOfPath(path)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("KeyOfPath(%q): %v does not wrap ErrInvalidKey", path, err)
			}
			return
		}
		if err := ValidateKey(key); err != nil {
			t.Fatalf("KeyOfPath(%q) = %q: %v", path, key, err)
		}
		for i := 0; i < len(key); i++ {
			if key[i] <= 0x20 || key[i] >= 0x7f {
				t.Fatalf("KeyOfPath(%q) = %q: byte %#x", path, key, key[i])
			}
		}
		if again, err := KeyOfPath("/" + key); err != nil || again != key {
			t.Fatalf("KeyOfPath(%q) = %q, but its path names %q (%v)", path, key, again, err)
		}
	})
}
