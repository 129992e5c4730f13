// Package demo drives the whole scenario: it starts the topology in one
// process, sends generated records through the front door over real HTTP,
// waits until every acknowledged record is in both clouds' databases and
// counted in the published results, and reports what happened.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

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
	// E2EFreshnessP99ms is the 99th percentile of the end-to-end
	// freshness (acknowledged → published) from the histogram /metrics
	// exports (intercloud_e2e_freshness_seconds), estimated from its
	// buckets as Prometheus' histogram_quantile does.
	E2EFreshnessP99ms float64 `json:"e2e_freshness_p99_ms"`
	IngestP50ms       float64 `json:"ingest_p50_ms"`
	IngestP99ms       float64 `json:"ingest_p99_ms"`
	Seconds           float64 `json:"seconds"`
	RecordsPerSec     float64 `json:"records_per_sec"`
	// Records are the acknowledged records as sent, by id (not printed).
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

// Metrics are the generated metric names.
var Metrics = []string{"cpu", "mem", "disk", "net", "temp"}

// Run starts the topology from cfg, runs the scenario and stops it. The
// error is non-nil when the run could not be carried out, or when anything
// acknowledged is missing anywhere (the summary is returned as well).
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
	var mu sync.Mutex
	published := map[string]time.Time{}
	topts := opts.Topology
	topts.Roles = nil
	prev := topts.OnPublished
	topts.OnPublished = func(ids []string) {
		now := time.Now()
		mu.Lock()
		for _, id := range ids {
			if _, ok := published[id]; !ok {
				published[id] = now
			}
		}
		mu.Unlock()
		if prev != nil {
			prev(ids)
		}
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

	start := time.Now()
	tr.start()
	sent, sentAt, ingestLat, err := send(ctx, topo.URL("frontdoor"), topts.APIKey, opts, progress, tr)
	if err != nil {
		return nil, err
	}
	s := &Summary{Sent: opts.Records, Acked: len(sent), Records: sent}
	fmt.Fprintf(progress, "sent %d, acknowledged %d in %.1fs; waiting for both databases and the results\n", s.Sent, s.Acked, time.Since(start).Seconds())

	waitErr := wait(ctx, topo, cfg, s, opts.Timeout, progress, tr)
	s.Seconds = time.Since(start).Seconds()
	if s.Seconds > 0 {
		s.RecordsPerSec = float64(s.Acked) / s.Seconds
	}
	mu.Lock()
	var e2e []float64
	for id, at := range sentAt {
		if p, ok := published[id]; ok {
			e2e = append(e2e, float64(p.Sub(at).Microseconds())/1000)
		}
	}
	mu.Unlock()
	s.E2EP50ms, s.E2EP99ms = percentile(e2e, 50), percentile(e2e, 99)
	s.IngestP50ms, s.IngestP99ms = percentile(ingestLat, 50), percentile(ingestLat, 99)
	s.E2EFreshnessP99ms = float64(int(topo.FreshnessQuantile(0.99)*10000)) / 10
	if waitErr != nil {
		return s, waitErr
	}
	if s.Lost > 0 {
		return s, fmt.Errorf("demo: %d acknowledged records are missing", s.Lost)
	}
	return s, nil
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
	acked, _, _, err := send(ctx, url, key, opts, opts.Progress, nil)
	return acked, err
}

// Verify waits until every acknowledged record is in both databases of a
// running topology and counted in the results it publishes.
func Verify(ctx context.Context, topo *topology.Topology, cfg *config.Config, acked map[string]Record, timeout time.Duration, progress io.Writer) (*Summary, error) {
	if progress == nil {
		progress = io.Discard
	}
	s := &Summary{Sent: len(acked), Acked: len(acked), Records: acked}
	if err := wait(ctx, topo, cfg, s, timeout, progress, nil); err != nil {
		return s, err
	}
	if s.Lost > 0 {
		return s, fmt.Errorf("demo: %d acknowledged records are missing", s.Lost)
	}
	return s, nil
}

// send posts the records through the front door with Concurrency workers,
// retrying a failed request under the same Idempotency-Key.
func send(ctx context.Context, url, key string, opts Options, progress io.Writer, tr *tracker) (map[string]Record, map[string]time.Time, []float64, error) {
	type batch struct {
		n    int
		recs []Record
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	now := time.Now().UTC()
	var batches []batch
	for i := 0; i < opts.Records; i += opts.BatchSize {
		var b batch
		for j := i; j < min(opts.Records, i+opts.BatchSize); j++ {
			b.recs = append(b.recs, Record{
				Device: fmt.Sprintf("dev-%03d", rng.IntN(200)),
				Metric: Metrics[rng.IntN(len(Metrics))],
				Value:  float64(rng.IntN(1000000)) / 100,
				TS:     now.Add(-time.Duration(rng.IntN(3*3600)) * time.Second).Truncate(time.Millisecond),
			})
		}
		b.n = len(batches)
		batches = append(batches, b)
	}
	var (
		mu      sync.Mutex
		acked   = map[string]Record{}
		sentAt  = map[string]time.Time{}
		lat     []float64
		done    atomic.Int64
		fatal   error
		work    = make(chan batch)
		wg      sync.WaitGroup
		client  = opts.Client
		lastOut = time.Now()
	)
	for w := 0; w < opts.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				t0 := time.Now()
				ids, err := post(ctx, client, url, key, b.n, b.recs, opts.Attempts)
				mu.Lock()
				if err != nil {
					if fatal == nil && !errors.Is(err, errGaveUp) {
						fatal = err
					}
					fmt.Fprintf(progress, "request %d not acknowledged: %v\n", b.n, err)
				} else {
					lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
					for i, id := range ids {
						acked[id] = b.recs[i]
						sentAt[id] = t0
					}
				}
				n := done.Add(int64(len(b.recs)))
				if tr != nil {
					tr.sent.Store(n)
					tr.acked.Store(int64(len(acked)))
				}
				if !opts.Live && (time.Since(lastOut) > time.Second || int(n) == opts.Records) {
					fmt.Fprintf(progress, "sent %d/%d records, %d acknowledged\n", n, opts.Records, len(acked))
					lastOut = time.Now()
				}
				mu.Unlock()
			}
		}()
	}
	for _, b := range batches {
		select {
		case work <- b:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, nil, nil, ctx.Err()
	}
	if fatal != nil {
		return nil, nil, nil, fatal
	}
	return acked, sentAt, lat, nil
}

var errGaveUp = errors.New("demo: gave up after retries")

// post sends one request, as NDJSON or a JSON array by turns, and retries
// transient failures with the same Idempotency-Key.
func post(ctx context.Context, client *http.Client, url, key string, n int, recs []Record, attempts int) ([]string, error) {
	var body bytes.Buffer
	ctype := "application/json"
	if n%2 == 1 {
		ctype = "application/x-ndjson"
		enc := json.NewEncoder(&body)
		for _, r := range recs {
			_ = enc.Encode(r)
		}
	} else {
		_ = json.NewEncoder(&body).Encode(recs)
	}
	idem := uuid.Must(uuid.NewV7()).String()
	var last error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/records", bytes.NewReader(body.Bytes()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Idempotency-Key", idem)
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode == http.StatusAccepted {
			var out struct {
				IDs []string `json:"ids"`
			}
			err := json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || len(out.IDs) != len(recs) {
				return nil, fmt.Errorf("demo: bad 202 answer (%d ids for %d records): %v", len(out.IDs), len(recs), err)
			}
			return out.IDs, nil
		}
		e := apierr.Read(resp)
		resp.Body.Close()
		last = e
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
			return nil, fmt.Errorf("demo: request rejected: %w", e)
		}
	}
	return nil, fmt.Errorf("%w: %v", errGaveUp, last)
}

// wait polls both databases and the published summary (through the edge)
// until every acknowledged record is everywhere, or the timeout passes.
func wait(ctx context.Context, topo *topology.Topology, cfg *config.Config, s *Summary, timeout time.Duration, progress io.Writer, tr *tracker) error {
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
		if tr != nil {
			tr.from.Store(s.AWSRows)
			tr.to.Store(s.AzureRows)
			tr.published.Store(s.ResultsRecords)
		}
		complete := err == nil && missing == 0 && s.ResultsRecords == s.AzureRows && s.AWSRows == s.AzureRows
		if complete {
			fmt.Fprintf(progress, "every record arrived: %s=%d %s=%d published=%d\n", from, s.AWSRows, to, s.AzureRows, s.ResultsRecords)
			return nil
		}
		if tr == nil || !tr.live.Load() {
			if time.Since(lastOut) > time.Second {
				fmt.Fprintf(progress, "waiting: %s=%d %s=%d published=%d missing=%d\n", from, s.AWSRows, to, s.AzureRows, s.ResultsRecords, missing)
				lastOut = time.Now()
			}
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
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

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return float64(int(s[i]*10)) / 10
}
