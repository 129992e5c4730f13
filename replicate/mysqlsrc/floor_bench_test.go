package mysqlsrc_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/cputime"
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
// replicated ones), its reverse stream reading the plain publication, then
// in a third round its filtered ones, which leave the replicated inserts
// out (what the topology runs). It reports each server's CPU per record
// (its process and children, from /proc) for every round, and the CPU of
// this process.
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
	src := sourcetest.Open(b, e.mysqlURL(b, ""))
	dstURL := e.pgURL(b)
	dst := sourcetest.Open(b, dstURL)
	dbName := dstURL[strings.LastIndexByte(dstURL, '/')+1:]
	if i := strings.IndexByte(dbName, '?'); i >= 0 {
		dbName = dbName[:i]
	}
	tbl := record.Table(config.Default(b.TempDir()).Schema)
	if err := src.EnsureTable(ctx, tbl); err != nil {
		b.Fatal(err)
	}
	fwd := sourcetest.Start(b, replicate.Config{Name: "aws-to-azure", Origin: "aws", Source: src, Target: dst, Tables: []string{tbl.Name}, SkipReplicated: true})
	sourcetest.WaitFor(b, "the forward stream's CDC", time.Minute, func() bool { return fwd.Stream.Status().Phase == replicate.PhaseCDC })
	cpu := func() (my, pg, self float64) {
		return e.my.CPU(b).Seconds(), e.pg.CPU(b).Seconds(), cputime.Used(b).Seconds()
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
				args = append(args, lastID(next), "dev-"+strconv.Itoa(next%100), "temp",
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
		// Transactions apply in commit order: the last record there means
		// all are (counted once after the round).
		sourcetest.WaitFor(b, name+": the target's rows", 10*time.Minute, func() bool {
			return sourcetest.Count(b, dst, "SELECT COUNT(*) FROM "+tbl.Name+" WHERE id = $1", lastID(next)) == 1 && caughtUp()
		})
		d := time.Since(t0)
		my1, pg1, self1 := cpu()
		us := func(s float64) float64 { return s * 1e6 / float64(rows) }
		b.Logf("%s: %d records in %v (%.0f/s): MariaDB %.1f µs, PostgreSQL %.1f µs, this process %.1f µs per record",
			name, rows, d.Round(time.Millisecond), float64(rows)/d.Seconds(), us(my1-my0), us(pg1-pg0), us(self1-self0))
		if n := sourcetest.Count(b, dst, "SELECT COUNT(*) FROM "+tbl.Name); n != int64(next) {
			b.Fatalf("%s: the target has %d records, want %d", name, n, next)
		}
		b.ReportMetric(us(my1-my0), name+"-mariadb-µs/rec")
		b.ReportMetric(us(pg1-pg0), name+"-postgres-µs/rec")
		b.ReportMetric(us(self1-self0), name+"-process-µs/rec")
	}
	for b.Loop() {
		round("stream", func() bool { return true })

		dropSlots := func(names ...string) {
			sourcetest.WaitFor(b, "the slots let go of", time.Minute, func() bool {
				return sourcetest.Count(b, dst, "SELECT COUNT(*) FROM pg_replication_slots WHERE slot_name = ANY($1) AND active", "{"+strings.Join(names, ",")+"}") == 0
			})
			sourcetest.Exec(b, dst, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY($1)", "{"+strings.Join(names, ",")+"}")
		}
		// The feeds the topology reads from PostgreSQL, with the reverse
		// stream reading the plain publication, then (what the topology
		// runs) its filtered ones (package pgsrc).
		for _, filtered := range []bool{false, true} {
			name, revName := "stream+feeds", "azure-to-aws"
			if filtered {
				// A stream of its own: the first one's checkpoint is in
				// MariaDB, its slot gone.
				name, revName = name+"-filtered", revName+"-filtered"
			}
			// The reverse stream (its slot before anything writes) and the
			// publisher's feed.
			revCfg := replicate.Config{Name: revName, Origin: "azure", Source: dst, Target: src, Tables: []string{tbl.Name}, SkipReplicated: true, SkipFullLoad: true}
			if filtered {
				revCfg.ReplicatedInserts = &replicate.ReplicatedInserts{Table: tbl.Name, Column: record.ColOrigin, Value: "aws"}
			}
			rev := sourcetest.Start(b, revCfg)
			sourcetest.WaitFor(b, "the reverse stream's CDC", time.Minute, func() bool { return rev.Stream.Status().Phase == replicate.PhaseCDC })
			feed, err := pgsrc.Open(ctx, dst, replicate.SourceConfig{Name: "publish", Tables: []string{tbl.Name}, Logger: sourcetest.Quiet()})
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
			round(name, func() bool { return fed.Load() >= int64(rows) })
			stop()
			<-done
			_ = feed.Close()
			rev.Stop(b)
			dropSlots(pgsrc.SlotName(revName), pgsrc.SlotName("publish"))
		}

		// What the publication row filter saves one walsender: the same records read by pg_recvlogical (the server's
		// own client) from the plain publication, then from one whose
		// inserts of the records table leave out rows that came from the
		// other cloud (_origin = 'aws'; updates and deletes unfiltered, so
		// no update turns into a delete).
		if recv, err := osexec.LookPath("pg_recvlogical"); err == nil || fileExists("/usr/lib/postgresql/15/bin/pg_recvlogical") {
			if recv == "" {
				recv = "/usr/lib/postgresql/15/bin/pg_recvlogical"
			}
			sourcetest.Exec(b, dst, `CREATE PUBLICATION floor_ins FOR TABLE `+tbl.Name+` WHERE (_origin IS DISTINCT FROM 'aws') WITH (publish = 'insert')`)
			sourcetest.Exec(b, dst, `CREATE PUBLICATION floor_rest FOR TABLE `+tbl.Name+` WITH (publish = 'update, delete, truncate')`)
			sourcetest.Exec(b, dst, `CREATE PUBLICATION floor_marker FOR TABLE `+pgsrc.OriginTable)
			for _, v := range []struct{ name, pubs string }{
				{"stream+recvlogical", pgsrc.Publication},
				{"stream+recvlogical-filtered", "floor_ins,floor_rest,floor_marker"},
			} {
				slot := strings.ReplaceAll(strings.TrimPrefix(v.name, "stream+"), "-", "_")
				sourcetest.Exec(b, dst, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)
				var lsn string
				cmd := osexec.Command(recv, "-d", dbName, "-h", "127.0.0.1", "-p", strconv.Itoa(e.pg.Port), "-U", "app",
					"-S", slot, "--start", "-o", "proto_version=1", "-o", "publication_names="+v.pubs, "-s", "1", "-F", "1", "-f", os.DevNull)
				cmd.Env = append(os.Environ(), "PGPASSWORD=secret")
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				round(v.name, func() bool {
					if lsn == "" {
						if err := dst.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
							b.Fatal(err)
						}
					}
					return sourcetest.Count(b, dst, "SELECT COUNT(*) FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn >= $2::pg_lsn", slot, lsn) == 1
				})
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				dropSlots(slot)
			}
		}
	}
	fwd.Stop(b)
}

// lastID is the id of the n-th record written.
func lastID(n int) string { return fmt.Sprintf("0192f%011x-7000-8000-%012x", n, n) }

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}
