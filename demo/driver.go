package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/ingest"
)

// Histogram counts latencies in buckets 1% wide (log scale, 0.01 ms to
// about a day), so its memory is fixed whatever the number of samples.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    float64
}

const (
	histMin     = 0.01 // ms
	histGrowth  = 1.01
	histBuckets = 2400
)

var histLogGrowth = math.Log(histGrowth)

// Add counts weight samples of ms milliseconds.
func (h *Histogram) Add(ms float64, weight uint64) {
	if weight == 0 {
		return
	}
	i := 0
	if ms > histMin {
		i = min(int(math.Log(ms/histMin)/histLogGrowth)+1, histBuckets-1)
	}
	h.counts[i] += weight
	h.n += weight
	h.max = max(h.max, ms)
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample.
func (h *Histogram) Max() float64 { return h.max }

// Quantile returns the q-quantile (0 < q <= 1), to 1%, rounded to 0.1 ms;
// 0 without samples.
func (h *Histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := histMin
			if i > 0 {
				v = histMin * math.Pow(histGrowth, float64(i))
			}
			return math.Round(min(v, h.max)*10) / 10
		}
	}
	return math.Round(h.max*10) / 10
}

// Merge adds o's samples.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// driver sends generated records to an ingest API (or a front door) and
// measures what happens to them, keeping no per-record state: counters,
// fixed-size histograms, and the acknowledgements not yet visible in the
// published results (one mark per request, dropped once visible).
type driver struct {
	url, key string
	batch    int
	attempts int
	client   *http.Client
	// keep, when set, receives every acknowledged record (tests).
	keep func(ids []string, recs []Record)

	sent, acked, errs atomic.Int64
	reqSeq            atomic.Int64

	mu       sync.Mutex
	ingest   Histogram
	e2e      Histogram
	ivIngest Histogram // since the last interval
	ivE2E    Histogram
	marks    []mark // acknowledged, not yet visible; cumulative acked ascending
	ackedCum int64
	visible  int64
	fatal    error
}

// mark says that by time at, cum records were acknowledged in all.
type mark struct {
	at  time.Time
	cum int64
	n   int64
}

func newDriver(client *http.Client, url, key string, batch, attempts int) *driver {
	return &driver{client: client, url: url, key: key, batch: batch, attempts: attempts}
}

var errGaveUp = errors.New("demo: gave up after retries")

// one generates and posts one request of n records. A request that fails
// for good counts as an error; a rejected one (4xx) is fatal.
func (d *driver) one(ctx context.Context, rng *rand.Rand, n int) {
	seq := d.reqSeq.Add(1)
	recs := make([]Record, n)
	now := time.Now().UTC()
	for i := range recs {
		recs[i] = Record{
			Device: fmt.Sprintf("dev-%03d", rng.IntN(200)),
			Metric: Metrics[rng.IntN(len(Metrics))],
			Value:  float64(rng.IntN(1000000)) / 100,
			TS:     now.Add(-time.Duration(rng.IntN(3*3600)) * time.Second).Truncate(time.Millisecond),
		}
	}
	d.sent.Add(int64(n))
	t0 := time.Now()
	ids, err := post(ctx, d.client, d.url, d.key, int(seq), recs, d.attempts)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		d.errs.Add(1)
		if !errors.Is(err, errGaveUp) {
			d.mu.Lock()
			if d.fatal == nil {
				d.fatal = err
			}
			d.mu.Unlock()
		}
		return
	}
	now = time.Now()
	d.acked.Add(int64(n))
	d.mu.Lock()
	d.ingest.Add(float64(now.Sub(t0).Microseconds())/1000, 1)
	d.ivIngest.Add(float64(now.Sub(t0).Microseconds())/1000, 1)
	d.ackedCum += int64(n)
	d.marks = append(d.marks, mark{at: now, cum: d.ackedCum, n: int64(n)})
	d.settle(now)
	d.mu.Unlock()
	if d.keep != nil {
		d.keep(ids, recs)
	}
}

// observe says that visible of the acknowledged records are in the
// published results at time at.
func (d *driver) observe(visible int64, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if visible > d.visible {
		d.visible = visible
	}
	d.settle(at)
}

// settle moves the acknowledgements now visible into the e2e histogram
// (ack → visible; first acknowledged, first visible). d.mu is held.
func (d *driver) settle(at time.Time) {
	i := 0
	for ; i < len(d.marks) && d.marks[i].cum <= d.visible; i++ {
		m := d.marks[i]
		ms := float64(at.Sub(m.at).Microseconds()) / 1000
		d.e2e.Add(ms, uint64(m.n))
		d.ivE2E.Add(ms, uint64(m.n))
	}
	if i > 0 {
		d.marks = append(d.marks[:0], d.marks[i:]...)
	}
}

// backlog returns the acknowledged records not yet visible and how long
// the oldest of them has waited.
func (d *driver) backlog(now time.Time) (int64, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.marks) == 0 {
		return max(d.ackedCum-d.visible, 0), 0
	}
	return d.ackedCum - d.visible, now.Sub(d.marks[0].at)
}

// interval returns the histograms since the last call and starts new ones.
func (d *driver) interval() (ingest, e2e Histogram) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ingest, e2e = d.ivIngest, d.ivE2E
	d.ivIngest, d.ivE2E = Histogram{}, Histogram{}
	return ingest, e2e
}

// snapshot copies the histograms.
func (d *driver) snapshot() (ingest, e2e Histogram) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ingest, d.e2e
}

// run sends with clients workers until total records were sent (total 0:
// until stop is closed), at rate records per second (0: as fast as the
// API answers). Requests in flight when stop closes are finished; ctx
// cancels them.
func (d *driver) run(ctx context.Context, stop <-chan struct{}, clients, total int, rate float64) error {
	work := make(chan int)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for n := range work {
				d.one(ctx, rng, n)
			}
		}()
	}
	start := time.Now()
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Duration(float64(d.batch) / rate * float64(time.Second))
	}
	left := total
	for k := 0; total == 0 || left > 0; k++ {
		n := d.batch
		if total > 0 {
			n = min(n, left)
			left -= n
		}
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(k) * interval)); wait > 0 {
				select {
				case <-ctx.Done():
				case <-stop:
				case <-time.After(wait):
				}
			}
		}
		select {
		case <-stop:
		case <-ctx.Done():
		default:
			select {
			case work <- n:
				continue
			case <-ctx.Done():
			case <-stop:
			}
		}
		break
	}
	close(work)
	wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fatal
}

// post sends one request, as NDJSON or a JSON array by turns, and retries
// transient failures (and back-pressure) with the same Idempotency-Key (a
// UUIDv7, so the ids are time-ordered).
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
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				// The connection was cut after the status line (the
				// server died mid-answer): the ids never arrived, so the
				// request is retried under the same key like one that
				// got no answer at all. Any read error counts, whatever
				// its type: HTTP/2 reports a cut connection with errors
				// of its own ("client connection force closed via
				// ClientConn.Close") that no errors.Is recognises.
				last = fmt.Errorf("demo: reading the 202 answer: %w", err)
				continue
			}
			var out struct {
				IDs []string `json:"ids"`
			}
			if err := json.Unmarshal(raw, &out); err != nil || len(out.IDs) != len(recs) {
				return nil, fmt.Errorf("demo: bad 202 answer (%d ids for %d records): %v", len(out.IDs), len(recs), err)
			}
			return out.IDs, nil
		}
		e := apierr.Read(resp)
		resp.Body.Close()
		last = e
		if resp.StatusCode == http.StatusServiceUnavailable && e != nil && e.Code == ingest.CodeBacklog {
			// Back-pressure: wait as asked, without spending an attempt.
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(min(max(secs, 1), 30)) * time.Second):
			}
			attempt--
			continue
		}
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
			return nil, fmt.Errorf("demo: request rejected: %w", e)
		}
	}
	return nil, fmt.Errorf("%w: %v", errGaveUp, last)
}
