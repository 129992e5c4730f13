// Package readpace paces the reads of a connection that receives a
// stream of small messages, each sent on its own, so that they are read
// many at a time.
//
// A change feed's server sends each change as soon as it has it
// (PostgreSQL's walsender flushes every pgoutput message; MariaDB's
// binlog dump sends every event), so a client that keeps up reads, and
// wakes up for, each alone: at 20,000 changes a second that is 20,000
// reads and as many wake-ups of the reading goroutine, and the kernel's
// work of each. Through a Conn, a read that follows one which drained
// the socket (returned less than it had room for) waits until the gap has
// passed since that read returned, so the messages that came meanwhile
// are read together; a read that filled its buffer (more is waiting) is
// followed at once. A message waits at most the gap longer.
package readpace

import (
	"context"
	"net"
	"time"
)

// DefaultGap is the gap the change feeds use: a millisecond, less than
// their own batching waits by an order of magnitude.
const DefaultGap = time.Millisecond

// Conn is a net.Conn whose reads are paced by Gap (see the package doc).
// Like a net.Conn read by a protocol's client, it is read by one
// goroutine at a time; deadlines are the underlying connection's (a read
// whose deadline passes during its wait ends with the timeout).
type Conn struct {
	net.Conn
	Gap time.Duration

	last    time.Time // when the previous read returned
	drained bool      // the previous read returned less than it had room for
}

// Wrap returns c paced by gap.
func Wrap(c net.Conn, gap time.Duration) *Conn {
	return &Conn{Conn: c, Gap: gap}
}

// DialFunc is how the database clients open their connections (pgconn's
// Config.DialFunc, go-mysql's BinlogSyncerConfig.Dialer).
type DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// Dial returns a DialFunc that opens its connections with dial and paces
// them by gap.
func Dial(dial DialFunc, gap time.Duration) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c, gap), nil
	}
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if c.drained {
		if d := c.Gap - time.Since(c.last); d > 0 {
			time.Sleep(d)
		}
	}
	n, err := c.Conn.Read(p)
	c.last = time.Now()
	c.drained = n < len(p)
	return n, err
}
