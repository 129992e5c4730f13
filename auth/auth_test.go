package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/apierr"
)

func TestBearerKey(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer k": "k", "bearer k": "k", "BEARER  k ": "k", " Bearer k": "k", "Basic k": "", "Bearer": "", "Bearer ": "", "": "", "k": "",
	} {
		got, ok := BearerKey(in)
		if got != want || ok != (want != "") {
			t.Errorf("BearerKey(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
}

func status(err error) int {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e.Status
	}
	if err != nil {
		return -1
	}
	return 200
}

// Every scope against a key of each scope: only its own is allowed; the
// process key holds all; an unknown key or none is a 401.
func TestScopes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	secrets := map[Scope]string{}
	for _, s := range Scopes {
		k, _, err := Add(path, "for "+string(s), []Scope{s}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		secrets[s] = k
	}
	ring, err := New("process-key", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, holder := range Scopes {
		for _, want := range Scopes {
			got := status(ring.Check("Bearer "+secrets[holder], want))
			if exp := map[bool]int{true: 200, false: 403}[holder == want]; got != exp {
				t.Errorf("a %s key asking %s: %d, want %d", holder, want, got, exp)
			}
		}
		if got := status(ring.Check("bearer process-key", holder)); got != 200 {
			t.Errorf("the process key asking %s: %d", holder, got)
		}
		for _, h := range []string{"", "Bearer nope", "Basic " + secrets[holder], secrets[holder]} {
			if got := status(ring.Check(h, holder)); got != 401 {
				t.Errorf("%q asking %s: %d, want 401", h, holder, got)
			}
		}
	}
	if got := status((*Keyring)(nil).Check("Bearer x", ScopeRead)); got != 401 {
		t.Errorf("a nil keyring: %d", got)
	}
}

// Keys are stored hashed, 0600; add and revoke take effect in a running
// keyring; two keys of one scope work side by side for rotation.
func TestAddRevokeReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	ring, err := New("", path)
	if err != nil {
		t.Fatal(err)
	}
	old, oldKey, err := Add(path, "old", []Scope{ScopeIngest}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	newer, _, err := Add(path, "new", []Scope{ScopeIngest, ScopeRead}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("keys file mode %v", fi.Mode().Perm())
	}
	for _, secret := range []string{old, newer} {
		if containsBytes(b, secret) {
			t.Fatal("a key is stored in clear")
		}
	}
	waitStatus := func(key string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := status(ring.Check("Bearer "+key, ScopeIngest))
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status %d, want %d", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitStatus(old, 200)
	waitStatus(newer, 200)
	if _, err := Revoke(path, oldKey.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(old, 401)
	waitStatus(newer, 200)
	if _, err := Revoke(path, oldKey.ID); err == nil {
		t.Error("revoking twice worked")
	}
	if _, err := ParseScopes("ingest,nope"); err == nil {
		t.Error("an unknown scope was taken")
	}
	if s, err := ParseScopes(" read , logs:write,read"); err != nil || len(s) != 2 {
		t.Errorf("ParseScopes = %v %v", s, err)
	}
}

func containsBytes(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}

// The Authorization parser never panics, returns a key without spaces
// around it, and a key only for the Bearer scheme.
func FuzzBearerKey(f *testing.F) {
	for _, s := range []string{"Bearer k", "bearer  k ", "Basic x", "", "Bearer", "BEARER\tk", "Bearer a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		k, ok := BearerKey(h)
		if ok != (k != "") {
			t.Fatalf("BearerKey(%q) = %q, %v", h, k, ok)
		}
		if ok && (k != strings.TrimSpace(k) || !strings.EqualFold(strings.Fields(h)[0], "Bearer")) {
			t.Fatalf("BearerKey(%q) = %q", h, k)
		}
		_ = Single("x").Check(h, ScopeRead)
	})
}
