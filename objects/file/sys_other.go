//go:build !linux

package file

import (
	"context"
	"io"
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

// walkBatch is how many entries a directory read returns at a time: a
// directory of hundreds of thousands of objects (an hour's raw
// partition) is never held whole.
const walkBatch = 512

// readDir calls fn for each entry of the open directory d, read in
// batches (walkBatch), in the order the file system gives them.
func readDir(ctx context.Context, d *os.File, fn func(name []byte, isDir bool) error) error {
	for {
		ents, err := d.ReadDir(walkBatch)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		for _, e := range ents {
			if err := fn([]byte(e.Name()), e.IsDir()); err != nil {
				return err
			}
		}
		if err == io.EOF || (err == nil && len(ents) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// lockFile is a no-op here: the sweep at open goes by a temporary file's
// age alone.
func lockFile(f *os.File) error { return nil }

func tryLockFile(f *os.File) (bool, error) { return true, nil }
