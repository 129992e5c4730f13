// Package deadend gives tests network addresses that lead nowhere: a
// listener that accepts connections and never answers (a server that
// hangs), and the error of a connection that is refused (a server that is
// down). Both are real sockets on the loopback interface.
package deadend

import (
	"net"
	"testing"
	"time"
)

// Silent listens on a free loopback port, accepts every connection and
// never reads from or writes to it, and returns the address (host:port).
// When the test ends it closes the listener and every connection.
func Silent(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("deadend: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			conns = append(conns, c) // read nothing, answer nothing
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// Refused returns the error of a TCP connection to a loopback port that
// was just closed: a real "connection refused", as errors.Is and
// net.Error see it.
func Refused(t testing.TB) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("deadend: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("deadend: %s accepted a connection after its listener closed", addr)
	}
	return err
}
