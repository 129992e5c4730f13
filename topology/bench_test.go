package topology_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/topology"
)

// BenchmarkPipeline drives the whole pipeline through the front door at
// fixed rates (INTERCLOUD_BENCH_RATES, records/s, comma-separated; default
// 1000,2500,5000) for INTERCLOUD_BENCH_DURATION (default 20s) each, on the
// embedded default and on MariaDB (AWS) + PostgreSQL (Azure), and reports
// what `intercloud bench` reports: acknowledged records/s and the
// ack → visible-at-the-edge latency. The rate at which the backlog stops
// draining is the saturation point.
//
//	go test ./topology -run '^$' -bench Pipeline -benchtime 1x
func BenchmarkPipeline(b *testing.B) {
	rates := []float64{1000, 2500, 5000}
	if s := os.Getenv("INTERCLOUD_BENCH_RATES"); s != "" {
		rates = nil
		for _, f := range strings.Split(s, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				b.Fatalf("INTERCLOUD_BENCH_RATES: %v", err)
			}
			rates = append(rates, r)
		}
	}
	dur := 20 * time.Second
	if s := os.Getenv("INTERCLOUD_BENCH_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("INTERCLOUD_BENCH_DURATION: %v", err)
		}
		dur = d
	}
	for _, dbs := range []string{"embedded", "mariadb+postgres"} {
		for _, rate := range rates {
			b.Run(fmt.Sprintf("%s/rate=%.0f", dbs, rate), func(b *testing.B) {
				cfg := testConfig(b, b.TempDir())
				if dbs != "embedded" {
					cfg.Clouds["aws"].SQL = peers.StartMariaDB(b).URL("app")
					cfg.Clouds["azure"].SQL = peers.StartPostgres(b).URL("app")
					if err := cfg.Validate(); err != nil {
						b.Fatal(err)
					}
				}
				topo, err := topology.Start(context.Background(), cfg, topology.Options{APIKey: testKey, LogWriter: os.Stderr, LogLevel: 8})
				if err != nil {
					b.Fatal(err)
				}
				defer topo.Stop(context.Background())
				for b.Loop() {
					res, err := demo.Bench(context.Background(), demo.BenchOptions{
						URL: topo.URL("frontdoor"), EdgeURL: topo.URL("edge"), Key: testKey, Client: topo.Client(),
						Clients: 8, BatchSize: 100, Rate: rate, Duration: dur, Drain: 2 * time.Minute,
					})
					if err != nil {
						b.Fatal(err)
					}
					b.Logf("%s", res)
					b.ReportMetric(float64(res.RecordsPerSec), "acked/s")
					b.ReportMetric(res.E2EP50ms, "e2e-p50-ms")
					b.ReportMetric(res.E2EP99ms, "e2e-p99-ms")
					b.ReportMetric(float64(res.Backlog), "backlog")
				}
			})
		}
	}
}
