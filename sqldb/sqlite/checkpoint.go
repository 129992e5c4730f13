package sqlite

import (
	"context"
	sqldriver "database/sql/driver"
	"sync"
	"sync/atomic"
	"time"
)

// SQLite copies the write-ahead log back into the database file (a
// checkpoint) by itself once the log holds 1,000 pages, in the commit of
// whichever transaction crossed that mark: that writer's commit then takes
// the copy and an fsync of the database file too, and with the write gate
// (gate.go) every writer queued behind it waits as well. The connections
// of a pool therefore run with automatic checkpoints off
// (wal_autocheckpoint 0), and a goroutine of the pool checkpoints on a
// connection of its own every checkpointEvery while anything was written:
// PASSIVE, which waits for no reader and no writer (a copy that a reader
// still needs is done by the next one). The log is reset by SQLite at a
// write that follows a complete checkpoint, as before.

// checkpointEvery is how often a pool that wrote checkpoints its log.
const checkpointEvery = 250 * time.Millisecond

// checkpointer checkpoints a pool's write-ahead log off the writers' path.
type checkpointer struct {
	connector sqldriver.Connector
	writes    atomic.Int64 // writes ended since the last checkpoint
	stop      chan struct{}
	done      chan struct{}
	once      sync.Once
}

func newCheckpointer(c sqldriver.Connector) *checkpointer {
	k := &checkpointer{connector: c, stop: make(chan struct{}), done: make(chan struct{})}
	go k.run()
	return k
}

// wrote counts a write transaction or statement that ended.
func (k *checkpointer) wrote() {
	if k != nil {
		k.writes.Add(1)
	}
}

func (k *checkpointer) run() {
	defer close(k.done)
	var conn sqldriver.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		if k.writes.Swap(0) == 0 {
			continue
		}
		if err := k.checkpoint(&conn); err != nil {
			// Left for the next tick (and a new connection): the log
			// grows meanwhile, nothing is lost.
			if conn != nil {
				conn.Close()
				conn = nil
			}
			k.writes.Add(1)
		}
	}
}

// checkpoint runs one PASSIVE checkpoint on *conn, opening it first if
// needed.
func (k *checkpointer) checkpoint(conn *sqldriver.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
	defer cancel()
	if *conn == nil {
		c, err := k.connector.Connect(ctx)
		if err != nil {
			return err
		}
		*conn = c
	}
	ex, ok := (*conn).(sqldriver.ExecerContext)
	if !ok {
		return sqldriver.ErrSkip
	}
	_, err := ex.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)", nil)
	return err
}

// close stops the goroutine; it is safe to call more than once.
func (k *checkpointer) close() {
	if k == nil {
		return
	}
	k.once.Do(func() { close(k.stop) })
	<-k.done
}
