package sqlite

import (
	"context"
	sqldriver "database/sql/driver"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/sqldb"
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
//
// The gate counts, per writer (the component sqldb.WithWriter names in
// the context), the writes, the time they queued and the time they held
// it: Dialect.WriteLock reports them, so an operator sees how busy the
// database's one writer is and who keeps it busy.

// gateWait is how long a writer queues at the gate at most.
const gateWait = 30 * time.Second

// writeGate queues the writers of one database, first come first served
// (waiters on a channel are served in arrival order), and counts each
// writer's (sqldb.WriterName) share of it for sqldb.WriteLocker.
type writeGate struct {
	ch chan struct{}
	// wal makes each write durable once it has left the gate
	// (walsync.go).
	wal *walSyncer

	mu      sync.Mutex
	waiting int
	writers map[string]*sqldb.WriterStats
	// holder holds the gate since held ("": nobody), so that a long
	// transaction counts while it runs, not only once it ends.
	holder string
	held   time.Time
}

// newWriteGate returns the gate of the database at dbPath; connect opens a
// connection to it (walsync.go).
func newWriteGate(dbPath string, connect func(context.Context) (sqldriver.Conn, error)) *writeGate {
	return &writeGate{ch: make(chan struct{}, 1), wal: newWALSyncer(dbPath, connect), writers: map[string]*sqldb.WriterStats{}}
}

// enter waits for the gate and returns the function that leaves it; it
// returns ctx's error if ctx ends first.
func (g *writeGate) enter(ctx context.Context) (func(), error) {
	name := sqldb.WriterName(ctx)
	start := time.Now()
	select {
	case g.ch <- struct{}{}:
		return g.leaver(name, start), nil
	default:
	}
	g.mu.Lock()
	g.waiting++
	g.mu.Unlock()
	t := time.NewTimer(gateWait)
	defer t.Stop()
	select {
	case g.ch <- struct{}{}:
		in := time.Now()
		g.count(name, func(w *sqldb.WriterStats) { w.Wait += in.Sub(start) }, -1)
		return g.leaver(name, in), nil
	case <-ctx.Done():
		g.count(name, func(w *sqldb.WriterStats) { w.Wait += time.Since(start) }, -1)
		return nil, ctx.Err()
	case <-t.C:
		// Past SQLite's own patience: let SQLite decide.
		g.count(name, func(w *sqldb.WriterStats) {
			w.Wait += time.Since(start)
			w.Writes++
			w.Bypassed++
		}, -1)
		return func() {}, nil
	}
}

// leaver notes name as the holder of the gate since in and returns the
// function that leaves the gate and counts the write.
func (g *writeGate) leaver(name string, in time.Time) func() {
	g.mu.Lock()
	g.holder, g.held = name, in
	g.mu.Unlock()
	return func() {
		// The hold moves from the holder's to its totals at once, so
		// that they never seem to shrink (they are counters).
		g.count(name, func(w *sqldb.WriterStats) {
			w.Writes++
			w.Held += time.Since(in)
			g.holder = ""
		}, 0)
		<-g.ch
	}
}

// count updates name's totals with fn (under g.mu) and the queued writers
// by waiting.
func (g *writeGate) count(name string, fn func(w *sqldb.WriterStats), waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiting += waiting
	w := g.writers[name]
	if w == nil {
		w = &sqldb.WriterStats{Writer: name}
		g.writers[name] = w
	}
	fn(w)
}

// stats returns the writers' totals, by name, and the writers queued now;
// the holder's Held includes its hold so far.
func (g *writeGate) stats() sqldb.WriteLockStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := sqldb.WriteLockStats{Waiting: g.waiting, Writers: make([]sqldb.WriterStats, 0, len(g.writers)+1)}
	holding := g.holder != ""
	for _, w := range g.writers {
		c := *w
		if holding && c.Writer == g.holder {
			c.Held += time.Since(g.held)
			holding = false
		}
		st.Writers = append(st.Writers, c)
	}
	if holding {
		st.Writers = append(st.Writers, sqldb.WriterStats{Writer: g.holder, Held: time.Since(g.held)})
	}
	slices.SortFunc(st.Writers, func(a, b sqldb.WriterStats) int { return strings.Compare(a.Writer, b.Writer) })
	return st
}

// BeginTx implements sqldriver.ConnBeginTx: a write transaction holds the
// gate until it ends, and its commit returns once it is durable.
func (c *cachingConn) BeginTx(ctx context.Context, opts sqldriver.TxOptions) (sqldriver.Tx, error) {
	leave := func() {}
	var wal *walSyncer
	if !opts.ReadOnly && c.gate != nil {
		wal = c.gate.wal
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
	return &gatedTx{Tx: tx, end: func() { c.inTx = false; leave() }, wal: wal}, nil
}

// gatedTx leaves the gate when the transaction ends, and, for a write
// transaction, makes its commit durable after that (walsync.go).
type gatedTx struct {
	sqldriver.Tx
	end func()
	wal *walSyncer // nil: a read-only transaction
}

// Commit implements sqldriver.Tx: it returns once the commit is durable,
// which it waits for outside the gate.
func (t *gatedTx) Commit() error {
	err := t.Tx.Commit()
	t.done()
	if err != nil || t.wal == nil {
		return err
	}
	// database/sql gives a commit no context: the wait is one sync.
	return t.wal.after(context.Background())
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
// that leaves it and, once the statement succeeded, waits until what it
// wrote is durable.
func (c *cachingConn) exclusive(ctx context.Context) (func(ok bool) error, error) {
	if c.inTx || c.gate == nil {
		return func(bool) error { return nil }, nil
	}
	leave, err := c.gate.enter(ctx)
	if err != nil {
		return nil, err
	}
	return func(ok bool) error {
		leave()
		if !ok {
			return nil
		}
		return c.gate.wal.after(ctx)
	}, nil
}
