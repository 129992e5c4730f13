package publish

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/edge"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/record"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{"cpu": "cpu", "=1+1": "'=1+1", "@x": "'@x", "-2": "'-2", "": ""} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

type env struct {
	db     *sqldb.DB
	bucket *objects.Bucket
	schema config.Schema
	table  sqldb.Table
	mu     sync.Mutex
	purged []string
	ids    map[string]bool
	// mode is the source mode the publisher reads the records table in.
	mode string
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(dir, "sql.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := objects.Open(ctx, "file://"+filepath.Join(dir, "objects"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); b.Close() })
	s := config.Default(dir).Schema
	return &env{db: db, bucket: b, schema: s, table: record.Table(s), ids: map[string]bool{}}
}

// run starts a publisher until the test ends or stop is called.
func (e *env) run(t *testing.T) (stop func()) {
	t.Helper()
	return e.runWith(t, nil)
}

// runWith is run with a configuration that set changes.
func (e *env) runWith(t *testing.T, set func(*Config)) (stop func()) {
	t.Helper()
	cfg := Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Settings: config.Default("").Publish, Poll: 5 * time.Millisecond,
		SourceMode: e.mode,
		Purge: func(ctx context.Context, paths, tags []string) error {
			e.mu.Lock()
			e.purged = append(e.purged, paths...)
			e.purged = append(e.purged, tags...)
			e.mu.Unlock()
			return nil
		},
		OnPublished: func(ids []string) {
			e.mu.Lock()
			for _, id := range ids {
				e.ids[id] = true
			}
			e.mu.Unlock()
		},
	}
	if set != nil {
		set(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

type rec struct {
	id, metric string
	value      float64
	ts         time.Time
}

func (e *env) insert(t *testing.T, recs ...rec) {
	t.Helper()
	// One transaction, so the publisher sees the records together.
	err := e.db.Tx(context.Background(), func(tx *sql.Tx) error {
		for _, r := range recs {
			trace := "t-" + r.id
			trace = trace[:min(len(trace), 64)] // the column's length
			row, err := record.Row(e.table, e.db.Dialect, record.Record{ID: r.id, Origin: "aws", TraceID: trace, IngestedAt: time.Now(),
				Fields: map[string]any{"device": "d", "metric": r.metric, "value": r.value, "ts": r.ts}})
			if err != nil {
				return err
			}
			if _, err := tx.Exec(e.db.Dialect.Upsert(e.table, 1), row...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) summary(t *testing.T) Summary {
	t.Helper()
	var s Summary
	b, _, err := e.bucket.Get(context.Background(), SummaryKey)
	if err != nil {
		return s
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) waitRecords(t *testing.T, n int64) {
	t.Helper()
	e.waitSummary(t, func(s Summary) bool { return s.Records == n })
}

func (e *env) waitSummary(t *testing.T, ok func(Summary) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(e.summary(t)) {
		if time.Now().After(deadline) {
			t.Fatalf("summary %+v never matched", e.summary(t))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// started waits for the first pass of a publisher over an empty table.
func (e *env) started(t *testing.T) {
	t.Helper()
	e.waitSummary(t, func(s Summary) bool { return !s.UpdatedAt.IsZero() })
}

func (e *env) aggregate(t *testing.T, metric string, hour time.Time) map[string]any {
	t.Helper()
	b, _, err := e.bucket.Get(context.Background(), Key(metric, hour, "json"))
	if err != nil {
		t.Fatalf("aggregate %s %s: %v", metric, hour, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPublishesTouchedAggregates(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.run(t)
	e.started(t)
	e.insert(t, rec{"a", "cpu", 1, h.Add(time.Minute)}, rec{"b", "cpu", 3, h.Add(59 * time.Minute)}, rec{"c", "cpu", 10, h.Add(time.Hour)},
		rec{"d", "m/../x", -2.5, h})
	e.waitRecords(t, 4)
	got := e.aggregate(t, "cpu", h)
	if got["metric"] != "cpu" || got["hour"] != "2026-11-24T10" || got["count"] != 2.0 || got["sum"] != 4.0 || got["min"] != 1.0 || got["max"] != 3.0 || got["mean"] != 2.0 {
		t.Fatalf("cpu 10h = %v", got)
	}
	if got := e.aggregate(t, "cpu", h.Add(time.Hour)); got["count"] != 1.0 || got["sum"] != 10.0 {
		t.Fatalf("cpu 11h = %v", got)
	}
	if got := e.aggregate(t, "m/../x", h); got["metric"] != "m/../x" || got["min"] != -2.5 {
		t.Fatalf("hostile metric = %v", got)
	}
	csv, _, err := e.bucket.Get(context.Background(), Key("cpu", h, "csv"))
	if err != nil || string(csv) != "metric,hour,count,sum,min,max,mean\ncpu,2026-11-24T10,2,4,1,3,2\n" {
		t.Fatalf("csv = %q %v", csv, err)
	}
	s := e.summary(t)
	if s.Groups["cpu"] != 3 || s.Groups["m/../x"] != 1 || s.GroupBy != "metric" {
		t.Fatalf("summary %+v", s)
	}
	// The summary is written before the pass purges and reports its ids:
	// wait for the report, which comes last.
	var purged string
	var gotIDs int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		e.mu.Lock()
		purged, gotIDs = strings.Join(e.purged, " "), len(e.ids)
		e.mu.Unlock()
		if gotIDs >= 4 || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(purged, BucketTag("cpu", h)) || !strings.Contains(purged, TagSummary) {
		t.Fatalf("purged %s", purged)
	}
	// Every result file carries its tags, which the origin serves as
	// Surrogate-Key.
	for key, want := range map[string]string{
		Key("cpu", h, "json"): "results metric:cpu hour:cpu/2026-11-24T10",
		Key("cpu", h, "csv"):  "results metric:cpu hour:cpu/2026-11-24T10",
		SummaryKey:            "results summary",
	} {
		a, err := e.bucket.Attributes(context.Background(), key)
		if err != nil || a.Metadata[MetadataSurrogateKey] != want {
			t.Errorf("%s: surrogate key %q (%v), want %q", key, a.Metadata[MetadataSurrogateKey], err, want)
		}
	}
	if tag := BucketTag("m/../x", h); tag != "hour:m%2F..%2Fx/2026-11-24T10" || edge.CheckTag(tag) != nil {
		t.Errorf("hostile metric tag %q", tag)
	}
	if gotIDs != 4 {
		t.Fatalf("OnPublished saw %d ids", gotIDs)
	}
}

func TestDeleteRebuildsAndRestartResumes(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	stop := e.run(t)
	e.insert(t, rec{"a", "cpu", 1, h}, rec{"b", "mem", 2, h})
	e.waitRecords(t, 2)
	stop()
	// While stopped: more rows, and a delete that empties a bucket.
	e.insert(t, rec{"c", "cpu", 5, h})
	if _, err := e.db.Exec(`DELETE FROM records WHERE id = 'b'`); err != nil {
		t.Fatal(err)
	}
	e.run(t)
	e.waitSummary(t, func(s Summary) bool { return s.Groups["cpu"] == 2 && s.Groups["mem"] == 0 })
	if got := e.aggregate(t, "cpu", h); got["count"] != 2.0 || got["max"] != 5.0 {
		t.Fatalf("cpu = %v", got)
	}
	if ok, _ := e.bucket.Exists(context.Background(), Key("mem", h, "json")); ok {
		t.Fatal("the emptied bucket's file is still published")
	}
	if s := e.summary(t); s.Groups["mem"] != 0 || s.Groups["cpu"] != 2 {
		t.Fatalf("summary %+v", s)
	}
}

func TestAggregateMean(t *testing.T) {
	if m := (Aggregate{}).Mean(); m != 0 || math.IsNaN(m) {
		t.Fatal(m)
	}
	if m := (Aggregate{Count: 4, Sum: 10}).Mean(); m != 2.5 {
		t.Fatal(m)
	}
}

// Publish owns its settings: empty ones take the defaults, and each must
// name a schema field of the right type.
func TestSettings(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name string
		set  config.Publish
		want string
	}{
		{"defaults", config.Publish{}, ""},
		{"group not in schema", config.Publish{GroupBy: "nope"}, `publish.group_by: "nope" must name a string field`},
		{"value not a number", config.Publish{Value: "device"}, `publish.value: "device" must name a number field`},
		{"time not a timestamp", config.Publish{Time: "value"}, `publish.time: "value" must name a required timestamp field`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Settings: tt.set})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s := p.cfg.Settings; s.GroupBy != DefaultGroupBy || s.Value != DefaultValue || s.Time != DefaultTime {
					t.Fatalf("defaults not filled: %+v", s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
		})
	}
}

// Prepare takes the publisher's place in the change feed: records written
// after it are published as changes (told to OnPublished, logged with
// their traces), even when Run starts only later.
func TestPrepareTakesItsPlace(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	p, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Poll: 5 * time.Millisecond,
		OnPublished: func(ids []string) {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				seen[id] = true
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e.insert(t, rec{"early1", "cpu", 1, h}, rec{"early2", "cpu", 2, h})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records written between Prepare and Run were not published as changes: %v", seen)
		}
	}
}

// A bucket whose aggregate cannot be published (two values whose sum is
// +Inf, which ingest refuses but a database may hold) fails alone: the
// other buckets and later batches publish, it is named in Stats with its
// error, kept across a restart, and published once its rows are fixed.
func TestFailingBucketBlocksNothing(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	p, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	e.insert(t, rec{"big1", "cpu", math.MaxFloat64, h}, rec{"big2", "cpu", math.MaxFloat64, h}, rec{"ok1", "mem", 1, h})
	e.waitSummary(t, func(s Summary) bool { return s.Groups["mem"] == 1 })
	waitFailing := func(p *Publisher, n int) []BucketFailure {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			f := p.Stats().Failing
			if len(f) == n || time.Now().After(deadline) {
				if len(f) != n {
					t.Fatalf("failing buckets %+v, want %d", f, n)
				}
				return f
			}
		}
	}
	f := waitFailing(p, 1)
	if f[0].Bucket != "cpu/2026-11-24T10" || !strings.Contains(f[0].Error, "+Inf") || f[0].Attempts < 1 {
		t.Fatalf("failing %+v", f[0])
	}
	// Later batches, other hours of the same group included, still publish.
	e.insert(t, rec{"ok2", "mem", 2, h.Add(time.Hour)}, rec{"ok3", "cpu", 3, h.Add(time.Hour)})
	e.waitSummary(t, func(s Summary) bool { return s.Groups["mem"] == 2 && s.Groups["cpu"] == 1 })
	if ok, _ := e.bucket.Exists(context.Background(), Key("cpu", h, "json")); ok {
		t.Fatal("a non-finite aggregate was published")
	}
	if s := p.Stats(); s.BucketFailures < 1 || !s.FailingSince.IsZero() {
		t.Fatalf("stats %+v", s)
	}
	cancel()
	<-done

	// A restart remembers the failing bucket.
	p2, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	done = make(chan struct{})
	go func() { defer close(done); _ = p2.Run(ctx) }()
	waitFailing(p2, 1)
	// Fixing the rows publishes the bucket and clears the failure.
	if _, err := e.db.Exec(`UPDATE records SET value = 5 WHERE id = 'big2'`); err != nil {
		t.Fatal(err)
	}
	waitFailing(p2, 0)
	e.waitSummary(t, func(s Summary) bool { return s.Groups["cpu"] == 3 })
	if got := e.aggregate(t, "cpu", h); got["count"] != 2.0 || got["max"] != math.MaxFloat64 {
		t.Fatalf("cpu = %v", got)
	}
	// The failure's row goes once the bucket is published.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		err := e.db.QueryRow(`SELECT COUNT(*) FROM ` + FailedTable).Scan(&n)
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d rows (%v)", FailedTable, n, err)
		}
	}
	cancel()
	<-done
}

// TestRetriedBucketCountsItsRecords: records whose bucket failed to be
// written while the rest of their batch (the summary included) was
// published count as published, and move NewestIngested (what freshness
// goes by), when the bucket's retry writes it, with no later change to
// carry them: before, they stayed unpublished in Stats for good, and
// freshness reported their age until newer records came.
func TestRetriedBucketCountsItsRecords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	p, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(rctx) }()
	defer func() { cancel(); <-done }()
	e.started(t)
	// An object where the group's directory goes: its files cannot be
	// written, the summary can.
	blocker := HourlyPrefix + "cpu"
	if err := e.bucket.Put(ctx, blocker, []byte("in the way"), nil); err != nil {
		t.Fatal(err)
	}
	// mem's record first: cpu's are the newest.
	e.insert(t, rec{"m1", "mem", 1, h}, rec{"c1", "cpu", 1, h}, rec{"c2", "cpu", 2, h})
	inserted := time.Now()
	e.waitSummary(t, func(s Summary) bool { return s.Groups["mem"] == 1 })
	wait := func(what string, ok func(Stats) bool) Stats {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			s := p.Stats()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("never: %s (stats %+v)", what, s)
			}
		}
	}
	// The failure is noted before the batch's records are counted: wait
	// for both.
	s := wait("the cpu bucket failing, mem's record published", func(s Stats) bool { return len(s.Failing) == 1 && s.Published >= 1 })
	if s.Published != 1 {
		t.Fatalf("published %d records while cpu's bucket fails, want mem's 1", s.Published)
	}
	if err := e.bucket.Delete(ctx, blocker); err != nil {
		t.Fatal(err)
	}
	memOnly := s.NewestIngested
	s = wait("the retry publishing cpu's records", func(s Stats) bool { return len(s.Failing) == 0 && s.Published == 3 })
	if !s.NewestIngested.After(memOnly) || s.NewestIngested.After(inserted) {
		t.Errorf("NewestIngested %v after the retry, want cpu's newer than mem's %v", s.NewestIngested, memOnly)
	}
	if got := e.aggregate(t, "cpu", h); got["count"] != 2.0 {
		t.Fatalf("cpu = %v", got)
	}
}

// TestTraceTimesThePurge checks that a publish reports its edge purge, with
// its time, the tags purged and its error, to OnTraces: the purge is a
// span of its own in each record's trace.
func TestTraceTimesThePurge(t *testing.T) {
	e := newEnv(t)
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	purgeErr := errors.New("edge unreachable")
	var mu sync.Mutex
	var got []Trace
	var ids []string
	e.runWith(t, func(c *Config) {
		c.Purge = func(ctx context.Context, paths, tags []string) error {
			time.Sleep(5 * time.Millisecond)
			return purgeErr
		}
		c.OnTraces = func(traces []string, tr Trace) {
			mu.Lock()
			got, ids = append(got, tr), append(ids, traces...)
			mu.Unlock()
		}
	})
	e.started(t)
	e.insert(t, rec{"a", "cpu", 1, h}, rec{"b", "mem", 2, h})
	e.waitRecords(t, 2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(ids)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnTraces told %v", ids)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"t-a", "t-b"}) {
		t.Fatalf("traces %v, want t-a t-b", ids)
	}
	for _, tr := range got {
		p := tr.Purge
		if p.Start.IsZero() || p.Start.Before(tr.Start) || p.End.After(tr.End) || p.End.Sub(p.Start) < 5*time.Millisecond {
			t.Errorf("purge %v..%v not within the publish %v..%v, or shorter than the purge took", p.Start, p.End, tr.Start, tr.End)
		}
		if p.Tags < 2 || !errors.Is(p.Err, purgeErr) {
			t.Errorf("purge of %d tags, error %v; want the buckets' and the summary's tags and %v", p.Tags, p.Err, purgeErr)
		}
	}
}
