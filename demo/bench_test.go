package demo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	_ "github.com/intercloud/intercloud/objects/file"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
	"github.com/intercloud/intercloud/topology"
)

// TestBench runs a short bench against a topology through its front door,
// at a fixed rate, and checks its report against the databases' counts.
func TestBench(t *testing.T) {
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
	defer topo.Stop(context.Background())
	var out bytes.Buffer
	res, err := demo.Bench(context.Background(), demo.BenchOptions{
		URL: topo.URL("frontdoor"), EdgeURL: topo.URL("edge"), Key: "k", Client: topo.Client(),
		Clients: 4, BatchSize: 50, Rate: 2000, Duration: 2 * time.Second, Interval: 500 * time.Millisecond, Drain: time.Minute, Out: &out,
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
}
