package topology_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/gcsettings"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/topology"
)

// BenchmarkPipeline drives the whole pipeline through the front door at
// fixed rates (INTERCLOUD_BENCH_RATES, records/s, comma-separated; default
// 1000,2500,5000) for INTERCLOUD_BENCH_DURATION (default 20s) each, with
// INTERCLOUD_BENCH_CLIENTS clients of 100 records (default 8), on the
// embedded default and on MariaDB (AWS) + PostgreSQL (Azure), with the
// product's default intervals (reconciler, front-door health), and reports
// what `intercloud bench` reports: acknowledged records/s and the
// ack → visible-at-the-edge latency. The rate at which the backlog stops
// draining is the saturation point.
//
// Besides acknowledged/s and the latencies it reports the CPU per
// acknowledged record (user + system, µs, from the start of the sending
// until the backlog drained) of the test process (cpu-µs/rec) and, on
// MariaDB + PostgreSQL, of each database server with its children
// (mariadb-µs/rec, postgres-µs/rec: the server's process and its
// children, read from /proc). INTERCLOUD_BENCH_CPUPROFILE=PREFIX writes
// the test process's CPU profile of each run (the sending and the drain,
// not the start-up) to PREFIX-DBS-RATE.pprof. With -v, the interval lines
// `intercloud bench` prints go to stderr; INTERCLOUD_BENCH_LOG=FILE writes
// every component's debug log there; INTERCLOUD_BENCH_TRACE=PREFIX keeps
// execution traces of the slow intervals (traceSlowIntervals). It runs
// with the binary's memory settings (package gcsettings).
//
//	go test ./topology -run '^$' -bench Pipeline -benchtime 1x
func BenchmarkPipeline(b *testing.B) {
	defer gcsettings.Apply(os.Getenv)()
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
	clients := 8
	if s := os.Getenv("INTERCLOUD_BENCH_CLIENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("INTERCLOUD_BENCH_CLIENTS: %q is not a positive number", s)
		}
		clients = n
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
				// The product's own intervals, not the tests' short ones:
				// a reconciler listing the current hour every 500 ms is
				// work no deployment does.
				cfg := testConfig(b, b.TempDir())
				cfg.Functions.Reconcile = 0
				cfg.FrontDoor.HealthInterval = 0
				if err := cfg.Validate(); err != nil {
					b.Fatal(err)
				}
				servers := map[string]func(testing.TB) time.Duration{} // metric name → the server's CPU time
				if dbs != "embedded" {
					my, pg := peers.StartMariaDB(b), peers.StartPostgres(b)
					cfg.Clouds["aws"].SQL = my.URL("app")
					cfg.Clouds["azure"].SQL = pg.URL("app")
					servers["mariadb-µs/rec"] = my.CPU
					servers["postgres-µs/rec"] = pg.CPU
					if err := cfg.Validate(); err != nil {
						b.Fatal(err)
					}
				}
				opts := topology.Options{APIKey: testKey, LogWriter: os.Stderr, LogLevel: 8}
				if name := os.Getenv("INTERCLOUD_BENCH_LOG"); name != "" {
					// Every component's debug log (each batch applied,
					// each load) to a file, to see what a slow interval
					// waited on.
					f, err := os.Create(name)
					if err != nil {
						b.Fatal(err)
					}
					defer f.Close()
					opts.LogWriter, opts.LogLevel = f, slog.LevelDebug
				}
				topo, err := topology.Start(context.Background(), cfg, opts)
				if err != nil {
					b.Fatal(err)
				}
				defer topo.Stop(context.Background())
				for b.Loop() {
					cpu0 := serverCPU(b, servers)
					stopProfile := startProfile(b, fmt.Sprintf("%s-%.0f", strings.ReplaceAll(dbs, "+", "-"), rate))
					var out io.Writer // the interval lines, with -test.v
					if testing.Verbose() {
						out = os.Stderr
					}
					out, stopTrace := traceSlowIntervals(b, out, fmt.Sprintf("%s-%.0f", strings.ReplaceAll(dbs, "+", "-"), rate))
					defer stopTrace()
					res, err := demo.Bench(context.Background(), demo.BenchOptions{
						URL: topo.URL("frontdoor"), EdgeURL: topo.URL("edge"), Key: testKey, Client: topo.Client(), Out: out,
						Clients: clients, BatchSize: 100, Rate: rate, Duration: dur, Drain: 2 * time.Minute,
					})
					stopProfile()
					cpu1 := serverCPU(b, servers)
					if err != nil {
						b.Fatal(err)
					}
					b.Logf("%s", res)
					if res.Acked > 0 {
						b.ReportMetric(res.CPUSeconds*1e6/float64(res.Acked), "cpu-µs/rec")
						for name := range servers {
							b.ReportMetric((cpu1[name]-cpu0[name])*1e6/float64(res.Acked), name)
						}
					}
					b.ReportMetric(float64(res.RecordsPerSec), "acked/s")
					b.ReportMetric(res.E2EP50ms, "e2e-p50-ms")
					b.ReportMetric(res.E2EP99ms, "e2e-p99-ms")
					b.ReportMetric(float64(res.Backlog), "backlog")
				}
			})
		}
	}
}

// traceSlowIntervals keeps a flight recording of the last seconds'
// execution trace when INTERCLOUD_BENCH_TRACE names a file prefix, and
// writes it to PREFIX-RUN-N.trace (at most 5, 20 s apart) after an interval
// line whose ack → visible maximum exceeds INTERCLOUD_BENCH_TRACE_MS
// (default 800): what every goroutine waited on during a stall. It returns
// the writer to give demo.Bench (the interval lines go on to out) and a
// function that stops the recording.
func traceSlowIntervals(b *testing.B, out io.Writer, run string) (io.Writer, func()) {
	prefix := os.Getenv("INTERCLOUD_BENCH_TRACE")
	if prefix == "" {
		return out, func() {}
	}
	limit := 800.0
	if s := os.Getenv("INTERCLOUD_BENCH_TRACE_MS"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			b.Fatalf("INTERCLOUD_BENCH_TRACE_MS: %v", err)
		}
		limit = v
	}
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 6 * time.Second, MaxBytes: 512 << 20})
	if err := fr.Start(); err != nil {
		b.Fatal(err)
	}
	if out == nil {
		out = io.Discard
	}
	w := &slowLines{out: out, limit: limit, dump: func(n int) {
		f, err := os.Create(fmt.Sprintf("%s-%s-%d.trace", prefix, run, n))
		if err != nil {
			b.Log(err)
			return
		}
		defer f.Close()
		if _, err := fr.WriteTo(f); err != nil {
			b.Log(err)
		}
	}}
	return w, fr.Stop
}

// slowLines passes interval lines on and calls dump after one whose
// e2e_max column (the ninth) exceeds limit.
type slowLines struct {
	out   io.Writer
	limit float64
	dump  func(n int)
	n     int
	last  time.Time
}

func (s *slowLines) Write(p []byte) (int, error) {
	f := strings.Fields(string(p))
	if len(f) >= 9 && s.n < 5 && time.Since(s.last) > 20*time.Second {
		if v, err := strconv.ParseFloat(f[8], 64); err == nil && v > s.limit {
			s.n++
			s.last = time.Now()
			s.dump(s.n)
		}
	}
	return s.out.Write(p)
}

// startProfile starts the CPU profile of one run when
// INTERCLOUD_BENCH_CPUPROFILE names a file prefix; the function it returns
// stops it.
func startProfile(b *testing.B, run string) func() {
	prefix := os.Getenv("INTERCLOUD_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(prefix + "-" + run + ".pprof")
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatalf("INTERCLOUD_BENCH_CPUPROFILE: %v (not with -cpuprofile)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// serverCPU returns, per name, the CPU seconds (user + system) that the
// server has used so far: its process and every process below it
// (PostgreSQL's backends), the ended ones included (peers' CPU methods).
func serverCPU(b *testing.B, servers map[string]func(testing.TB) time.Duration) map[string]float64 {
	out := map[string]float64{}
	for name, cpu := range servers {
		out[name] = cpu(b).Seconds()
	}
	return out
}

// BenchmarkTLS measures what TLS costs, in one run: a topology with TLS on
// every listener (mutual TLS from the front door to the APIs) next to one
// with TLS off (tls.disabled), both running at once. ingest is a POST of
// 20 records through the front door (client → front door → AWS API, each
// hop over TLS or not); edge-hit a GET of the published summary served
// from the edge's cache; each over kept-alive connections, 16 clients at
// once; edge-new-conn is edge-hit with a new connection (and TLS
// handshake) per request. Compare each tls line with the plain one. It
// runs with the binary's memory settings (package gcsettings).
//
//	go test ./topology -run '^$' -bench TLS -benchtime 3s
func BenchmarkTLS(b *testing.B) {
	defer gcsettings.Apply(os.Getenv)()
	type side struct {
		topo   *topology.Topology
		client *http.Client
	}
	sides := map[string]side{}
	for _, mode := range []string{"plain", "tls"} {
		cfg := testConfig(b, b.TempDir())
		cfg.TLS.Disabled = mode == "plain"
		// Health checks at their default pace: every 100 ms (the tests')
		// declares a busy API down on this loaded machine.
		cfg.FrontDoor.HealthInterval = config.Duration(time.Second)
		if err := cfg.Validate(); err != nil {
			b.Fatal(err)
		}
		topo, err := topology.Start(context.Background(), cfg, topology.Options{APIKey: testKey, LogWriter: io.Discard, LogLevel: 8})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = topo.Stop(context.Background()) })
		tr := &http.Transport{}
		if t, ok := topo.Client().Transport.(*http.Transport); ok {
			tr = t.Clone()
		}
		tr.MaxIdleConnsPerHost = 64
		b.Cleanup(tr.CloseIdleConnections)
		sides[mode] = side{topo: topo, client: &http.Client{Transport: tr, Timeout: time.Minute}}
		if (mode == "tls") != strings.HasPrefix(topo.URL("frontdoor"), "https://") {
			b.Fatalf("%s serves %s", mode, topo.URL("frontdoor"))
		}
	}
	var recs []string
	for i := range 20 {
		recs = append(recs, fmt.Sprintf(`{"device":"d-%d","metric":"cpu","value":%d.5,"ts":"2026-11-30T06:00:00Z"}`, i, i))
	}
	body := "[" + strings.Join(recs, ",") + "]"
	do := func(b *testing.B, c *http.Client, req *http.Request, want int) {
		resp, err := c.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			b.Errorf("%s %s: %d %.200s, want %d", req.Method, req.URL, resp.StatusCode, got, want)
		}
	}
	// The summary exists once publish made its first pass.
	for mode, s := range sides {
		deadline := time.Now().Add(time.Minute)
		for {
			resp, err := s.client.Get(s.topo.URL("edge") + "/results/summary.json")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: no summary at the edge: %v", mode, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	kinds := []struct {
		name string
		run  func(b *testing.B, s side)
	}{
		{"ingest", func(b *testing.B, s side) {
			b.SetBytes(int64(len(body)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, s.topo.URL("frontdoor")+"/v1/records", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+testKey)
					do(b, s.client, req, http.StatusAccepted)
				}
			})
		}},
		{"edge-hit", func(b *testing.B, s side) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, s.topo.URL("edge")+"/results/summary.json", nil)
					do(b, s.client, req, http.StatusOK)
				}
			})
		}},
		{"edge-new-conn", func(b *testing.B, s side) {
			tr := s.client.Transport.(*http.Transport).Clone()
			tr.DisableKeepAlives = true
			c := &http.Client{Transport: tr, Timeout: time.Minute}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, s.topo.URL("edge")+"/results/summary.json", nil)
					do(b, c, req, http.StatusOK)
				}
			})
		}},
	}
	for _, k := range kinds {
		for _, mode := range []string{"plain", "tls"} {
			b.Run(k.name+"/"+mode, func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(16)
				k.run(b, sides[mode])
			})
		}
	}
}
