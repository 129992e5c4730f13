//go:build !linux

package file

import (
	"os"
	"path/filepath"
)

// The calls of a write by path, where the Linux ones use the directory's
// descriptor (sys_linux.go).

func createAt(d *os.File, name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(d.Name(), name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

func writeAll(f *os.File, bufs ...[]byte) error {
	for _, b := range bufs {
		if _, err := f.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func datasync(f *os.File) error { return f.Sync() }

func renameAt(fromDir *os.File, from string, toDir *os.File, to string) error {
	return os.Rename(filepath.Join(fromDir.Name(), from), filepath.Join(toDir.Name(), to))
}

func renameNoReplace(fromDir *os.File, from string, toDir *os.File, to string) error {
	if err := os.Link(filepath.Join(fromDir.Name(), from), filepath.Join(toDir.Name(), to)); err != nil {
		return err
	}
	return removeAt(fromDir, from)
}

func removeAt(d *os.File, name string) error { return os.Remove(filepath.Join(d.Name(), name)) }

func isDirAt(d *os.File, name string) bool {
	fi, err := os.Lstat(filepath.Join(d.Name(), name))
	return err == nil && fi.IsDir()
}

// lockFile is a no-op here: the sweep at open goes by a temporary file's
// age alone.
func lockFile(f *os.File) error { return nil }

func tryLockFile(f *os.File) (bool, error) { return true, nil }
