package sqlite

import (
	"context"
	sqldriver "database/sql/driver"
	"time"
)

// SQLite lets one transaction write at a time. A connection that finds
// the write lock taken waits in SQLite's busy handler, which sleeps and
// tries again (1, 2, 5, 10, ... 100 ms): it does not learn when the lock
// is freed, and a newcomer may take the lock before it, so under steady
// writing (a loader, a replication apply and a publisher on one database)
// a write can sleep for hundreds of milliseconds while the lock is free
// most of that time.
//
// The connections of one pool (one OpenFile) therefore take the write lock
// in turn through a gate: a write transaction (BeginTx without ReadOnly)
// and a statement run outside a transaction wait for the gate first, in
// the order they asked, and the gate passes to the next one the moment the
// previous commits or rolls back. SQLite's own lock and busy timeout still
// hold between pools and processes. A wait for the gate ends with its
// context; after gateWait the write goes on without the gate and SQLite's
// busy timeout decides, so a caller that runs a statement on a second
// connection while its own transaction holds the gate (one that needs no
// write lock, or one SQLite would refuse after its busy timeout) waits
// gateWait longer than without the gate, not forever.

// busyTimeout is SQLite's busy timeout (PRAGMA busy_timeout).
const busyTimeout = 30 * time.Second

// gateWait bounds a wait for the gate.
const gateWait = 5 * time.Second

// writeGate is a pool's turn at the write lock.
type writeGate struct {
	turn chan struct{}
	wait time.Duration // the longest wait (gateWait)
}

func newWriteGate(wait time.Duration) *writeGate {
	return &writeGate{turn: make(chan struct{}, 1), wait: wait}
}

// enter waits for the gate. It returns whether the caller holds it (false
// after g.wait) or ctx's error.
func (g *writeGate) enter(ctx context.Context) (bool, error) {
	select {
	case g.turn <- struct{}{}:
		return true, nil
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.turn <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return false, nil
	}
}

// leave passes the gate on.
func (g *writeGate) leave() { <-g.turn }

// BeginTx implements sqldriver.ConnBeginTx: a write transaction waits for
// the pool's gate and holds it until it ends.
func (c *cachingConn) BeginTx(ctx context.Context, opts sqldriver.TxOptions) (sqldriver.Tx, error) {
	held := false
	if !opts.ReadOnly && c.gate != nil {
		var err error
		if held, err = c.gate.enter(ctx); err != nil {
			return nil, err
		}
	}
	tx, err := c.fullConn.BeginTx(ctx, opts)
	if err != nil {
		if held {
			c.gate.leave()
		}
		return nil, err
	}
	c.inTx, c.write, c.held = true, !opts.ReadOnly, held
	return &gatedTx{Tx: tx, c: c}, nil
}

// end marks the connection's transaction over, counts it for the
// checkpointer if it wrote, and passes the gate on if it held it.
func (c *cachingConn) end() {
	if c.write {
		c.ckpt.wrote()
	}
	if c.held {
		c.gate.leave()
	}
	c.inTx, c.write, c.held = false, false, false
}

// autocommit runs a statement outside a transaction (it may write) with
// the gate held; inside one, the transaction already decided. The
// returned function ends the statement's turn.
func (c *cachingConn) autocommit(ctx context.Context) (func(), error) {
	if c.inTx {
		return func() {}, nil
	}
	held := false
	if c.gate != nil {
		var err error
		if held, err = c.gate.enter(ctx); err != nil {
			return nil, err
		}
	}
	return func() {
		c.ckpt.wrote()
		if held {
			c.gate.leave()
		}
	}, nil
}

// gatedTx ends its connection's turn when it commits or rolls back.
type gatedTx struct {
	sqldriver.Tx
	c *cachingConn
}

// Commit implements sqldriver.Tx.
func (t *gatedTx) Commit() error {
	defer t.c.end()
	return t.Tx.Commit()
}

// Rollback implements sqldriver.Tx.
func (t *gatedTx) Rollback() error {
	defer t.c.end()
	return t.Tx.Rollback()
}
