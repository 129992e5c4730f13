package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/syncbuf"

	"github.com/intercloud/intercloud/config"
	_ "github.com/intercloud/intercloud/objects/file"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
	"github.com/intercloud/intercloud/topology"
)

// TestLiveProgressAndFreshness runs the demo with the live progress line:
// it is redrawn in place and ends with everything published, and the
// summary's e2e_freshness_p99_ms comes from the freshness histogram.
func TestLiveProgressAndFreshness(t *testing.T) {
	cfg := config.Default(t.TempDir())
	cfg.ListenOnFreePorts()
	out := &syncbuf.Buffer{}
	sum, err := Run(context.Background(), cfg, Options{
		Records: 400, BatchSize: 40, Progress: out, Live: true, Timeout: time.Minute,
		Topology: topology.Options{APIKey: "k", Alerts: out},
	})
	if err != nil {
		t.Fatalf("%v (%v)", err, sum)
	}
	text := out.String()
	if strings.Count(text, "\r\x1b[K") < 2 || !strings.Contains(text, "published 400 (100%)") || !strings.Contains(text, "sent 400/400 · acked 400") {
		t.Fatalf("live output:\n%q", text)
	}
	if strings.Contains(text, "waiting: ") {
		t.Fatalf("periodic lines in live mode:\n%q", text)
	}
	if sum.E2EFreshnessP99ms <= 0 || sum.E2EFreshnessP99ms > 2*sum.Seconds*1000+1000 { // a bucket estimate: within its bucket
		t.Fatalf("e2e_freshness_p99_ms %.1f (run %.1fs)", sum.E2EFreshnessP99ms, sum.Seconds)
	}
	t.Logf("e2e_freshness_p99_ms %.1f, e2e_p99_ms %.1f; last line %q", sum.E2EFreshnessP99ms, sum.E2EP99ms, text[strings.LastIndex(text, "\r\x1b[K"):])
}

// TestFreshnessWaitsForTheHistogram: the published results are visible a
// moment before the publisher observes their freshness. Here that moment
// is made long (the publisher is held after writing the results, before
// it observes them) and the run sends one request: Run waits for the
// histogram to see the published records, so e2e_freshness_p99_ms
// counts them, held time included, instead of reading an empty
// histogram as 0.
func TestFreshnessWaitsForTheHistogram(t *testing.T) {
	const hold = 1500 * time.Millisecond
	cfg := config.Default(t.TempDir())
	cfg.ListenOnFreePorts()
	sum, err := Run(context.Background(), cfg, Options{
		Records: 20, BatchSize: 20, Concurrency: 1, Timeout: time.Minute,
		Topology: topology.Options{APIKey: "k", OnPublished: func([]string) { time.Sleep(hold) }},
	})
	if err != nil {
		t.Fatalf("%v (%v)", err, sum)
	}
	if sum.ResultsRecords != 20 {
		t.Fatalf("results count %d records, want 20", sum.ResultsRecords)
	}
	// A bucket estimate: the held records are in the bucket from 1 s to 2 s
	// or a later one.
	if sum.E2EFreshnessP99ms < 1000 {
		t.Fatalf("e2e_freshness_p99_ms %.1f, want at least the %v the publisher held the records", sum.E2EFreshnessP99ms, hold)
	}
	t.Logf("e2e_freshness_p99_ms %.1f, e2e_p99_ms %.1f", sum.E2EFreshnessP99ms, sum.E2EP99ms)
}
