package replicate_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/cputime"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// benchRows returns n rows of items in column order.
func benchRows(n int) [][]any {
	rows := make([][]any, n)
	base := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for i := range rows {
		rows[i] = []any{int64(i + 1), fmt.Sprint("item-", i), int64(i % 17), fmt.Sprintf("%d.%02d", i, i%100),
			base.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000000Z"), fmt.Sprint("trace-", i)}
	}
	return rows
}

// insertMulti writes rows with multi-row upserts of up to 1000 rows, 2000
// rows per transaction: the statements the replicator's apply uses.
func insertMulti(b *testing.B, db *sqldb.DB, tbl sqldb.Table, rows [][]any) {
	ctx := context.Background()
	for len(rows) > 0 {
		txRows := rows[:min(replicate.DefaultBatchSize, len(rows))]
		rows = rows[len(txRows):]
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			for part := txRows; len(part) > 0; {
				n := min(1000, len(part))
				var vals []any
				for _, r := range part[:n] {
					vals = append(vals, r...)
				}
				if _, err := tx.ExecContext(ctx, db.Dialect.Upsert(tbl, n), vals...); err != nil {
					return err
				}
				part = part[n:]
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchTable(b *testing.B, db *sqldb.DB) sqldb.Table {
	exec(b, db, itemsDDL)
	tbl, err := db.Dialect.Describe(context.Background(), db, "items")
	if err != nil {
		b.Fatal(err)
	}
	return tbl
}

// BenchmarkApply measures CDC throughput SQLite → SQLite: b.N changes
// waiting in the source's log, applied to the target.
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	src, dst := openDB(b, "src"), openDB(b, "dst")
	tbl := benchTable(b, src)
	if err := replicate.Prepare(ctx, src, []string{"items"}, quietLogger()); err != nil {
		b.Fatal(err)
	}
	insertMulti(b, src, tbl, benchRows(b.N))
	want := currentSeq(b, src)
	b.ResetTimer()
	t0, cpu0 := time.Now(), cpuTime(b)
	r := sourcetest.Start(b, replicate.Config{Name: "bench", Source: src, Target: dst, Tables: []string{"items"}, SkipFullLoad: true, Poll: time.Millisecond})
	waitCaughtUp(b, r, src)
	el, cpu := time.Since(t0), cpuTime(b)-cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/row")
	// How long the stream held the target's one write lock per row: what
	// it costs the target's other writers (the publisher, the load).
	if st, ok := dst.WriteLock(); ok {
		for _, w := range st.Writers {
			if w.Writer == replicate.Writer("bench") {
				b.ReportMetric(float64(w.Held.Nanoseconds())/1e3/float64(b.N), "lock-µs/row")
			}
		}
	}
	r.Stop(b)
	if n := count(b, dst, `SELECT COUNT(*) FROM items`); n != int64(b.N) || want == 0 {
		b.Fatalf("target has %d rows, want %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
}

// cpuTime is the process's CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	t, err := cputime.Process()
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// BenchmarkRawInsert inserts the same rows into the target directly with the
// same multi-row statements, the baseline for BenchmarkApply.
func BenchmarkRawInsert(b *testing.B) {
	dst := openDB(b, "dst")
	tbl := benchTable(b, dst)
	rows := benchRows(b.N)
	b.ResetTimer()
	t0 := time.Now()
	insertMulti(b, dst, tbl, rows)
	el := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
}
