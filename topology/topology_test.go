package topology_test

import (
	"io"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/outagetest"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/logstore"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/publish"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
	"github.com/intercloud/intercloud/topology"
)

const testKey = "test-key-0123456789"

// postRecords posts records (one JSON object per line) to base's
// /v1/records with the test key; anything but 202 is an error.
func postRecords(topo *topology.Topology, base, body string) error {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/records", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := topo.Client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: ingest: status %d: %s", base, resp.StatusCode, b)
	}
	return nil
}

// realDBConfig is testConfig on a MariaDB (AWS) and a PostgreSQL (Azure) of
// the test's own.
func realDBConfig(t *testing.T) (*config.Config, *peers.MariaDB, *peers.Postgres) {
	t.Helper()
	my, pg := peers.StartMariaDB(t), peers.StartPostgres(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Clouds["aws"].SQL = my.URL("app")
	cfg.Clouds["azure"].SQL = pg.URL("app")
	return cfg, my, pg
}

// testConfig is the embedded default on free ports with fast loops.
func testConfig(t testing.TB, dir string) *config.Config {
	t.Helper()
	cfg := config.Default(dir)
	cfg.ListenOnFreePorts()
	cfg.FrontDoor.HealthInterval = config.Duration(100 * time.Millisecond)
	cfg.Functions.Reconcile = config.Duration(500 * time.Millisecond)
	cfg.Functions.Backoff = config.Duration(20 * time.Millisecond)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, cfg *config.Config) *topology.Topology {
	t.Helper()
	return startWith(t, cfg, topology.Options{})
}

// startWith starts the topology with opts, the test's key and log added,
// until the test ends.
func startWith(t *testing.T, cfg *config.Config, opts topology.Options) *topology.Topology {
	t.Helper()
	opts.APIKey, opts.LogWriter = testKey, testLog(t)
	topo, err := topology.Start(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = topo.Stop(ctx)
	})
	return topo
}

// testLog keeps component logs in a file of the test's temp dir, shown
// only when the test fails.
func testLog(t *testing.T) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "log-*.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(f.Name())
			lines := strings.Split(string(b), "\n")
			t.Logf("last log lines:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
		f.Close()
	})
	return f
}

type agg struct {
	count         int64
	sum, min, max float64
}

// expected computes the hourly aggregates independently from the records.
func expected(recs map[string]demo.Record) map[string]*agg {
	want := map[string]*agg{}
	for _, r := range recs {
		k := publish.Key(r.Metric, r.TS.UTC().Truncate(time.Hour), "json")
		a := want[k]
		if a == nil {
			a = &agg{min: math.Inf(1), max: math.Inf(-1)}
			want[k] = a
		}
		a.count++
		a.sum += r.Value
		a.min = math.Min(a.min, r.Value)
		a.max = math.Max(a.max, r.Value)
	}
	return want
}

// checkResults reads every expected aggregate through the edge and
// compares it with the independent computation.
func checkResults(t *testing.T, client *http.Client, edgeURL string, recs map[string]demo.Record) {
	t.Helper()
	ctx := context.Background()
	want := expected(recs)
	var total int64
	for key, w := range want {
		var got struct {
			Metric string  `json:"metric"`
			Hour   string  `json:"hour"`
			Count  int64   `json:"count"`
			Sum    float64 `json:"sum"`
			Min    float64 `json:"min"`
			Max    float64 `json:"max"`
			Mean   float64 `json:"mean"`
		}
		if err := demo.FetchJSON(ctx, client, edgeURL+"/"+key, &got); err != nil {
			t.Fatalf("aggregate %s: %v", key, err)
		}
		if got.Count != w.count || math.Abs(got.Sum-w.sum) > 1e-6*math.Max(1, math.Abs(w.sum)) || got.Min != w.min || got.Max != w.max ||
			math.Abs(got.Mean-w.sum/float64(w.count)) > 1e-6*math.Max(1, math.Abs(got.Mean)) {
			t.Errorf("aggregate %s = %+v, want count=%d sum=%v min=%v max=%v", key, got, w.count, w.sum, w.min, w.max)
		}
		total += got.Count
	}
	sum, err := demo.FetchSummary(ctx, client, edgeURL)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != int64(len(recs)) || total != int64(len(recs)) {
		t.Errorf("summary records = %d, aggregates count %d, want %d", sum.Records, total, len(recs))
	}
}

func TestEndToEnd(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	var edgeURL string
	sum, err := demo.Run(context.Background(), cfg, demo.Options{
		KeepRecords: true,
		Records:     3000, BatchSize: 50, Concurrency: 8, Timeout: time.Minute,
		Topology:  topology.Options{APIKey: testKey, LogWriter: testLog(t)},
		OnStarted: func(topo *topology.Topology) { edgeURL = topo.URL("edge") },
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Acked != 3000 || sum.AWSRows != 3000 || sum.AzureRows != 3000 || sum.ResultsRecords != 3000 || sum.Lost != 0 {
		t.Fatalf("summary %v", sum)
	}
	// The demo stopped its topology: serve the results again to check them.
	topo := start(t, cfg)
	_ = edgeURL
	checkResults(t, topo.Client(), topo.URL("edge"), sum.Records)

	// One record's trace id finds its path through both clouds.
	var trace string
	if err := topo.Cloud("aws").DB.QueryRow(`SELECT "_trace_id" FROM records LIMIT 1`).Scan(&trace); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := topo.Logs().Search(context.Background(), mustQuery(t, "trace_id:"+trace))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range entries {
			seen[e.Cloud+"/"+e.Component] = true
		}
		if seen["aws/ingest"] && seen["aws/load"] && seen["azure/replicate"] && seen["azure/publish"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s found only in %v", trace, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestFailover(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	sum, err := demo.Run(context.Background(), cfg, demo.Options{
		KeepRecords: true,
		Records:     1000, BatchSize: 50, Concurrency: 4, Timeout: time.Minute,
		Topology: topology.Options{APIKey: testKey, LogWriter: testLog(t)},
		OnStarted: func(topo *topology.Topology) {
			if err := topo.StopAPI(context.Background(), "aws"); err != nil {
				t.Error(err)
			}
		},
	})
	if err != nil {
		t.Fatalf("%v (summary %v)", err, sum)
	}
	if sum.Acked != 1000 || sum.AzureRows != 1000 || sum.ResultsRecords != 1000 || sum.AWSRows != 1000 {
		t.Fatalf("summary %v", sum)
	}
	topo := start(t, cfg)
	checkResults(t, topo.Client(), topo.URL("edge"), sum.Records)
	var azure int
	if err := topo.Cloud("aws").DB.QueryRow(`SELECT COUNT(*) FROM records WHERE "_origin" = 'azure'`).Scan(&azure); err != nil {
		t.Fatal(err)
	}
	if azure != 1000 {
		t.Fatalf("%d records were taken by azure, want all 1000 (reverse-replicated to aws)", azure)
	}
}

// TestRestartAfterCancel stops the topology gracefully while records are
// being sent, restarts it on the same data dir, and checks that every
// acknowledged record arrives everywhere exactly once.
func TestRestartAfterCancel(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	topo, err := topology.Start(context.Background(), cfg, topology.Options{APIKey: testKey, LogWriter: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		acked map[string]demo.Record
		err   error
	}
	done := make(chan result, 1)
	go func() {
		acked, err := demo.Send(context.Background(), topo.URL("frontdoor"), testKey, demo.Options{Records: 20000, BatchSize: 20, Concurrency: 8, Attempts: 1, Client: topo.Client()})
		done <- result{acked, err}
	}()
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := topo.Stop(ctx); err != nil {
		t.Logf("stop: %v", err)
	}
	cancel()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.acked) == 0 || len(res.acked) == 20000 {
		t.Fatalf("acked %d of 20000: the stop did not land mid-stream", len(res.acked))
	}
	t.Logf("acknowledged %d of 20000 before the stop", len(res.acked))
	topo = start(t, cfg)
	if _, err := demo.Verify(context.Background(), topo, cfg, res.acked, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
}

// TestRestartAfterKill runs the topology in a child process, kills it with
// SIGKILL while records are being sent, restarts on the same data dir and
// checks that every acknowledged record arrives everywhere exactly once.
func TestRestartAfterKill(t *testing.T) {
	if os.Getenv("INTERCLOUD_CHILD_DIR") != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildTopology$")
	cmd.Env = append(os.Environ(), "INTERCLOUD_CHILD_DIR="+dir)
	cmd.Stderr = testLog(t)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var front string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f, ok := strings.CutPrefix(sc.Text(), "frontdoor "); ok {
			front = f
			break
		}
	}
	if front == "" {
		t.Fatal("child printed no front door URL")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	type result struct {
		acked map[string]demo.Record
		err   error
	}
	done := make(chan result, 1)
	client, err := topology.ClientFor(testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	// The kill lands once a few requests are acknowledged, however slow
	// the machine is.
	var acks atomic.Int64
	client.Transport = countAcks{client.Transport, &acks}
	go func() {
		acked, err := demo.Send(context.Background(), front, testKey, demo.Options{Records: 6000, BatchSize: 20, Concurrency: 8, Attempts: 1, Client: client})
		done <- result{acked, err}
	}()
	for deadline := time.Now().Add(time.Minute); acks.Load() < 5 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.acked) == 0 || len(res.acked) == 6000 {
		t.Fatalf("acked %d of 6000: the kill did not land mid-stream", len(res.acked))
	}
	t.Logf("acknowledged %d of 6000 before SIGKILL", len(res.acked))
	cfg := testConfig(t, dir)
	topo := start(t, cfg)
	if _, err := demo.Verify(context.Background(), topo, cfg, res.acked, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
}

// TestChildTopology is the child process of TestRestartAfterKill.
func TestChildTopology(t *testing.T) {
	dir := os.Getenv("INTERCLOUD_CHILD_DIR")
	if dir == "" {
		t.Skip("run by TestRestartAfterKill")
	}
	cfg := testConfig(t, dir)
	topo, err := topology.Start(context.Background(), cfg, topology.Options{APIKey: testKey, LogWriter: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range topo.Endpoints() {
		fmt.Printf("%s %s\n", e.Name, e.URL)
	}
	select {} // until killed
}

func mustQuery(t *testing.T, s string) logstore.Query {
	t.Helper()
	q, err := logstore.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestStatusAndMetrics(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	topo := start(t, cfg)
	acked, err := demo.Send(context.Background(), topo.URL("frontdoor"), testKey, demo.Options{Records: 200, BatchSize: 50, Client: topo.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Verify(context.Background(), topo, cfg, acked, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	get := func(url, key string) (int, string) { return outagetest.Get(topo.Client(), url, key) }
	if code, _ := get(topo.URL("edge")+"/results/summary.json", ""); code != 200 {
		t.Fatalf("edge: %d", code)
	}
	for _, u := range []string{topo.URL("azure-api"), topo.URL("console")} {
		if code, _ := get(u+"/metrics", ""); code != http.StatusUnauthorized {
			t.Fatalf("%s/metrics without a key: %d", u, code)
		}
	}
	families := func(url string) map[string]*dto.MetricFamily {
		t.Helper()
		code, body := get(url, testKey)
		if code != 200 {
			t.Fatalf("%s: %d", url, code)
		}
		// The exposition parses with Prometheus' own parser.
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s does not parse: %v\n%s", url, err, body)
		}
		return fams
	}
	// reaches reports whether the family holds a series with labels whose
	// value (a histogram's count) reaches minCount, and why not.
	reaches := func(fams map[string]*dto.MetricFamily, name string, typ dto.MetricType, labels map[string]string, minCount float64) string {
		f := fams[name]
		if f == nil || f.GetType() != typ {
			return fmt.Sprintf("no %s %s", typ, name)
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			var v float64
			switch typ {
			case dto.MetricType_HISTOGRAM:
				v = float64(m.GetHistogram().GetSampleCount())
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			default:
				v = m.GetGauge().GetValue()
			}
			if v >= minCount {
				return ""
			}
		}
		return fmt.Sprintf("%s%v: no series reaching %v: %v", name, labels, minCount, f.GetMetric())
	}
	// has waits (shipping and replication run on their own clocks) until
	// the endpoint's metric reaches minCount.
	has := func(url, name string, typ dto.MetricType, labels map[string]string, minCount float64) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			why := reaches(families(url), name, typ, labels, minCount)
			if why == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal(why)
			}
		}
	}
	// What the listeners refuse themselves: plain HTTP to the TLS port of
	// AWS's API, a request without Host to the front door.
	if resp, err := http.Get(strings.Replace(topo.URL("aws-api"), "https://", "http://", 1) + "/healthz"); err == nil {
		resp.Body.Close()
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(topo.URL("frontdoor"), "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a request without Host: %v %v", resp, err)
	}
	conn.Close()

	az := topo.URL("azure-api") + "/metrics"
	// The records reach Azure by the full load or by CDC, whichever the
	// stream was in when they came: together both counters reach 200.
	stream := map[string]string{"cloud": "azure", "stream": "aws-to-azure"}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		fams := families(az)
		var rows float64
		for _, name := range []string{"intercloud_replication_snapshot_rows_total", "intercloud_replication_cdc_rows_total"} {
			for _, m := range fams[name].GetMetric() {
				match := true
				for _, lp := range m.GetLabel() {
					if want, ok := stream[lp.GetName()]; ok && want != lp.GetValue() {
						match = false
					}
				}
				if match {
					rows += m.GetCounter().GetValue()
				}
			}
		}
		if rows >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replication rows of aws-to-azure: %v, want 200 (full load and CDC together)", rows)
		}
	}
	// The apply and lag histograms are observed by change data capture,
	// and the 200 may all have come by the full load (when the stream
	// started after them): one more record, written once the full load
	// has begun, comes by CDC.
	if err := postRecords(topo, topo.URL("aws-api"), `{"device":"d","metric":"cdc","value":1,"ts":"2026-11-30T10:00:00Z"}`); err != nil {
		t.Fatal(err)
	}
	has(az, "intercloud_replication_source_lag_seconds", dto.MetricType_GAUGE, map[string]string{"cloud": "azure", "stream": "aws-to-azure"}, 0)
	has(az, "intercloud_replication_apply_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"cloud": "azure", "stream": "aws-to-azure"}, 1)
	has(az, "intercloud_replication_lag_seconds", dto.MetricType_HISTOGRAM, map[string]string{"cloud": "azure", "stream": "aws-to-azure"}, 1)
	has(az, "intercloud_e2e_freshness_seconds", dto.MetricType_HISTOGRAM, map[string]string{"cloud": "azure"}, 200)
	has(az, "go_goroutines", dto.MetricType_GAUGE, nil, 1)
	aws := topo.URL("aws-api") + "/metrics"
	has(aws, "intercloud_ingest_request_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"cloud": "aws", "code": "202"}, 4)
	has(aws, "intercloud_ingest_batch_records", dto.MetricType_HISTOGRAM, map[string]string{"cloud": "aws"}, 1)
	has(aws, "intercloud_load_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"cloud": "aws", "outcome": "ok"}, 1)
	has(aws, "intercloud_load_succeeded_total", dto.MetricType_COUNTER, map[string]string{"cloud": "aws"}, 1)
	has(aws, "intercloud_log_lines_shipped_total", dto.MetricType_COUNTER, map[string]string{"sink": "central log store"}, 1)
	global := topo.URL("console") + "/metrics"
	has(global, "intercloud_frontdoor_requests_total", dto.MetricType_COUNTER, map[string]string{"backend": "aws"}, 4)
	has(global, "intercloud_frontdoor_backend_healthy", dto.MetricType_GAUGE, map[string]string{"backend": "azure"}, 1)
	has(global, "intercloud_frontdoor_request_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"code": "202"}, 4)
	has(global, "intercloud_edge_misses_total", dto.MetricType_COUNTER, nil, 1)
	has(global, "intercloud_edge_response_bytes_total", dto.MetricType_COUNTER, nil, 1)
	has(global, "intercloud_edge_request_duration_seconds", dto.MetricType_HISTOGRAM, map[string]string{"code": "200"}, 1)
	has(aws, "intercloud_listener_connections_total", dto.MetricType_COUNTER, map[string]string{"listener": "aws-api"}, 2)
	has(aws, "intercloud_listener_plain_http_on_tls_total", dto.MetricType_COUNTER, map[string]string{"listener": "aws-api"}, 1)
	has(aws, "intercloud_listener_tls_handshake_failures_total", dto.MetricType_COUNTER, map[string]string{"listener": "aws-api"}, 1)
	has(aws, "intercloud_listener_open_connections", dto.MetricType_GAUGE, map[string]string{"listener": "aws-api"}, 0)
	has(global, "intercloud_listener_connections_total", dto.MetricType_COUNTER, map[string]string{"listener": "frontdoor"}, 2)
	has(global, "intercloud_listener_refused_total", dto.MetricType_COUNTER, map[string]string{"listener": "frontdoor", "reason": "malformed"}, 1)
	has(global, "intercloud_listener_refused_total", dto.MetricType_COUNTER, map[string]string{"listener": "edge", "reason": "slow_body"}, 0)
	has(global, "intercloud_listener_fast_requests_total", dto.MetricType_COUNTER, map[string]string{"listener": "edge"}, 0)
	if why := reaches(families(global), "intercloud_listener_connections_total", dto.MetricType_COUNTER, map[string]string{"listener": "aws-api"}, 0); why == "" {
		t.Error("the console's /metrics counts a cloud's listener")
	}

	// Every metric the Grafana dashboard in deploy/ plots is exported.
	dash, err := os.ReadFile("../deploy/grafana/intercloud.json")
	if err != nil {
		t.Fatal(err)
	}
	var board struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &board); err != nil || len(board.Panels) == 0 {
		t.Fatalf("dashboard: %v", err)
	}
	azF, awsF, globalF := families(az), families(aws), families(global)
	names := regexp.MustCompile(`intercloud_[a-z0-9_]+`)
	for _, p := range board.Panels {
		for _, tg := range p.Targets {
			for _, n := range names.FindAllString(tg.Expr, -1) {
				n = strings.TrimSuffix(n, "_bucket")
				if azF[n] == nil && awsF[n] == nil && globalF[n] == nil {
					t.Errorf("dashboard panel %q plots %s, which no /metrics exports", p.Title, n)
				}
			}
		}
	}
	if code, _ := get(topo.URL("aws-api")+"/v1/status", ""); code != http.StatusUnauthorized {
		t.Fatalf("status without a key: %d", code)
	}
	code, body := get(topo.URL("aws-api")+"/v1/status", testKey)
	var st topology.CloudStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("status %d %q: %v", code, body, err)
	}
	if st.Cloud != "aws" || st.Ingest.RecordsAcked != 201 || len(st.Replication) != 1 || st.Replication[0].Name != "azure-to-aws" {
		t.Fatalf("status %+v", st)
	}
}

// TestVerifyReportsMissing: an acknowledged record that is nowhere makes
// the demo's check fail and count it lost.
func TestVerifyReportsMissing(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	topo := start(t, cfg)
	acked := map[string]demo.Record{"never-written": {Device: "d", Metric: "cpu", Value: 1, TS: time.Now()}}
	sum, err := demo.Verify(context.Background(), topo, cfg, acked, 500*time.Millisecond, nil)
	if err == nil || sum.Lost != 1 {
		t.Fatalf("verify = %v, lost %d; want an error and the one record counted lost once", err, sum.Lost)
	}
}

// TestDeadLettersDegrade: a dead letter makes its cloud's /healthz
// degraded, is counted in /metrics and listed in the status, and the front
// door prefers the other cloud meanwhile.
func TestDeadLettersDegrade(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ctx := context.Background()
	b, err := objects.Open(ctx, cfg.Clouds["aws"].Objects, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := load.PartitionOf(time.Now()) + "x.ndjson"
	if err := b.Put(ctx, load.DeadPrefix+key, []byte("not json\n"), &objects.PutOptions{Metadata: map[string]string{load.MetaError: "bad"}}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	topo := start(t, cfg)
	get := func(url string) (int, string) { return getBody(t, topo, url) }
	if code, body := get(topo.URL("aws-api") + "/healthz"); code != 200 || !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, "1 dead-lettered") {
		t.Fatalf("aws healthz %d %s", code, body)
	}
	if code, body := get(topo.URL("azure-api") + "/healthz"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("azure healthz %d %s", code, body)
	}
	if _, body := get(topo.URL("aws-api") + "/metrics"); !strings.Contains(body, `intercloud_load_dead_letters{cloud="aws"} 1`) ||
		!strings.Contains(body, `intercloud_dependency_up{cloud="aws",dependency="database"} 1`) {
		t.Fatalf("metrics:\n%s", body)
	}
	st := cloudStatus(t, topo, "aws")
	if st.DeadLetters != 1 || len(st.DeadLetterList) != 1 || st.DeadLetterList[0].Key != key || st.Health.Status != "degraded" {
		t.Fatalf("status %+v", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fs := topo.FrontDoor().Status(); fs[0].Name == "aws" && fs[0].Degraded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("front door never saw aws degraded: %+v", topo.FrontDoor().Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	acked, err := demo.Send(ctx, topo.URL("frontdoor"), testKey, demo.Options{Records: 50, BatchSize: 50, Client: topo.Client()})
	if err != nil || len(acked) != 50 {
		t.Fatalf("send: %d, %v", len(acked), err)
	}
	var onAzure int
	if _, err := demo.Verify(ctx, topo, cfg, acked, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	if err := topo.Cloud("aws").DB.QueryRow(`SELECT COUNT(*) FROM records WHERE "_origin" = 'azure'`).Scan(&onAzure); err != nil || onAzure != 50 {
		t.Fatalf("%d records taken by azure, want all 50 while aws is degraded (%v)", onAzure, err)
	}
}

// countAcks counts the 202 responses a client receives.
type countAcks struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countAcks) RoundTrip(r *http.Request) (*http.Response, error) {
	next := c.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusAccepted {
		c.n.Add(1)
	}
	return resp, err
}
