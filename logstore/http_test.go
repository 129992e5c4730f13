package logstore

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/apierr"
)

const testKey = "k3y-for-tests"

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	s := openTestStore(t, filepath.Join(t.TempDir(), "logs.db"))
	srv := httptest.NewServer(s.Handler(testKey))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, u, key, ctype string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	var e struct{ Error apierr.Error }
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != code {
		t.Fatalf("body %s, want error code %q", body, code)
	}
}

func TestHTTPIngestAndSearch(t *testing.T) {
	srv := newTestServer(t)
	body := strings.Join([]string{
		`{"time":"2026-11-24T10:00:00Z","level":"INFO","msg":"record accepted","cloud":"aws","component":"ingest","trace_id":"abc"}`,
		``,
		`{"time":"2026-11-24T10:00:01Z","level":"INFO","msg":"rows applied","cloud":"azure","component":"replicate","trace_id":"abc"}`,
		`garbage`,
		`{"time":"2026-11-24T10:00:02Z","level":"ERROR","msg":"other","cloud":"aws","component":"load","trace_id":"zzz"}`,
	}, "\n") + "\n"
	resp, b := do(t, "POST", srv.URL+"/v1/logs", testKey, "application/x-ndjson", strings.NewReader(body))
	if resp.StatusCode != 200 {
		t.Fatalf("ingest: %d %s", resp.StatusCode, b)
	}
	var counts struct{ Accepted, Rejected int }
	if err := json.Unmarshal(b, &counts); err != nil || counts.Accepted != 3 || counts.Rejected != 1 {
		t.Fatalf("ingest answer %s", b)
	}

	resp, b = do(t, "GET", srv.URL+"/v1/logs?q="+url.QueryEscape("trace_id:abc"), testKey, "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("search: %d %s", resp.StatusCode, b)
	}
	var res struct {
		Entries []map[string]json.RawMessage `json:"entries"`
	}
	if err := json.Unmarshal(b, &res); err != nil || len(res.Entries) != 2 {
		t.Fatalf("search answer %s", b)
	}
	for _, k := range []string{"time", "level", "msg", "cloud", "component", "trace_id", "attrs"} {
		if _, ok := res.Entries[0][k]; !ok {
			t.Fatalf("entry lacks %q: %s", k, b)
		}
	}
	if string(res.Entries[0]["cloud"]) != `"azure"` || string(res.Entries[1]["cloud"]) != `"aws"` {
		t.Fatalf("want the azure line first (newest): %s", b)
	}

	resp, b = do(t, "GET", srv.URL+"/v1/logs?limit=1", testKey, "", nil)
	if err := json.Unmarshal(b, &res); resp.StatusCode != 200 || err != nil || len(res.Entries) != 1 {
		t.Fatalf("limit=1: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, "GET", srv.URL+"/v1/logs?q="+url.QueryEscape(`level:error "other`), testKey, "", nil)
	if err := json.Unmarshal(b, &res); resp.StatusCode != 200 || err != nil || len(res.Entries) != 1 {
		t.Fatalf("level+text: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, "GET", srv.URL+"/v1/logs?q="+url.QueryEscape(`nothing-matches`), testKey, "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"entries":[]`) {
		t.Fatalf("empty result: %d %s", resp.StatusCode, b)
	}
}

func TestHTTPErrors(t *testing.T) {
	srv := newTestServer(t)
	api := srv.URL + "/v1/logs"
	line := `{"msg":"x"}` + "\n"
	tests := []struct {
		name, method, url, key, ctype string
		body                          string
		status                        int
		code                          string
	}{
		{"ingest without key", "POST", api, "", "", line, 401, apierr.CodeUnauthenticated},
		{"ingest wrong key", "POST", api, "nope", "", line, 401, apierr.CodeUnauthenticated},
		{"search without key", "GET", api, "", "", "", 401, apierr.CodeUnauthenticated},
		{"search wrong key", "GET", api + "?q=x", testKey + "x", "", "", 401, apierr.CodeUnauthenticated},
		{"wrong type", "POST", api, testKey, "application/xml", line, 415, apierr.CodeUnsupportedType},
		{"bad query", "GET", api + "?q=" + url.QueryEscape("since:tomorrow"), testKey, "", "", 400, apierr.CodeMalformed},
		{"bad limit", "GET", api + "?limit=-1", testKey, "", "", 400, apierr.CodeMalformed},
		{"limit not a number", "GET", api + "?limit=lots", testKey, "", "", 400, apierr.CodeMalformed},
		{"method", "DELETE", api, testKey, "", "", 405, apierr.CodeMethod},
		{"unknown path", "GET", srv.URL + "/v2/nothing", "", "", "", 404, apierr.CodeNotFound},
		{"page method", "POST", srv.URL + "/", "", "", "", 405, apierr.CodeMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := do(t, tt.method, tt.url, tt.key, tt.ctype, strings.NewReader(tt.body))
			wantError(t, resp, b, tt.status, tt.code)
		})
	}
	// Nothing of the refused requests was stored.
	resp, b := do(t, "GET", api, testKey, "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"entries":[]`) {
		t.Fatalf("after refused requests: %d %s", resp.StatusCode, b)
	}
}

func TestHTTPTooLarge(t *testing.T) {
	srv := newTestServer(t)
	l := []byte(`{"msg":"` + strings.Repeat("a", 1000) + `"}` + "\n")
	body := bytes.Repeat(l, MaxBody/len(l)+1)
	resp, b := do(t, "POST", srv.URL+"/v1/logs", testKey, "application/x-ndjson", bytes.NewReader(body))
	wantError(t, resp, b, 413, apierr.CodeTooLarge)
	resp, b = do(t, "GET", srv.URL+"/v1/logs", testKey, "", nil)
	if !strings.Contains(string(b), `"entries":[]`) {
		t.Fatalf("a refused body stored lines: %d %s", resp.StatusCode, b)
	}
	// Just under the limit is fine.
	body = bytes.Repeat(l, MaxBody/len(l))
	resp, b = do(t, "POST", srv.URL+"/v1/logs", testKey, "application/x-ndjson", bytes.NewReader(body))
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"rejected":0`) {
		t.Fatalf("body under the limit: %d %s", resp.StatusCode, b)
	}
}

func TestEmptyKeyRefusesAll(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "logs.db"))
	srv := httptest.NewServer(s.Handler(""))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/logs", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
}

func TestPage(t *testing.T) {
	srv := newTestServer(t)
	resp, b := do(t, "GET", srv.URL+"/", "", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	page := string(b)
	for _, want := range []string{"<form", `id="q"`, `id="key"`, "v1/logs?", "Authorization", "<table"} {
		if !strings.Contains(page, want) {
			t.Fatalf("page lacks %q", want)
		}
	}
	// Self-contained: no external scripts, styles or images.
	for _, bad := range []string{"src=", "href=", "http://", "https://", "innerHTML"} {
		if strings.Contains(page, bad) {
			t.Fatalf("page contains %q", bad)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q", csp)
	}
}
