//go:build !linux

package datasync

import "os"

// File flushes f to stable storage (File.Sync: F_FULLFSYNC on macOS).
func File(f *os.File) error { return f.Sync() }
