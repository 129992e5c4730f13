package mysqlsrc

import (
	"net"
	"testing"

	"github.com/intercloud/intercloud/internal/readpace"
)

// TestBinlogConnectionIsPaced: the binlog connection's reads are paced
// (package readpace).
func TestBinlogConnectionIsPaced(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := binlogDialer()(t.Context(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rc, ok := c.(*readpace.Conn); !ok || rc.Gap != readpace.DefaultGap {
		t.Errorf("the binlog connection is %T, want a *readpace.Conn with the default gap", c)
	}
}
