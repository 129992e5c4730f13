package publish

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/cputime"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/replicate"
)

// BenchmarkApplyBatch measures one change batch of 1,000 new records
// spread over 4 hourly buckets, on tables already holding 10,000 and
// 100,000 records in those buckets: "incremental" is the publisher's
// apply; "recompute" is the baseline it replaced, a COUNT/SUM/MIN/MAX
// query over each touched bucket, then the same result files. Incremental stays flat as the table
// grows; the recomputation grows with it.
func BenchmarkApplyBatch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		e := newBenchEnv(b, n)
		p, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Settings: config.Default("").Publish})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Prepare(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := p.Rebuild(context.Background()); err != nil {
			b.Fatal(err)
		}
		h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
		next := 0
		batch := func() replicate.Batch {
			var bt replicate.Batch
			for i := 0; i < 1000; i++ {
				id := fmt.Sprintf("new-%09d", next)
				next++
				bt.Changes = append(bt.Changes, replicate.Change{Table: "records", Op: replicate.OpUpsert, Key: []any{id},
					Row: map[string]any{"id": id, "metric": "cpu", "value": float64(i), "ts": h.Add(time.Duration(i%4) * time.Hour)}})
			}
			return bt
		}
		b.Run(fmt.Sprintf("incremental/rows=%d", n), func(b *testing.B) {
			cpu0, err := cputime.Process()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := p.apply(context.Background(), batch()); err != nil {
					b.Fatal(err)
				}
				if err := p.flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "µs/change")
			if cpu, err := cputime.Process(); err == nil {
				b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N)/1000, "cpu-µs/change")
			}
		})
		b.Run(fmt.Sprintf("recompute/rows=%d", n), func(b *testing.B) {
			d := e.db.Dialect
			q := fmt.Sprintf("SELECT COUNT(*), COALESCE(SUM(%s), 0), COALESCE(MIN(%s), 0), COALESCE(MAX(%s), 0) FROM %s WHERE %s = %s AND %s >= %s AND %s < %s",
				"value", "value", "value", d.Quote("records"), d.Quote("metric"), d.Placeholder(1), d.Quote("ts"), d.Placeholder(2), d.Quote("ts"), d.Placeholder(3))
			tcol, _ := e.table.Column("ts")
			var aggs []Aggregate
			for b.Loop() {
				for k := 0; k < 4; k++ {
					from, _ := d.Value(tcol.Type, h.Add(time.Duration(k)*time.Hour))
					to, _ := d.Value(tcol.Type, h.Add(time.Duration(k+1)*time.Hour))
					var c int64
					var s, lo, hi float64
					if err := e.db.QueryRow(q, "cpu", from, to).Scan(&c, &s, &lo, &hi); err != nil {
						b.Fatal(err)
					}
					aggs = append(aggs, Aggregate{Group: "cpu", Hour: h.Add(time.Duration(k) * time.Hour), Count: c, Sum: s, Min: lo, Max: hi})
				}
				// The same files as the incremental pass writes.
				if _, err := p.publishAggs(context.Background(), aggs); err != nil {
					b.Fatal(err)
				}
				aggs = aggs[:0]
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "µs/change")
		})
	}
}

// newBenchEnv is an env whose records table holds n records of metric
// cpu in four hourly buckets.
func newBenchEnv(b *testing.B, n int) *env {
	b.Helper()
	e := newEnvTB(b)
	if err := e.db.EnsureTable(context.Background(), e.table); err != nil {
		b.Fatal(err)
	}
	// The index the recomputation used.
	if _, err := e.db.Exec(`CREATE INDEX ix_records_publish ON records (metric, ts)`); err != nil {
		b.Fatal(err)
	}
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	const per = 500
	for i := 0; i < n; i += per {
		var args []any
		rows := 0
		for j := i; j < min(n, i+per); j++ {
			row, err := record.Row(e.table, e.db.Dialect, record.Record{ID: fmt.Sprintf("old-%09d", j), Origin: "aws", IngestedAt: h,
				Fields: map[string]any{"device": "d", "metric": "cpu", "value": float64(j % 1000), "ts": h.Add(time.Duration(j%4)*time.Hour + time.Duration(j%3600)*time.Second)}})
			if err != nil {
				b.Fatal(err)
			}
			args = append(args, row...)
			rows++
		}
		if _, err := e.db.Exec(e.db.Dialect.Upsert(e.table, rows), args...); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// BenchmarkApplyBatchFeed measures the publisher's pass over change
// batches shaped like the embedded pipeline's at full load: 5,000 changes
// a batch, rows as the SQLite change feed reads them (timestamps as text,
// one trace id per 100 records), time-ordered ids, 5 groups over 4 hourly
// buckets, on a state already holding 200,000 contributions; each batch
// is applied and its 20 buckets' files written. "inserts" are new records
// only; "updates" has one change in 10 rewrite an earlier record (a new
// value, mostly in another bucket) and one in 100 delete one.
func BenchmarkApplyBatchFeed(b *testing.B) {
	benchApplyBatchFeed(b, func(b *testing.B) (*env, func() time.Duration) { return newEnvTB(b), nil })
}

// BenchmarkApplyBatchFeedPostgres is BenchmarkApplyBatchFeed on
// PostgreSQL, with two walsenders following the records table as the
// pipeline's do (the publisher's feed and the reverse stream: they decode
// every change written, the contributions' included); postgres-µs/change
// is the server's CPU (every process of it) per change.
//
//	go test ./publish -run '^$' -bench ApplyBatchFeedPostgres -benchtime 20x
func BenchmarkApplyBatchFeedPostgres(b *testing.B) {
	if testing.Short() {
		b.Skip("real servers are skipped with -short")
	}
	benchApplyBatchFeed(b, func(b *testing.B) (*env, func() time.Duration) {
		pg := peers.StartPostgres(b)
		e := newEnvAt(b, pg.URL("app"))
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		b.Cleanup(func() { cancel(); wg.Wait() })
		if err := e.db.EnsureTable(ctx, e.table); err != nil {
			b.Fatal(err)
		}
		for _, name := range []string{"bench-feed", "bench-reverse"} {
			src, err := replicate.OpenSourceMode(ctx, e.db, "", replicate.SourceConfig{Name: name, Tables: []string{e.table.Name}})
			if err != nil {
				b.Fatal(err)
			}
			pos, err := src.Current(ctx)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				defer src.Close()
				_ = src.Stream(ctx, pos, replicate.StreamOptions{Tables: []string{e.table.Name}, MaxBatch: 5000, Poll: 50 * time.Millisecond},
					func(context.Context, replicate.Batch) error { return nil })
			})
		}
		return e, func() time.Duration { return pg.CPU(b) }
	})
}

// benchApplyBatchFeed runs BenchmarkApplyBatchFeed on the env newEnv
// makes; its server function, when not nil, reads the database server's
// CPU time.
func benchApplyBatchFeed(b *testing.B, newEnv func(b *testing.B) (*env, func() time.Duration)) {
	const per, warm = 5000, 40
	metrics := []string{"cpu", "mem", "disk", "net", "temp"}
	h := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, mix := range []string{"inserts", "updates"} {
		e, server := newEnv(b)
		p, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Settings: config.Default("").Publish})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if err := p.Prepare(ctx); err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, 4))
		next := 0
		id := func(n int) string { return fmt.Sprintf("019ad2f0-%04x-7%03x-8000-%012x", n/4096, n%4096, n*7919) }
		row := func(n int) map[string]any {
			ts := h.Add(time.Duration(rng.IntN(4*3600)) * time.Second)
			return map[string]any{"id": id(n), "device": fmt.Sprintf("dev-%03d", rng.IntN(200)), "metric": metrics[rng.IntN(len(metrics))],
				"value": float64(rng.IntN(1000000)) / 100, "ts": ts.Format("2006-01-02T15:04:05.000000Z"),
				record.ColIngestedAt: time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), "_origin": "aws", "_trace_id": fmt.Sprintf("%032x", n/100)}
		}
		batch := func(updates bool) replicate.Batch {
			var bt replicate.Batch
			for i := 0; i < per; i++ {
				switch {
				case updates && i%100 == 99 && next > per:
					bt.Changes = append(bt.Changes, replicate.Change{Table: "records", Op: replicate.OpDelete, Key: []any{id(rng.IntN(next - per))}})
				case updates && i%10 == 9 && next > per:
					n := rng.IntN(next - per)
					r := row(n)
					bt.Changes = append(bt.Changes, replicate.Change{Table: "records", Op: replicate.OpUpsert, Key: []any{id(n)}, Row: r, TraceID: r["_trace_id"].(string)})
				default:
					r := row(next)
					bt.Changes = append(bt.Changes, replicate.Change{Table: "records", Op: replicate.OpUpsert, Key: []any{id(next)}, Row: r, TraceID: r["_trace_id"].(string)})
					next++
				}
			}
			return bt
		}
		pass := func(bt replicate.Batch) {
			if _, err := p.apply(ctx, bt); err != nil {
				b.Fatal(err)
			}
			if err := p.flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		for range warm {
			pass(batch(false))
		}
		b.Run(mix, func(b *testing.B) {
			var used time.Duration
			var s0 time.Duration
			if server != nil {
				s0 = server()
			}
			for b.Loop() {
				b.StopTimer()
				bt := batch(mix == "updates")
				b.StartTimer()
				cpu0, err := cputime.Process()
				if err != nil {
					b.Fatal(err)
				}
				pass(bt)
				cpu, err := cputime.Process()
				if err != nil {
					b.Fatal(err)
				}
				used += cpu - cpu0
			}
			b.ReportMetric(float64(used.Nanoseconds())/float64(b.N)/per/1000, "cpu-µs/change")
			if server != nil {
				time.Sleep(time.Second) // the walsenders decode what was written
				b.ReportMetric(float64((server()-s0).Nanoseconds())/float64(b.N)/per/1000, "postgres-µs/change")
			}
		})
	}
}
