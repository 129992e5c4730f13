// Package demo drives the whole scenario: it starts the topology in one
// process, sends generated records through the front door over real HTTP,
// waits until every acknowledged record is in both clouds' databases and
// counted in the published results, and reports what happened.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/publish"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/topology"
)

// Options tune a demo run.
type Options struct {
	Records     int           // records to send (default 1000)
	BatchSize   int           // records per request (default 100)
	Concurrency int           // requests in flight (default 8)
	Timeout     time.Duration // for the records to arrive everywhere (default 2m)
	Attempts    int           // tries per request before giving up on it (default 8)
	Progress    io.Writer     // progress lines; nil = none
	// Live redraws one progress line in place on Progress (a terminal):
	// records sent, acknowledged, in each database, published, the rate
	// and the ETA; other lines (and the topology's alerts) print above it.
	Live bool
	// Topology options (API key, logs); Roles are ignored: all run.
	Topology topology.Options
	// OnStarted is called once the topology runs (tests use it to inject
	// failures); the demo goes on when it returns.
	OnStarted func(t *topology.Topology)
	// KeepRecords makes Run keep every acknowledged record in
	// Summary.Records (tests compare the results with them); off, Run
	// holds no per-record state.
	KeepRecords bool
	// Client sends the records and reads the results (Run: the
	// topology's client, which trusts its CA; Send: nil is a plain one).
	Client *http.Client
}

// Summary is the demo's one-line JSON report.
type Summary struct {
	Sent           int     `json:"sent"`
	Acked          int     `json:"acked"`
	AWSRows        int64   `json:"aws_rows"`
	AzureRows      int64   `json:"azure_rows"`
	ResultsRecords int64   `json:"results_records"`
	Lost           int     `json:"lost"`
	E2EP50ms       float64 `json:"e2e_p50_ms"`
	E2EP99ms       float64 `json:"e2e_p99_ms"`
	E2EMaxms       float64 `json:"e2e_max_ms"`
	// E2EFreshnessP99ms is the 99th percentile of the end-to-end
	// freshness (acknowledged → published) from the histogram /metrics
	// exports (intercloud_e2e_freshness_seconds), estimated from its
	// buckets as Prometheus' histogram_quantile does.
	E2EFreshnessP99ms float64 `json:"e2e_freshness_p99_ms"`
	IngestP50ms       float64 `json:"ingest_p50_ms"`
	IngestP99ms       float64 `json:"ingest_p99_ms"`
	Seconds           float64 `json:"seconds"`
	RecordsPerSec     float64 `json:"records_per_sec"`
	// Records are the acknowledged records as sent, by id (not printed),
	// kept by Run only with Options.KeepRecords.
	Records map[string]Record `json:"-"`
}

// String is the summary's JSON line (without the records).
func (s *Summary) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Record is a generated record as sent.
type Record struct {
	Device string    `json:"device"`
	Metric string    `json:"metric"`
	Value  float64   `json:"value"`
	TS     time.Time `json:"ts"`
}

// DefaultMaxBacklog is the ingest.max_backlog Run sets when the topology
// file sets none.
const DefaultMaxBacklog = 5 * time.Second

// Metrics are the generated metric names.
var Metrics = []string{"cpu", "mem", "disk", "net", "temp"}

// Run starts the topology from cfg, runs the scenario and stops it. The
// error is non-nil when the run could not be carried out, or when anything
// acknowledged is missing anywhere (the summary is returned as well).
//
// It holds no per-record state (unless Options.KeepRecords): records are
// generated per request, completeness is checked by counts (both
// databases and the published summary, against their counts before the
// run), and latencies go into fixed-size histograms. The end-to-end
// latency of a request runs from its acknowledgement to the moment the
// published summary, read through the edge every 50 ms, counts as many
// records as were acknowledged up to it.
func Run(ctx context.Context, cfg *config.Config, opts Options) (*Summary, error) {
	client := opts.Client
	opts = opts.withDefaults()
	tr := &tracker{total: int64(opts.Records)}
	if opts.Live {
		lw := &liveWriter{w: opts.Progress, tr: tr}
		opts.Progress = lw
		if opts.Topology.Alerts != nil {
			opts.Topology.Alerts = lw
		}
		stop := lw.run()
		defer stop()
	}
	progress := opts.Progress
	topts := opts.Topology
	topts.Roles = nil
	if cfg.Ingest.MaxBacklog == 0 {
		// Sent flat out, records would queue behind the slowest stage
		// without bound: admission control keeps the results at most this
		// far behind, so the latency does not grow with the records sent.
		cfg.Ingest.MaxBacklog = config.Duration(DefaultMaxBacklog)
	}
	fmt.Fprintf(progress, "starting the topology in %s\n", cfg.DataDir)
	topo, err := topology.Start(ctx, cfg, topts)
	if err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = topo.Stop(sctx)
	}()
	for _, e := range topo.Endpoints() {
		fmt.Fprintf(progress, "  %-13s %s\n", e.Name, e.URL)
	}
	if client == nil {
		opts.Client = topo.Client()
	}
	if opts.OnStarted != nil {
		opts.OnStarted(topo)
	}
	base, err := counts(ctx, topo, cfg, opts.Client)
	if err != nil {
		return nil, err
	}

	s := &Summary{Sent: opts.Records}
	d := newDriver(opts.Client, topo.URL("frontdoor"), topts.APIKey, opts.BatchSize, opts.Attempts)
	if opts.KeepRecords {
		var mu sync.Mutex
		s.Records = map[string]Record{}
		d.keep = func(ids []string, recs []Record) {
			mu.Lock()
			for i, id := range ids {
				s.Records[id] = recs[i]
			}
			mu.Unlock()
		}
	}
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); watchResults(wctx, opts.Client, topo.URL("edge"), base.results, d) }()
	defer func() { stopWatch(); <-watched }()

	start := time.Now()
	refresh := func() { tr.sent.Store(d.sent.Load()); tr.acked.Store(d.acked.Load()) }
	tr.refresh.Store(&refresh)
	tr.start()
	lines := progress
	if opts.Live {
		lines = io.Discard // the live line shows the counts
	}
	stop := reportProgress(ctx, d, opts.Records, lines)
	err = d.run(ctx, nil, opts.Concurrency, opts.Records, 0)
	stop()
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	s.Acked = int(d.acked.Load())
	fmt.Fprintf(progress, "sent %d, acknowledged %d in %.1fs; waiting for both databases and the results\n", s.Sent, s.Acked, time.Since(start).Seconds())

	waitErr := waitCounts(ctx, topo, cfg, opts.Client, s, base, opts.Timeout, progress, tr)
	s.Seconds = time.Since(start).Seconds()
	if s.Seconds > 0 {
		s.RecordsPerSec = float64(s.Acked) / s.Seconds
	}
	if waitErr == nil {
		d.observe(s.ResultsRecords-base.results, time.Now())
	}
	ing, e2e := d.snapshot()
	s.E2EP50ms, s.E2EP99ms, s.E2EMaxms = e2e.Quantile(0.5), e2e.Quantile(0.99), math.Round(e2e.Max()*10)/10
	s.IngestP50ms, s.IngestP99ms = ing.Quantile(0.5), ing.Quantile(0.99)
	if waitErr == nil {
		// The results are visible a moment before the publisher has
		// observed their freshness: wait for the histogram (briefly).
		want := uint64(max(0, s.ResultsRecords-base.results))
		for deadline := time.Now().Add(5 * time.Second); topo.FreshnessSamples() < want && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	s.E2EFreshnessP99ms = math.Round(topo.FreshnessQuantile(0.99)*10000) / 10
	if waitErr != nil {
		return s, waitErr
	}
	if s.Lost > 0 {
		return s, fmt.Errorf("demo: %d acknowledged records are missing", s.Lost)
	}
	return s, nil
}

// tally is what the databases and the results count.
type tally struct{ from, to, results int64 }

// counts reads the rows of both databases and the records the published
// summary counts (0 before anything is published).
func counts(ctx context.Context, topo *topology.Topology, cfg *config.Config, client *http.Client) (tally, error) {
	var c tally
	for _, x := range []struct {
		cloud string
		n     *int64
	}{{cfg.Replication.From, &c.from}, {cfg.Replication.To, &c.to}} {
		db := topo.Cloud(x.cloud).DB
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+db.Dialect.Quote(cfg.Schema.Table)).Scan(x.n); err != nil {
			return c, fmt.Errorf("demo: count %s: %w", x.cloud, err)
		}
	}
	sum, err := FetchSummary(ctx, client, topo.URL("edge"))
	if err == nil {
		c.results = sum.Records
	}
	return c, nil
}

// watchResults reads the published summary through the edge every 50 ms
// and tells d how many of its records it counts.
func watchResults(ctx context.Context, client *http.Client, edgeURL string, base int64, d *driver) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if sum, err := FetchSummary(ctx, client, edgeURL); err == nil {
				d.observe(sum.Records-base, time.Now())
			}
		}
	}
}

// waitCounts polls both databases and the published summary until each
// counts the acknowledged records more than before the run, or the
// timeout passes; s gets the counts and what is missing.
func waitCounts(ctx context.Context, topo *topology.Topology, cfg *config.Config, client *http.Client, s *Summary, base tally, timeout time.Duration, progress io.Writer, tr *tracker) error {
	deadline := time.Now().Add(timeout)
	want := int64(s.Acked)
	from, to := cfg.Replication.From, cfg.Replication.To
	lastOut := time.Time{}
	for {
		c, err := counts(ctx, topo, cfg, client)
		if err == nil {
			s.AWSRows, s.AzureRows, s.ResultsRecords = c.from, c.to, c.results
			got := min(c.from-base.from, c.to-base.to, c.results-base.results)
			s.Lost = int(max(want-got, 0))
			if tr != nil {
				tr.from.Store(c.from - base.from)
				tr.to.Store(c.to - base.to)
				tr.published.Store(c.results - base.results)
			}
			if got >= want && c.results == c.to && c.from == c.to {
				fmt.Fprintf(progress, "every record arrived: %s=%d %s=%d published=%d\n", from, c.from, to, c.to, c.results)
				return nil
			}
		}
		if time.Since(lastOut) > time.Second && (tr == nil || !tr.live.Load()) {
			fmt.Fprintf(progress, "waiting: %s=%d %s=%d published=%d missing=%d\n", from, s.AWSRows, to, s.AzureRows, s.ResultsRecords, s.Lost)
			lastOut = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: not everything arrived within %s (last error: %v)", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (o Options) withDefaults() Options {
	if o.Records <= 0 {
		o.Records = 1000
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Attempts <= 0 {
		o.Attempts = 8
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 60 * time.Second}
	}
	return o
}

// Send posts generated records to a front door (or any ingest API) and
// returns the acknowledged ones by id. Requests that fail for good are left
// unacknowledged; a rejected request (4xx) is an error.
func Send(ctx context.Context, url, key string, opts Options) (map[string]Record, error) {
	opts = opts.withDefaults()
	return send(ctx, url, key, opts, opts.Progress)
}

// Verify waits until every acknowledged record is in both databases of a
// running topology and counted in the results it publishes.
func Verify(ctx context.Context, topo *topology.Topology, cfg *config.Config, acked map[string]Record, timeout time.Duration, progress io.Writer) (*Summary, error) {
	if progress == nil {
		progress = io.Discard
	}
	s := &Summary{Sent: len(acked), Acked: len(acked), Records: acked}
	if err := wait(ctx, topo, cfg, s, timeout, progress); err != nil {
		return s, err
	}
	if s.Lost > 0 {
		return s, fmt.Errorf("demo: %d acknowledged records are missing", s.Lost)
	}
	return s, nil
}

// send posts generated records with Concurrency workers and returns the
// acknowledged ones by id.
func send(ctx context.Context, url, key string, opts Options, progress io.Writer) (map[string]Record, error) {
	var mu sync.Mutex
	acked := map[string]Record{}
	d := newDriver(opts.Client, url, key, opts.BatchSize, opts.Attempts)
	d.keep = func(ids []string, recs []Record) {
		mu.Lock()
		for i, id := range ids {
			acked[id] = recs[i]
		}
		mu.Unlock()
	}
	stop := reportProgress(ctx, d, opts.Records, progress)
	err := d.run(ctx, nil, opts.Concurrency, opts.Records, 0)
	stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return acked, nil
}

// reportProgress prints the sending progress every second until stop is
// called.
func reportProgress(ctx context.Context, d *driver, total int, progress io.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				fmt.Fprintf(progress, "sent %d/%d records, %d acknowledged\n", d.sent.Load(), total, d.acked.Load())
				return
			case <-t.C:
				fmt.Fprintf(progress, "sent %d/%d records, %d acknowledged\n", d.sent.Load(), total, d.acked.Load())
			}
		}
	}()
	return func() { cancel(); <-done }
}

// wait polls both databases and the published summary (through the edge)
// until every acknowledged record is everywhere, or the timeout passes.
func wait(ctx context.Context, topo *topology.Topology, cfg *config.Config, s *Summary, timeout time.Duration, progress io.Writer) error {
	deadline := time.Now().Add(timeout)
	ids := make([]string, 0, len(s.Records))
	for id := range s.Records {
		ids = append(ids, id)
	}
	from, to := cfg.Replication.From, cfg.Replication.To
	lastOut := time.Time{}
	// Only the ids a database still lacks are looked up again on the next
	// poll; a record missing from both counts once.
	pending := map[string][]string{from: ids, to: ids}
	for {
		var err error
		for _, name := range []string{from, to} {
			left, n, cerr := missingIDs(ctx, topo.Cloud(name).DB, cfg.Schema.Table, pending[name])
			if cerr != nil {
				err = cerr
				break
			}
			pending[name] = left
			if name == from {
				s.AWSRows = n
			} else {
				s.AzureRows = n
			}
		}
		lost := map[string]bool{}
		for _, name := range []string{from, to} {
			for _, id := range pending[name] {
				lost[id] = true
			}
		}
		missing := len(lost)
		if err == nil {
			s.ResultsRecords, err = summaryRecords(ctx, topo.Client(), topo.URL("edge"))
		}
		s.Lost = missing
		complete := err == nil && missing == 0 && s.ResultsRecords == s.AzureRows && s.AWSRows == s.AzureRows
		if complete {
			fmt.Fprintf(progress, "every record arrived: %s=%d %s=%d published=%d\n", from, s.AWSRows, to, s.AzureRows, s.ResultsRecords)
			return nil
		}
		if time.Since(lastOut) > time.Second {
			fmt.Fprintf(progress, "waiting: %s=%d %s=%d published=%d missing=%d\n", from, s.AWSRows, to, s.AzureRows, s.ResultsRecords, missing)
			lastOut = time.Now()
		}
		if time.Now().After(deadline) {
			if s.Lost == 0 && s.ResultsRecords < s.AzureRows {
				s.Lost = int(s.AzureRows - s.ResultsRecords)
			}
			return fmt.Errorf("demo: not everything arrived within %s (last error: %v)", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// missingIDs returns the ids the table lacks, and its row count.
func missingIDs(ctx context.Context, db *sqldb.DB, table string, ids []string) ([]string, int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+db.Dialect.Quote(table)).Scan(&n); err != nil {
		return nil, 0, err
	}
	left, err := load.Absent(ctx, db, table, ids)
	return left, n, err
}

// summaryRecords reads results/summary.json through the edge.
func summaryRecords(ctx context.Context, client *http.Client, edgeURL string) (int64, error) {
	sum, err := FetchSummary(ctx, client, edgeURL)
	if err != nil {
		return 0, err
	}
	return sum.Records, nil
}

// FetchSummary reads the published summary through the edge.
func FetchSummary(ctx context.Context, client *http.Client, edgeURL string) (*publish.Summary, error) {
	var s publish.Summary
	if err := FetchJSON(ctx, client, edgeURL+"/"+publish.SummaryKey, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// FetchJSON GETs a URL and decodes its JSON body.
func FetchJSON(ctx context.Context, client *http.Client, url string, v any) error {
	return fetchJSONKey(ctx, client, url, "", v)
}

// fetchJSONKey is FetchJSON with an API key (none when empty).
func fetchJSONKey(ctx context.Context, client *http.Client, url, key string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if e := apierr.Read(resp); e != nil {
		return fmt.Errorf("GET %s: %w", url, e)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
