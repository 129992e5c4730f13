package deadend_test

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/deadend"
)

// TestSilent: a connection is accepted, nothing comes back within a read
// deadline, and once the test that made it has ended the connection is
// closed and the address refuses new ones.
func TestSilent(t *testing.T) {
	var addr string
	var c net.Conn
	t.Run("open", func(t *testing.T) {
		addr = deadend.Silent(t)
		var err error
		if c, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(make([]byte, 1))
		var ne net.Error
		if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read %d bytes, %v: want a timeout", n, err)
		}
	})
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("after the test: read %d bytes, %v: want the connection closed", n, err)
	}
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Errorf("after the test: %s still accepts connections", addr)
	}
}

func TestRefused(t *testing.T) {
	if err := deadend.Refused(t); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Refused = %v, want ECONNREFUSED", err)
	}
}
