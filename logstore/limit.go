package logstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/intercloud/intercloud/sqldb/sqlite"
)

// Defaults of Limit.
const (
	DefaultMaxAge   = 7 * 24 * time.Hour
	DefaultMaxBytes = 1 << 30
)

// Limit bounds the store: lines older than maxAge go, then the oldest
// lines until the data the store holds is below maxBytes (pages in use,
// indexes included; the file keeps freed pages for new lines instead of
// shrinking). Zero values take DefaultMaxAge and DefaultMaxBytes. It
// returns how many lines it deleted.
func (s *Store) Limit(ctx context.Context, maxAge time.Duration, maxBytes int64) (int64, error) {
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	n, err := s.Prune(ctx, s.now().Add(-maxAge))
	if err != nil {
		return n, err
	}
	// A batch key only has to outlive its shipper's retries.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM log_batches WHERE at < ?`, s.now().Add(-batchKeyAge).UTC().Format(sqlite.TimeFormat)); err != nil {
		return n, fmt.Errorf("logstore: limit: %w", err)
	}
	for range 1000 { // each round deletes a tenth of the lines
		used, err := s.Used(ctx)
		if err != nil {
			return n, err
		}
		if used <= maxBytes {
			return n, nil
		}
		var total int64
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM logs`).Scan(&total); err != nil {
			return n, fmt.Errorf("logstore: limit: %w", err)
		}
		if total == 0 {
			return n, nil
		}
		var cut sql.NullString
		if err := s.db.QueryRowContext(ctx, `SELECT time FROM logs ORDER BY time LIMIT 1 OFFSET ?`, max(1, total/10)).Scan(&cut); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				cut = sql.NullString{}
			} else {
				return n, fmt.Errorf("logstore: limit: %w", err)
			}
		}
		before := s.now().Add(time.Hour) // everything, when few lines are left
		if cut.Valid {
			if t, err := time.Parse(sqlite.TimeFormat, cut.String); err == nil {
				before = t.Add(time.Microsecond)
			}
		}
		m, err := s.Prune(ctx, before)
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, nil
		}
	}
	return n, nil
}

// Used returns the bytes of the store's pages in use.
func (s *Store) Used(ctx context.Context) (int64, error) {
	var pages, free, size int64
	for _, p := range []struct {
		pragma string
		v      *int64
	}{{"page_count", &pages}, {"freelist_count", &free}, {"page_size", &size}} {
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(p.v); err != nil {
			return 0, fmt.Errorf("logstore: size: %w", err)
		}
	}
	return (pages - free) * size, nil
}

// batchKeyAge is how long a batch's Idempotency-Key is kept: longer than
// any shipper retries a batch.
const batchKeyAge = 7 * 24 * time.Hour
