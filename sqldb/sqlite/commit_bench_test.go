package sqlite

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCommit: writers commit transactions of 100 rows into one
// database at once (the pipeline's load, stream and publisher). It
// reports how long each commit held the database's one write lock
// (lock-µs/commit: what the other writers wait for), commits a second
// and the time a commit took from BEGIN to its return (µs/commit).
func BenchmarkCommit(b *testing.B) {
	ctx := context.Background()
	db := openWithTable(b, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`)
	const rows = 100
	b.SetParallelism(2) // 2 × GOMAXPROCS writers
	start := time.Now()
	var n int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Error(err)
				return
			}
			for range rows {
				if _, err := tx.ExecContext(ctx, `INSERT INTO t (v) VALUES ('a value of a row of a table')`); err != nil {
					tx.Rollback()
					b.Error(err)
					return
				}
			}
			if err := tx.Commit(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	el := time.Since(start)
	b.StopTimer()
	st, _ := db.WriteLock()
	var held time.Duration
	for _, w := range st.Writers {
		if w.Writer == "other" {
			held, n = w.Held, w.Writes
		}
	}
	if n > 0 {
		b.ReportMetric(float64(held.Microseconds())/float64(n), "lock-µs/commit")
		b.ReportMetric(float64(n)/el.Seconds(), "commits/s")
	}
}
