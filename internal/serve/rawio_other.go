//go:build !linux

package serve

import (
	"net"
	"syscall"
	"time"
)

// rawIO is the fast path's raw reads and writes, on Linux only: elsewhere
// the connection's own Read and Write serve.
type rawIO struct{ rc syscall.RawConn }

func rawConn(net.Conn) syscall.RawConn { return nil }

func (r *rawIO) init() {}

func (r *rawIO) read(p []byte) (int, error) { panic("serve: raw I/O off Linux") }

func (r *rawIO) write(p []byte, c net.Conn, timeout time.Duration) error {
	panic("serve: raw I/O off Linux")
}
