package sqlite

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/intercloud/intercloud/internal/datasync"
)

// With synchronous=FULL, SQLite syncs the write-ahead log in every COMMIT,
// while the writer still holds the database's one write lock: every other
// writer waits for the disk as well as for the transaction. On a disk
// that takes a millisecond or more to sync under load, that was most of
// the time the lock was held.
//
// So databases open with synchronous=NORMAL (a commit appends its frames
// to the log without a sync; SQLite still syncs before each checkpoint
// and keeps the database consistent), and this package makes each commit
// durable itself, after it has left the write lock: COMMIT returns to the
// caller only once an fsync of the log file that began after the commit
// has succeeded. Commits that end while a sync runs share the next one (a
// group commit), and the next writer works meanwhile. A commit returns
// to its caller durable, as with FULL.
//
// What changes is that a commit is visible to readers (of this process
// or another) a little before it is durable. A reader that passes what it
// read on outside the database (a change feed to another database or to
// files) calls Dialect.WaitDurable before it does, so that it never
// passes on what a power loss could take back.
//
// A reader's WaitDurable asks first whether anything was committed since
// the last sync began (PRAGMA data_version, on a connection of its own
// that never writes, sees every other connection's commits, another
// process's too): if nothing was, what it read is durable already.
//
// A failed sync is not retried: after one, the kernel may have dropped
// the pages it could not write, so a later sync that succeeds says
// nothing about them. Every later commit and WaitDurable fails with the
// first error, until the database is opened again.

// walSyncer syncs one database's write-ahead log in rounds.
type walSyncer struct {
	wal string // the -wal file
	// syncFile syncs the log (datasync.Path), syncDir its directory
	// (datasync.Dir); tests replace them.
	syncFile, syncDir func(path string) error
	// connect opens the connection that reads the database's
	// data_version (nil: none, every WaitDurable syncs).
	connect func(ctx context.Context) (sqldriver.Conn, error)

	vmu  sync.Mutex     // the version connection's
	conn sqldriver.Conn // opened on first use

	mu      sync.Mutex
	done    uint64        // rounds ended
	running bool          // round done+1 runs
	ended   chan struct{} // closed when the running round ends
	dirDone bool          // the directory was synced once
	err     error         // the first failed sync: sticky
	// durable is the data_version read as the last successful round
	// began (valid: one was read).
	durable int64
	valid   bool
}

func newWALSyncer(dbPath string, connect func(ctx context.Context) (sqldriver.Conn, error)) *walSyncer {
	return &walSyncer{wal: dbPath + "-wal", syncFile: datasync.Path, syncDir: datasync.Dir, connect: connect, ended: make(chan struct{})}
}

// visible returns once every commit a read that ended before the call
// could have seen is durable: at once when nothing was committed since
// the last successful sync began, else after a sync that begins after
// the call.
func (w *walSyncer) visible(ctx context.Context) error {
	if v, ok := w.version(ctx); ok {
		w.mu.Lock()
		done := w.err == nil && w.valid && v == w.durable
		w.mu.Unlock()
		if done {
			return nil
		}
	}
	return w.after(ctx)
}

// version reads the database's data_version, which changes with every
// commit of another connection; ok is false when it cannot be read (the
// caller syncs).
func (w *walSyncer) version(ctx context.Context) (int64, bool) {
	if w.connect == nil {
		return 0, false
	}
	w.vmu.Lock()
	defer w.vmu.Unlock()
	if w.conn == nil {
		c, err := w.connect(ctx)
		if err != nil {
			return 0, false
		}
		w.conn = c
	}
	v, err := readVersion(ctx, w.conn)
	if err != nil {
		w.conn.Close()
		w.conn = nil
		return 0, false
	}
	return v, true
}

// readVersion runs PRAGMA data_version on c.
func readVersion(ctx context.Context, c sqldriver.Conn) (int64, error) {
	q, ok := c.(sqldriver.QueryerContext)
	if !ok {
		return 0, fmt.Errorf("sqlite: %T runs no queries", c)
	}
	rows, err := q.QueryContext(ctx, "PRAGMA data_version", nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]sqldriver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return 0, err
	}
	v, ok := dest[0].(int64)
	if !ok {
		return 0, fmt.Errorf("sqlite: data_version %v (%T)", dest[0], dest[0])
	}
	return v, nil
}

// close closes the version connection.
func (w *walSyncer) close() error {
	w.vmu.Lock()
	defer w.vmu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// after returns once a sync of the log that began after the call has
// succeeded (or with its error, or ctx's). Whoever finds no round running
// runs the next one itself; the others wait for it.
func (w *walSyncer) after(ctx context.Context) error {
	w.mu.Lock()
	target := w.done + 1 // the next round to begin
	if w.running {
		target++
	}
	for {
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			return err
		}
		if w.done >= target {
			w.mu.Unlock()
			return nil
		}
		if !w.running {
			w.running = true
			round, dir := w.done+1, !w.dirDone
			w.mu.Unlock()
			// Read before the sync: every commit it counts is
			// in the log, so the sync covers it.
			v, vok := w.version(ctx)
			err := w.sync(dir)
			w.mu.Lock()
			w.running = false
			w.done = round
			if err != nil && w.err == nil {
				w.err = err
			}
			if err == nil {
				w.durable, w.valid = v, vok
			}
			if err == nil && dir {
				w.dirDone = true
			}
			close(w.ended)
			w.ended = make(chan struct{})
			continue
		}
		ch := w.ended
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
}

// rounds returns how many syncs have ended.
func (w *walSyncer) rounds() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

// sync syncs the log, and with dir its directory (once: a log SQLite
// created must stay where it is). A log that does not exist holds
// nothing to sync: SQLite removes it only after copying it into the
// database and syncing that.
func (w *walSyncer) sync(dir bool) error {
	if err := w.syncFile(w.wal); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("sqlite: sync %s: %w", filepath.Base(w.wal), err)
	}
	if dir {
		if err := w.syncDir(filepath.Dir(w.wal)); err != nil {
			return fmt.Errorf("sqlite: sync the directory of %s: %w", filepath.Base(w.wal), err)
		}
	}
	return nil
}
