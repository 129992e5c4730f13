// Package auth is who may call intercloud's APIs: bearer keys, each with
// scopes, stored as SHA-256 hashes only, compared in constant time, and
// parsed from the Authorization header by one function.
//
// # Scopes
//
//	ingest      POST /v1/records (front door and each cloud's API)
//	read        GET /v1/status, GET /metrics (unless opened), the logs page
//	purge       POST /purge on the edge
//	logs:read   GET /v1/logs (searching the central log store)
//	logs:write  POST /v1/logs (log shippers only: a holder can write lines)
//
// The process's own key (the API key of package topology) holds every
// scope; `intercloud keys add` makes scoped keys for clients, several per
// scope, so that one can be rotated while the other still works.
//
// # The keys file
//
// A JSON file (written 0600) of {"keys": [{"id", "name", "sha256",
// "scopes", "created"}]}; a key itself is never stored. A Keyring re-reads
// the file when it changes, so a key added or revoked takes effect within
// a second in a running process.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/apierr"
)

// Scope is what a key may do.
type Scope string

// The scopes.
const (
	ScopeIngest    Scope = "ingest"
	ScopeRead      Scope = "read"
	ScopePurge     Scope = "purge"
	ScopeLogsRead  Scope = "logs:read"
	ScopeLogsWrite Scope = "logs:write"
)

// Scopes lists every scope.
var Scopes = []Scope{ScopeIngest, ScopeRead, ScopePurge, ScopeLogsRead, ScopeLogsWrite}

// CodeForbidden is the apierr code of a 403: the key is valid but lacks
// the scope.
const CodeForbidden = "forbidden"

// ParseScopes reads a comma-separated list of scopes ("ingest,read").
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(Scopes, Scope(f)) {
			return nil, fmt.Errorf("auth: unknown scope %q (have %s)", f, joinScopes(Scopes))
		}
		if !slices.Contains(out, Scope(f)) {
			out = append(out, Scope(f))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("auth: no scope given (have %s)", joinScopes(Scopes))
	}
	return out, nil
}

func joinScopes(ss []Scope) string {
	s := make([]string, len(ss))
	for i, x := range ss {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

// BearerKey returns the key of an "Authorization: Bearer <key>" header
// value. The scheme is matched in any case (RFC 9110 §11.1); spaces around
// the key are ignored.
func BearerKey(header string) (string, bool) {
	scheme, key, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	return key, key != ""
}

// Key is a stored key: its hash, never the key itself.
type Key struct {
	// ID names the key in `keys list` and `keys revoke` (not secret).
	ID string `json:"id"`
	// Name is the operator's note ("shipper on host a").
	Name string `json:"name,omitempty"`
	// SHA256 is the hex SHA-256 of the key.
	SHA256  string    `json:"sha256"`
	Scopes  []Scope   `json:"scopes"`
	Created time.Time `json:"created"`
}

// Has reports whether the key holds scope.
func (k Key) Has(scope Scope) bool { return slices.Contains(k.Scopes, scope) }

type entry struct {
	hash   [sha256.Size]byte
	scopes []Scope
	id     string
}

// Keyring holds the keys an API accepts. It is safe for concurrent use; a
// nil *Keyring accepts no key.
type Keyring struct {
	file string

	mu      sync.Mutex
	static  []entry
	entries []entry
	modTime time.Time
	size    int64
	checked time.Time
	err     error
}

// New returns a Keyring of the process key (every scope; empty: none) and
// the keys of file (empty: none; a missing file holds no key).
func New(processKey, file string) (*Keyring, error) {
	k := &Keyring{file: file}
	if processKey != "" {
		k.static = append(k.static, entry{hash: sha256.Sum256([]byte(processKey)), scopes: Scopes, id: "process"})
	}
	if file != "" {
		if err := k.reload(true); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Single returns a Keyring of one key with every scope.
func Single(key string) *Keyring {
	k, _ := New(key, "")
	return k
}

// reload re-reads the file when its size or modification time changed
// (checked at most once a second unless force).
func (k *Keyring) reload(force bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.file == "" || !force && time.Since(k.checked) < time.Second {
		return k.err
	}
	k.checked = time.Now()
	fi, err := os.Stat(k.file)
	if errors.Is(err, os.ErrNotExist) {
		k.entries, k.err, k.modTime, k.size = nil, nil, time.Time{}, 0
		return nil
	}
	if err != nil {
		k.err = fmt.Errorf("auth: %w", err)
		return k.err
	}
	if !force && fi.ModTime().Equal(k.modTime) && fi.Size() == k.size {
		return k.err
	}
	keys, err := ReadFile(k.file)
	if err != nil {
		// Keep the keys read last: a file being rewritten is not a reason
		// to lock everyone out.
		k.err = err
		return err
	}
	entries := make([]entry, 0, len(keys))
	for _, key := range keys {
		h, err := hex.DecodeString(key.SHA256)
		if err != nil || len(h) != sha256.Size {
			continue
		}
		var e entry
		copy(e.hash[:], h)
		e.scopes, e.id = key.Scopes, key.ID
		entries = append(entries, e)
	}
	k.entries, k.err, k.modTime, k.size = entries, nil, fi.ModTime(), fi.Size()
	return nil
}

// Check authorizes an Authorization header value for scope: nil, or an
// *apierr.Error 401 (no key, or not a known key) or 403 (a known key
// without the scope). Every known key is compared, in constant time.
func (k *Keyring) Check(header string, scope Scope) error {
	key, ok := BearerKey(header)
	if !ok || k == nil {
		return unauthenticated()
	}
	_ = k.reload(false)
	h := sha256.Sum256([]byte(key))
	k.mu.Lock()
	all := append(slices.Clone(k.static), k.entries...)
	k.mu.Unlock()
	var found *entry
	for i := range all {
		if subtle.ConstantTimeCompare(h[:], all[i].hash[:]) == 1 && found == nil {
			found = &all[i]
		}
	}
	if found == nil {
		return unauthenticated()
	}
	if !slices.Contains(found.scopes, scope) {
		return apierr.New(http.StatusForbidden, CodeForbidden, "this key may not %s (it lacks the %q scope)", scopeVerb(scope), scope)
	}
	return nil
}

// Require wraps h: requests without a key holding scope get the JSON 401
// or 403 (with WWW-Authenticate on a 401).
func (k *Keyring) Require(scope Scope, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := k.Check(r.Header.Get("Authorization"), scope); err != nil {
			Deny(w, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Deny answers a Check error.
func Deny(w http.ResponseWriter, err error) {
	var e *apierr.Error
	if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="intercloud"`)
	}
	apierr.Write(w, err)
}

func unauthenticated() error {
	return apierr.New(http.StatusUnauthorized, apierr.CodeUnauthenticated, "a valid bearer key is required (Authorization: Bearer <key>)")
}

func scopeVerb(s Scope) string {
	switch s {
	case ScopeIngest:
		return "ingest records"
	case ScopeRead:
		return "read status or metrics"
	case ScopePurge:
		return "purge the edge"
	case ScopeLogsRead:
		return "search the logs"
	case ScopeLogsWrite:
		return "write log lines"
	}
	return string(s)
}

type file struct {
	Keys []Key `json:"keys"`
}

// ReadFile reads a keys file; a missing file holds no key.
func ReadFile(path string) ([]Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	return f.Keys, nil
}

// writeFile replaces the keys file atomically, mode 0600.
func writeFile(path string, keys []Key) error {
	if keys == nil {
		keys = []Key{}
	}
	b, err := json.MarshalIndent(file{Keys: keys}, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keys-*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// NewKey returns a fresh random key: "ick_" and 32 random bytes in
// base64url.
func NewKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails
	return "ick_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Add makes a key with scopes, stores its hash in the keys file and
// returns the key (shown once) and its entry.
func Add(path, name string, scopes []Scope, now time.Time) (string, Key, error) {
	if len(scopes) == 0 {
		return "", Key{}, errors.New("auth: a key needs at least one scope")
	}
	for _, s := range scopes {
		if !slices.Contains(Scopes, s) {
			return "", Key{}, fmt.Errorf("auth: unknown scope %q", s)
		}
	}
	keys, err := ReadFile(path)
	if err != nil {
		return "", Key{}, err
	}
	secret := NewKey()
	h := sha256.Sum256([]byte(secret))
	var idb [6]byte
	_, _ = rand.Read(idb[:])
	k := Key{ID: hex.EncodeToString(idb[:]), Name: name, SHA256: hex.EncodeToString(h[:]), Scopes: scopes, Created: now.UTC().Truncate(time.Second)}
	if err := writeFile(path, append(keys, k)); err != nil {
		return "", Key{}, err
	}
	return secret, k, nil
}

// Revoke removes the key with id from the keys file.
func Revoke(path, id string) (Key, error) {
	keys, err := ReadFile(path)
	if err != nil {
		return Key{}, err
	}
	i := slices.IndexFunc(keys, func(k Key) bool { return k.ID == id })
	if i < 0 {
		return Key{}, fmt.Errorf("auth: no key %q in %s", id, path)
	}
	k := keys[i]
	if err := writeFile(path, slices.Delete(keys, i, i+1)); err != nil {
		return Key{}, err
	}
	return k, nil
}
