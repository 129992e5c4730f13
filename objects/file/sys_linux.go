package file

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The calls of a write, made relative to the open directory d so that the
// file is created, named and made durable in one and the same directory.

// createAt creates name in d, failing if it exists.
func createAt(d *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.Name() + "/" + name, Err: err}
	}
	return os.NewFile(uintptr(fd), d.Name()+"/"+name), nil
}

// writeAll writes the slices in order with as few writev(2) calls as the
// kernel takes (one for a regular file, per iovMax slices).
func writeAll(f *os.File, bufs ...[]byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	iov := bufs
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		for {
			for len(iov) > 0 && len(iov[0]) == 0 {
				iov = iov[1:]
			}
			if len(iov) == 0 {
				return true
			}
			n, err := unix.Writev(int(fd), iov[:min(len(iov), iovMax)])
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err == nil && n == 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				werr = &os.PathError{Op: "write", Path: f.Name(), Err: err}
				return true
			}
			for n > 0 {
				if n < len(iov[0]) {
					iov[0] = iov[0][n:]
					break
				}
				n -= len(iov[0])
				iov = iov[1:]
			}
		}
	}); err != nil {
		return err
	}
	return werr
}

// iovMax is the most slices one writev(2) takes (IOV_MAX).
const iovMax = 1024

// renameAt moves from in fromDir to to in toDir, replacing to.
func renameAt(fromDir *os.File, from string, toDir *os.File, to string) error {
	if err := unix.Renameat(int(fromDir.Fd()), from, int(toDir.Fd()), to); err != nil {
		return &os.LinkError{Op: "rename", Old: fromDir.Name() + "/" + from, New: toDir.Name() + "/" + to, Err: err}
	}
	return nil
}

// renameNoReplace moves from in fromDir to to in toDir unless to exists
// (fs.ErrExist), atomically: renameat2(2) with RENAME_NOREPLACE, or, on a
// file system or sandbox without it (EINVAL, ENOSYS, or EPERM from a
// seccomp filter), link(2) then unlink(2) of from. Once linked the object
// exists: an unlink that fails leaves only a hidden temporary name
// behind.
func renameNoReplace(fromDir *os.File, from string, toDir *os.File, to string) error {
	err := unix.Renameat2(int(fromDir.Fd()), from, int(toDir.Fd()), to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		if err = unix.Linkat(int(fromDir.Fd()), from, int(toDir.Fd()), to, 0); err == nil {
			_ = removeAt(fromDir, from)
			return nil
		}
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: fromDir.Name() + "/" + from, New: toDir.Name() + "/" + to, Err: err}
	}
	return nil
}

// removeAt removes the file name in d; a missing one is fs.ErrNotExist.
func removeAt(d *os.File, name string) error {
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: d.Name() + "/" + name, Err: err}
	}
	return nil
}

// isDirAt reports whether name in d is a directory.
func isDirAt(d *os.File, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR
}

// readDir calls fn with the name of each entry of the open directory d
// but "." and "..", in the order the file system gives them, and whether
// it is a directory (a symbolic link is not). The name is valid during
// the call only: the entries are read with getdents64 into one buffer, so
// a directory of hundreds of thousands of objects (an hour's raw
// partition) costs no allocation for an entry fn skips.
func readDir(ctx context.Context, d *os.File, fn func(name []byte, isDir bool) error) error {
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 32<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = unix.Getdents(int(fd), buf)
				if rerr != unix.EINTR {
					return true
				}
			}
		}); err != nil {
			return err
		}
		if rerr != nil {
			return &os.PathError{Op: "getdents", Path: d.Name(), Err: rerr}
		}
		if n == 0 {
			return nil
		}
		// struct linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen
		// (2, at 16), d_type (1, at 18), then the name, NUL-terminated.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return &os.PathError{Op: "getdents", Path: d.Name(), Err: errors.New("malformed entry")}
			}
			rec := b[:reclen]
			b = b[reclen:]
			name := rec[19:]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if string(name) == "." || string(name) == ".." || len(name) == 0 {
				continue
			}
			isDir := rec[18] == unix.DT_DIR
			if rec[18] == unix.DT_UNKNOWN { // a file system that does not say
				isDir = isDirAt(d, string(name))
			}
			if err := fn(name, isDir); err != nil {
				return err
			}
		}
	}
}

// lockFile takes f's lock (flock(2), exclusive), held until f is closed:
// it marks a temporary file as a live writer's. On a file system that
// does not lock (some network and FUSE mounts) the file goes unlocked:
// the lock only guards the sweep, which then keeps the file (see
// tryLockFile), and the write goes on.
func lockFile(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if lockUnsupported(err) {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// tryLockFile takes f's lock if no one holds it; false means a live
// writer may: one holds it, or the file system does not lock, so that no
// one can tell.
func tryLockFile(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for errors.Is(err, unix.EINTR) {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if errors.Is(err, unix.EWOULDBLOCK) || lockUnsupported(err) {
		return false, nil
	}
	return err == nil, err
}

// lockUnsupported reports whether err says the file system does not
// lock.
func lockUnsupported(err error) bool {
	return errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}
