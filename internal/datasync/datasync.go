// Package datasync flushes a file's data to stable storage: fdatasync(2)
// where there is one, which leaves out the timestamps (a journal commit
// of their own on ext4 and xfs) but not the size or the blocks that
// reading the data back needs; elsewhere File.Sync.
package datasync

import "os"

// Path opens the file at path and flushes its data (File).
func Path(path string) error { return withFile(path, File) }

// Dir fsyncs the directory at path, which makes the entries created or
// removed in it durable.
func Dir(path string) error { return withFile(path, (*os.File).Sync) }

// withFile opens path, runs fn on it and closes it.
func withFile(path string, fn func(*os.File) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
