// Package publish is the "publish" function: it follows the changes of the
// publishing cloud's records table, recomputes the aggregates those changes
// touch (per group and UTC hour: count, sum, min, max, mean), writes them as
// JSON and CSV under results/ in that cloud's object store, rewrites
// results/summary.json, and purges them at the edge by tag: every result
// file carries a Surrogate-Key (see Tags) that the origin serves.
//
// It is driven by the database's own change feed (the replicate package's
// source for the dialect), with its position checkpointed in the same
// database after the results are written: at-least-once.
//
// # Incremental aggregates
//
// A change batch costs O(changes), not O(bucket): the publisher keeps, in
// the same database, each record's contribution (RowsTable: its bucket and
// value) and each bucket's mergeable state (BucketsTable: count, sum, min,
// max). A batch looks up the old contributions of the records it changed,
// subtracts them from their buckets and adds the new ones, all in one
// transaction, then rewrites only the touched buckets' files. Applying a
// change twice changes nothing (the record's contribution is already the
// new one), so a batch replayed after a crash is exact. Min and max are
// exact too: when a removed or changed value was its bucket's min or max,
// that bucket's extremes are read again from its contributions (an index
// on the bucket, carrying the value where the dialect has covering
// indexes; on bucket, id and value on MySQL), never from the whole
// table. Only Rebuild recomputes everything from the records table.
//
// On PostgreSQL the contributions table is UNLOGGED: its writes skip the
// write-ahead log, so they cost about half as much and no walsender (the
// publisher's own feed, the reverse stream) decodes them. A crash of the
// server (or a failover to a standby) empties it; the marker row that
// Rebuild writes with the contributions (in RowsMarkerTable, unlogged
// too, so emptied with it, and outside the records' ids, so no record
// can stand for it) goes with them, the batch that finds it gone fails,
// and the next run rebuilds the state from the records table, so nothing
// is counted twice or lost. New contributions are inserted there plainly
// (the batch has just read that they are absent), not by a speculative
// ON CONFLICT upsert.
//
// # Coalesced writes
//
// While the feed is behind (a batch was full, so more is waiting, or its
// oldest record was acknowledged more than 4 × Config.Coalesce ago), the
// aggregates of each batch are applied in the database at once, but the
// touched buckets' files are written for several batches together, at
// most Config.Coalesce (default 250 ms) after the first of them, or once
// 4 × BatchSize records are held: a bucket busy in every batch is written
// once, not once per batch. How long files wait grows with how far
// behind the feed is: Coalesce after a full batch; after one that is not
// full, nothing while its oldest record is under 4 × Coalesce old, then
// in proportion up to Coalesce at 8 × Coalesce, so a feed slightly behind
// adds little to its records' latency. A batch that finds the feed caught
// up is written at once with whatever is held, unless the files were
// written less than Config.MinInterval (default 200 ms) ago: then at that
// interval after the last write, so a feed that keeps up writes a busy
// bucket's files a few times a second, not once per batch (each write is
// two files, made durable one by one). The checkpoint moves only after
// the files are written, and records count as published (Stats,
// OnPublished, OnFresh) only then, so a crash replays the held batches
// and rewrites their files.
package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/csv"
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
	// Writer names the publisher's database writes (sqldb.WithWriter).
	Writer = "publish"
	// BucketsTable holds each bucket's aggregate state (count, sum, min,
	// max), which is what its files publish; the summary sums its counts.
	BucketsTable = "_ic_publish_buckets"
	// RowsTable holds each published record's contribution: its bucket
	// and value. Rebuild makes it afresh, so a state built by an earlier
	// version (see stateMarker) gets the current layout and indexes.
	RowsTable = "_ic_publish_rows"
	// RowsIndex is RowsTable's index on bucket, id and value, where the
	// dialect has no covering indexes (see RowsCoveringIndex) and is not
	// SQLite (see RowsBucketIndex): MySQL.
	RowsIndex = "ix" + RowsTable + "_bkt_id_val"
	// RowsBucketIndex is RowsTable's index on bucket alone, on SQLite.
	RowsBucketIndex = "ix" + RowsTable + "_bkt"
	// RowsCoveringIndex is RowsTable's index on bucket that carries the
	// value (INCLUDE), where the dialect has covering indexes
	// (PostgreSQL).
	RowsCoveringIndex = "ix" + RowsTable + "_bkt_inc_val"
	// RowsMarkerTable holds, where RowsTable is unlogged (PostgreSQL),
	// one row that says RowsTable holds every contribution: Rebuild
	// writes it with them, and a crash of the server empties both.
	RowsMarkerTable = "_ic_publish_rows_marker"
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
	// published (results written and purged at the edge), with the times
	// of that publish and of its edge purge, for their spans.
	OnTraces func(traces []string, t Trace)
	// Fence, when set, runs inside every transaction that commits the
	// feed's checkpoint, before it: an error (a lease lost to another
	// process) rolls it back, so a deposed publisher moves nothing on.
	Fence func(ctx context.Context, tx *sql.Tx) error
	// SourceMode is how the records table's changes are read (see
	// replicate.Config.SourceMode; "" is replicate.SourceLog).
	SourceMode string
	BatchSize  int           // changes per pass (default 5000)
	Poll       time.Duration // default 50ms
	// Coalesce bounds how long the result files of applied batches may be
	// held back while the feed is behind (see "Coalesced writes");
	// default DefaultCoalesce, negative: every batch is written at once.
	Coalesce time.Duration
	// MinInterval is the least time between two writes of the result
	// files while changes keep coming: the files of a batch applied
	// sooner after the last write are held until then (see "Coalesced
	// writes"); default DefaultMinInterval, negative: none.
	MinInterval time.Duration
	Logger      *slog.Logger
}

// DefaultCoalesce is Config.Coalesce's default.
const DefaultCoalesce = 250 * time.Millisecond

// DefaultMinInterval is Config.MinInterval's default: a feed that keeps
// up writes each busy bucket's files at most five times a second.
const DefaultMinInterval = 200 * time.Millisecond

// heldBehind: a batch whose oldest record was acknowledged longer ago
// than this many Coalesce intervals is behind.
const heldBehind = 4

// heldMax bounds the held records, in batches of BatchSize.
const heldMax = 4

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
	cfg     Config
	table   sqldb.Table
	buckets sqldb.Table
	rows    sqldb.Table
	marker  sqldb.Table
	log     *slog.Logger

	// pass serialises the passes that write results: the change feed's
	// and the retries of failed buckets.
	pass sync.Mutex

	mu     sync.Mutex
	stats  Stats
	failed map[bucketKey]*BucketFailure
	// failedLoaded: FailedTable was read into failed.
	failedLoaded bool
	// lastPurge times the latest purge.
	lastPurge PurgeTrace
	// saved is the checkpoint last saved or loaded.
	saved replicate.SavedPosition

	// held is what was applied but not yet written (guarded by pass).
	held held
	// lastWrite is when held files were last written (guarded by pass).
	lastWrite time.Time
	// bucketIDs caches bucketID for apply (guarded by pass).
	bucketIDs map[bucketKey]string
	// abort ends the current run of the feed with a cause (guarded by
	// pass): a held write that failed fails the run, as a batch's would.
	abort context.CancelCauseFunc
}

// held is the applied batches whose files are not written yet.
type held struct {
	since   time.Time     // when the first of them was applied; zero: none
	hold    time.Duration // how long after since they may wait (holdFor)
	pos     replicate.Position
	aggs    map[bucketKey]Aggregate // the latest state of each touched bucket
	recs    []heldRecord
	traces  map[string]bool
	added   int64
	batches int
}

// heldRecord is one record change of a held batch.
type heldRecord struct {
	id       string
	key      bucketKey // its new bucket
	counted  bool      // it has one (not deleted)
	ingested time.Time
}

// Trace times one publish of a batch of records, for their traces.
type Trace struct {
	// Start and End bound the whole publish: aggregates, files, purge.
	Start, End time.Time
	// Purge is the edge purge within it (zero Start: nothing was purged).
	Purge PurgeTrace
}

// PurgeTrace times one edge purge.
type PurgeTrace struct {
	Start, End time.Time
	// Tags counts the surrogate keys purged.
	Tags int
	// Err is the purge's error (a failed purge does not fail the publish:
	// cached copies expire by their max-age).
	Err error
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
	if cfg.Coalesce == 0 {
		cfg.Coalesce = DefaultCoalesce
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	str := func(n int) sqldb.Type { return sqldb.Type{Kind: sqldb.KindString, Length: n} }
	float := sqldb.Type{Kind: sqldb.KindFloat}
	return &Publisher{cfg: cfg, table: record.Table(cfg.Schema), log: cfg.Logger, failed: map[bucketKey]*BucketFailure{}, bucketIDs: map[bucketKey]string{},
		buckets: sqldb.Table{Name: BucketsTable, PrimaryKey: []string{"bkt"}, Columns: []sqldb.Column{
			{Name: "bkt", Type: str(80)},
			{Name: "grp", Type: sqldb.Type{Kind: sqldb.KindText}},
			{Name: "hour", Type: str(16)},
			{Name: "cnt", Type: sqldb.Type{Kind: sqldb.KindInt}},
			{Name: "total", Type: float},
			{Name: "min_v", Type: float},
			{Name: "max_v", Type: float},
		}},
		// Its columns are never NULL but not declared NOT NULL: SQLite
		// keeps a statement journal (a copy of every page a multi-row
		// statement changes, spilled to a temporary file past 64 KiB) for
		// a statement that may fail midway, which a NOT NULL constraint
		// makes every insert of several rows.
		rows: sqldb.Table{Name: RowsTable, PrimaryKey: []string{"id"}, Columns: []sqldb.Column{
			{Name: "id", Type: str(record.MaxIDLength), Nullable: true},
			{Name: "bkt", Type: str(80), Nullable: true},
			{Name: "val", Type: float, Nullable: true},
		}},
		marker: sqldb.Table{Name: RowsMarkerTable, PrimaryKey: []string{"one"}, Columns: []sqldb.Column{
			{Name: "one", Type: sqldb.Type{Kind: sqldb.KindInt}},
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
	for _, t := range []sqldb.Table{p.table, p.buckets, failedTable()} {
		if err := p.cfg.DB.EnsureTable(ctx, t); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	if err := p.ensureRows(ctx); err != nil {
		return err
	}
	if err := replicate.PrepareMode(ctx, p.cfg.DB, p.cfg.SourceMode, []string{p.table.Name}, p.log); err != nil {
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

// ensureRows creates RowsTable (and, where it is unlogged,
// RowsMarkerTable) and its index.
func (p *Publisher) ensureRows(ctx context.Context) error {
	if p.unloggedRows() {
		if err := p.ensureUnlogged(ctx); err != nil {
			return err
		}
	} else if err := p.cfg.DB.EnsureTable(ctx, p.rows); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	// A bucket's extremes are read again from its contributions alone
	// (the index covers them), and a new contribution must land at the
	// end of its bucket's entries, not at a random place among them, so
	// that the pages inserts touch stay few however large buckets grow.
	// With a covering index the key is the bucket alone and the value is
	// carried: equal keys are kept in the order of the rows' places in
	// the table (PostgreSQL's heap), which is the order they came in.
	// On SQLite the key is the bucket alone too (an entry is the bucket
	// and the row's rowid, in the order rows came in): its entries are
	// a third of the size, and the rare read of a bucket's extremes
	// looks its rows up by rowid. An earlier version's RowsIndex is
	// dropped. Otherwise (MySQL) the time-ordered id comes before the
	// value.
	d := p.cfg.DB.Dialect
	var stmts []string
	switch ix := d.(type) {
	case sqldb.CoveringIndexer:
		stmts = ix.CreateCoveringIndex(RowsTable, RowsCoveringIndex, []string{"bkt"}, []string{"val"})
	case sqldb.Indexer:
		if d.Name() == "sqlite" {
			stmts = append([]string{"DROP INDEX IF EXISTS " + d.Quote(RowsIndex)}, ix.CreateIndex(RowsTable, RowsBucketIndex, []string{"bkt"})...)
		} else {
			stmts = ix.CreateIndex(RowsTable, RowsIndex, []string{"bkt", "id", "val"})
		}
	}
	for _, stmt := range stmts {
		if _, err := p.cfg.DB.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("publish: index: %w", err)
		}
	}
	return nil
}

// ensureUnlogged creates RowsTable and RowsMarkerTable UNLOGGED, on
// PostgreSQL. No WAL for the contributions: writing them costs about half
// as much, and neither walsender (the publisher's feed, the reverse
// stream) decodes them. A crash of the server empties both tables, so the
// state is rebuilt (see stateReady). Either table found logged (as an
// earlier version made RowsTable), or RowsTable found with RowsIndex (an
// earlier version's index, before RowsCoveringIndex), is dropped with the
// other, not converted: ALTER TABLE ... SET UNLOGGED would rewrite every
// row of it, and without the marker the state is rebuilt, which makes
// RowsTable afresh anyway.
func (p *Publisher) ensureUnlogged(ctx context.Context) error {
	db := p.cfg.DB
	d := db.Dialect
	var logged, earlier int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FILTER (WHERE relpersistence <> 'u'), COUNT(*) FILTER (WHERE oid = to_regclass($3)) FROM pg_class WHERE oid IN (to_regclass($1), to_regclass($2), to_regclass($3))",
		d.Quote(RowsTable), d.Quote(RowsMarkerTable), d.Quote(RowsIndex)).Scan(&logged, &earlier)
	if err != nil {
		return fmt.Errorf("publish: %s: %w", RowsTable, err)
	}
	if logged > 0 || earlier > 0 {
		// The marker first: a RowsTable without it is rebuilt.
		for _, t := range []string{RowsMarkerTable, RowsTable} {
			if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+d.Quote(t)); err != nil {
				return fmt.Errorf("publish: drop logged %s: %w", t, err)
			}
		}
	}
	for _, t := range []sqldb.Table{p.rows, p.marker} {
		for _, stmt := range d.CreateTable(t) {
			rest, ok := strings.CutPrefix(stmt, "CREATE TABLE ")
			if !ok {
				return fmt.Errorf("publish: create %s unlogged: unexpected statement %q", t.Name, stmt)
			}
			if _, err := db.ExecContext(ctx, "CREATE UNLOGGED TABLE "+rest); err != nil {
				return fmt.Errorf("publish: create %s: %w", t.Name, err)
			}
		}
	}
	return nil
}

// Stats say how publishing goes.
type Stats struct {
	// Published counts the record changes whose aggregates were written.
	Published int64 `json:"published"`
	// Records is how many records the published aggregates count, as
	// far as this publisher applied them since it started (deletes
	// subtract).
	Records int64 `json:"records"`
	// NewestIngested is the latest ingest time of a record published so
	// far (zero: none yet).
	NewestIngested time.Time `json:"newest_ingested,omitzero"`
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
	ctx = sqldb.WithWriter(ctx, Writer)
	rctx, stop := context.WithCancel(ctx)
	var retries sync.WaitGroup
	retries.Go(func() { p.retryFailed(rctx) })
	retries.Go(func() { p.flushHeld(rctx) })
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
	// What an earlier run held is replayed from the checkpoint.
	rctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	p.pass.Lock()
	p.held = held{}
	p.abort = abort
	p.pass.Unlock()
	src, pos, err := p.open(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	p.mu.Lock()
	p.stats.FailingSince = time.Time{}
	p.mu.Unlock()
	err = src.Stream(rctx, pos, p.streamOptions(), p.handle)
	if cause := context.Cause(rctx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// open opens the change feed and returns it with the position to read
// from. On the first run (no checkpoint) it publishes everything already
// in the table and starts from the end of the feed.
func (p *Publisher) open(ctx context.Context) (replicate.Source, replicate.Position, error) {
	db := p.cfg.DB
	src, err := replicate.OpenSourceMode(ctx, db, p.cfg.SourceMode, replicate.SourceConfig{Name: StreamName, Tables: []string{p.table.Name}, Logger: p.log})
	if err != nil {
		return nil, "", fmt.Errorf("publish: %w", err)
	}
	if err := p.prepareFailed(ctx); err != nil {
		src.Close()
		return nil, "", err
	}
	cp, err := replicate.LoadCheckpoint(ctx, db, db.Dialect, StreamName)
	var ready bool
	if err == nil {
		ready, err = p.stateReady(ctx)
	}
	if err == nil && (cp.Position == "" || !ready) {
		// No checkpoint, or no aggregate state (an earlier version's
		// checkpoint): everything in the table is published from scratch
		// and the feed is followed from its end; changes between the end
		// and the rebuild are applied again, which changes nothing.
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
	p.saved.Set(cp.Position, time.Now())
	return src, cp.Position, nil
}

// streamOptions are the change feed's: the source confirms no more than
// the saved checkpoint, since held batches were accepted unwritten.
func (p *Publisher) streamOptions() replicate.StreamOptions {
	return replicate.StreamOptions{Tables: []string{p.table.Name}, MaxBatch: p.cfg.BatchSize, Poll: p.cfg.Poll,
		Durable: p.saved.Position}
}

// handle applies one batch, then writes its files and checkpoints it, at
// once or coalesced with the next batches while the feed is behind.
func (p *Publisher) handle(ctx context.Context, b replicate.Batch) error {
	p.pass.Lock()
	defer p.pass.Unlock()
	oldest, err := p.apply(ctx, b)
	if err != nil {
		return err
	}
	h := &p.held
	h.pos = b.Position
	now := time.Now()
	// A feed that collapses a key's changes into its latest (SQLite's)
	// makes few changes of a full read of updates: what it read says
	// whether more is waiting.
	full := len(b.Changes) >= p.cfg.BatchSize || b.Read >= p.cfg.BatchSize
	h.hold = p.holdFor(full, oldest, now)
	if gap := p.cfg.MinInterval; gap > 0 && !h.since.IsZero() && !p.lastWrite.IsZero() {
		h.hold = max(h.hold, p.lastWrite.Add(gap).Sub(h.since))
	}
	if now.Sub(h.since) < h.hold && len(h.recs) < heldMax*p.cfg.BatchSize {
		return nil
	}
	return p.flush(ctx)
}

// holdFor is how long after the first held batch the files may wait,
// given the batch just applied: whether it was full (more is waiting: the
// next batch comes at once) and the acknowledgement time of its oldest
// record. A full batch holds for Coalesce. A batch that is not full holds
// only when its records are late, and the longer the later they are:
// nothing up to heldBehind × Coalesce, then growing with the lateness to
// Coalesce at twice that. A feed only slightly behind writes almost at
// once (holding its files would add Coalesce to records already near the
// freshness bound); one far behind saves the writes for the records'
// sake.
func (p *Publisher) holdFor(full bool, oldest, now time.Time) time.Duration {
	c := p.cfg.Coalesce
	switch {
	case c <= 0:
		return 0
	case full:
		return c
	case oldest.IsZero():
		return 0
	}
	behind := heldBehind * c
	late := now.Sub(oldest) - behind
	if late <= 0 {
		return 0
	}
	return min(c, time.Duration(float64(c)*float64(late)/float64(behind)))
}

// flushHeld writes what is held once it has waited its hold (see
// holdFor and Config.MinInterval): for a feed that stops right after a
// held batch. It looks every Poll (at most every Coalesce or
// MinInterval), so a hold ends within a poll of its time.
func (p *Publisher) flushHeld(ctx context.Context) {
	if p.cfg.Coalesce <= 0 && p.cfg.MinInterval <= 0 {
		return
	}
	every := p.cfg.Poll
	for _, d := range []time.Duration{p.cfg.Coalesce, p.cfg.MinInterval} {
		if d > 0 {
			every = min(every, d)
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.pass.Lock()
		if !p.held.since.IsZero() && time.Since(p.held.since) >= p.held.hold {
			if err := p.flush(ctx); err != nil && ctx.Err() == nil && p.abort != nil {
				// Fails the run like a batch's write: retried with
				// backoff, the held batches replayed from the checkpoint.
				p.abort(fmt.Errorf("publish: write held results: %w", err))
			}
		}
		p.pass.Unlock()
	}
}

// flush writes the held buckets' files and the summary, counts their
// records as published and checkpoints the feed. The caller holds p.pass.
func (p *Publisher) flush(ctx context.Context) error {
	h := &p.held
	if h.since.IsZero() { // nothing to write: a batch of other tables' changes
		var err error
		if h.pos != "" {
			err = p.saveCheckpoint(ctx, h.pos)
		}
		p.held = held{}
		return err
	}
	start := h.since
	p.mu.Lock()
	p.lastPurge = PurgeTrace{}
	p.mu.Unlock()
	touched := make([]Aggregate, 0, len(h.aggs))
	for _, a := range h.aggs {
		touched = append(touched, a)
	}
	sort.Slice(touched, func(i, j int) bool {
		if touched[i].Group != touched[j].Group {
			return touched[i].Group < touched[j].Group
		}
		return touched[i].Hour.Before(touched[j].Hour)
	})
	failed, err := p.publishAggs(ctx, touched)
	if err != nil {
		return err
	}
	if err := p.saveCheckpoint(ctx, h.pos); err != nil {
		return err
	}
	p.mu.Lock()
	purged := p.lastPurge
	p.mu.Unlock()
	recs := h.recs
	if len(failed) > 0 { // their records are not published yet
		p.mu.Lock()
		recs = slices.DeleteFunc(recs, func(r heldRecord) bool {
			if _, bad := failed[r.key]; !bad || !r.counted {
				return false
			}
			// Counted when the bucket is written (noteFailures).
			if f := p.failed[r.key]; f != nil {
				f.pending++
				if r.ingested.After(f.newest) {
					f.newest = r.ingested
				}
			}
			return true
		})
		p.mu.Unlock()
	}
	var newest time.Time
	order := make([]string, len(recs))
	for i, r := range recs {
		order[i] = r.id
		if r.ingested.After(newest) {
			newest = r.ingested
		}
	}
	p.mu.Lock()
	p.stats.Published += int64(len(order))
	p.stats.Records += h.added
	if newest.After(p.stats.NewestIngested) {
		p.stats.NewestIngested = newest
	}
	p.stats.FailingSince = time.Time{}
	p.mu.Unlock()
	p.log.InfoContext(ctx, "aggregates published", "records", len(order), "buckets", len(touched), "batches", h.batches,
		"trace_id", joinKeys(h.traces), "ms", time.Since(start).Milliseconds())
	if p.cfg.OnPublished != nil {
		p.cfg.OnPublished(order)
	}
	if p.cfg.OnTraces != nil && len(h.traces) > 0 {
		p.cfg.OnTraces(strings.Fields(joinKeys(h.traces)), Trace{Start: start, End: time.Now(), Purge: purged})
	}
	if p.cfg.OnFresh != nil {
		now := time.Now()
		ages := make([]time.Duration, 0, len(recs))
		for _, r := range recs {
			if !r.ingested.IsZero() {
				ages = append(ages, max(0, now.Sub(r.ingested)))
			}
		}
		if len(ages) > 0 {
			p.cfg.OnFresh(ages)
		}
	}
	p.held = held{}
	p.lastWrite = time.Now()
	return nil
}

func (p *Publisher) saveCheckpoint(ctx context.Context, pos replicate.Position) error {
	err := p.cfg.DB.Tx(ctx, func(tx *sql.Tx) error {
		if p.cfg.Fence != nil {
			if err := p.cfg.Fence(ctx, tx); err != nil {
				return err
			}
		}
		return replicate.SaveCheckpoint(ctx, tx, p.cfg.DB.Dialect, StreamName, replicate.Checkpoint{Position: pos, Phase: replicate.PhaseCDC})
	})
	if err == nil {
		p.saved.Set(pos, time.Now())
	}
	return err
}

type bucketKey struct {
	group string
	hour  time.Time
}

// contribution is what one record adds to its bucket.
type contribution struct {
	bucket string
	key    bucketKey
	value  float64
}

// change is a batch's latest change of one record, with what the record
// contributed before it (read within the transaction).
type change struct {
	id       string
	new      contribution // valid when counted
	counted  bool         // the record now has a contribution
	old      contribution // valid when had; its key is not read
	had      bool         // the record had a contribution
	ingested time.Time
}

// bucketIDsMax bounds the bucket ids apply keeps computed.
const bucketIDsMax = 4096

// cachedBucketID is bucketID, computed once for each bucket while its
// changes keep coming. The caller holds p.pass.
func (p *Publisher) cachedBucketID(k bucketKey) string {
	if id, ok := p.bucketIDs[k]; ok {
		return id
	}
	if len(p.bucketIDs) >= bucketIDsMax {
		clear(p.bucketIDs)
	}
	id := bucketID(k.group, k.hour)
	p.bucketIDs[k] = id
	return id
}

// apply updates the aggregates a batch touched by its rows' contributions
// in the database and adds them to what is held for writing (see flush).
// It returns the ingest time of the batch's oldest record. The caller
// holds p.pass.
func (p *Publisher) apply(ctx context.Context, b replicate.Batch) (time.Time, error) {
	start := time.Now()
	s := p.cfg.Settings
	recs := make([]change, 0, len(b.Changes))
	at := make(map[string]int, len(b.Changes)) // record id → its index in recs
	traces := map[string]bool{}
	lastTrace := ""
	for _, c := range b.Changes {
		if c.Table != p.table.Name || len(c.Key) == 0 {
			continue
		}
		id, ok := keyString(c.Key[0])
		if !ok {
			p.log.Warn("change with an unusable key; skipped", "key", fmt.Sprint(c.Key))
			continue
		}
		i, seen := at[id]
		if !seen {
			i = len(recs)
			at[id] = i
			recs = append(recs, change{id: id})
		}
		r := &recs[i]
		r.counted = false
		if c.TraceID != "" && c.TraceID != lastTrace { // a request's records come together
			traces[c.TraceID] = true
			lastTrace = c.TraceID
		}
		if c.Op == replicate.OpDelete {
			continue
		}
		ts, err := asTime(c.Row[s.Time])
		if err != nil {
			p.log.Warn("change without a usable time; not counted", "key", id, "err", err)
			continue
		}
		g, _ := c.Row[s.GroupBy].(string)
		k := bucketKey{g, ts.Truncate(time.Hour)}
		r.new = contribution{bucket: p.cachedBucketID(k), key: k, value: asFloat(c.Row[s.Value])}
		r.counted = true
		if t, err := asTime(c.Row[record.ColIngestedAt]); err == nil {
			r.ingested = t
		}
	}
	if len(recs) == 0 {
		return time.Time{}, nil
	}
	var touched []Aggregate
	var added int64
	err := p.cfg.DB.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		touched, added, err = p.applyTx(ctx, tx, recs, at)
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("publish: apply: %w", err)
	}
	h := &p.held
	if h.since.IsZero() {
		h.since = start
		h.aggs = map[bucketKey]Aggregate{}
		h.traces = map[string]bool{}
	}
	h.batches++
	h.added += added
	for _, a := range touched {
		h.aggs[bucketKey{a.Group, a.Hour}] = a
	}
	for t := range traces {
		h.traces[t] = true
	}
	var oldest time.Time
	h.recs = slices.Grow(h.recs, len(recs))
	for i := range recs {
		r := &recs[i]
		if !r.ingested.IsZero() && (oldest.IsZero() || r.ingested.Before(oldest)) {
			oldest = r.ingested
		}
		hr := heldRecord{id: r.id, counted: r.counted, ingested: r.ingested}
		if r.counted {
			hr.key = r.new.key
		}
		h.recs = append(h.recs, hr)
	}
	return oldest, nil
}

// applyTx moves the contributions of the changed records (recs, in order;
// at indexes them by id) to their new ones within tx and returns the
// touched buckets' new aggregates (count 0: the bucket is now empty) and
// how many records were added (minus those removed).
func (p *Publisher) applyTx(ctx context.Context, tx *sql.Tx, recs []change, at map[string]int) ([]Aggregate, int64, error) {
	d := p.cfg.DB.Dialect
	for i := range recs {
		recs[i].had = false // a retried transaction reads them again
	}
	if err := p.contributions(ctx, tx, recs, at); err != nil {
		return nil, 0, err
	}
	keys := map[string]bucketKey{}
	for i := range recs {
		if r := &recs[i]; r.counted {
			keys[r.new.bucket] = r.new.key
		}
	}
	for i := range recs {
		if r := &recs[i]; r.had {
			if _, ok := keys[r.old.bucket]; !ok {
				keys[r.old.bucket] = bucketKey{} // filled from the table
			}
		}
	}
	state, err := p.loadBuckets(ctx, tx, keys)
	if err != nil {
		return nil, 0, err
	}
	recheck := map[string]bool{}
	var removed []string
	var upserts []*change
	var added int64
	for i := range recs {
		r := &recs[i]
		o, n := &r.old, &r.new
		if r.had && r.counted && o.bucket == n.bucket && o.value == n.value {
			continue // already counted as it is
		}
		if r.had {
			a := state[o.bucket]
			a.Count--
			a.Sum -= o.value
			if o.value <= a.Min || o.value >= a.Max {
				recheck[o.bucket] = true
			}
			added--
			if !r.counted {
				removed = append(removed, r.id)
			}
		}
		if r.counted {
			a := state[n.bucket]
			if a.Count == 0 && !recheck[n.bucket] {
				a.Min, a.Max = n.value, n.value
			} else {
				a.Min, a.Max = math.Min(a.Min, n.value), math.Max(a.Max, n.value)
			}
			a.Count++
			a.Sum += n.value
			added++
			upserts = append(upserts, r)
		}
	}
	// The contributions first: recomputed extremes read them.
	var args []any
	per := min(500, sqldb.MaxRows(d, 1))
	for chunk := range sqldb.StatementChunks(d, removed, per) {
		args = args[:0]
		for _, id := range chunk {
			args = append(args, id)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s IN (%s)", d.Quote(RowsTable), d.Quote("id"), sqldb.Placeholders(d, 1, len(chunk))), args...); err != nil {
			return nil, 0, err
		}
	}
	if p.unloggedRows() {
		// New contributions are inserted plainly, three array parameters
		// for the whole batch: no speculative insertion (ON CONFLICT's)
		// for ids just read as absent. Only the publisher holding the
		// lease writes RowsTable, under p.pass, within this transaction.
		var ids, bkts []string
		var vals []float64
		upserts = slices.DeleteFunc(upserts, func(r *change) bool {
			if r.had {
				return false
			}
			ids, bkts, vals = append(ids, r.id), append(bkts, r.new.bucket), append(vals, r.new.value)
			return true
		})
		if len(ids) > 0 {
			if _, err := tx.ExecContext(ctx, pgInsertContributions(d), pgTextArray(ids), pgTextArray(bkts), pgFloatArray(vals)); err != nil {
				return nil, 0, fmt.Errorf("contributions: %w", err)
			}
		}
	}
	per = min(500, sqldb.MaxRows(d, 3))
	for chunk := range sqldb.StatementChunks(d, upserts, per) {
		args = args[:0]
		for _, r := range chunk {
			args = append(args, r.id, r.new.bucket, r.new.value)
		}
		if _, err := tx.ExecContext(ctx, d.Upsert(p.rows, len(chunk)), args...); err != nil {
			return nil, 0, err
		}
	}
	bks := make([]string, 0, len(state))
	for bk := range state {
		bks = append(bks, bk)
	}
	sort.Strings(bks)
	out := make([]Aggregate, 0, len(bks))
	var empty []string
	var keep []Aggregate
	for _, bk := range bks {
		a := state[bk]
		if a.Count <= 0 {
			*a = Aggregate{Group: a.Group, Hour: a.Hour}
			empty = append(empty, bk)
		} else if recheck[bk] || math.IsInf(a.Sum, 0) || math.IsNaN(a.Sum) {
			// An extreme went, or the running sum overflowed (it cannot
			// come back from ±Inf by subtraction): read them again from
			// the bucket's contributions.
			v := d.Quote("val")
			q := fmt.Sprintf("SELECT MIN(%s), MAX(%s), SUM(%s) FROM %s WHERE %s = %s", v, v, v, d.Quote(RowsTable), d.Quote("bkt"), d.Placeholder(1))
			if err := tx.QueryRowContext(ctx, q, bk).Scan(&a.Min, &a.Max, &a.Sum); err != nil {
				return nil, 0, fmt.Errorf("extremes of %s: %w", bk, err)
			}
		}
		if a.Count > 0 {
			keep = append(keep, *a)
		}
		out = append(out, *a)
	}
	for _, bk := range empty {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s = %s", d.Quote(BucketsTable), d.Quote("bkt"), d.Placeholder(1)), bk); err != nil {
			return nil, 0, err
		}
	}
	if err := p.saveBuckets(ctx, tx, keep); err != nil {
		return nil, 0, err
	}
	return out, added, nil
}

// contributions reads the stored contributions of recs (at indexes them
// by id) into their old and had.
func (p *Publisher) contributions(ctx context.Context, tx *sql.Tx, recs []change, at map[string]int) error {
	d := p.cfg.DB.Dialect
	per := min(500, sqldb.MaxRows(d, 1))
	var args []any
	var q string
	qn := 0
	if d.Name() == "postgres" {
		// One index probe per id, whatever the table's statistics say: a
		// table autovacuum has not analyzed yet (it waits a minute, and
		// RowsTable is new and growing at first) gets "id IN (...)"
		// planned as a scan of the whole table, every batch.
		per, qn = 1000, -1
	}
	// Where RowsTable is unlogged, its marker (RowsMarkerTable's row,
	// a NULL id) is read with the first ids: without it the table was
	// emptied by a crash, and what it lacks would be counted again.
	marked := !p.unloggedRows()
	for chunk := range sqldb.StatementChunks(d, recs, per) {
		args = args[:0]
		if qn < 0 {
			ids := make([]string, len(chunk))
			for i := range chunk {
				ids[i] = chunk[i].id
			}
			q = pgContributionsQuery(d, !marked)
			args = append(args, pgTextArray(ids))
		} else {
			for i := range chunk {
				args = append(args, chunk[i].id)
			}
		}
		if qn >= 0 && qn != len(chunk) {
			q = fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s IN (%s)",
				d.Quote("id"), d.Quote("bkt"), d.Quote("val"), d.Quote(RowsTable), d.Quote("id"), sqldb.Placeholders(d, 1, len(chunk)))
			qn = len(chunk)
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("contributions: %w", err)
		}
		for rows.Next() {
			var id sql.NullString
			var c contribution
			if err := rows.Scan(&id, &c.bucket, &c.value); err != nil {
				rows.Close()
				return fmt.Errorf("contributions: %w", err)
			}
			if !id.Valid {
				marked = true
			} else if i, ok := at[id.String]; ok {
				recs[i].old, recs[i].had = c, true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("contributions: %w", err)
		}
		if !marked {
			return errContributionsLost
		}
	}
	return nil
}

// pgContributionsQuery reads the contributions of the ids in its one
// parameter, a text array, on PostgreSQL: each id is a lookup by the
// primary key (OFFSET 0 keeps the planner from turning the join into a
// hash join over the whole table). With marker, RowsMarkerTable's row
// comes too, as a row whose id is NULL (no contribution has one).
func pgContributionsQuery(d sqldb.Dialect, marker bool) string {
	q := fmt.Sprintf("SELECT r.%[1]s, r.%[2]s, r.%[3]s FROM unnest(%[5]s::text[]) AS k(%[1]s) CROSS JOIN LATERAL (SELECT %[1]s, %[2]s, %[3]s FROM %[4]s WHERE %[1]s = k.%[1]s OFFSET 0) r",
		d.Quote("id"), d.Quote("bkt"), d.Quote("val"), d.Quote(RowsTable), d.Placeholder(1))
	if marker {
		q += " UNION ALL SELECT NULL, '', 0::float8 FROM " + d.Quote(RowsMarkerTable)
	}
	return q
}

// pgInsertContributions inserts the contributions given as three arrays
// (text ids, text buckets, float8 values) on PostgreSQL.
func pgInsertContributions(d sqldb.Dialect) string {
	return fmt.Sprintf("INSERT INTO %s (%s, %s, %s) SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[])",
		d.Quote(RowsTable), d.Quote("id"), d.Quote("bkt"), d.Quote("val"), d.Placeholder(1), d.Placeholder(2), d.Placeholder(3))
}

// pgFloatArray renders fs as a PostgreSQL float8 array literal, each
// value exactly (the shortest form that reads back as it).
func pgFloatArray(fs []float64) string {
	b := make([]byte, 0, 2+len(fs)*12)
	b = append(b, '{')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case math.IsNaN(f):
			b = append(b, "NaN"...)
		case math.IsInf(f, 1):
			b = append(b, "Infinity"...)
		case math.IsInf(f, -1):
			b = append(b, "-Infinity"...)
		default:
			b = strconv.AppendFloat(b, f, 'g', -1, 64)
		}
	}
	b = append(b, '}')
	return string(b)
}

// pgTextArray renders strs as a PostgreSQL text array literal.
func pgTextArray(strs []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range strs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, c := range []byte(s) {
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// loadBuckets reads the state of the named buckets; a bucket not in the
// table starts empty with the group and hour of its key.
func (p *Publisher) loadBuckets(ctx context.Context, tx *sql.Tx, keys map[string]bucketKey) (map[string]*Aggregate, error) {
	d := p.cfg.DB.Dialect
	out := make(map[string]*Aggregate, len(keys))
	names := make([]string, 0, len(keys))
	for bk, k := range keys {
		names = append(names, bk)
		out[bk] = &Aggregate{Group: k.group, Hour: k.hour}
	}
	per := min(500, sqldb.MaxRows(d, 1))
	for chunk := range sqldb.StatementChunks(d, names, per) {
		args := make([]any, len(chunk))
		for j, n := range chunk {
			args[j] = n
		}
		rows, err := tx.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s IN (%s)",
			sqldb.QuoteList(d, p.buckets.ColumnNames()), d.Quote(BucketsTable), d.Quote("bkt"), sqldb.Placeholders(d, 1, len(chunk))), args...)
		if err != nil {
			return nil, fmt.Errorf("buckets: %w", err)
		}
		for rows.Next() {
			var bk, hour string
			var a Aggregate
			if err := rows.Scan(&bk, &a.Group, &hour, &a.Count, &a.Sum, &a.Min, &a.Max); err != nil {
				rows.Close()
				return nil, fmt.Errorf("buckets: %w", err)
			}
			if a.Hour, err = time.Parse(HourFormat, hour); err != nil {
				rows.Close()
				return nil, fmt.Errorf("buckets: %s: %w", bk, err)
			}
			out[bk] = &a
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("buckets: %w", err)
		}
	}
	return out, nil
}

// saveBuckets upserts the state of non-empty buckets.
func (p *Publisher) saveBuckets(ctx context.Context, tx *sql.Tx, aggs []Aggregate) error {
	d := p.cfg.DB.Dialect
	per := min(200, sqldb.MaxRows(d, len(p.buckets.Columns)))
	for chunk := range sqldb.StatementChunks(d, aggs, per) {
		args := make([]any, 0, len(p.buckets.Columns)*len(chunk))
		for _, a := range chunk {
			args = append(args, bucketID(a.Group, a.Hour), a.Group, a.Hour.UTC().Format(HourFormat), a.Count, a.Sum, a.Min, a.Max)
		}
		if _, err := tx.ExecContext(ctx, d.Upsert(p.buckets, len(chunk)), args...); err != nil {
			return fmt.Errorf("buckets: %w", err)
		}
	}
	return nil
}

// stateMarker is the BucketsTable row that says the aggregate state was
// built (by Rebuild) in the current layout; its count is 0, so no summary
// counts it. A state built by an earlier version has another marker, so
// it is built again: "#state" (128-bit bucket ids, RowsTable's columns
// NOT NULL), "#state/2" (RowsTable's marker was a row of it, id "", the
// id a record may have too).
const stateMarker = "#state/3"

// stateReady reports whether the aggregate state was built.
func (p *Publisher) stateReady(ctx context.Context) (bool, error) {
	d := p.cfg.DB.Dialect
	var n int
	err := p.cfg.DB.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s = %s", d.Quote(BucketsTable), d.Quote("bkt"), d.Placeholder(1)), stateMarker).Scan(&n)
	if err == nil && n > 0 && p.unloggedRows() {
		err = p.cfg.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+d.Quote(RowsMarkerTable)).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("publish: state: %w", err)
	}
	return n > 0, nil
}

// errContributionsLost: RowsMarkerTable's row is gone (the server
// crashed and emptied the unlogged tables); the run fails and the next
// one rebuilds the state.
var errContributionsLost = errors.New("publish: the contributions table was emptied (a crash of the server empties an unlogged table): rebuilding the aggregate state")

// unloggedRows reports whether RowsTable is unlogged: on PostgreSQL.
func (p *Publisher) unloggedRows() bool { return p.cfg.DB.Dialect.Name() == "postgres" }

// keyString reads a record id from a change's key; the empty id is one
// a table may hold.
func keyString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	}
	return "", false
}

// asFloat reads a value column as a driver returns it; NULL and values
// that are not numbers count as 0.
func asFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	case int64:
		return float64(x)
	case int:
		return float64(x)
	case int32:
		return float64(x)
	case uint64:
		return float64(x)
	case string:
		f, _ := strconv.ParseFloat(x, 64)
		return f
	case []byte:
		f, _ := strconv.ParseFloat(string(x), 64)
		return f
	case interface{ Float64() (float64, bool) }:
		f, _ := x.Float64()
		return f
	}
	return 0
}

// writeConcurrency bounds the result files written at once: a durable
// write waits mostly on the store (an fsync, a round trip), so they go in
// parallel.
const writeConcurrency = 8

// publishAggs writes the files of aggs, several at a time, then the
// summary (last: once it counts a record, that record's bucket files are
// written), notes the buckets that failed (kept aside and retried on
// their own, see FailedTable) and purges the rest at the edge. Only a
// failure of the summary or of the database fails the pass. The caller
// holds p.pass.
func (p *Publisher) publishAggs(ctx context.Context, aggs []Aggregate) (failed map[bucketKey]error, err error) {
	sem := make(chan struct{}, writeConcurrency)
	errs := make([]error, len(aggs))
	var wg sync.WaitGroup
	for i := range aggs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, errs[i] = p.write(ctx, bucketKey{aggs[i].Group, aggs[i].Hour}, aggs[i])
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	failed = map[bucketKey]error{}
	tags := make([]string, 0, len(aggs)+1)
	worked := make([]bucketKey, 0, len(aggs))
	for i, a := range aggs {
		k := bucketKey{a.Group, a.Hour}
		if errs[i] != nil {
			failed[k] = errs[i]
			continue
		}
		worked = append(worked, k)
		tags = append(tags, BucketTag(a.Group, a.Hour))
	}
	if err := p.noteFailures(ctx, time.Now(), failed, worked); err != nil {
		return nil, err
	}
	if _, err := p.writeSummary(ctx); err != nil {
		return nil, err
	}
	p.purge(ctx, append(tags, TagSummary))
	return failed, nil
}

// publishBuckets writes the files of the buckets keys from their state
// (see publishAggs). The caller holds p.pass.
func (p *Publisher) publishBuckets(ctx context.Context, keys []bucketKey) (map[bucketKey]error, error) {
	named := make(map[string]bucketKey, len(keys))
	for _, k := range keys {
		named[bucketID(k.group, k.hour)] = k
	}
	var state map[string]*Aggregate
	err := p.cfg.DB.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		state, err = p.loadBuckets(ctx, tx, named)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	aggs := make([]Aggregate, 0, len(state))
	for _, a := range state {
		aggs = append(aggs, *a)
	}
	return p.publishAggs(ctx, aggs)
}

// purge drops the edge's copies of the result files that carry tags, and
// times it in lastPurge.
func (p *Publisher) purge(ctx context.Context, tags []string) {
	if p.cfg.Purge == nil || len(tags) == 0 {
		return
	}
	start := time.Now()
	err := p.cfg.Purge(ctx, nil, tags)
	p.mu.Lock()
	p.lastPurge = PurgeTrace{Start: start, End: time.Now(), Tags: len(tags), Err: err}
	p.mu.Unlock()
	if err != nil {
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
func MetricTag(group string) string { return "metric:" + objects.KeySegment(group) }

// BucketTag tags the files of one group and hour.
func BucketTag(group string, hour time.Time) string {
	return "hour:" + objects.KeySegment(group) + "/" + hour.UTC().Format(HourFormat)
}

// Tags returns the Surrogate-Key value of a group's hourly files.
func Tags(group string, hour time.Time) string {
	return strings.Join([]string{TagResults, MetricTag(group), BucketTag(group, hour)}, " ")
}

// Key returns the object key of a bucket's JSON aggregate.
func Key(group string, hour time.Time, ext string) string {
	return HourlyPrefix + objects.KeySegment(group) + "/" + hour.UTC().Format(HourFormat) + "." + ext
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

// bucketID names a bucket in BucketsTable and RowsTable: 96 bits of a
// hash of the group (which may be long) in base64url, then the hour as
// hours since 1970. It is short because every contribution and its index
// entry carry it.
func bucketID(group string, hour time.Time) string {
	h := sha256.Sum256([]byte(group))
	b := make([]byte, 16, 16+1+8)
	base64.RawURLEncoding.Encode(b, h[:12])
	b = append(b, '/')
	return string(strconv.AppendInt(b, hour.Unix()/3600, 10))
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
	// The summary counts what the hourly files count: not the buckets
	// whose files could not be written.
	skip := map[string]bool{}
	p.mu.Lock()
	for k := range p.failed {
		skip[bucketID(k.group, k.hour)] = true
	}
	p.mu.Unlock()
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s > 0",
		d.Quote("bkt"), d.Quote("grp"), d.Quote("cnt"), d.Quote(BucketsTable), d.Quote("cnt")))
	if err != nil {
		return "", fmt.Errorf("publish: summary: %w", err)
	}
	defer rows.Close()
	s := Summary{Groups: map[string]int64{}, GroupBy: p.cfg.Settings.GroupBy, UpdatedAt: time.Now().UTC()}
	for rows.Next() {
		var bk string
		var name sql.NullString
		var n sql.NullInt64
		if err := rows.Scan(&bk, &name, &n); err != nil {
			return "", fmt.Errorf("publish: summary: %w", err)
		}
		if n.Int64 > 0 && !skip[bk] {
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

// Rebuild recomputes every aggregate and every record's contribution from
// the table, in one transaction, rewrites every result file and removes
// those of buckets that no longer have rows.
func (p *Publisher) Rebuild(ctx context.Context) error {
	ctx = sqldb.WithWriter(ctx, Writer)
	db := p.cfg.DB
	d := db.Dialect
	s := p.cfg.Settings
	const page = 5000
	var aggs map[bucketKey]*Aggregate
	// RowsTable is made afresh, in the current layout; the markers go
	// first, so a rebuild that stops before its end is done again.
	_, err := db.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s = %s", d.Quote(BucketsTable), d.Quote("bkt"), d.Placeholder(1)), stateMarker)
	if err == nil && p.unloggedRows() {
		_, err = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+d.Quote(RowsMarkerTable))
	}
	if err == nil {
		_, err = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+d.Quote(RowsTable))
	}
	if err == nil {
		err = p.ensureRows(ctx)
	}
	if err != nil {
		return fmt.Errorf("publish: rebuild: %w", err)
	}
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		aggs = map[bucketKey]*Aggregate{}
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+d.Quote(BucketsTable)); err != nil {
			return err
		}
		q := fmt.Sprintf("SELECT %s, %s, %s, %s FROM %s", d.Quote(record.ColID), d.Quote(s.GroupBy), d.Quote(s.Time), d.Quote(s.Value), d.Quote(p.table.Name))
		after := ""
		for {
			qq, args := q, []any{}
			if after != "" {
				qq += fmt.Sprintf(" WHERE %s > %s", d.Quote(record.ColID), d.Placeholder(1))
				args = append(args, after)
			}
			qq += " ORDER BY " + d.Quote(record.ColID) + sqldb.Limit(d, page)
			rows, err := tx.QueryContext(ctx, qq, args...)
			if err != nil {
				return err
			}
			var ids []string
			cs := map[string]*contribution{}
			for rows.Next() {
				var id string
				var g sql.NullString
				var ts, v any
				if err := rows.Scan(&id, &g, &ts, &v); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
				t, err := asTime(ts)
				if err != nil {
					continue
				}
				k := bucketKey{g.String, t.Truncate(time.Hour)}
				cs[id] = &contribution{bucket: bucketID(k.group, k.hour), key: k, value: asFloat(v)}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
			after = ids[len(ids)-1]
			per := min(500, sqldb.MaxRows(d, 3))
			var chunk []any
			flush := func() error {
				if len(chunk) == 0 {
					return nil
				}
				_, err := tx.ExecContext(ctx, d.Upsert(p.rows, len(chunk)/3), chunk...)
				chunk = chunk[:0]
				return err
			}
			for _, id := range ids {
				c := cs[id]
				if c == nil {
					continue
				}
				a := aggs[c.key]
				if a == nil {
					a = &Aggregate{Group: c.key.group, Hour: c.key.hour, Min: c.value, Max: c.value}
					aggs[c.key] = a
				}
				a.Count++
				a.Sum += c.value
				a.Min, a.Max = math.Min(a.Min, c.value), math.Max(a.Max, c.value)
				chunk = append(chunk, id, c.bucket, c.value)
				if len(chunk)/3 == per {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			if err := flush(); err != nil {
				return err
			}
			if len(ids) < page {
				break
			}
		}
		all := make([]Aggregate, 0, len(aggs))
		for _, a := range aggs {
			all = append(all, *a)
		}
		if err := p.saveBuckets(ctx, tx, all); err != nil {
			return err
		}
		if p.unloggedRows() {
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+d.Quote(RowsMarkerTable)+" VALUES (1)"); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, d.Upsert(p.buckets, 1), stateMarker, "", "", 0, 0.0, 0.0, 0.0)
		return err
	})
	if err != nil {
		return fmt.Errorf("publish: rebuild: %w", err)
	}
	keep := map[string]bool{}
	keys := make([]bucketKey, 0, len(aggs))
	for k := range aggs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].group < keys[j].group || keys[i].group == keys[j].group && keys[i].hour.Before(keys[j].hour)
	})
	for _, k := range keys {
		written, err := p.write(ctx, k, *aggs[k])
		if err != nil {
			return err
		}
		for _, w := range written {
			keep[w] = true
		}
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

// asTime reads a timestamp column value as a driver returns it: a
// time.Time, or text in RFC 3339 or MySQL's DATETIME form (UTC, as the
// binlog reports it).
func asTime(v any) (time.Time, error) {
	var s string
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		return time.Time{}, fmt.Errorf("publish: %T is not a timestamp", v)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("publish: %q is not a timestamp", s)
	}
	return t, nil
}

func joinKeys(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}
