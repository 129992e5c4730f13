package topology_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/ingest"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/publish"
	"github.com/intercloud/intercloud/topology"
)

// TestFreshnessAndAdmission: while the publisher cannot write its results
// (an object named "results" stands where its directory must be), the
// freshness figure grows in the status and /metrics, /healthz turns
// degraded past ingest.degraded_backlog, and writes are refused with 503
// and Retry-After past ingest.max_backlog, through the front door too,
// without the front door marking a cloud unhealthy; once the publisher
// can write again, everything acknowledged is published, freshness goes
// back to 0 and writes are taken again.
func TestFreshnessAndAdmission(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Ingest.MaxBacklog = config.Duration(2 * time.Second)
	cfg.Ingest.DegradedBacklog = config.Duration(time.Second)
	ctx := context.Background()
	azure, err := objects.Open(ctx, cfg.Clouds["azure"].Objects, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer azure.Close()
	topo := start(t, cfg)
	// Where the publisher writes, an object named like its directory.
	blocker := strings.TrimSuffix(publish.ResultsPrefix, "/")
	if err := os.RemoveAll(filepath.Join(strings.TrimPrefix(cfg.Clouds["azure"].Objects, "file://"), blocker)); err != nil {
		t.Fatal(err)
	}
	if err := azure.Put(ctx, blocker, []byte("in the way"), nil); err != nil {
		t.Fatal(err)
	}
	get := func(url string) (int, string) { return getBody(t, topo, url) }
	status := func() topology.CloudStatus { return cloudStatus(t, topo, "azure") }
	acked, err := demo.Send(ctx, topo.URL("frontdoor"), testKey, demo.Options{Records: 100, BatchSize: 50, Client: topo.Client()})
	if err != nil || len(acked) != 100 {
		t.Fatalf("send: %d, %v", len(acked), err)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s (status %+v)", what, status())
			}
		}
	}
	waitFor("healthz degraded by the backlog", func() bool {
		code, body := get(topo.URL("aws-api") + "/healthz")
		return code == 200 && strings.Contains(body, `"status":"degraded"`) && strings.Contains(body, "published results")
	})
	waitFor("freshness past max_backlog", func() bool {
		f := status().Freshness
		return f != nil && f.Seconds > 2 && !f.OldestUnpublished.IsZero()
	})
	if _, body := get(topo.URL("azure-api") + "/metrics"); !strings.Contains(body, `intercloud_freshness_seconds{cloud="azure"} `) {
		t.Fatalf("metrics lack freshness:\n%s", body)
	}
	req, _ := http.NewRequest(http.MethodPost, topo.URL("frontdoor")+"/v1/records", strings.NewReader(`{"device":"d","metric":"cpu","value":1,"ts":"2026-11-24T10:00:00Z"}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := topo.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), ingest.CodeBacklog) {
		t.Fatalf("write while behind: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	for _, b := range topo.FrontDoor().Status() {
		if !b.Healthy {
			t.Errorf("front door marked %s unhealthy for back-pressure: %+v", b.Name, b)
		}
	}

	// The publisher can write again: it catches up.
	if err := azure.Delete(ctx, blocker); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Verify(ctx, topo, cfg, acked, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	waitFor("freshness back to 0", func() bool {
		f := status().Freshness
		return f != nil && f.Seconds == 0
	})
	more, err := demo.Send(ctx, topo.URL("frontdoor"), testKey, demo.Options{Records: 10, BatchSize: 10, Client: topo.Client()})
	if err != nil || len(more) != 10 {
		t.Fatalf("send after catching up: %d, %v", len(more), err)
	}
}
