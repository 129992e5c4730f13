package publish

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/intercloud/intercloud/retry"
	"github.com/intercloud/intercloud/sqldb"
)

// FailedTable holds the buckets whose results could not be written. A
// batch of changes whose buckets partly fail is still checkpointed: the
// buckets that worked are published, the failed ones are kept here and
// retried on their own with backoff, so one bucket never holds up the
// others, also across a restart.
const FailedTable = "_ic_publish_failed"

// bucketRetry bounds the wait before the next attempt at a failing bucket:
// as long as it has been failing, within Base and Max.
var bucketRetry = retry.Policy{Base: time.Second, Max: 5 * time.Minute}

// BucketFailure is one bucket whose results are not published.
type BucketFailure struct {
	// Bucket names it: "<group>/<YYYY-MM-DDTHH>".
	Bucket string `json:"bucket"`
	// Error is the last failure.
	Error string `json:"error"`
	// Attempts counts the failed attempts.
	Attempts int `json:"attempts"`
	// Since is the first failure, NextAt the next attempt.
	Since  time.Time `json:"since"`
	NextAt time.Time `json:"next_at"`

	group string
	hour  time.Time
	// pending counts the records a batch did not count as published
	// because this bucket failed, newest their latest ingest time: both
	// go to Stats when the bucket is written (in this process; a restart
	// starts freshness afresh).
	pending int64
	newest  time.Time
}

func failedTable() sqldb.Table {
	return sqldb.Table{Name: FailedTable, PrimaryKey: []string{"bucket"}, Columns: []sqldb.Column{
		{Name: "bucket", Type: sqldb.Type{Kind: sqldb.KindString, Length: 80}},
		{Name: "grp", Type: sqldb.Type{Kind: sqldb.KindText}},
		{Name: "hour", Type: sqldb.Type{Kind: sqldb.KindString, Length: 16}},
		{Name: "error", Type: sqldb.Type{Kind: sqldb.KindText}},
		{Name: "attempts", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "since", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}},
	}}
}

// prepareFailed creates FailedTable and reads it into memory, once.
func (p *Publisher) prepareFailed(ctx context.Context) error {
	p.mu.Lock()
	loaded := p.failedLoaded
	p.mu.Unlock()
	if loaded {
		return nil
	}
	if err := p.cfg.DB.EnsureTable(ctx, failedTable()); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return p.loadFailed(ctx)
}

// loadFailed reads FailedTable into memory.
func (p *Publisher) loadFailed(ctx context.Context) error {
	d := p.cfg.DB.Dialect
	rows, err := p.cfg.DB.QueryContext(ctx, fmt.Sprintf("SELECT %s, %s, %s, %s, %s FROM %s",
		d.Quote("grp"), d.Quote("hour"), d.Quote("error"), d.Quote("attempts"), d.Quote("since"), d.Quote(FailedTable)))
	if err != nil {
		return fmt.Errorf("publish: failed buckets: %w", err)
	}
	defer rows.Close()
	m := map[bucketKey]*BucketFailure{}
	for rows.Next() {
		var g, h, e, since sql.NullString
		var n sql.NullInt64
		if err := rows.Scan(&g, &h, &e, &n, &since); err != nil {
			return fmt.Errorf("publish: failed buckets: %w", err)
		}
		hour, err := time.Parse(HourFormat, h.String)
		if err != nil {
			continue
		}
		s, _ := time.Parse(time.RFC3339Nano, since.String)
		k := bucketKey{g.String, hour.UTC()}
		m[k] = &BucketFailure{Bucket: bucketName(k), Error: e.String, Attempts: int(n.Int64), Since: s, group: k.group, hour: k.hour}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("publish: failed buckets: %w", err)
	}
	p.mu.Lock()
	for k, f := range p.failed { // failures noted before the load
		m[k] = f
	}
	p.failed, p.failedLoaded = m, true
	p.mu.Unlock()
	return nil
}

func bucketName(k bucketKey) string { return k.group + "/" + k.hour.UTC().Format(HourFormat) }

// failedID names a bucket in FailedTable: 128 bits of a hash of the group
// in hex, then the hour.
func failedID(k bucketKey) string {
	h := sha256.Sum256([]byte(k.group))
	return hex.EncodeToString(h[:16]) + "/" + k.hour.UTC().Format(HourFormat)
}

// noteFailures records buckets that failed at now (and forgets those that
// now worked) in memory and in FailedTable, and logs each failure at
// ERROR.
func (p *Publisher) noteFailures(ctx context.Context, now time.Time, failed map[bucketKey]error, worked []bucketKey) error {
	now = now.UTC()
	p.mu.Lock()
	var forget []bucketKey
	for _, k := range worked {
		if f, ok := p.failed[k]; ok {
			forget = append(forget, k)
			delete(p.failed, k)
			// Its records held back by the failure are published now.
			p.stats.Published += f.pending
			if f.newest.After(p.stats.NewestIngested) {
				p.stats.NewestIngested = f.newest
			}
		}
	}
	var save []*BucketFailure
	for k, err := range failed {
		f := p.failed[k]
		if f == nil {
			f = &BucketFailure{Bucket: bucketName(k), Since: now, group: k.group, hour: k.hour}
			p.failed[k] = f
		}
		f.Attempts++
		f.Error = oneLine(err)
		// The wait grows with how long the bucket has been failing, not
		// with how many batches touched it: under steady traffic every
		// batch is an attempt, which would push the next try minutes
		// away within seconds, long after the cause went away.
		f.NextAt = now.Add(retryWait(now.Sub(f.Since)))
		p.stats.BucketFailures++
		c := *f
		save = append(save, &c)
	}
	p.mu.Unlock()
	for _, f := range save {
		p.log.Error("publish of a bucket failed; the others go on, this one is retried", "bucket", f.Bucket,
			"attempts", f.Attempts, "failing_for", now.Sub(f.Since).Round(time.Millisecond).String(),
			"retry_in", f.NextAt.Sub(now).Round(time.Millisecond).String(), "err", f.Error)
	}
	for _, k := range forget {
		p.log.Info("bucket published again", "bucket", bucketName(k))
	}
	if len(save) == 0 && len(forget) == 0 {
		return nil
	}
	db := p.cfg.DB
	t := failedTable()
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		for _, k := range forget {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s = %s", db.Dialect.Quote(FailedTable),
				db.Dialect.Quote("bucket"), db.Dialect.Placeholder(1)), failedID(k)); err != nil {
				return err
			}
		}
		for _, f := range save {
			if _, err := tx.ExecContext(ctx, db.Dialect.Upsert(t, 1), failedID(bucketKey{f.group, f.hour}), f.group,
				f.hour.Format(HourFormat), f.Error, int64(f.Attempts), f.Since.Format(time.RFC3339Nano)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publish: record failed buckets: %w", err)
	}
	return nil
}

// retryWait is how long a bucket failing for the given time waits before
// its next attempt: as long again, within bucketRetry's Base and Max.
func retryWait(failingFor time.Duration) time.Duration {
	return max(bucketRetry.Base, min(bucketRetry.Max, failingFor))
}

// retryFailed retries the failing buckets that are due; it returns when
// ctx is cancelled.
func (p *Publisher) retryFailed(ctx context.Context) {
	tick := time.NewTicker(max(p.cfg.Poll, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := p.retryDue(ctx, time.Now()); err != nil && ctx.Err() == nil {
			p.log.Warn("retrying failed buckets", "err", err)
		}
	}
}

// retryDue recomputes and writes every failing bucket due at now.
func (p *Publisher) retryDue(ctx context.Context, now time.Time) error {
	p.mu.Lock()
	var due []bucketKey
	for k, f := range p.failed {
		if !f.NextAt.After(now) {
			due = append(due, k)
		}
	}
	p.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	p.pass.Lock()
	defer p.pass.Unlock()
	_, err := p.publishBuckets(ctx, due)
	return err
}

// FailingBuckets returns the buckets that are not published, oldest
// failure first.
func (p *Publisher) FailingBuckets() []BucketFailure {
	p.mu.Lock()
	out := make([]BucketFailure, 0, len(p.failed))
	for _, f := range p.failed {
		out = append(out, *f)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		return out[i].Since.Before(out[j].Since) || out[i].Since.Equal(out[j].Since) && out[i].Bucket < out[j].Bucket
	})
	return out
}

// oneLine shortens an error to one line of at most 300 bytes.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
