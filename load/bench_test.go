package load_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/internal/cputime"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/replicate"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

// BenchmarkLoad loads b.N records, in raw objects of 1,000 as the API
// writes them (a shared line per request of 100), into the embedded
// default's records table with its change capture installed, as the
// pipeline runs it, and reports the CPU time per record.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	l, bucket, db, schema := benchLoader(b, dir, "sqlite://"+filepath.Join(dir, "sql.db"))
	if err := replicate.Prepare(ctx, db, []string{schema.Table}, nil); err != nil {
		b.Fatal(err)
	}
	keys := putObjects(b, bucket, 1000)
	b.ResetTimer()
	cpu0, err := cputime.Process()
	if err != nil {
		b.Fatal(err)
	}
	for _, key := range keys {
		if res, err := l.Load(ctx, key); err != nil || res.Skipped {
			b.Fatalf("load %s: %+v, %v", key, res, err)
		}
	}
	cpu, err := cputime.Process()
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
	var rows int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+schema.Table).Scan(&rows); err != nil || rows != b.N {
		b.Fatalf("%d rows (%v), want %d", rows, err, b.N)
	}
}

// benchLoader opens a file object store in dir and the database at dbURL,
// closed when b ends, and returns a prepared Loader of the default schema
// over them.
func benchLoader(b *testing.B, dir, dbURL string) (*load.Loader, *objects.Bucket, *sqldb.DB, config.Schema) {
	b.Helper()
	ctx := context.Background()
	bucket, err := objects.Open(ctx, "file://"+filepath.Join(dir, "objects"), nil)
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqldb.Open(ctx, dbURL, nil)
	if err != nil {
		bucket.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { bucket.Close(); db.Close() })
	schema := config.Default(dir).Schema
	l := load.New(bucket, db, schema, nil)
	if err := l.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	return l, bucket, db, schema
}

// putObjects writes b.N records in raw objects of perObject as the API
// writes them (a shared line per request of 100) and returns their keys.
func putObjects(b *testing.B, bucket *objects.Bucket, perObject int) []string {
	var keys []string
	at := time.Now().UTC()
	for n := 0; n < b.N; n += perObject {
		var data []byte
		var err error
		for i := n; i < min(n+perObject, b.N); i++ {
			if i%100 == 0 || i == n {
				data = append(record.AppendShared(data, record.Shared{Origin: "aws", TraceID: fmt.Sprintf("%032x", i/100), IngestedAt: at.Add(time.Duration(i) * time.Microsecond)}), '\n')
			}
			r := record.Record{ID: fmt.Sprintf("0193a1b2-%04x-7000-8000-%012x", i>>16, i), Fields: map[string]any{
				"device": fmt.Sprintf("device-%d", i%50), "metric": "cpu", "value": float64(i) / 7,
				"ts": at.Add(time.Duration(i) * time.Millisecond)}}
			if data, err = r.AppendCompact(data); err != nil {
				b.Fatal(err)
			}
			data = append(data, '\n')
		}
		key := load.PartitionOf(at) + fmt.Sprintf("%08d.ndjson", n)
		if err := bucket.Put(b.Context(), key, data, nil); err != nil {
			b.Fatal(err)
		}
		keys = append(keys, key)
	}
	return keys
}

// BenchmarkLoadMariaDB loads b.N records, in raw objects of 1,000 and of
// 100 (what the API's group commit writes at 10,000-20,000 records/s of
// requests of 100), into MariaDB (binlog on, row format, as the pipeline
// runs it) from 4 goroutines, and reports the CPU time per record of this
// process and of the server.
func BenchmarkLoadMariaDB(b *testing.B) {
	if testing.Short() {
		b.Skip("starts MariaDB")
	}
	my := peers.StartMariaDB(b)
	for _, per := range []int{1000, 100} {
		b.Run(fmt.Sprintf("objects=%d", per), func(b *testing.B) { benchLoadMariaDB(b, my, per) })
	}
}

func benchLoadMariaDB(b *testing.B, my *peers.MariaDB, perObject int) {
	ctx := context.Background()
	l, bucket, db, schema := benchLoader(b, b.TempDir(), my.URL("app"))
	// The server is the benchmark's: what an earlier round loaded goes.
	for _, t := range []string{schema.Table, load.LoadedTable} {
		if _, err := db.ExecContext(ctx, "DELETE FROM "+t); err != nil {
			b.Fatal(err)
		}
	}
	keys := putObjects(b, bucket, perObject)
	server := func() time.Duration {
		raw, err := os.ReadFile(filepath.Join(my.Dir, "mariadbd.pid"))
		if err != nil {
			b.Fatal(err)
		}
		stat, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(raw)), "stat"))
		if err != nil {
			b.Skipf("no /proc: %v", err)
		}
		// utime and stime, in clock ticks (100 a second), follow the
		// command name (which may hold spaces) as the 12th and 13th.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		ticks := 0
		for _, v := range f[11:13] {
			n, err := strconv.Atoi(v)
			if err != nil {
				b.Fatal(err)
			}
			ticks += n
		}
		return time.Duration(ticks) * 10 * time.Millisecond
	}
	b.ResetTimer()
	cpu0, err := cputime.Process()
	if err != nil {
		b.Fatal(err)
	}
	srv0 := server()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(keys)); i = next.Add(1) - 1 {
				if res, err := l.Load(ctx, keys[i]); err != nil || res.Skipped {
					b.Errorf("load %s: %+v, %v", keys[i], res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	srv := server()
	cpu, err := cputime.Process()
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
	b.ReportMetric(float64((srv-srv0).Microseconds())/float64(b.N), "mariadb-µs/record")
	var rows int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+schema.Table).Scan(&rows); err != nil || rows != b.N {
		b.Fatalf("%d rows (%v), want %d", rows, err, b.N)
	}
}

// BenchmarkPending is one pass of the reconciler over an hour of raw
// objects (100, or 20,000: late in an hour at 20,000 records/s), all
// loaded, with the keys of the objects loaded in earlier hours (kept in
// the loaded-objects table after their raw objects expired) in the
// table: what it costs should follow the hour's new objects, not the
// hour's old ones or the history.
func BenchmarkPending(b *testing.B) {
	for _, c := range []struct{ history, hour int }{{0, 100}, {200000, 100}, {0, 20000}} {
		b.Run(fmt.Sprintf("history=%d/hour=%d", c.history, c.hour), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			l, _, db, _ := benchLoader(b, dir, "sqlite://"+filepath.Join(dir, "sql.db"))
			now := time.Now().UTC()
			if _, err := db.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
				INSERT INTO `+load.LoadedTable+` (key, records, loaded_at) SELECT printf('raw/2025/%02d/%02d/%02d/%08d.ndjson', 1 + i / 100000 % 12, 1 + i / 4000 % 28, i / 200 % 24, i), 1000, '2025-01-01T00:00:00Z' FROM n`, c.history); err != nil {
				b.Fatal(err)
			}
			part := load.PartitionOf(now)
			if err := os.MkdirAll(filepath.Join(dir, "objects", filepath.FromSlash(part)), 0o700); err != nil {
				b.Fatal(err)
			}
			for i := range c.hour { // objects without attributes, as an earlier version wrote them
				if err := os.WriteFile(filepath.Join(dir, "objects", filepath.FromSlash(part), fmt.Sprintf("%08d.ndjson", i)), []byte(`{"id":"x"}`+"\n"), 0o600); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := db.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
				INSERT INTO `+load.LoadedTable+` (key, records, loaded_at) SELECT ? || printf('%08d.ndjson', i), 1, '2025-01-01T00:00:00Z' FROM n`, c.hour, part); err != nil {
				b.Fatal(err)
			}
			// The first pass lists every partition and asks about every
			// key; the benchmark is the passes after it.
			if err := l.Pending(ctx, func(e functions.Event) { b.Fatalf("%s pending", e.ID) }); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				n := 0
				if err := l.Pending(ctx, func(functions.Event) { n++ }); err != nil || n != 0 {
					b.Fatalf("%d pending, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkLoadObjects loads b.N records into the embedded default's
// records table with its change capture installed, in raw objects of 100
// (what the API writes at 20,000 records/s of requests of 100) and of
// 1,000, from as many goroutines as the pipeline's loader runs
// (functions.DefaultConcurrency), and reports the records loaded a second
// and the CPU time per record.
func BenchmarkLoadObjects(b *testing.B) {
	for _, per := range []int{100, 1000} {
		b.Run(fmt.Sprintf("objects=%d", per), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			l, bucket, db, schema := benchLoader(b, dir, "sqlite://"+filepath.Join(dir, "sql.db"))
			if err := replicate.Prepare(ctx, db, []string{schema.Table}, nil); err != nil {
				b.Fatal(err)
			}
			keys := putObjects(b, bucket, per)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			cpu0, err := cputime.Process()
			if err != nil {
				b.Fatal(err)
			}
			for range functions.DefaultConcurrency {
				wg.Go(func() {
					for i := int(next.Add(1)) - 1; i < len(keys); i = int(next.Add(1)) - 1 {
						if res, err := l.Load(ctx, keys[i]); err != nil || res.Skipped {
							b.Errorf("load %s: %+v, %v", keys[i], res, err)
							return
						}
					}
				})
			}
			wg.Wait()
			cpu, err := cputime.Process()
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
		})
	}
}
