package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/auth"
)

const (
	// maxPurgeBody bounds a purge request body.
	maxPurgeBody = 1 << 20
	// maxPurgeItems bounds the paths plus tags of one purge request.
	maxPurgeItems = 10000
	// MaxTagLen bounds one tag in bytes.
	MaxTagLen = 1024
)

// PurgeRequest names what to purge; it is also the body of POST /purge.
type PurgeRequest struct {
	// Paths are exact paths (every query string of the path goes too) or
	// prefixes ending in "*" ("/results/hourly/*"; "/*" is everything).
	Paths []string `json:"paths,omitempty"`
	// Tags are Surrogate-Key / Cache-Tag values of stored responses.
	Tags []string `json:"tags,omitempty"`
}

// Purge removes stored responses by path, prefix or tag. A fetch in
// flight that may match still answers its waiters but is not stored. It
// returns the number of stored responses removed.
func (e *Edge) Purge(req PurgeRequest) int {
	e.fillMu.Lock()
	for _, f := range e.fills {
		if fillMatches(f, req) {
			f.purged.Store(true)
		}
	}
	e.fillMu.Unlock()
	n := e.store.purge(req.Paths, req.Tags)
	e.purges.Add(1)
	e.purged.Add(int64(n))
	return n
}

// fillMatches reports whether a purge may concern a fill: by its path, or
// by tag once its response is known (and, before that, for any tag).
func fillMatches(f *fill, req PurgeRequest) bool {
	path, _, _ := strings.Cut(f.key, "?")
	for _, p := range req.Paths {
		if pre, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(f.key, pre) || p == path {
			return true
		}
	}
	if len(req.Tags) == 0 {
		return false
	}
	select {
	case <-f.ready:
	default:
		return true
	}
	if f.meta == nil {
		return false
	}
	for _, t := range req.Tags {
		for _, ft := range f.meta.tags {
			if t == ft {
				return true
			}
		}
	}
	return false
}

func (e *Edge) servePurge(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "method %s not allowed; use POST", r.Method))
		return
	}
	if keys := e.purgeKeys(); keys != nil {
		if err := keys.Check(r.Header.Get("Authorization"), auth.ScopePurge); err != nil {
			w.Header().Set("Cache-Control", "no-store")
			auth.Deny(w, err)
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPurgeBody+1))
	if err != nil {
		writeError(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "read body: %v", err))
		return
	}
	if len(body) > maxPurgeBody {
		writeError(w, apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeTooLarge, "purge body larger than %d bytes", maxPurgeBody))
		return
	}
	req, err := parsePurge(body)
	if err != nil {
		writeError(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%v", err))
		return
	}
	n := e.Purge(*req)
	e.log.Info("purge", "paths", len(req.Paths), "tags", len(req.Tags), "purged", n)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Purged int `json:"purged"`
	}{n})
}

// parsePurge decodes and checks a purge body: {"paths":[...],"tags":[...]}
// with at least one path or tag. A path is a valid path (see CheckPath)
// with no "*" but an optional final one; a tag is 1..MaxTagLen visible
// ASCII characters.
func parsePurge(body []byte) (*PurgeRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req PurgeRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("edge: purge body: %w", err)
	}
	if dec.More() {
		return nil, errors.New("edge: purge body: trailing data after the JSON object")
	}
	if len(req.Paths)+len(req.Tags) == 0 {
		return nil, errors.New("edge: purge body: at least one path or tag is required")
	}
	if len(req.Paths)+len(req.Tags) > maxPurgeItems {
		return nil, fmt.Errorf("edge: purge body: more than %d paths and tags", maxPurgeItems)
	}
	for i, p := range req.Paths {
		if err := checkPurgePath(p); err != nil {
			return nil, fmt.Errorf("edge: purge body: paths[%d]: %w", i, err)
		}
	}
	for i, t := range req.Tags {
		if err := CheckTag(t); err != nil {
			return nil, fmt.Errorf("edge: purge body: tags[%d]: %w", i, err)
		}
	}
	return &req, nil
}

// ErrBadTag is returned by CheckTag.
var ErrBadTag = errors.New("edge: bad tag")

// CheckTag reports whether t can be a Surrogate-Key / Cache-Tag value:
// 1..MaxTagLen visible ASCII characters without commas.
func CheckTag(t string) error {
	if t == "" || len(t) > MaxTagLen {
		return fmt.Errorf("%w: want 1..%d bytes", ErrBadTag, MaxTagLen)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c >= 0x7f || c == ',' {
			return fmt.Errorf("%w: %q is not allowed", ErrBadTag, c)
		}
	}
	return nil
}

func checkPurgePath(p string) error {
	if p == "/*" {
		return nil
	}
	prefix, isPrefix := strings.CutSuffix(p, "*")
	if strings.Contains(prefix, "*") {
		return fmt.Errorf("%w: only a trailing * is allowed", ErrBadPath)
	}
	if !isPrefix {
		return CheckPath(p)
	}
	return CheckPath(prefix + "x")
}

// purgeKeys returns who may purge: Config.Keys, else a keyring of
// Config.PurgeKey, else nil (anyone).
func (e *Edge) purgeKeys() *auth.Keyring {
	switch {
	case e.cfg.Keys != nil:
		return e.cfg.Keys
	case e.cfg.PurgeKey != "":
		e.purgeOnce.Do(func() { e.purgeRing = auth.Single(e.cfg.PurgeKey) })
		return e.purgeRing
	}
	return nil
}
