package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteAheadLogSettings: every connection of the pool (not only the
// first) runs in WAL mode with synchronous=NORMAL (the gate syncs the log
// after each commit, walsync.go: FULL would sync it twice), checkpoints the
// log at WALAutoCheckpoint pages and keeps a page cache of PageCacheKiB.
func TestWriteAheadLogSettings(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t, "wal.db")
	var conns []*sql.Conn
	for range 3 { // three connections open at once
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var mode string
		var sync, ckpt, cache int
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&ckpt); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&cache); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || sync != 1 || ckpt != WALAutoCheckpoint || cache != -PageCacheKiB {
			t.Errorf("journal_mode %s, synchronous %d, wal_autocheckpoint %d, cache_size %d; want wal, 1 (NORMAL), %d, %d",
				mode, sync, ckpt, cache, WALAutoCheckpoint, -PageCacheKiB)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestWriteAheadLogCheckpointsLate: the log grows past SQLite's default
// checkpoint (1,000 pages, 4 MB) and is checkpointed, so restarted from
// its beginning, once it passes WALAutoCheckpoint pages: 48 commits of
// 1 MB leave a log of more than 8 MB and less than WALAutoCheckpoint
// pages and a commit.
func TestWriteAheadLogCheckpointsLate(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t, "wal.db")
	if _, err := db.ExecContext(ctx, `CREATE TABLE blobs (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	v := strings.Repeat("x", 64<<10)
	var largest int64
	for i := range 48 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 16 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO blobs VALUES (?, ?)`, i*16+j, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, fi.Size())
	}
	const page = 4096
	if largest < 8<<20 || largest > (WALAutoCheckpoint+2*300)*page {
		t.Errorf("the write-ahead log reached %.1f MB, want between 8 and %.1f MB", float64(largest)/(1<<20), float64((WALAutoCheckpoint+2*300)*page)/(1<<20))
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM blobs`).Scan(&n); err != nil || n != 48*16 {
		t.Fatalf("%d rows (%v), want %d", n, err, 48*16)
	}
}

// openTemp opens (OpenFile) a new database named name in a temporary
// directory, closed when the test ends, and returns it and its path.
func openTemp(t *testing.T, name string) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	db, err := OpenFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}
