package topology_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/auth"
)

// Every endpoint that needs a key, with a key of every scope, the process
// key, a wrong key and none: only the scope the endpoint names passes; a
// wrong or missing key is a 401, a key without the scope a 403, both JSON.
func TestEveryEndpointEveryScope(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	keys := map[auth.Scope]string{}
	for _, s := range auth.Scopes {
		k, _, err := auth.Add(cfg.Auth.Keys, "test "+string(s), []auth.Scope{s}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		keys[s] = k
	}
	topo := start(t, cfg)
	record := `{"device":"d","metric":"m","value":1,"ts":"2026-11-30T00:00:00Z"}`
	endpoints := []struct {
		name, method, url, body string
		scope                   auth.Scope
	}{
		{"front door ingest", "POST", topo.URL("frontdoor") + "/v1/records", record, auth.ScopeIngest},
		{"aws ingest", "POST", topo.URL("aws-api") + "/v1/records", record, auth.ScopeIngest},
		{"azure ingest", "POST", topo.URL("azure-api") + "/v1/records", record, auth.ScopeIngest},
		{"aws status", "GET", topo.URL("aws-api") + "/v1/status", "", auth.ScopeRead},
		{"azure metrics", "GET", topo.URL("azure-api") + "/metrics", "", auth.ScopeRead},
		{"front door status", "GET", topo.URL("frontdoor") + "/v1/status", "", auth.ScopeRead},
		{"edge purge", "POST", topo.URL("edge") + "/purge", `{"tags":["results"]}`, auth.ScopePurge},
		{"logs search", "GET", topo.URL("logs") + "/v1/logs?q=component:load", "", auth.ScopeLogsRead},
		{"logs write", "POST", topo.URL("logs") + "/v1/logs", `{"msg":"x","level":"INFO"}` + "\n", auth.ScopeLogsWrite},
	}
	do := func(method, url, body, key string) (int, string, string) {
		req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := topo.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for _, ep := range endpoints {
		for _, holder := range auth.Scopes {
			code, ct, body := do(ep.method, ep.url, ep.body, keys[holder])
			switch {
			case holder == ep.scope && code >= 400:
				t.Errorf("%s with a %s key: %d %s", ep.name, holder, code, body)
			case holder != ep.scope && (code != http.StatusForbidden || ct != "application/json" || !strings.Contains(body, `"forbidden"`)):
				t.Errorf("%s with a %s key: %d %s %s, want a JSON 403", ep.name, holder, code, ct, body)
			}
		}
		if code, _, body := do(ep.method, ep.url, ep.body, testKey); code >= 400 {
			t.Errorf("%s with the API key: %d %s", ep.name, code, body)
		}
		for _, key := range []string{"", "wrong-key"} {
			if code, ct, body := do(ep.method, ep.url, ep.body, key); code != http.StatusUnauthorized || ct != "application/json" {
				t.Errorf("%s with key %q: %d %s %s, want a JSON 401", ep.name, key, code, ct, body)
			}
		}
	}
	// A lower-case scheme is the same key.
	req, _ := http.NewRequest(http.MethodGet, topo.URL("aws-api")+"/v1/status", nil)
	req.Header.Set("Authorization", "bearer "+keys[auth.ScopeRead])
	resp, err := topo.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status with 'bearer': %d", resp.StatusCode)
	}
}
