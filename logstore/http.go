package logstore

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/auth"
)

// MaxBody is the largest POST /v1/logs body.
const MaxBody = 8 << 20

//go:embed page.html
var page []byte

// Handler serves the store's API and page:
//
//	POST /v1/logs            NDJSON body (at most MaxBody) → {"accepted":n,"rejected":m}
//	GET  /v1/logs?q=&limit=  → {"entries":[...]}, newest first (q: see ParseQuery)
//	GET  /                   the search page (the key is typed into the page)
//
// Both API calls need "Authorization: Bearer apiKey"; an empty apiKey
// refuses every API call. Errors are apierr JSON bodies.
func (s *Store) Handler(apiKey string) http.Handler {
	if apiKey == "" {
		return s.HandlerKeys(nil)
	}
	return s.HandlerKeys(auth.Single(apiKey))
}

// HandlerKeys is Handler with scoped keys: POST /v1/logs needs a key of
// scope logs:write (log shippers), GET logs:read; nil refuses every API
// call.
func (s *Store) HandlerKeys(keys *auth.Keyring) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/logs", func(w http.ResponseWriter, r *http.Request) {
		scope := auth.ScopeLogsRead
		if r.Method == http.MethodPost {
			scope = auth.ScopeLogsWrite
		}
		if err := keys.Check(r.Header.Get("Authorization"), scope); err != nil {
			auth.Deny(w, err)
			return
		}
		switch r.Method {
		case http.MethodPost:
			s.ingest(w, r)
		case http.MethodGet, http.MethodHead:
			s.search(w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "use GET or POST"))
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			apierr.Write(w, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no such path"))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "use GET"))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		_, _ = w.Write(page)
	})
	return mux
}

var ndjsonTypes = map[string]bool{
	"application/x-ndjson": true, "application/ndjson": true, "application/jsonl": true,
	"application/jsonlines": true, "application/x-jsonlines": true, "application/json": true, "text/plain": true,
}

func (s *Store) ingest(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !ndjsonTypes[mt] {
			apierr.Write(w, apierr.New(http.StatusUnsupportedMediaType, apierr.CodeUnsupportedType, "the body must be NDJSON (application/x-ndjson)"))
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apierr.Write(w, apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeTooLarge, "the body is over %d bytes", MaxBody))
			return
		}
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "reading the body failed"))
		return
	}
	var lines [][]byte
	for _, l := range bytes.Split(body, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			lines = append(lines, l)
		}
	}
	n, err := s.InsertBatch(r.Context(), r.Header.Get("Idempotency-Key"), lines)
	if err != nil {
		s.log.Error("log ingest failed", "component", "logstore", "lines", len(lines), "err", err)
		apierr.Write(w, apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "the log store could not save the lines"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"accepted": n, "rejected": len(lines) - n})
}

func (s *Store) search(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := ParseQuery(v.Get("q"))
	if err != nil {
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%s", strings.TrimPrefix(err.Error(), "logstore: ")))
		return
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "limit must be a positive integer (at most %d)", MaxLimit))
			return
		}
		q.Limit = n
	}
	entries, err := s.Search(r.Context(), q)
	if err != nil {
		s.log.Error("log search failed", "component", "logstore", "err", err)
		apierr.Write(w, apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "the log store could not run the search"))
		return
	}
	writeJSON(w, http.StatusOK, map[string][]Entry{"entries": entries})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
