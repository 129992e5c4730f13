package logstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/intercloud/intercloud/sqldb/sqlite"
)

// Retention defaults: lines older than DefaultMaxAge go, and the oldest
// lines go while the store uses more than DefaultMaxBytes.
const (
	DefaultMaxAge   = 7 * 24 * time.Hour
	DefaultMaxBytes = 1 << 30
	// retainEvery is how often Retain runs in RunRetention.
	retainEvery = time.Minute
	// batchKeyAge is how long a batch's Idempotency-Key is kept.
	batchKeyAge = 7 * 24 * time.Hour
	// retainChunk is the most lines one pass of the size bound deletes.
	retainChunk = 5000
)

// Retention bounds the store by age and size; zero fields take the
// defaults.
type Retention struct {
	MaxAge   time.Duration
	MaxBytes int64
}

func (r Retention) withDefaults() Retention {
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultMaxAge
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = DefaultMaxBytes
	}
	return r
}

// Size returns the bytes the store's database uses (its pages in use;
// deleted lines free pages that new lines reuse).
func (s *Store) Size(ctx context.Context) (int64, error) {
	var pages, free, size int64
	if err := s.db.QueryRowContext(ctx, `SELECT page_count, freelist_count, page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()`).Scan(&pages, &free, &size); err != nil {
		return 0, fmt.Errorf("logstore: size: %w", err)
	}
	return (pages - free) * size, nil
}

// Retain applies the retention: it deletes the lines older than MaxAge,
// then the oldest lines while the store is larger than MaxBytes, and
// returns how many it deleted.
func (s *Store) Retain(ctx context.Context, r Retention) (int64, error) {
	r = r.withDefaults()
	n, err := s.Prune(ctx, s.now().Add(-r.MaxAge))
	if err != nil {
		return n, err
	}
	// A batch key only has to outlive its shipper's retries.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM log_batches WHERE at < ?`, s.now().Add(-batchKeyAge).UTC().Format(sqlite.TimeFormat)); err != nil {
		return n, fmt.Errorf("logstore: retain: %w", err)
	}
	for {
		size, err := s.Size(ctx)
		if err != nil || size <= r.MaxBytes {
			return n, err
		}
		var rows int64
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM logs`).Scan(&rows); err != nil || rows == 0 {
			return n, err
		}
		// Drop a share of the lines proportional to the excess, at least one.
		k := max(1, min(retainChunk, rows*(size-r.MaxBytes)/size+1))
		d, err := s.deleteOldest(ctx, k)
		n += d
		if err != nil || d == 0 {
			return n, err
		}
	}
}

// deleteOldest deletes the k oldest lines (by arrival).
func (s *Store) deleteOldest(ctx context.Context, k int64) (int64, error) {
	var n int64
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var cut int64
		if err := tx.QueryRowContext(ctx, `SELECT id FROM logs ORDER BY id LIMIT 1 OFFSET ?`, k-1).Scan(&cut); err != nil {
			if err == sql.ErrNoRows {
				return tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM logs`).Scan(&cut)
			}
			return err
		}
		return s.deleteUpTo(ctx, tx, cut, &n)
	})
	if err != nil {
		return n, fmt.Errorf("logstore: retain: %w", err)
	}
	return n, nil
}

func (s *Store) deleteUpTo(ctx context.Context, tx *sql.Tx, cut int64, n *int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM logs_fts WHERE rowid <= ?`, cut); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM log_traces WHERE log_id <= ?`, cut); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM logs WHERE id <= ?`, cut)
	if err != nil {
		return err
	}
	*n, err = res.RowsAffected()
	return err
}

// RunRetention applies the retention every minute until ctx is cancelled,
// logging what it deleted.
func (s *Store) RunRetention(ctx context.Context, r Retention, log *slog.Logger) {
	t := time.NewTicker(retainEvery)
	defer t.Stop()
	for {
		if n, err := s.Retain(ctx, r); err != nil && ctx.Err() == nil {
			log.Warn("log retention failed", "err", err)
		} else if n > 0 {
			log.Info("log retention deleted old lines", "lines", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
