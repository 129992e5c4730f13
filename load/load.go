// Package load is the "load" function: it reads a raw NDJSON object that an
// ingest API wrote and inserts its records into the cloud's SQL table,
// idempotently. The record id is the primary key and the object key is
// recorded in the same transaction, so a redelivered event changes nothing.
//
// The same Loader serves the in-process function host, the AWS Lambda
// handler and the Azure Functions custom handler.
package load

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/sqldb"
)

// Prefixes of the raw and dead-letter areas of the object store.
const (
	RawPrefix  = "raw/"
	DeadPrefix = "dead/"
)

// Bookkeeping tables the loader keeps beside the records.
const (
	// LoadedTable records every object key that has been loaded.
	LoadedTable = "_ic_loaded"
	// StateTable holds the reconciler's watermark.
	StateTable = "_ic_load_state"
)

// Loader loads raw objects into a records table.
type Loader struct {
	bucket *objects.Bucket
	db     *sqldb.DB
	schema config.Schema
	table  sqldb.Table
	loaded sqldb.Table
	state  sqldb.Table
	log    *slog.Logger
	// maxRows bounds the rows of one INSERT statement.
	maxRows int
}

// New returns a Loader; call Prepare before the first Load.
func New(bucket *objects.Bucket, db *sqldb.DB, schema config.Schema, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.Default()
	}
	t := record.Table(schema)
	return &Loader{
		bucket: bucket, db: db, schema: schema, table: t, log: log,
		loaded: sqldb.Table{Name: LoadedTable, PrimaryKey: []string{"key"}, Columns: []sqldb.Column{
			{Name: "key", Type: sqldb.Type{Kind: sqldb.KindString, Length: 512}},
			{Name: "records", Type: sqldb.Type{Kind: sqldb.KindInt}},
			{Name: "loaded_at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
		}},
		state: sqldb.Table{Name: StateTable, PrimaryKey: []string{"name"}, Columns: []sqldb.Column{
			{Name: "name", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
			{Name: "value", Type: sqldb.Type{Kind: sqldb.KindString, Length: 512}},
		}},
		maxRows: max(1, 30000/len(t.Columns)),
	}
}

// Table returns the records table's schema.
func (l *Loader) Table() sqldb.Table { return l.table }

// Prepare creates the records table and the loaded-objects table.
func (l *Loader) Prepare(ctx context.Context) error {
	if err := l.db.EnsureTable(ctx, l.table); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	for _, t := range []sqldb.Table{l.loaded, l.state} {
		if err := l.db.EnsureTable(ctx, t); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	return nil
}

// Result says what one Load did.
type Result struct {
	Key      string
	Records  int  // records in the object
	Inserted int  // rows new to the table
	Skipped  bool // the object was loaded before
	TraceIDs []string
}

// Load inserts the records of one raw object. Loading an object twice, or
// records that are already present, changes nothing. A malformed object
// fails with an error wrapping functions.ErrPermanent.
func (l *Loader) Load(ctx context.Context, key string) (Result, error) {
	res := Result{Key: key}
	if !strings.HasPrefix(key, RawPrefix) || !strings.HasSuffix(key, ".ndjson") {
		return res, fmt.Errorf("load: %s is not a raw object: %w", key, functions.ErrPermanent)
	}
	done, err := l.isLoaded(ctx, l.db, key)
	if err != nil {
		return res, err
	}
	if done {
		res.Skipped = true
		return res, nil
	}
	data, _, err := l.bucket.Get(ctx, key)
	if errors.Is(err, objects.ErrNotFound) {
		return res, fmt.Errorf("load: %s is gone (dead-lettered?): %w", key, functions.ErrPermanent)
	}
	if err != nil {
		return res, fmt.Errorf("load: %w", err)
	}
	recs, err := l.parse(data)
	if err != nil {
		return res, fmt.Errorf("load: %s: %w: %w", key, err, functions.ErrPermanent)
	}
	res.Records = len(recs)
	seen := map[string]bool{}
	for _, r := range recs {
		if !seen[r.TraceID] && len(res.TraceIDs) < 16 {
			seen[r.TraceID] = true
			res.TraceIDs = append(res.TraceIDs, r.TraceID)
		}
	}
	err = l.db.Tx(ctx, func(tx *sql.Tx) error {
		res.Inserted = 0
		if done, err := l.isLoaded(ctx, tx, key); err != nil || done {
			res.Skipped = done
			return err
		}
		for i := 0; i < len(recs); i += l.maxRows {
			chunk := recs[i:min(len(recs), i+l.maxRows)]
			args := make([]any, 0, len(chunk)*len(l.table.Columns))
			for _, r := range chunk {
				row, err := record.Row(l.table, l.db.Dialect, r)
				if err != nil {
					return fmt.Errorf("%w: %w", err, functions.ErrPermanent)
				}
				args = append(args, row...)
			}
			out, err := tx.ExecContext(ctx, l.db.Dialect.InsertIgnore(l.table, len(chunk)), args...)
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			n, _ := out.RowsAffected()
			res.Inserted += int(n)
		}
		mark, err := markArgs(l.db.Dialect, l.loaded, key, len(recs))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, l.db.Dialect.InsertIgnore(l.loaded, 1), mark...)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("load: %s: %w", key, err)
	}
	return res, nil
}

func markArgs(d sqldb.Dialect, t sqldb.Table, key string, n int) ([]any, error) {
	at, err := d.Value(t.Columns[2].Type, time.Now())
	if err != nil {
		return nil, err
	}
	return []any{key, int64(n), at}, nil
}

func (l *Loader) isLoaded(ctx context.Context, q sqldb.Querier, key string) (bool, error) {
	d := l.db.Dialect
	var one int
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE %s = %s", d.Quote(LoadedTable), d.Quote("key"), d.Placeholder(1)), key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load: check %s: %w", key, err)
	}
	return true, nil
}

func (l *Loader) parse(data []byte) ([]record.Record, error) {
	var recs []record.Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		r, err := record.ParseStored(l.schema, b)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return recs, nil
}

// Handler adapts the Loader to the function host: the event id is the key.
func (l *Loader) Handler() functions.Handler {
	return func(ctx context.Context, e functions.Event) error {
		_, err := l.loadLogged(ctx, e.ID, e.Source)
		return err
	}
}

// loadLogged is Load with the log line every runtime writes.
func (l *Loader) loadLogged(ctx context.Context, key, source string) (Result, error) {
	start := time.Now()
	res, err := l.Load(ctx, key)
	if err == nil && !res.Skipped {
		l.log.InfoContext(ctx, "object loaded", "key", res.Key, "records", res.Records, "inserted", res.Inserted,
			"source", source, "trace_id", strings.Join(res.TraceIDs, " "), "ms", time.Since(start).Milliseconds())
	}
	return res, err
}

// LoadOrDeadLetter loads one object for a runtime that retries a failed
// invocation itself (a Lambda, an Azure function): a transient failure is
// returned for the runtime to retry; an object that can never load is
// dead-lettered at once and reported with dead set and no error.
func (l *Loader) LoadOrDeadLetter(ctx context.Context, key, source string) (res Result, dead bool, err error) {
	res, err = l.loadLogged(ctx, key, source)
	if err == nil || !errors.Is(err, functions.ErrPermanent) {
		return res, false, err
	}
	derr := l.DeadLetter()(ctx, functions.Event{ID: key, Source: source, Attempt: 1}, err)
	if derr == nil || errors.Is(derr, objects.ErrNotFound) { // gone: an earlier delivery dead-lettered it
		return res, true, nil
	}
	return res, false, derr
}

// DeadLetter moves a failed object under dead/ with its error in the
// object's metadata, so the reconciler stops retrying it and an operator
// can inspect and re-drive it.
func (l *Loader) DeadLetter() functions.DeadLetter {
	return func(ctx context.Context, e functions.Event, cause error) error {
		msg := cause.Error()
		if len(msg) > 1024 {
			msg = msg[:1024]
		}
		dst := DeadPrefix + e.ID
		if err := l.bucket.Move(ctx, e.ID, dst, map[string]string{"error": msg, "attempts": fmt.Sprint(e.Attempt)}); err != nil {
			return fmt.Errorf("load: dead-letter %s: %w", e.ID, err)
		}
		l.log.ErrorContext(ctx, "object dead-lettered", "key", e.ID, "dead_key", dst, "err", msg)
		return nil
	}
}

// Pending calls submit for every raw object that is not loaded yet. It
// lists only the hourly partitions from the newest fully loaded one on, so
// it stays cheap on a large store.
func (l *Loader) Pending(ctx context.Context, submit func(functions.Event)) error {
	parts, err := l.partitions(ctx)
	if err != nil {
		return err
	}
	start := 0
	if w, ok, err := l.watermark(ctx); err != nil {
		return err
	} else if ok {
		for start < len(parts) && parts[start] < w {
			start++
		}
	}
	// A partition becomes the watermark only once no writer can still be
	// writing into it: two hours after it began.
	settled := PartitionOf(time.Now().Add(-2 * time.Hour))
	allDone := true
	for _, p := range parts[start:] {
		var keys []string
		if err := l.bucket.List(ctx, p, func(o objects.Object) error {
			keys = append(keys, o.Key)
			return nil
		}); err != nil {
			return fmt.Errorf("load: %w", err)
		}
		missing, err := l.unloaded(ctx, keys)
		if err != nil {
			return err
		}
		for _, k := range missing {
			submit(functions.Event{ID: k})
		}
		if len(missing) > 0 {
			allDone = false
		}
		if allDone && len(keys) > 0 && p <= settled {
			if err := l.setWatermark(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// partitions lists raw/YYYY/MM/DD/HH/ prefixes in order.
func (l *Loader) partitions(ctx context.Context) ([]string, error) {
	level := []string{RawPrefix}
	for depth := 0; depth < 4; depth++ {
		var next []string
		for _, p := range level {
			dirs, err := l.bucket.ListDirs(ctx, p)
			if err != nil {
				return nil, fmt.Errorf("load: %w", err)
			}
			next = append(next, dirs...)
		}
		level = next
	}
	return level, nil
}

func (l *Loader) unloaded(ctx context.Context, keys []string) ([]string, error) {
	var missing []string
	for _, k := range keys {
		if !strings.HasSuffix(k, ".ndjson") {
			continue
		}
		done, err := l.isLoaded(ctx, l.db, k)
		if err != nil {
			return nil, err
		}
		if !done {
			missing = append(missing, k)
		}
	}
	return missing, nil
}

// The watermark is the newest partition whose objects (and all before it)
// were loaded. Objects of an hour can still arrive late (a slow writer at
// the turn of the hour), so the watermark partition itself is always
// listed again.
const watermarkName = "watermark"

func (l *Loader) watermark(ctx context.Context) (string, bool, error) {
	d := l.db.Dialect
	var v string
	err := l.db.QueryRowContext(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", d.Quote("value"), d.Quote(StateTable), d.Quote("name"), d.Placeholder(1)), watermarkName).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("load: watermark: %w", err)
	}
	return v, true, nil
}

func (l *Loader) setWatermark(ctx context.Context, partition string) error {
	if _, err := l.db.ExecContext(ctx, l.db.Dialect.Upsert(l.state, 1), watermarkName, partition); err != nil {
		return fmt.Errorf("load: set watermark: %w", err)
	}
	return nil
}

// PartitionOf returns the raw partition prefix for an instant:
// raw/YYYY/MM/DD/HH/ in UTC.
func PartitionOf(t time.Time) string {
	return RawPrefix + t.UTC().Format("2006/01/02/15") + "/"
}
