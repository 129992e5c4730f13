// Package publish is the "publish" function: it follows the changes of the
// publishing cloud's records table, recomputes the aggregates those changes
// touch (per group and UTC hour: count, sum, min, max, mean), writes them as
// JSON and CSV under results/ in that cloud's object store, rewrites
// results/summary.json, and purges them at the edge by tag: every result
// file carries a Surrogate-Key (see Tags) that the origin serves.
//
// It is driven by the database's own change feed (the replicate package's
// source for the dialect), with its position checkpointed in the same
// database after the results are written: at-least-once, and idempotent
// because every write is a full recomputation.
package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/origin"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/retry"
	"github.com/intercloud/intercloud/sqldb"
)

// Paths of the results in the object store.
const (
	ResultsPrefix = "results/"
	HourlyPrefix  = ResultsPrefix + "hourly/"
	SummaryKey    = ResultsPrefix + "summary.json"
	// HourFormat names an hourly bucket.
	HourFormat = "2006-01-02T15"
	// StreamName is the checkpoint name of the publisher's change feed.
	StreamName = "publish"
	// PublishedTable holds the count each published bucket file holds, so
	// the summary counts exactly what the hourly files count.
	PublishedTable = "_ic_published"
)

// Defaults for empty fields of Config.Settings: the default schema's
// fields.
const (
	DefaultGroupBy = "metric"
	DefaultValue   = "value"
	DefaultTime    = "ts"
)

// Config configures a Publisher.
type Config struct {
	DB     *sqldb.DB
	Bucket *objects.Bucket
	Schema config.Schema
	// Settings name the schema's fields the aggregates use: GroupBy a
	// string field, Value a number or integer field, Time a required
	// timestamp field (empty: DefaultGroupBy, DefaultValue, DefaultTime).
	// Settings.Cloud is not used here.
	Settings config.Publish
	// Purge removes paths ("/results/...") and tagged responses from the
	// edge cache; nil skips.
	Purge func(ctx context.Context, paths, tags []string) error
	// OnPublished is called with the ids of the records whose aggregates
	// were just written.
	OnPublished func(ids []string)
	// OnFresh, when set, is told for each record just published how long
	// ago it was acknowledged (its _ingested_at): the end-to-end
	// freshness.
	OnFresh func(ages []time.Duration)
	// OnTraces, when set, is told the trace ids of the records just
	// published (results written and purged at the edge), with when that
	// publish started and ended, for their spans.
	OnTraces  func(traces []string, start, end time.Time)
	BatchSize int           // changes per pass (default 5000)
	Poll      time.Duration // default 50ms
	Logger    *slog.Logger
}

// Aggregate is one published hourly aggregate.
type Aggregate struct {
	Group string
	Hour  time.Time
	Count int64
	Sum   float64
	Min   float64
	Max   float64
}

// Mean is Sum/Count.
func (a Aggregate) Mean() float64 {
	if a.Count == 0 {
		return 0
	}
	return a.Sum / float64(a.Count)
}

// Publisher runs the publish function.
type Publisher struct {
	cfg       Config
	table     sqldb.Table
	published sqldb.Table
	log       *slog.Logger

	// pass serialises the passes that write results: the change feed's
	// and the retries of failed buckets.
	pass sync.Mutex

	mu     sync.Mutex
	stats  Stats
	failed map[bucketKey]*BucketFailure
	// failedLoaded: FailedTable was read into failed.
	failedLoaded bool
}

// New returns a Publisher; it starts nothing.
func New(cfg Config) (*Publisher, error) {
	if cfg.DB == nil || cfg.Bucket == nil {
		return nil, errors.New("publish: a database and a bucket are required")
	}
	if err := checkSettings(cfg.Schema, &cfg.Settings); err != nil {
		return nil, err
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 5000
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Publisher{cfg: cfg, table: record.Table(cfg.Schema), log: cfg.Logger, failed: map[bucketKey]*BucketFailure{},
		published: sqldb.Table{Name: PublishedTable, PrimaryKey: []string{"bucket"}, Columns: []sqldb.Column{
			{Name: "bucket", Type: sqldb.Type{Kind: sqldb.KindString, Length: 80}},
			{Name: "grp", Type: sqldb.Type{Kind: sqldb.KindText}},
			{Name: "records", Type: sqldb.Type{Kind: sqldb.KindInt}},
		}},
	}, nil
}

// checkSettings fills the empty settings with their defaults and checks
// that each names a schema field of the right type.
func checkSettings(schema config.Schema, s *config.Publish) error {
	if s.GroupBy == "" {
		s.GroupBy = DefaultGroupBy
	}
	if s.Value == "" {
		s.Value = DefaultValue
	}
	if s.Time == "" {
		s.Time = DefaultTime
	}
	var errs []error
	if f, ok := schema.Field(s.GroupBy); !ok || f.Type != config.TypeString {
		errs = append(errs, fmt.Errorf("publish.group_by: %q must name a string field of the schema", s.GroupBy))
	}
	if f, ok := schema.Field(s.Value); !ok || (f.Type != config.TypeNumber && f.Type != config.TypeInteger) {
		errs = append(errs, fmt.Errorf("publish.value: %q must name a number field of the schema", s.Value))
	}
	if f, ok := schema.Field(s.Time); !ok || f.Type != config.TypeTimestamp || !f.Required {
		errs = append(errs, fmt.Errorf("publish.time: %q must name a required timestamp field of the schema", s.Time))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("publish: config: %w", err)
	}
	return nil
}

// Prepare creates the records table (if the loader has not), its change
// capture and the checkpoint table, and takes the publisher's place in the
// change feed: on the first run (no checkpoint) it publishes what the
// table holds and starts from the end of the feed. Call it before anything
// writes, so every later record is published as a change, with its trace.
func (p *Publisher) Prepare(ctx context.Context) error {
	for _, t := range []sqldb.Table{p.table, p.published, failedTable()} {
		if err := p.cfg.DB.EnsureTable(ctx, t); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	if ix, ok := p.cfg.DB.Dialect.(sqldb.Indexer); ok {
		for _, stmt := range ix.CreateIndex(p.table.Name, "ix_"+p.table.Name+"_publish", []string{p.cfg.Settings.GroupBy, p.cfg.Settings.Time}) {
			if _, err := p.cfg.DB.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("publish: index: %w", err)
			}
		}
	}
	if err := replicate.Prepare(ctx, p.cfg.DB, []string{p.table.Name}, p.log); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := replicate.EnsureCheckpoints(ctx, p.cfg.DB); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	src, _, err := p.open(ctx)
	if err != nil {
		return err
	}
	return src.Close()
}

// Stats say how publishing goes.
type Stats struct {
	// Published counts the records whose aggregates were written.
	Published int64 `json:"published"`
	// FailingSince is when publishing started to fail; zero while it works.
	FailingSince time.Time `json:"failing_since,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	// BucketFailures counts the failed attempts at single buckets.
	BucketFailures int64 `json:"bucket_failures"`
	// Failing are the buckets whose results are not published, each
	// retried on its own with backoff while the others go on.
	Failing []BucketFailure `json:"failing_buckets,omitempty"`
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() Stats {
	failing := p.FailingBuckets()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	if len(failing) > 0 {
		s.Failing = failing
	}
	return s
}

// retryPolicy is publish's backoff between failed runs of the feed.
var retryPolicy = retry.Policy{Base: 100 * time.Millisecond, Max: 10 * time.Second}

// Run follows the change feed until ctx is cancelled. On its first run
// without Prepare it publishes everything already in the table. A failure (the database or
// the store down) is retried with capped, jittered backoff for as long as
// it takes: publishing is a recomputation, nothing is ever given up.
func (p *Publisher) Run(ctx context.Context) error {
	rctx, stop := context.WithCancel(ctx)
	var retries sync.WaitGroup
	retries.Go(func() { p.retryFailed(rctx) })
	defer retries.Wait()
	defer stop()
	failures := 0
	for {
		published := p.Stats().Published
		err := p.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		p.mu.Lock()
		if p.stats.Published > published {
			failures = 0
			p.stats.FailingSince = time.Time{}
		}
		if p.stats.FailingSince.IsZero() {
			p.stats.FailingSince = now
		}
		p.stats.LastError, p.stats.LastErrorAt = err.Error(), now
		since := p.stats.FailingSince
		p.mu.Unlock()
		failures++
		delay := retryPolicy.Delay(failures)
		p.log.Warn("publish failed; retrying", "err", err, "transient", retry.Transient(err),
			"failing_for", now.Sub(since).Round(time.Millisecond).String(), "retry_in", delay.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

func (p *Publisher) run(ctx context.Context) error {
	src, pos, err := p.open(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	p.mu.Lock()
	p.stats.FailingSince = time.Time{}
	p.mu.Unlock()
	return src.Stream(ctx, pos, p.streamOptions(), p.handle)
}

// open opens the change feed and returns it with the position to read
// from. On the first run (no checkpoint) it publishes everything already
// in the table and starts from the end of the feed.
func (p *Publisher) open(ctx context.Context) (replicate.Source, replicate.Position, error) {
	db := p.cfg.DB
	src, err := replicate.OpenSource(ctx, db, replicate.SourceConfig{Name: StreamName, Tables: []string{p.table.Name}, Logger: p.log})
	if err != nil {
		return nil, "", fmt.Errorf("publish: %w", err)
	}
	if err := p.prepareFailed(ctx); err != nil {
		src.Close()
		return nil, "", err
	}
	cp, err := replicate.LoadCheckpoint(ctx, db, db.Dialect, StreamName)
	if err == nil && cp.Position == "" {
		p.pass.Lock()
		defer p.pass.Unlock()
		if cp.Position, err = src.Current(ctx); err == nil {
			if err = p.Rebuild(ctx); err == nil {
				err = p.saveCheckpoint(ctx, cp.Position)
			}
		}
	}
	if err != nil {
		src.Close()
		return nil, "", fmt.Errorf("publish: %w", err)
	}
	return src, cp.Position, nil
}

func (p *Publisher) streamOptions() replicate.StreamOptions {
	return replicate.StreamOptions{Tables: []string{p.table.Name}, MaxBatch: p.cfg.BatchSize, Poll: p.cfg.Poll}
}

// handle publishes one batch, then checkpoints it.
func (p *Publisher) handle(ctx context.Context, b replicate.Batch) error {
	p.pass.Lock()
	defer p.pass.Unlock()
	if err := p.apply(ctx, b); err != nil {
		return err
	}
	return p.saveCheckpoint(ctx, b.Position)
}

func (p *Publisher) saveCheckpoint(ctx context.Context, pos replicate.Position) error {
	return p.cfg.DB.Tx(ctx, func(tx *sql.Tx) error {
		return replicate.SaveCheckpoint(ctx, tx, p.cfg.DB.Dialect, StreamName, replicate.Checkpoint{Position: pos, Phase: replicate.PhaseCDC})
	})
}

type bucketKey struct {
	group string
	hour  time.Time
}

// apply recomputes every aggregate a batch touched.
func (p *Publisher) apply(ctx context.Context, b replicate.Batch) error {
	start := time.Now()
	touched := map[bucketKey]bool{}
	var ids []string
	var acked []time.Time
	idBucket := map[string]bucketKey{}
	traces := map[string]bool{}
	rebuild := false
	for _, c := range b.Changes {
		if c.Table != p.table.Name {
			continue
		}
		if c.Op == replicate.OpDelete {
			rebuild = true // the deleted row's bucket is unknown
			continue
		}
		g, _ := c.Row[p.cfg.Settings.GroupBy].(string)
		ts, err := asTime(c.Row[p.cfg.Settings.Time])
		if err != nil {
			p.log.Warn("change without a usable time; skipped", "key", fmt.Sprint(c.Key), "err", err)
			continue
		}
		k := bucketKey{g, ts.Truncate(time.Hour)}
		touched[k] = true
		if id, ok := c.Row[record.ColID].(string); ok {
			ids = append(ids, id)
			idBucket[id] = k
		}
		if at, err := asTime(c.Row[record.ColIngestedAt]); err == nil && !at.IsZero() {
			acked = append(acked, at)
		}
		if c.TraceID != "" {
			traces[c.TraceID] = true
		}
	}
	if rebuild {
		if err := p.Rebuild(ctx); err != nil {
			return err
		}
	} else if len(touched) > 0 {
		keys := make([]bucketKey, 0, len(touched))
		for k := range touched {
			keys = append(keys, k)
		}
		failed, err := p.publishBuckets(ctx, keys)
		if err != nil {
			return err
		}
		if len(failed) > 0 { // their records are not published yet
			ids = slices.DeleteFunc(ids, func(id string) bool { _, ok := failed[idBucket[id]]; return ok })
		}
	}
	if len(ids) > 0 {
		p.mu.Lock()
		p.stats.Published += int64(len(ids))
		p.stats.FailingSince = time.Time{}
		p.mu.Unlock()
		p.log.InfoContext(ctx, "aggregates published", "records", len(ids), "buckets", len(touched),
			"trace_id", joinKeys(traces), "ms", time.Since(start).Milliseconds())
		if p.cfg.OnPublished != nil {
			p.cfg.OnPublished(ids)
		}
		if p.cfg.OnTraces != nil && len(traces) > 0 {
			p.cfg.OnTraces(strings.Fields(joinKeys(traces)), start, time.Now())
		}
		if p.cfg.OnFresh != nil && len(acked) > 0 {
			now := time.Now()
			ages := make([]time.Duration, len(acked))
			for i, at := range acked {
				ages[i] = max(0, now.Sub(at))
			}
			p.cfg.OnFresh(ages)
		}
	}
	return nil
}

// publishBuckets recomputes and writes the aggregates of keys, then the
// counts and the summary, and purges them at the edge. A bucket that fails
// (its aggregate cannot be computed or written) is kept aside and retried
// on its own (see FailedTable); only a failure of the database or of the
// summary fails the pass. The caller holds p.pass.
func (p *Publisher) publishBuckets(ctx context.Context, keys []bucketKey) (failed map[bucketKey]error, err error) {
	tags := make([]string, 0, len(keys)+1)
	aggs := make([]Aggregate, 0, len(keys))
	worked := make([]bucketKey, 0, len(keys))
	failed = map[bucketKey]error{}
	for _, k := range keys {
		a, err := p.compute(ctx, k)
		if err == nil {
			_, err = p.write(ctx, k, a)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			failed[k] = err
			continue
		}
		tags = append(tags, BucketTag(k.group, k.hour))
		aggs = append(aggs, a)
		worked = append(worked, k)
	}
	if err := p.recordCounts(ctx, false, aggs); err != nil {
		return nil, err
	}
	if _, err := p.writeSummary(ctx); err != nil {
		return nil, err
	}
	if err := p.noteFailures(ctx, failed, worked); err != nil {
		return nil, err
	}
	p.purge(ctx, append(tags, TagSummary))
	return failed, nil
}

// purge drops the edge's copies of the result files that carry tags.
func (p *Publisher) purge(ctx context.Context, tags []string) {
	if p.cfg.Purge == nil || len(tags) == 0 {
		return
	}
	if err := p.cfg.Purge(ctx, nil, tags); err != nil {
		// Freshness bounds staleness; a failed purge is not worth redoing
		// the batch for.
		p.log.Warn("edge purge failed; cached copies expire by their max-age", "tags", len(tags), "err", err)
	}
}

// Tags of the result files (their Surrogate-Key): every file has
// TagResults; an hourly file also has its MetricTag and BucketTag (shared
// by its JSON and CSV), the summary TagSummary.
const (
	TagResults = "results"
	TagSummary = "summary"
	// MetadataSurrogateKey is the object metadata the origin serves as
	// the Surrogate-Key header.
	MetadataSurrogateKey = origin.MetadataSurrogateKey
)

// MetricTag tags every hourly file of a group.
func MetricTag(group string) string { return "metric:" + PathSegment(group) }

// BucketTag tags the files of one group and hour.
func BucketTag(group string, hour time.Time) string {
	return "hour:" + PathSegment(group) + "/" + hour.UTC().Format(HourFormat)
}

// Tags returns the Surrogate-Key value of a group's hourly files.
func Tags(group string, hour time.Time) string {
	return strings.Join([]string{TagResults, MetricTag(group), BucketTag(group, hour)}, " ")
}

func (p *Publisher) compute(ctx context.Context, k bucketKey) (Aggregate, error) {
	db := p.cfg.DB
	d := db.Dialect
	s := p.cfg.Settings
	tcol, _ := p.table.Column(s.Time)
	from, err := d.Value(tcol.Type, k.hour)
	if err != nil {
		return Aggregate{}, err
	}
	to, err := d.Value(tcol.Type, k.hour.Add(time.Hour))
	if err != nil {
		return Aggregate{}, err
	}
	v := d.Quote(s.Value)
	q := fmt.Sprintf("SELECT COUNT(*), COALESCE(SUM(%s), 0), COALESCE(MIN(%s), 0), COALESCE(MAX(%s), 0) FROM %s WHERE %s = %s AND %s >= %s AND %s < %s",
		v, v, v, d.Quote(p.table.Name), d.Quote(s.GroupBy), d.Placeholder(1), d.Quote(s.Time), d.Placeholder(2), d.Quote(s.Time), d.Placeholder(3))
	a := Aggregate{Group: k.group, Hour: k.hour}
	if err := db.QueryRowContext(ctx, q, k.group, from, to).Scan(&a.Count, &a.Sum, &a.Min, &a.Max); err != nil {
		return Aggregate{}, fmt.Errorf("publish: aggregate %s %s: %w", k.group, k.hour.Format(HourFormat), err)
	}
	return a, nil
}

// Key returns the object key of a bucket's JSON aggregate.
func Key(group string, hour time.Time, ext string) string {
	return HourlyPrefix + PathSegment(group) + "/" + hour.UTC().Format(HourFormat) + "." + ext
}

// PathSegment escapes a group value into one safe path segment: letters,
// digits, '-', '_' and '.' stay; everything else is percent-encoded, and so
// are the dots of a segment made only of dots.
func PathSegment(s string) string {
	if s == "" {
		return "%00"
	}
	var b strings.Builder
	onlyDots := strings.Trim(s, ".") == ""
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' && !onlyDots {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// write stores (or, for an empty bucket, removes) one aggregate's files.
func (p *Publisher) write(ctx context.Context, k bucketKey, a Aggregate) ([]string, error) {
	jk, ck := Key(k.group, k.hour, "json"), Key(k.group, k.hour, "csv")
	if a.Count == 0 {
		for _, key := range []string{jk, ck} {
			if err := p.cfg.Bucket.Delete(ctx, key); err != nil && !errors.Is(err, objects.ErrNotFound) {
				return nil, fmt.Errorf("publish: %w", err)
			}
		}
		return []string{jk, ck}, nil
	}
	js, cs, err := p.encode(a)
	if err != nil {
		return nil, err
	}
	md := map[string]string{MetadataSurrogateKey: Tags(k.group, k.hour)}
	if err := p.cfg.Bucket.Put(ctx, jk, js, &objects.PutOptions{ContentType: "application/json", Metadata: md}); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := p.cfg.Bucket.Put(ctx, ck, cs, &objects.PutOptions{ContentType: "text/csv", Metadata: md}); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return []string{jk, ck}, nil
}

func (p *Publisher) encode(a Aggregate) (js, cs []byte, err error) {
	g := p.cfg.Settings.GroupBy
	js, err = json.Marshal(map[string]any{
		g: a.Group, "hour": a.Hour.UTC().Format(HourFormat),
		"count": a.Count, "sum": a.Sum, "min": a.Min, "max": a.Max, "mean": a.Mean(),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("publish: encode: %w", err)
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	_ = w.Write([]string{g, "hour", "count", "sum", "min", "max", "mean"})
	_ = w.Write([]string{csvSafe(a.Group), a.Hour.UTC().Format(HourFormat), strconv.FormatInt(a.Count, 10), f(a.Sum), f(a.Min), f(a.Max), f(a.Mean())})
	w.Flush()
	return js, buf.Bytes(), w.Error()
}

// csvSafe defuses spreadsheet formula injection in a user-supplied value.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// recordCounts stores the counts of the bucket files just written; with
// replace, they are all the buckets there are.
func (p *Publisher) recordCounts(ctx context.Context, replace bool, aggs []Aggregate) error {
	db := p.cfg.DB
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if replace {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+db.Dialect.Quote(PublishedTable)); err != nil {
				return err
			}
		}
		const per = 500
		for i := 0; i < len(aggs); i += per {
			chunk := aggs[i:min(len(aggs), i+per)]
			args := make([]any, 0, 3*len(chunk))
			for _, a := range chunk {
				args = append(args, bucketID(a.Group, a.Hour), a.Group, a.Count)
			}
			if _, err := tx.ExecContext(ctx, db.Dialect.Upsert(p.published, len(chunk)), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publish: record counts: %w", err)
	}
	return nil
}

// bucketID names a bucket in PublishedTable: a hash of the group (which may
// be long) and the hour.
func bucketID(group string, hour time.Time) string {
	h := sha256.Sum256([]byte(group))
	return hex.EncodeToString(h[:16]) + "/" + hour.UTC().Format(HourFormat)
}

// Summary is results/summary.json.
type Summary struct {
	Records   int64            `json:"records"`
	Groups    map[string]int64 `json:"groups"`
	GroupBy   string           `json:"group_by"`
	UpdatedAt time.Time        `json:"updated_at"`
}

func (p *Publisher) writeSummary(ctx context.Context) (string, error) {
	db := p.cfg.DB
	d := db.Dialect
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s, SUM(%s) FROM %s GROUP BY %s",
		d.Quote("grp"), d.Quote("records"), d.Quote(PublishedTable), d.Quote("grp")))
	if err != nil {
		return "", fmt.Errorf("publish: summary: %w", err)
	}
	defer rows.Close()
	s := Summary{Groups: map[string]int64{}, GroupBy: p.cfg.Settings.GroupBy, UpdatedAt: time.Now().UTC()}
	for rows.Next() {
		var name sql.NullString
		var n sql.NullInt64
		if err := rows.Scan(&name, &n); err != nil {
			return "", fmt.Errorf("publish: summary: %w", err)
		}
		if n.Int64 > 0 {
			s.Groups[name.String] += n.Int64
			s.Records += n.Int64
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("publish: summary: %w", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("publish: summary: %w", err)
	}
	md := map[string]string{MetadataSurrogateKey: TagResults + " " + TagSummary}
	if err := p.cfg.Bucket.Put(ctx, SummaryKey, b, &objects.PutOptions{ContentType: "application/json", Metadata: md}); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	return SummaryKey, nil
}

// Rebuild recomputes every aggregate from the table and removes result
// files of buckets that no longer have rows.
func (p *Publisher) Rebuild(ctx context.Context) error {
	db := p.cfg.DB
	d := db.Dialect
	s := p.cfg.Settings
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s, %s, %s FROM %s", d.Quote(s.GroupBy), d.Quote(s.Time), d.Quote(s.Value), d.Quote(p.table.Name)))
	if err != nil {
		return fmt.Errorf("publish: rebuild: %w", err)
	}
	aggs := map[bucketKey]*Aggregate{}
	for rows.Next() {
		var g sql.NullString
		var ts any
		var v sql.NullFloat64
		if err := rows.Scan(&g, &ts, &v); err != nil {
			rows.Close()
			return fmt.Errorf("publish: rebuild: %w", err)
		}
		t, err := asTime(ts)
		if err != nil {
			continue
		}
		k := bucketKey{g.String, t.Truncate(time.Hour)}
		a := aggs[k]
		if a == nil {
			a = &Aggregate{Group: k.group, Hour: k.hour, Min: math.Inf(1), Max: math.Inf(-1)}
			aggs[k] = a
		}
		a.Count++
		a.Sum += v.Float64
		a.Min = math.Min(a.Min, v.Float64)
		a.Max = math.Max(a.Max, v.Float64)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("publish: rebuild: %w", err)
	}
	keep := map[string]bool{}
	all := make([]Aggregate, 0, len(aggs))
	keys := make([]bucketKey, 0, len(aggs))
	for k := range aggs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].group < keys[j].group || keys[i].group == keys[j].group && keys[i].hour.Before(keys[j].hour)
	})
	failed := map[bucketKey]error{}
	for _, k := range keys {
		written, err := p.write(ctx, k, *aggs[k])
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Keep what is published of it; it is retried on its own.
			failed[k] = err
			keep[Key(k.group, k.hour, "json")], keep[Key(k.group, k.hour, "csv")] = true, true
			continue
		}
		for _, w := range written {
			keep[w] = true
		}
		all = append(all, *aggs[k])
	}
	if err := p.recordCounts(ctx, true, all); err != nil {
		return err
	}
	var worked []bucketKey
	p.mu.Lock()
	for k := range p.failed {
		if _, ok := failed[k]; !ok {
			worked = append(worked, k)
		}
	}
	p.mu.Unlock()
	if err := p.noteFailures(ctx, failed, worked); err != nil {
		return err
	}
	var stale []string
	if err := p.cfg.Bucket.List(ctx, HourlyPrefix, func(o objects.Object) error {
		if !keep[o.Key] {
			stale = append(stale, o.Key)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("publish: rebuild: %w", err)
	}
	for _, k := range stale {
		if err := p.cfg.Bucket.Delete(ctx, k); err != nil && !errors.Is(err, objects.ErrNotFound) {
			return fmt.Errorf("publish: rebuild: %w", err)
		}
	}
	if _, err := p.writeSummary(ctx); err != nil {
		return err
	}
	p.log.Info("aggregates rebuilt", "buckets", len(aggs), "removed", len(stale))
	p.purge(ctx, []string{TagResults})
	return nil
}

// asTime reads a timestamp column value as a driver returns it.
func asTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		return time.Parse(time.RFC3339Nano, x)
	case []byte:
		return time.Parse(time.RFC3339Nano, string(x))
	}
	return time.Time{}, fmt.Errorf("publish: %T is not a timestamp", v)
}

func joinKeys(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}
