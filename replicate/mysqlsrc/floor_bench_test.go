package mysqlsrc_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/pgsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// BenchmarkServerFloor measures what the two database servers themselves
// spend per record of the pipeline's records table (the default schema),
// without the rest of the pipeline: INTERCLOUD_BENCH_ROWS records
// (default 200,000) inserted into MariaDB (binlog on) 500 to a statement
// and transaction, replicated to PostgreSQL by the stream the topology
// runs (binlog → COPY), and, in a second round of as many records, with
// the two PostgreSQL change feeds the topology also runs (the publisher's,
// which reads every row, and the reverse stream's, which skips the
// replicated ones). It reports each server's CPU per record (its process
// and children, from /proc) for both rounds, and the CPU of this process.
//
//	go test ./replicate/mysqlsrc/ -run '^$' -bench ServerFloor -benchtime 1x
func BenchmarkServerFloor(b *testing.B) {
	rows := 200_000
	if v := os.Getenv("INTERCLOUD_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("INTERCLOUD_BENCH_ROWS=%q", v)
		}
		rows = n
	}
	ctx := context.Background()
	e := &env{my: peers.StartMariaDB(b), pg: peers.StartPostgres(b)}
	src := open(b, e.mysqlURL(b, ""))
	dst := open(b, e.pgURL(b))
	tbl := record.Table(config.Default(b.TempDir()).Schema)
	if err := src.EnsureTable(ctx, tbl); err != nil {
		b.Fatal(err)
	}
	fwd := sourcetest.Start(b, replicate.Config{Name: "aws-to-azure", Origin: "aws", Source: src, Target: dst, Tables: []string{tbl.Name}, SkipReplicated: true})
	waitFor(b, "the forward stream's CDC", time.Minute, func() bool { return fwd.Stream.Status().Phase == replicate.PhaseCDC })
	cpu := func() (my, pg, self float64) {
		return serverTreeCPU(b, filepath.Join(e.my.Dir, "mariadbd.pid")), serverTreeCPU(b, filepath.Join(e.pg.Dir, "postgres.pid")), selfCPU(b)
	}
	next := 0
	insert := func(n int) {
		const per = 500
		cols := tbl.ColumnNames()
		stmt := "INSERT INTO " + src.Dialect.Quote(tbl.Name) + " (" + sqldb.QuoteList(src.Dialect, cols) + ") VALUES " +
			strings.TrimSuffix(strings.Repeat("("+strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",")+"),", per), ",")
		at := time.Now().UTC()
		args := make([]any, 0, per*len(cols))
		for i := 0; i < n; i += per {
			args = args[:0]
			for j := 0; j < per; j++ {
				next++
				// id, device, metric, value, ts, _origin, _trace_id, _ingested_at
				args = append(args, fmt.Sprintf("0192f%011x-7000-8000-%012x", next, next), "dev-"+strconv.Itoa(next%100), "temp",
					float64(next%1000)/10, at, "aws", fmt.Sprintf("%032x", next), at)
			}
			if _, err := src.ExecContext(ctx, stmt, args...); err != nil {
				b.Fatal(err)
			}
		}
	}
	round := func(name string, caughtUp func() bool) {
		my0, pg0, self0 := cpu()
		t0 := time.Now()
		insert(rows)
		want := int64(next)
		waitFor(b, name+": the target's rows", 10*time.Minute, func() bool {
			return count(b, dst, "SELECT COUNT(*) FROM "+tbl.Name) == want && caughtUp()
		})
		d := time.Since(t0)
		my1, pg1, self1 := cpu()
		us := func(s float64) float64 { return s * 1e6 / float64(rows) }
		b.Logf("%s: %d records in %v (%.0f/s): MariaDB %.1f µs, PostgreSQL %.1f µs, this process %.1f µs per record",
			name, rows, d.Round(time.Millisecond), float64(rows)/d.Seconds(), us(my1-my0), us(pg1-pg0), us(self1-self0))
		b.ReportMetric(us(my1-my0), name+"-mariadb-µs/rec")
		b.ReportMetric(us(pg1-pg0), name+"-postgres-µs/rec")
		b.ReportMetric(us(self1-self0), name+"-process-µs/rec")
	}
	for b.Loop() {
		round("stream", func() bool { return true })

		// The feeds the topology reads from PostgreSQL: the reverse stream
		// (its slot before anything writes) and the publisher's.
		rev := sourcetest.Start(b, replicate.Config{Name: "azure-to-aws", Origin: "azure", Source: dst, Target: src, Tables: []string{tbl.Name}, SkipReplicated: true, SkipFullLoad: true})
		waitFor(b, "the reverse stream's CDC", time.Minute, func() bool { return rev.Stream.Status().Phase == replicate.PhaseCDC })
		feed, err := pgsrc.Open(ctx, dst, replicate.SourceConfig{Name: "publish", Tables: []string{tbl.Name}, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		var fed atomic.Int64
		fctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		from, err := feed.Current(ctx)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			done <- feed.Stream(fctx, from, replicate.StreamOptions{}, func(_ context.Context, bt replicate.Batch) error {
				fed.Add(int64(len(bt.Changes)))
				return nil
			})
		}()
		round("stream+feeds", func() bool { return fed.Load() >= int64(rows) })
		stop()
		<-done
		_ = feed.Close()
		rev.Stop(b)
	}
	fwd.Stop(b)
}

// serverTreeCPU is the CPU time in seconds of the server whose pid file
// is pidFile and of its children.
func serverTreeCPU(b *testing.B, pidFile string) float64 {
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		b.Fatal(err)
	}
	root, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		b.Fatalf("%s: %v", pidFile, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var ticks float64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
		if len(f) < 15 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); pid != root && ppid != root {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		ticks += u + s
	}
	return ticks / 100 // USER_HZ
}

// selfCPU is this process's CPU time in seconds.
func selfCPU(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}
