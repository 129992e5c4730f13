package load_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/internal/cputime"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/replicate"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

// BenchmarkLoad loads b.N records, in raw objects of 1,000 as the API
// writes them (a shared line per request of 100), into the embedded
// default's records table with its change capture installed, as the
// pipeline runs it, and reports the CPU time per record.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	bucket, err := objects.Open(ctx, "file://"+filepath.Join(dir, "objects"), nil)
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(dir, "sql.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bucket.Close(); db.Close() })
	schema := config.Default(dir).Schema
	l := load.New(bucket, db, schema, nil)
	if err := l.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	if err := replicate.Prepare(ctx, db, []string{schema.Table}, nil); err != nil {
		b.Fatal(err)
	}
	const perObject = 1000
	var keys []string
	at := time.Now().UTC()
	for n := 0; n < b.N; n += perObject {
		var data []byte
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
		if err := bucket.Put(ctx, key, data, nil); err != nil {
			b.Fatal(err)
		}
		keys = append(keys, key)
	}
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

// BenchmarkPending is one pass of the reconciler over an hour of 100 raw
// objects, all loaded, with the keys of the objects loaded in earlier
// hours (kept in the loaded-objects table after their raw objects
// expired) in the table: what it costs should follow the hour's objects,
// not the history.
func BenchmarkPending(b *testing.B) {
	for _, history := range []int{0, 200000} {
		b.Run(fmt.Sprint(history), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			bucket, err := objects.Open(ctx, "file://"+filepath.Join(dir, "objects"), nil)
			if err != nil {
				b.Fatal(err)
			}
			db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(dir, "sql.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { bucket.Close(); db.Close() })
			l := load.New(bucket, db, config.Default(dir).Schema, nil)
			if err := l.Prepare(ctx); err != nil {
				b.Fatal(err)
			}
			now := time.Now().UTC()
			if _, err := db.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
				INSERT INTO `+load.LoadedTable+` (key, records, loaded_at) SELECT printf('raw/2025/%02d/%02d/%02d/%08d.ndjson', 1 + i / 100000 % 12, 1 + i / 4000 % 28, i / 200 % 24, i), 1000, '2025-01-01T00:00:00Z' FROM n`, history); err != nil {
				b.Fatal(err)
			}
			for i := range 100 {
				key := load.PartitionOf(now) + fmt.Sprintf("%08d.ndjson", i)
				if err := bucket.Put(ctx, key, []byte(`{"id":"x"}`+"\n"), nil); err != nil {
					b.Fatal(err)
				}
				if _, err := db.ExecContext(ctx, `INSERT INTO `+load.LoadedTable+` (key, records, loaded_at) VALUES (?, 1, '2025-01-01T00:00:00Z')`, key); err != nil {
					b.Fatal(err)
				}
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
