package edge

import (
	"syscall"
	"unsafe"
)

// peekEmpty reports whether a read of the socket fd would block: no byte
// and no end of stream waits.
func peekEmpty(fd uintptr) bool {
	var b byte
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK
}
