package topology_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/outagetest"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/topology"
)

// TestStartWaitsForTheDatabase starts AWS's part while its MariaDB is
// down (as `intercloud up` would be started before the database): Start
// does not fail; meanwhile AWS's /healthz answers 503 naming the database
// that does not answer, /v1/status says what start waits for, and writes
// are refused with 503. Once MariaDB is started, Start returns, the API
// takes writes and they are loaded and replicated.
func TestStartWaitsForTheDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB")
	}
	my := peers.StartMariaDB(t)
	my.Stop(t)
	cfg := testConfig(t, t.TempDir())
	cfg.TLS.Disabled = true
	cfg.Clouds["aws"].SQL = my.URL("app")
	cfg.Clouds["aws"].API = fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	api := "http://" + cfg.Clouds["aws"].API
	type started struct {
		topo *topology.Topology
		err  error
	}
	done := make(chan started, 1)
	go func() {
		topo, err := topology.Start(t.Context(), cfg, topology.Options{APIKey: testKey, LogWriter: testLog(t)})
		done <- started{topo, err}
	}()
	var topo *topology.Topology
	t.Cleanup(func() {
		if topo != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = topo.Stop(ctx)
		}
	})
	get := func(path string) (int, string) { return outagetest.Get(http.DefaultClient, api+path, testKey) }
	post := func(id string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, api+"/v1/records",
			strings.NewReader(fmt.Sprintf(`{"id":%q,"device":"d","metric":"m","value":1,"ts":"2026-11-30T10:00:00Z"}`, id)))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(resp)
	}

	// While the database is down: unhealthy, saying why, and retrying.
	waitFor(t, time.Minute, "aws's /healthz names the database it waits for", func() (bool, string) {
		select {
		case s := <-done:
			t.Fatalf("Start returned while the database was down: %v", s.err)
		default:
		}
		code, body := get("/healthz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "starting: ") &&
				strings.Contains(body, "clouds.aws.sql") && strings.Contains(body, "does not answer") && strings.Contains(body, "attempt "),
			fmt.Sprintf("%d %s", code, body)
	})
	code, body := get("/v1/status")
	var st struct {
		Cloud    string `json:"cloud"`
		Starting string `json:"starting"`
		Health   struct {
			Status string `json:"status"`
		} `json:"health"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Cloud != "aws" || !strings.Contains(st.Starting, "clouds.aws.sql") || st.Health.Status != "unhealthy" {
		t.Fatalf("status while starting: %d %s", code, body)
	}
	if code, body := post("early"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"unavailable"`) {
		t.Fatalf("a write while starting: %d %s, want 503 unavailable", code, body)
	}
	if code, _ := get("/v1/status"); code != http.StatusOK {
		t.Fatalf("status while starting: %d", code)
	}
	if code, body := outagetest.Get(http.DefaultClient, api+"/v1/status", ""); code != http.StatusUnauthorized {
		t.Fatalf("status without a key while starting: %d %s, want 401", code, body)
	}

	// The database comes up: start completes, writes are taken and flow.
	my.Start(t)
	select {
	case s := <-done:
		if s.err != nil {
			t.Fatalf("Start after the database came up: %v", s.err)
		}
		topo = s.topo
	case <-time.After(2 * time.Minute):
		t.Fatal("Start did not return two minutes after the database came up")
	}
	waitFor(t, time.Minute, "aws healthy", func() (bool, string) {
		code, body := get("/healthz")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	if code, body := post("after"); code != http.StatusAccepted {
		t.Fatalf("a write once started: %d %s", code, body)
	}
	waitFor(t, time.Minute, "the write loaded on aws and replicated to azure", func() (bool, string) {
		aws := my.Query(t, "app", "SELECT COUNT(*) FROM records WHERE id = 'after'")
		var n int
		_ = topo.Cloud("azure").DB.QueryRow(`SELECT COUNT(*) FROM records WHERE id = 'after'`).Scan(&n)
		return len(aws) == 1 && aws[0] == "1" && n == 1, fmt.Sprintf("aws %v, azure %d", aws, n)
	})
	// The cloud's own "starting" is gone (a stream may still be in its
	// phase "starting": that is the stream's, not the start's).
	if _, body := get("/v1/status"); strings.Contains(body, `"starting":`) {
		t.Fatalf("status still says starting: %s", body)
	}
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
