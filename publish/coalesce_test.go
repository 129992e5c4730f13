package publish

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/peers"
)

// startedOnce runs the publisher until it has started (its first run
// publishes what the table holds and starts from the end of the feed)
// and stops it, so what is inserted next comes through the feed.
func (e *env) startedOnce(t *testing.T) {
	t.Helper()
	stop := e.run(t)
	e.started(t)
	stop()
}

// insertBatches inserts n records of metric cpu in hour h, per records a
// transaction, ids prefix-0, prefix-1, ...
func (e *env) insertBatches(t *testing.T, prefix string, n, per int, h time.Time) {
	t.Helper()
	for i := 0; i < n; i += per {
		var recs []rec
		for j := i; j < min(n, i+per); j++ {
			recs = append(recs, rec{fmt.Sprintf("%s-%03d", prefix, j), "cpu", float64(j), h})
		}
		e.insert(t, recs...)
	}
}

// TestCoalescedWritesWhileBehind: while full batches follow each other
// (the feed is behind), their files are written together: 95 records in
// batches of 10 are published in 3 writes (at the cap of 4 batches' worth
// of held records, again, and at the partial last batch), not 10, and the
// results are exact.
func TestCoalescedWritesWhileBehind(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.startedOnce(t)
	e.insertBatches(t, "r", 95, 10, h)
	var writes atomic.Int64
	e.runWith(t, func(c *Config) {
		c.BatchSize = 10
		c.Coalesce = time.Minute
		published := c.OnPublished
		c.OnPublished = func(ids []string) { writes.Add(1); published(ids) }
	})
	e.waitRecords(t, 95)
	if got := e.aggregate(t, "cpu", h); got["count"] != 95.0 || got["min"] != 0.0 || got["max"] != 94.0 {
		t.Fatalf("cpu = %v", got)
	}
	// OnPublished follows the summary's write.
	deadline := time.Now().Add(20 * time.Second)
	for len(e.published()) < 95 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records reported published, want 95", len(e.published()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := writes.Load(); n != 3 {
		t.Errorf("%d writes for 10 batches while behind, want 3", n)
	}
}

// TestCoalescedWritesWhileBehindOnUpdates: a full read of the change feed
// is behind however few changes it makes. The SQLite feed keeps a key's
// latest change once, so a read of 10 updates of one record is one
// change; 10 such reads in a row are written together (with the batch of
// inserts before them), not one write each, and the results are exact.
func TestCoalescedWritesWhileBehindOnUpdates(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.startedOnce(t)
	e.insertBatches(t, "r", 10, 10, h)
	for i := range 10 { // 10 updates of each record, a transaction each
		for v := range 10 {
			e.insert(t, rec{fmt.Sprintf("r-%03d", i), "cpu", float64(100*i + v), h})
		}
	}
	e.insert(t, rec{"r-000", "cpu", 7, h}) // a read that is not full ends it
	// The feed reads each record's current row, so every read of it
	// counts one change of each record it names: 10 + 10 + 1.
	var writes, changes atomic.Int64
	e.runWith(t, func(c *Config) {
		c.BatchSize = 10
		c.Coalesce = time.Minute
		published := c.OnPublished
		c.OnPublished = func(ids []string) { writes.Add(1); changes.Add(int64(len(ids))); published(ids) }
	})
	deadline := time.Now().Add(20 * time.Second)
	for changes.Load() < 21 {
		if time.Now().After(deadline) {
			t.Fatalf("%d changes published in %d writes, want 21", changes.Load(), writes.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := e.aggregate(t, "cpu", h); got["count"] != 10.0 || got["min"] != 7.0 || got["max"] != 909.0 {
		t.Fatalf("cpu = %v", got)
	}
	if n := writes.Load(); n > 2 {
		t.Errorf("%d writes for 12 reads of the feed while behind, want at most 2", n)
	}
}

// TestHeldResultsAreWrittenWhenTheFeedStops: a full batch that turns out
// to be the last is written Coalesce after it, by the timer.
func TestHeldResultsAreWrittenWhenTheFeedStops(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.startedOnce(t)
	e.insertBatches(t, "r", 10, 10, h)
	e.runWith(t, func(c *Config) { c.BatchSize = 10; c.Coalesce = 200 * time.Millisecond })
	e.waitRecords(t, 10)
}

// TestHeldResultsAreReplayedAfterAStop: batches applied in the database but
// held (not yet written) when the publisher stops are written by the next
// run: the checkpoint had not moved past them.
func TestHeldResultsAreReplayedAfterAStop(t *testing.T) {
	testHeldResultsAreReplayedAfterAStop(t, newEnv(t))
}

// TestPostgresHeldResultsAreReplayedAfterAStop is
// TestHeldResultsAreReplayedAfterAStop on PostgreSQL, whose replication
// slot forgets what it was told was processed: the slot must not be told
// of held batches before their checkpoint is saved.
func TestPostgresHeldResultsAreReplayedAfterAStop(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers are skipped with -short")
	}
	testHeldResultsAreReplayedAfterAStop(t, newEnvAt(t, peers.StartPostgres(t).URL("app")))
}

func testHeldResultsAreReplayedAfterAStop(t *testing.T, e *env) {
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.startedOnce(t)
	e.insertBatches(t, "r", 20, 10, h)
	stop := e.runWith(t, func(c *Config) { c.BatchSize = 10; c.Coalesce = time.Hour })
	// Both batches applied to the aggregate state, nothing written.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int64
		_ = e.db.QueryRow(`SELECT COALESCE(SUM(cnt), 0) FROM ` + BucketsTable).Scan(&n)
		if n == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("aggregate state counts %d records, want 20", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if s := e.summary(t); s.Records != 0 {
		t.Fatalf("summary counts %d records while they were held", s.Records)
	}
	e.run(t)
	e.waitRecords(t, 20)
	if got := e.aggregate(t, "cpu", h); got["count"] != 20.0 || got["max"] != 19.0 {
		t.Fatalf("cpu = %v", got)
	}
}

// published returns the ids OnPublished was told of.
func (e *env) published() map[string]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]bool, len(e.ids))
	for id := range e.ids {
		out[id] = true
	}
	return out
}

// holdFor: a full batch holds for Coalesce; one that is not full holds
// nothing until its oldest record is 4 × Coalesce late, then in
// proportion, up to Coalesce at 8 × Coalesce.
func TestHoldGrowsWithLateness(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	for _, c := range []struct {
		coalesce time.Duration
		full     bool
		age      time.Duration // of the oldest record; 0: none known
		want     time.Duration
	}{
		{250 * ms, true, 0, 250 * ms},
		{250 * ms, true, 10 * ms, 250 * ms},
		{250 * ms, false, 0, 0},
		{250 * ms, false, 500 * ms, 0},
		{250 * ms, false, 1000 * ms, 0},
		{250 * ms, false, 1100 * ms, 25 * ms},
		{250 * ms, false, 1500 * ms, 125 * ms},
		{250 * ms, false, 2000 * ms, 250 * ms},
		{250 * ms, false, time.Minute, 250 * ms},
		{-1, true, time.Minute, 0},
		{-1, false, time.Minute, 0},
	} {
		p := &Publisher{cfg: Config{Coalesce: c.coalesce}}
		var oldest time.Time
		if c.age > 0 {
			oldest = now.Add(-c.age)
		}
		if got := p.holdFor(c.full, oldest, now); got != c.want {
			t.Errorf("Coalesce %v, full %v, oldest %v old: hold %v, want %v", c.coalesce, c.full, c.age, got, c.want)
		}
	}
}

// TestMinIntervalSpacesWrites: a feed that keeps up (batches of one
// record, each read at once) writes its files at most once per
// MinInterval, not once per batch, the last batch too (by the timer), and
// the results are exact. Coalesce is off, so nothing else holds a batch.
func TestMinIntervalSpacesWrites(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.startedOnce(t)
	const gap = 300 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	e.runWith(t, func(c *Config) {
		c.Coalesce = -1
		c.MinInterval = gap
		published := c.OnPublished
		c.OnPublished = func(ids []string) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			published(ids)
		}
	})
	const n = 60
	start := time.Now()
	for i := range n { // about 1.2 s, a batch each 20 ms
		e.insert(t, rec{fmt.Sprintf("r-%03d", i), "cpu", float64(i), h})
		time.Sleep(20 * time.Millisecond)
	}
	last := time.Now()
	e.waitRecords(t, n)
	if got := e.aggregate(t, "cpu", h); got["count"] != float64(n) || got["min"] != 0.0 || got["max"] != float64(n-1) {
		t.Fatalf("cpu = %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < gap-20*time.Millisecond {
			t.Errorf("write %d came %s after the one before, want at least %s", i, d, gap)
		}
	}
	if max := int(last.Sub(start)/gap) + 2; len(at) > max {
		t.Errorf("%d writes in %s, want at most %d", len(at), last.Sub(start), max)
	}
	if len(at) == 0 {
		t.Fatal("no write")
	}
	if d := at[len(at)-1].Sub(last); d > gap+time.Second {
		t.Errorf("the last write came %s after the last batch", d)
	}
}

// TestMinIntervalDefault: a Config without MinInterval spaces writes by
// DefaultMinInterval.
func TestMinIntervalDefault(t *testing.T) {
	e := newEnv(t)
	p, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Settings: config.Default("").Publish})
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.MinInterval != DefaultMinInterval {
		t.Errorf("MinInterval %v, want %v", p.cfg.MinInterval, DefaultMinInterval)
	}
}
