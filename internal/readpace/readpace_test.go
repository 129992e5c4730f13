package readpace

import (
	"bytes"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the reads that reach the socket.
type countingConn struct {
	net.Conn
	reads atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestPacedConnReadsManyMessagesAtOnce: small messages written one at a
// time, the way a walsender sends changes (read straight from the socket
// they take a read or so each), are read many per read through a Conn,
// and arrive whole and in order.
func TestPacedConnReadsManyMessagesAtOnce(t *testing.T) {
	const messages = 400
	msg := bytes.Repeat([]byte("x"), 120)
	client, server := tcpPair(t)
	counted := &countingConn{Conn: client}
	r := Wrap(counted, time.Millisecond)
	start := time.Now()
	go func() {
		for i := range messages {
			m := append([]byte{byte(i)}, msg...)
			if _, err := server.Write(m); err != nil {
				t.Error(err)
				return
			}
			// A spin, not a sleep: a sleep this short takes a
			// millisecond or more on some machines.
			for t0 := time.Now(); time.Since(t0) < 20*time.Microsecond; {
			}
		}
	}()
	got := make([]byte, messages*(len(msg)+1))
	// Room for every message at once: no read fills its buffer, so each
	// is followed by a gap.
	buf := make([]byte, 2*len(got))
	for n := 0; n < len(got); {
		k, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		n += copy(got[n:], buf[:k])
	}
	took := time.Since(start)
	for i := range messages {
		if m := got[i*(len(msg)+1):][:len(msg)+1]; m[0] != byte(i) || !bytes.Equal(m[1:], msg) {
			t.Fatalf("message %d arrived as %q", i, m)
		}
	}
	reads := counted.reads.Load()
	t.Logf("%d messages in %d reads (%v)", messages, reads, took)
	// One read a gap, and one for the read that finds the last messages.
	if limit := int64(took/time.Millisecond) + 2; reads > limit {
		t.Errorf("%d reads in %v, want at most %d", reads, took, limit)
	}
}

// TestPacedConnFullReadsAreNotDelayed: while each read fills its buffer
// (more is waiting), the next read comes at once.
func TestPacedConnFullReadsAreNotDelayed(t *testing.T) {
	client, server := tcpPair(t)
	const size = 1 << 20
	go func() {
		if _, err := server.Write(bytes.Repeat([]byte("y"), size)); err != nil {
			t.Error(err)
		}
	}()
	c := Wrap(client, 50*time.Millisecond)
	buf := make([]byte, 4096)
	start := time.Now()
	drainedReads := 0
	for n := 0; n < size; {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if k < len(buf) {
			drainedReads++
		}
		n += k
	}
	// Each read that drained the socket delays the next by the gap; the
	// full ones none.
	if took, limit := time.Since(start), time.Duration(drainedReads+1)*50*time.Millisecond+time.Second; took > limit {
		t.Errorf("1 MiB in 4 KiB reads took %v with %d reads that drained the socket, want under %v", took, drainedReads, limit)
	}
}

// TestPacedConnKeepsDeadlines: a read deadline that passes while a read
// waits its gap still ends the read with a timeout (the stream's timers
// and its cancellation rely on it).
func TestPacedConnKeepsDeadlines(t *testing.T) {
	client, server := tcpPair(t)
	c := Wrap(client, 20*time.Millisecond)
	if _, err := server.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 10)); err != nil { // drains: the next read waits
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the timeout came after %v", took)
	}
}
