package serve

import (
	"io"
	"net"
	"syscall"
	"time"
	"unsafe"
)

// rawIO does the fast path's reads and writes of a plain TCP connection
// with raw system calls: the socket is non-blocking (a call that would
// block returns EAGAIN, and the wait is the runtime poller's, deadlines
// included), so the call never sleeps, and making it raw keeps the
// goroutine's P through it. Through net.Conn each read and write enters
// the runtime's syscall state, and the scheduler's monitor hands the P of
// a thread found there twice (every 20 µs while it finds work to do) to
// another thread: on loopback a write runs the receiver's side of TCP and
// wakes it, long enough to be caught, and when the machine's cores are
// busy the thread handed the P waits for one before the requests queued
// on that P go on, the tail of the latency.
type rawIO struct {
	rc    syscall.RawConn
	p     []byte
	n     int
	errno syscall.Errno
	// c and timeout are the connection and WriteTimeout of the write
	// under way; armed is set once it set c's write deadline.
	c       net.Conn
	timeout time.Duration
	armed   bool
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

// rawConn returns c's raw connection when c is a TCP connection (package
// serve's wrappers unwrapped), or nil.
func rawConn(c net.Conn) syscall.RawConn {
	for {
		switch cc := c.(type) {
		case *countedConn:
			c = cc.Conn
		case *capConn:
			c = cc.Conn
		case *net.TCPConn:
			rc, err := cc.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		default:
			return nil
		}
	}
}

// init makes the functions the raw connection calls, once (a pooled
// connection keeps them), so that reads and writes do not allocate.
func (r *rawIO) init() {
	if r.readFn != nil {
		return
	}
	r.readFn = func(fd uintptr) bool {
		for {
			n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(r.p))), uintptr(len(r.p)))
			switch e {
			case 0:
				r.n, r.errno = int(n), 0
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			r.n, r.errno = 0, e
			return true
		}
	}
	r.writeFn = func(fd uintptr) bool {
		for len(r.p) > 0 {
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(r.p))), uintptr(len(r.p)))
			switch e {
			case 0:
				r.n += int(n)
				r.p = r.p[n:]
				continue
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				if r.timeout > 0 && !r.armed {
					_ = r.c.SetWriteDeadline(time.Now().Add(r.timeout))
					r.armed = true
				}
				return false
			}
			r.errno = e
			return true
		}
		return true
	}
}

// read reads into p as net.Conn's Read does: (0, io.EOF) at the end of
// the stream.
func (r *rawIO) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.errno = p, 0, 0
	err := r.rc.Read(r.readFn)
	r.p = nil
	if err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	if r.n == 0 {
		return 0, io.EOF
	}
	return r.n, nil
}

// write writes all of p to c (r's connection), or fails; when it has to
// wait for the socket, within timeout (if not 0) of when it starts
// waiting: the deadline is set then, and cleared once the write is done.
func (r *rawIO) write(p []byte, c net.Conn, timeout time.Duration) error {
	r.p, r.n, r.errno, r.c, r.timeout, r.armed = p, 0, 0, c, timeout, false
	err := r.rc.Write(r.writeFn)
	r.p, r.c = nil, nil
	if err != nil {
		return err
	}
	if r.armed {
		_ = c.SetWriteDeadline(time.Time{})
	}
	if r.errno != 0 {
		return r.errno
	}
	return nil
}
