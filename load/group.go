package load

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/sqldb"
)

// On a database that runs one write transaction at a time
// (sqldb.OneWriter: SQLite), loads that run at once commit together (a
// group commit): while one transaction commits, the objects read and
// parsed in the meantime queue, and the next transaction writes all of
// them, so a commit (a write of the log's shared pages and an fsync) is
// paid once for several objects and the database writes more objects a
// second. A group waits for nothing: it is what queued during the commit
// before it. If a group's transaction fails, each of its objects is
// loaded again in a transaction of its own, so an object the database
// rejects fails alone and the others load. Other databases load each
// object in its own transaction: they overlap the statements of
// concurrent transactions and commit them with one log flush, and on
// MariaDB groups were slower (docs/benchmarks.md).
const (
	// groupRecords bounds the records one group writes (the objects of
	// a group are taken whole: a group reaches it with its last object).
	groupRecords = 10_000
	// groupObjects bounds the objects of one group.
	groupObjects = 64
)

// staged is a parsed object waiting for its group's commit.
type staged struct {
	key  string
	rows record.Rows
	mark []any
	res  *Result
	// done receives the outcome of the group the object was taken into,
	// or that the object leads the next group.
	done chan outcome
}

// outcome is what a queued object learns.
type outcome struct {
	// lead: commit the next group, this object first.
	lead bool
	// err is the group transaction's failure: load the object alone.
	err error
}

// commit writes s's records, with those of the objects that queue while
// the transaction before it commits.
func (l *Loader) commit(ctx context.Context, s *staged) error {
	if !l.grouped {
		return l.commitAlone(ctx, s)
	}
	l.groupMu.Lock()
	if l.leading {
		l.queued = append(l.queued, s)
		l.groupMu.Unlock()
		// A queued object waits whatever its context says: the group
		// that took it may be committing it, and when it is told to
		// lead, the objects behind it wait on it (with its context
		// done, its group fails at once and each of them loads alone).
		o := <-s.done
		if !o.lead {
			if o.err != nil {
				return l.commitAlone(ctx, s)
			}
			return nil
		}
		l.groupMu.Lock()
	} else {
		l.leading = true
	}
	group, records := []*staged{s}, s.rows.Len()
	for len(l.queued) > 0 && len(group) < groupObjects && records < groupRecords {
		m := l.dequeue()
		group = append(group, m)
		records += m.rows.Len()
	}
	l.groupMu.Unlock()

	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, m := range group {
			if err := l.write(ctx, tx, m); err != nil {
				if len(group) > 1 {
					return fmt.Errorf("%s: %w", m.key, err)
				}
				return err
			}
		}
		return nil
	})
	l.groups.Add(1)
	for _, m := range group[1:] {
		m.done <- outcome{err: err}
	}

	// Hand over to the first object queued meanwhile, or stop leading.
	l.groupMu.Lock()
	if len(l.queued) > 0 {
		l.dequeue().done <- outcome{lead: true}
	} else {
		l.leading = false
	}
	l.groupMu.Unlock()

	if err != nil && len(group) > 1 {
		return l.commitAlone(ctx, s)
	}
	return err
}

// dequeue takes the first queued object; groupMu must be held. The
// queue's array keeps no pointer to it (nor to its records).
func (l *Loader) dequeue() *staged {
	m := l.queued[0]
	l.queued[0] = nil
	l.queued = l.queued[1:]
	return m
}

// commitAlone writes s's records in a transaction of their own.
func (l *Loader) commitAlone(ctx context.Context, s *staged) error {
	return l.db.Tx(ctx, func(tx *sql.Tx) error { return l.write(ctx, tx, s) })
}

// write writes one object's marker and, unless the marker was there
// (the object was loaded before), its records, and sets its result.
func (l *Loader) write(ctx context.Context, tx *sql.Tx, s *staged) error {
	s.res.Inserted, s.res.Skipped = 0, false
	// The marker first: a marker already there means the object was
	// loaded (a concurrent load of it waits on the marker's key until
	// this transaction ends, then finds it).
	out, err := tx.ExecContext(ctx, l.db.Dialect.InsertIgnore(l.loaded, 1), s.mark...)
	if err != nil {
		return fmt.Errorf("mark loaded: %w", err)
	}
	if n, err := out.RowsAffected(); err != nil || n == 0 {
		s.res.Skipped = err == nil
		return err
	}
	rows, at := &s.rows, 0
	for chunk := range sqldb.StatementChunks(l.db.Dialect, rows.IDs, l.maxRows) {
		args := rows.Values[at*rows.Cols : (at+len(chunk))*rows.Cols]
		at += len(chunk)
		out, err := tx.ExecContext(ctx, l.insert(len(chunk)), args...)
		if sqldb.Rejected(err) {
			// The database refuses these records for their content:
			// no retry can load them.
			return fmt.Errorf("insert: the database rejects records %s..%s: %w: %w", chunk[0], chunk[len(chunk)-1], err, functions.ErrPermanent)
		}
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		n, _ := out.RowsAffected()
		s.res.Inserted += int(n)
	}
	return nil
}
