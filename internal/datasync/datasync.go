// Package datasync flushes a file's data to stable storage: fdatasync(2)
// where there is one, which leaves out the timestamps (a journal commit
// of their own on ext4 and xfs) but not the size or the blocks that
// reading the data back needs; elsewhere File.Sync.
package datasync
