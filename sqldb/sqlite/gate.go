package sqlite

import (
	"context"
	sqldriver "database/sql/driver"
	"time"
)

// SQLite lets one writer at a time into a database, and a writer that
// finds the lock taken polls for it (the busy timeout), sleeping up to
// 100 ms between tries. Under a steady stream of write transactions that
// is no queue: a writer that tries rarely (a lease renewal every second
// or two) keeps finding the lock taken by the busier ones and can wait
// for seconds, while the lock sits idle during every poller's sleep.
//
// So the writers of one database opened by this package queue in this
// process, in arrival order, before they ask SQLite: a write transaction
// (every transaction but a read-only one: they begin IMMEDIATE) enters
// the gate before BEGIN and leaves it at COMMIT or ROLLBACK, a statement
// run outside a transaction enters it around the statement. A writer of
// another process still meets SQLite's own busy handling; a writer that
// has waited gateWait (SQLite's busy timeout) goes on without the gate
// and meets it too, so nothing waits on the gate for longer than it
// would have waited on SQLite.

// gateWait is how long a writer queues at the gate at most.
const gateWait = 30 * time.Second

// writeGate queues the writers of one database, first come first served
// (waiters on a channel are served in arrival order).
type writeGate chan struct{}

func newWriteGate() writeGate { return make(writeGate, 1) }

// enter waits for the gate and returns the function that leaves it; it
// returns ctx's error if ctx ends first.
func (g writeGate) enter(ctx context.Context) (func(), error) {
	select {
	case g <- struct{}{}:
		return g.leave, nil
	default:
	}
	t := time.NewTimer(gateWait)
	defer t.Stop()
	select {
	case g <- struct{}{}:
		return g.leave, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return func() {}, nil // past SQLite's own patience: let SQLite decide
	}
}

func (g writeGate) leave() { <-g }

// BeginTx implements sqldriver.ConnBeginTx: a write transaction holds the
// gate until it ends.
func (c *cachingConn) BeginTx(ctx context.Context, opts sqldriver.TxOptions) (sqldriver.Tx, error) {
	leave := func() {}
	if !opts.ReadOnly && c.gate != nil {
		var err error
		if leave, err = c.gate.enter(ctx); err != nil {
			return nil, err
		}
	}
	tx, err := c.fullConn.BeginTx(ctx, opts)
	if err != nil {
		leave()
		return nil, err
	}
	c.inTx = true
	return &gatedTx{Tx: tx, end: func() { c.inTx = false; leave() }}, nil
}

// gatedTx leaves the gate when the transaction ends.
type gatedTx struct {
	sqldriver.Tx
	end func()
}

// Commit implements sqldriver.Tx.
func (t *gatedTx) Commit() error {
	defer t.done()
	return t.Tx.Commit()
}

// Rollback implements sqldriver.Tx.
func (t *gatedTx) Rollback() error {
	defer t.done()
	return t.Tx.Rollback()
}

func (t *gatedTx) done() {
	if t.end != nil {
		t.end()
		t.end = nil
	}
}

// exclusive enters the gate for a statement run outside a transaction (a
// write, or a read that costs the gate little) and returns the function
// that leaves it.
func (c *cachingConn) exclusive(ctx context.Context) (func(), error) {
	if c.inTx || c.gate == nil {
		return func() {}, nil
	}
	return c.gate.enter(ctx)
}
