package datasync

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// File flushes f's data and what reading it back needs (its size and
// blocks), not its timestamps: fdatasync(2), retried on EINTR.
func File(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if !errors.Is(serr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
