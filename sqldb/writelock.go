package sqldb

import (
	"context"
	"time"
)

// writerKey is the context key of WithWriter.
type writerKey struct{}

// WithWriter returns ctx naming the component whose database writes run
// under it ("load", "publish", "replicate:aws-to-azure", ...). A database
// whose writers queue for one write lock (WriteLocker) counts each
// writer's share of that lock under this name; a nested WithWriter wins.
func WithWriter(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, writerKey{}, name)
}

// UnnamedWriter is the writer name of writes whose context names none.
const UnnamedWriter = "other"

// WriterName returns the writer WithWriter named in ctx, or
// UnnamedWriter.
func WriterName(ctx context.Context) string {
	if n, ok := ctx.Value(writerKey{}).(string); ok && n != "" {
		return n
	}
	return UnnamedWriter
}

// WriteLocker is implemented by the dialect of a database that takes one
// writer at a time (SQLite) and queues this process's writers for it:
// WriteLock says how they shared it since the database was opened.
type WriteLocker interface {
	WriteLock() WriteLockStats
}

// WriteLockStats says how a database's one write lock was shared by the
// writers of this process.
type WriteLockStats struct {
	// Waiting counts the writers queued for the lock now.
	Waiting int
	// Writers are the totals of each writer (see WithWriter), by name.
	Writers []WriterStats
	// Syncs counts the syncs of the database's log that made commits
	// durable (commits that end together share one; see DurableWaiter).
	Syncs int64
}

// WriterStats are one writer's totals at a database's write lock.
type WriterStats struct {
	// Writer is the name WithWriter gave (UnnamedWriter: none).
	Writer string
	// Writes counts its write transactions and statements outside one.
	Writes int64
	// Wait is the time they queued for the lock; Held the time they
	// held it, a write that holds it now included (Writes counts a
	// write once it ends).
	Wait, Held time.Duration
	// Bypassed counts the writes that queued as long as the database's
	// busy timeout and went on without the queue, to the database's own
	// locking: the lock was contended that long.
	Bypassed int64
}

// WriteLock returns how the database's write lock was shared, for a
// database whose dialect is a WriteLocker.
func (db *DB) WriteLock() (WriteLockStats, bool) {
	wl, ok := db.Dialect.(WriteLocker)
	if !ok {
		return WriteLockStats{}, false
	}
	return wl.WriteLock(), true
}

// DurableWaiter is implemented by the dialect of a database whose commits
// become visible to readers a little before they are durable (SQLite as
// opened by sqldb/sqlite, which syncs its log after the write lock is
// free): WaitDurable returns once every commit a read that ended before
// the call could have seen is durable.
type DurableWaiter interface {
	WaitDurable(ctx context.Context) error
}

// WaitDurable returns once every commit that a read which ended before the
// call could have seen is durable. A reader that passes what it read on
// outside the database (a change feed) calls it first, so that a power
// loss cannot take back what it passed on. Where a commit is durable
// before it is visible (a dialect that is no DurableWaiter) it returns at
// once.
func (db *DB) WaitDurable(ctx context.Context) error {
	if dw, ok := db.Dialect.(DurableWaiter); ok {
		return dw.WaitDurable(ctx)
	}
	return nil
}
