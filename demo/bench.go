package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/topology"
)

// BenchOptions tune Bench.
type BenchOptions struct {
	// URL is where records are posted: a front door or a cloud's API.
	URL string
	// EdgeURL is the edge whose published summary tells when records are
	// visible; empty: the ack → visible latency is not measured.
	EdgeURL string
	// Key is the API key.
	Key string
	// Clients is the number of concurrent clients (default 8).
	Clients int
	// BatchSize is the records per request (default 100).
	BatchSize int
	// Rate is the records per second to send (0: as fast as the API
	// answers).
	Rate float64
	// Duration is how long to send (default 10s).
	Duration time.Duration
	// Interval is how often a line of figures is printed (default 1s).
	Interval time.Duration
	// Drain is how long to wait after sending for the acknowledged
	// records to become visible (default 30s; negative: do not wait).
	Drain time.Duration
	// PIDs are the processes whose CPU and memory are reported (none:
	// this one).
	PIDs []int
	// Out receives the interval lines (nil: none).
	Out io.Writer
	// Client sends the records and reads the results (nil: a plain one;
	// a topology's own trusts its CA, see topology.ClientFor).
	Client *http.Client
	// Clouds maps a cloud's name to its API, whose GET /v1/status (with
	// Key) says how busy the cloud's embedded database's write lock is:
	// each interval's line shows it, the result its share by writer over
	// the run (nil: neither).
	Clouds map[string]string
	// Warn receives a line the first time a cloud's status cannot be
	// read for a given reason (a key without the read scope, a cloud not
	// answering), so that a "-" in the write lock column is explained
	// (nil: none).
	Warn io.Writer
}

// BenchResult is the end report of Bench.
type BenchResult struct {
	Seconds       float64 `json:"seconds"`
	Clients       int     `json:"clients"`
	BatchSize     int     `json:"batch_size"`
	TargetRate    float64 `json:"target_rate"`
	Sent          int64   `json:"sent"`
	Acked         int64   `json:"acked"`
	Errors        int64   `json:"errors"`
	RecordsPerSec float64 `json:"records_per_sec"`
	IngestP50ms   float64 `json:"ingest_p50_ms"`
	IngestP99ms   float64 `json:"ingest_p99_ms"`
	// E2E* run from a request's acknowledgement to the moment the
	// published summary (read through the edge every 50 ms) counts it.
	E2EP50ms float64 `json:"e2e_p50_ms"`
	E2EP99ms float64 `json:"e2e_p99_ms"`
	E2EMaxms float64 `json:"e2e_max_ms"`
	// Visible is how many acknowledged records the results count at the
	// end; Backlog is how many they do not (yet).
	Visible int64 `json:"visible"`
	Backlog int64 `json:"backlog"`
	// CPUSeconds and PeakRSSMB are those of the observed processes.
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	// DBWriteLock is, per cloud whose database takes one writer at a
	// time (BenchOptions.Clouds), the share of the run its write lock
	// was held, in all and by writer.
	DBWriteLock map[string]LockShare `json:"db_write_lock,omitempty"`
}

// LockShare is the share of a span of time a database's write lock was
// held, in all and by writer ("load", "publish", "replicate:<stream>",
// ...).
type LockShare struct {
	Busy    float64            `json:"busy"`
	Writers map[string]float64 `json:"writers"`
}

func (o BenchOptions) withDefaults() BenchOptions {
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Drain == 0 {
		o.Drain = 30 * time.Second
	}
	if len(o.PIDs) == 0 {
		o.PIDs = []int{os.Getpid()}
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 60 * time.Second}
	}
	return o
}

// Bench drives an ingest API or front door for a duration, at a fixed
// rate or flat out, with Clients concurrent clients posting BatchSize
// records per request, and prints per interval and returns at the end:
// records sent, acknowledged, errors, ingest latency, ack → visible at
// the edge latency, the backlog (acknowledged, not yet counted in the
// results), and the CPU and memory of the observed processes. It keeps
// no per-record state.
func Bench(ctx context.Context, opts BenchOptions) (*BenchResult, error) {
	opts = opts.withDefaults()
	if opts.URL == "" {
		return nil, errors.New("demo: bench: a URL to send to is required")
	}
	d := newDriver(opts.Client, opts.URL, opts.Key, opts.BatchSize, 3)
	var base int64
	if opts.EdgeURL != "" {
		if sum, err := FetchSummary(ctx, opts.Client, opts.EdgeURL); err == nil {
			base = sum.Records
		}
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); watchResults(wctx, opts.Client, opts.EdgeURL, base, d) }()
		defer func() { stop(); <-done }()
	}
	cpu0, _ := processStats(opts.PIDs)
	warned := map[string]bool{}
	locks := func() map[string]lockSample {
		got, errs := fetchLocks(ctx, opts)
		for _, name := range slices.Sorted(maps.Keys(errs)) {
			msg := fmt.Sprintf("bench: %s: no write lock figures: %v", name, errs[name])
			if opts.Warn != nil && !warned[msg] && ctx.Err() == nil {
				warned[msg] = true
				fmt.Fprintln(opts.Warn, msg)
			}
		}
		return got
	}
	locks0 := locks()
	start := time.Now()
	lockCol := ""
	if len(opts.Clouds) > 0 {
		lockCol = "  db_lock% (" + strings.Join(slices.Sorted(maps.Keys(opts.Clouds)), "/") + ")"
	}
	fmt.Fprintf(opts.Out, "%6s %9s %9s %6s %9s %9s %9s %9s %9s %8s %8s %6s %7s%s\n",
		"t(s)", "sent/s", "acked/s", "errors", "ing_p50", "ing_p99", "e2e_p50", "e2e_p99", "e2e_max", "backlog", "age(s)", "cpu%", "rss_MB", lockCol)
	stop := make(chan struct{})
	time.AfterFunc(opts.Duration, func() { close(stop) })
	ran := make(chan error, 1)
	go func() { ran <- d.run(ctx, stop, opts.Clients, 0, opts.Rate) }()
	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	var runErr error
	prevSent, prevAcked, prevCPU, prevAt := int64(0), int64(0), cpu0.cpu, start
	line := func(now time.Time) {
		sent, acked := d.sent.Load(), d.acked.Load()
		ing, e2e := d.interval()
		backlog, age := d.backlog(now)
		st, _ := processStats(opts.PIDs)
		secs := now.Sub(prevAt).Seconds()
		lock := ""
		if len(opts.Clouds) > 0 {
			lock = "  " + lockLine(opts, locks())
		}
		fmt.Fprintf(opts.Out, "%6.1f %9.0f %9.0f %6d %9.1f %9.1f %9.1f %9.1f %9.1f %8d %8.1f %6.0f %7.1f%s\n",
			now.Sub(start).Seconds(), float64(sent-prevSent)/secs, float64(acked-prevAcked)/secs, d.errs.Load(),
			ing.Quantile(0.5), ing.Quantile(0.99), e2e.Quantile(0.5), e2e.Quantile(0.99), e2e.Max(),
			backlog, age.Seconds(), 100*(st.cpu-prevCPU)/secs, st.rssMB, lock)
		prevSent, prevAcked, prevCPU, prevAt = sent, acked, st.cpu, now
	}
loop:
	for {
		select {
		case runErr = <-ran:
			break loop
		case now := <-tick.C:
			line(now)
		}
	}
	sending := time.Since(start)
	// Let the acknowledged records become visible.
	if opts.EdgeURL != "" && opts.Drain > 0 {
		deadline := time.Now().Add(opts.Drain)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if n, _ := d.backlog(time.Now()); n == 0 {
				break
			}
			select {
			case <-ctx.Done():
			case now := <-tick.C:
				line(now)
			}
		}
	}
	st, _ := processStats(opts.PIDs)
	ing, e2e := d.snapshot()
	backlog, _ := d.backlog(time.Now())
	res := &BenchResult{
		Seconds: math.Round(sending.Seconds()*100) / 100, Clients: opts.Clients, BatchSize: opts.BatchSize, TargetRate: opts.Rate,
		Sent: d.sent.Load(), Acked: d.acked.Load(), Errors: d.errs.Load(),
		IngestP50ms: ing.Quantile(0.5), IngestP99ms: ing.Quantile(0.99),
		E2EP50ms: e2e.Quantile(0.5), E2EP99ms: e2e.Quantile(0.99), E2EMaxms: math.Round(e2e.Max()*10) / 10,
		Backlog: backlog, Visible: d.acked.Load() - backlog,
		CPUSeconds: math.Round((st.cpu-cpu0.cpu)*100) / 100, PeakRSSMB: st.peakMB,
		DBWriteLock: lockShares(locks0, locks()),
	}
	if sending > 0 {
		res.RecordsPerSec = math.Round(float64(res.Acked) / sending.Seconds())
	}
	if opts.EdgeURL == "" {
		res.Visible, res.Backlog = 0, 0
	}
	if runErr != nil && ctx.Err() == nil {
		return res, runErr
	}
	return res, ctx.Err()
}

// String is the result as one JSON line.
func (r *BenchResult) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// procStats are the summed figures of the observed processes.
type procStats struct {
	cpu    float64 // user + system seconds
	rssMB  float64
	peakMB float64
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on
// Linux).
const clockTicks = 100

// processStats reads /proc for pids (Linux); elsewhere it returns zeros.
func processStats(pids []int) (procStats, error) {
	var s procStats
	var errs []error
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// The command name may hold spaces: the fields follow the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 13 {
			u, _ := strconv.ParseFloat(f[11], 64)
			k, _ := strconv.ParseFloat(f[12], 64)
			s.cpu += (u + k) / clockTicks
		}
		st, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(st)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			switch k {
			case "VmRSS":
				s.rssMB += kb / 1024
			case "VmHWM":
				s.peakMB += kb / 1024
			}
		}
		st.Close()
	}
	s.rssMB, s.peakMB = math.Round(s.rssMB*10)/10, math.Round(s.peakMB*10)/10
	return s, errors.Join(errs...)
}

// lockSample is a cloud's write lock status at a time.
type lockSample struct {
	at time.Time
	wl *topology.WriteLockStatus
}

// fetchLocks reads, all at once, the write lock status of each of
// opts.Clouds whose database has one (a database without one, such as a
// server's, is left out of both maps); a cloud whose status cannot be
// read, or that does not answer within half an interval (a cloud down
// while the bench runs), is in errs instead, so the line of figures is
// not held up.
func fetchLocks(ctx context.Context, opts BenchOptions) (locks map[string]lockSample, errs map[string]error) {
	ctx, cancel := context.WithTimeout(ctx, min(5*time.Second, max(opts.Interval/2, 200*time.Millisecond)))
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	locks, errs = map[string]lockSample{}, map[string]error{}
	for name, u := range opts.Clouds {
		wg.Go(func() {
			var st topology.CloudStatus
			err := fetchJSONKey(ctx, opts.Client, u+"/v1/status", opts.Key, &st)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs[name] = err
			case st.WriteLock != nil:
				locks[name] = lockSample{at: time.Now(), wl: st.WriteLock}
			}
		})
	}
	wg.Wait()
	return locks, errs
}

// lockLine prints each cloud's recent write lock busy share, in the
// order of the column's header ("-": unknown).
func lockLine(opts BenchOptions, locks map[string]lockSample) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(opts.Clouds)) {
		if l, ok := locks[name]; ok {
			parts = append(parts, strconv.FormatFloat(100*l.wl.Busy, 'f', 0, 64))
		} else {
			parts = append(parts, "-")
		}
	}
	return strings.Join(parts, "/")
}

// lockShares is, per cloud sampled at both ends, the share of the time
// between them its write lock was held, in all and by writer (writers
// under half a percent left out).
func lockShares(from, to map[string]lockSample) map[string]LockShare {
	var out map[string]LockShare
	for name, b := range to {
		a, ok := from[name]
		if !ok || !b.at.After(a.at) {
			continue
		}
		span := b.at.Sub(a.at).Seconds()
		held0 := map[string]float64{}
		for _, w := range a.wl.Writers {
			held0[w.Writer] = w.HeldSeconds
		}
		ls := LockShare{Writers: map[string]float64{}}
		for _, w := range b.wl.Writers {
			share := (w.HeldSeconds - held0[w.Writer]) / span
			ls.Busy += share
			if share >= 0.005 {
				ls.Writers[w.Writer] = math.Round(share*1000) / 1000
			}
		}
		ls.Busy = math.Round(min(1, ls.Busy)*1000) / 1000
		if out == nil {
			out = map[string]LockShare{}
		}
		out[name] = ls
	}
	return out
}
