package demo_test

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/deadend"
	_ "github.com/intercloud/intercloud/objects/file"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
	"github.com/intercloud/intercloud/topology"
)

// startBenchTopology starts the embedded default on free ports with the
// key "k", stopped when the test ends.
func startBenchTopology(t *testing.T) (*config.Config, *topology.Topology) {
	t.Helper()
	cfg := config.Default(t.TempDir())
	cfg.ListenOnFreePorts()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	topo, err := topology.Start(context.Background(), cfg, topology.Options{APIKey: "k", LogWriter: &logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Stop(context.Background()) })
	return cfg, topo
}

// TestBench runs a short bench against a topology through its front door,
// at a fixed rate, and checks its report against the databases' counts.
func TestBench(t *testing.T) {
	_, topo := startBenchTopology(t)
	var out, warn bytes.Buffer
	res, err := demo.Bench(context.Background(), demo.BenchOptions{
		URL: topo.URL("frontdoor"), EdgeURL: topo.URL("edge"), Key: "k", Client: topo.Client(),
		Clients: 4, BatchSize: 50, Rate: 2000, Duration: 2 * time.Second, Interval: 500 * time.Millisecond, Drain: time.Minute, Out: &out,
		// "gone" never answers: its column shows "-", it does not hold
		// the lines up, and the reason is said once.
		Clouds: map[string]string{"aws": topo.URL("aws-api"), "azure": topo.URL("azure-api"), "gone": "https://" + deadend.Silent(t)},
		Warn:   &warn,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("%s\n%s", out.String(), res)
	if res.Errors != 0 || res.Acked == 0 || res.Acked != res.Sent || res.Visible != res.Acked || res.Backlog != 0 {
		t.Fatalf("result %s", res)
	}
	// A fixed rate of 2,000 records/s for 2 s: at most about 4,000
	// records (fewer when a loaded machine cannot keep up).
	if res.Acked > 4200 {
		t.Errorf("%d records acknowledged at 2,000/s for 2 s", res.Acked)
	}
	if res.IngestP50ms <= 0 || res.IngestP99ms < res.IngestP50ms || res.E2EP50ms <= 0 || res.E2EMaxms < res.E2EP99ms || res.CPUSeconds <= 0 || res.PeakRSSMB <= 0 {
		t.Errorf("figures missing: %s", res)
	}
	var n int64
	if err := topo.Cloud("azure").DB.QueryRow(`SELECT COUNT(*) FROM records`).Scan(&n); err != nil || n != res.Acked {
		t.Errorf("azure holds %d records, bench acknowledged %d (%v)", n, res.Acked, err)
	}
	if lines := strings.Count(out.String(), "\n"); lines < 4 {
		t.Errorf("%d lines of figures:\n%s", lines, out.String())
	}
	// Each embedded database's write lock: busy on the line of every
	// interval (aws/azure), its share by writer over the run in the
	// result: the load function on AWS, the stream and the publisher on
	// Azure.
	if !strings.Contains(out.String(), "db_lock% (aws/azure/gone)") || !regexp.MustCompile(`(?m) \d+/\d+/-$`).MatchString(out.String()) {
		t.Errorf("no write lock column:\n%s", out.String())
	}
	if w := warn.String(); strings.Count(w, "\n") != 1 || !strings.HasPrefix(w, "bench: gone: no write lock figures: ") {
		t.Errorf("warnings: want one line for gone, got:\n%s", w)
	}
	aws, azure := res.DBWriteLock["aws"], res.DBWriteLock["azure"]
	if aws.Busy <= 0 || aws.Writers["load"] <= 0 || azure.Busy <= 0 || azure.Writers["replicate:aws-to-azure"] <= 0 || azure.Writers["publish"] <= 0 {
		t.Errorf("write lock shares %+v", res.DBWriteLock)
	}
	for name, ls := range res.DBWriteLock {
		var sum float64
		for _, s := range ls.Writers {
			sum += s
		}
		if ls.Busy > 1 || sum > ls.Busy+0.01 {
			t.Errorf("%s: busy %.3f, writers sum to %.3f: %+v", name, ls.Busy, sum, ls)
		}
	}
}

// TestBenchSaysWhyLocksAreMissing runs a bench with a key that may ingest
// but not read status: every record is still sent and acknowledged, the
// write lock column shows "-" for both clouds, and Warn says why, once
// per cloud, naming the scope.
func TestBenchSaysWhyLocksAreMissing(t *testing.T) {
	cfg, topo := startBenchTopology(t)
	key, _, err := auth.Add(cfg.Auth.Keys, "bench", []auth.Scope{auth.ScopeIngest}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The keyring takes up a new key within a second: until then the
	// key is unknown (401), then known without the scope (403).
	for deadline := time.Now().Add(10 * time.Second); ; {
		req, _ := http.NewRequest(http.MethodGet, topo.URL("aws-api")+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := topo.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusForbidden {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a new key: status %d after 10 s", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var out, warn bytes.Buffer
	res, err := demo.Bench(context.Background(), demo.BenchOptions{
		URL: topo.URL("frontdoor"), EdgeURL: topo.URL("edge"), Key: key, Client: topo.Client(),
		Clients: 2, BatchSize: 50, Rate: 500, Duration: time.Second, Interval: 250 * time.Millisecond, Drain: time.Minute, Out: &out,
		Clouds: map[string]string{"aws": topo.URL("aws-api"), "azure": topo.URL("azure-api")},
		Warn:   &warn,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Errors != 0 || res.Acked == 0 || res.Visible != res.Acked || len(res.DBWriteLock) != 0 {
		t.Fatalf("result %s", res)
	}
	if !regexp.MustCompile(`(?m) -/-$`).MatchString(out.String()) {
		t.Errorf("write lock column:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSuffix(warn.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one warning per cloud, got:\n%s", warn.String())
	}
	for i, name := range []string{"aws", "azure"} {
		if !strings.HasPrefix(lines[i], "bench: "+name+": no write lock figures: ") || !strings.Contains(lines[i], `lacks the "read" scope`) {
			t.Errorf("warning %q", lines[i])
		}
	}
}
