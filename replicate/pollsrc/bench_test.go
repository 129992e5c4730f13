package pollsrc_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// benchSources returns a function opening a fresh source database of a
// kind ("sqlite", "postgres"); the PostgreSQL server starts once.
func benchSources(b *testing.B) func(b *testing.B, kind string) *sqldb.DB {
	pg := peers.StartPostgres(b)
	return func(b *testing.B, kind string) *sqldb.DB {
		if kind == "sqlite" {
			return sourcetest.Open(b, fmt.Sprintf("sqlite://%s/src%d.db", b.TempDir(), dbSeq.Add(1)))
		}
		name := fmt.Sprintf("bench%d", dbSeq.Add(1))
		sourcetest.Exec(b, sourcetest.Open(b, pg.RootURL("postgres")), "CREATE DATABASE "+name+" OWNER app")
		return sourcetest.Open(b, pg.URL(name))
	}
}

// writeRows inserts n rows into table w, 500 per transaction, one
// statement per row (as writers do).
func writeRows(tb testing.TB, db *sqldb.DB, from, n int) {
	d := db.Dialect
	insert := fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, %s)", d.Quote("w"), d.Quote("id"), d.Quote("v"), d.Placeholder(1), d.Placeholder(2))
	for done := 0; done < n; {
		k := min(500, n-done)
		err := db.Tx(context.Background(), func(tx *sql.Tx) error {
			for i := range k {
				if _, err := tx.Exec(insert, from+done+i, strings.Repeat("v", 30)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		done += k
	}
}

func createW(tb testing.TB, db *sqldb.DB) {
	d := db.Dialect
	sourcetest.Exec(tb, db, fmt.Sprintf("CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY, %s VARCHAR(40) NOT NULL)", d.Quote("w"), d.Quote("id"), d.Quote("v")))
}

// BenchmarkCDC: b.N changes waiting in the source, applied to a SQLite
// target, read by the log source (the database's change log) and by the
// poll source, side by side.
func BenchmarkCDC(b *testing.B) {
	benchSource := benchSources(b)
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{replicate.SourceLog, replicate.SourcePoll} {
			b.Run(kind+"-"+mode, func(b *testing.B) {
				src := benchSource(b, kind)
				dst := sourcetest.Open(b, fmt.Sprintf("sqlite://%s/dst%d.db", b.TempDir(), dbSeq.Add(1)))
				createW(b, src)
				ctx := context.Background()
				if err := replicate.PrepareMode(ctx, src, mode, []string{"w"}, sourcetest.Quiet()); err != nil {
					b.Fatal(err)
				}
				// The stream's place in the source (a PostgreSQL slot) is
				// taken before the writes, as the topology does.
				name := fmt.Sprintf("bench%d", dbSeq.Add(1))
				reserved, err := replicate.OpenSourceMode(ctx, src, mode, replicate.SourceConfig{Name: name, Tables: []string{"w"}, Logger: sourcetest.Quiet()})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := reserved.Current(ctx); err != nil {
					b.Fatal(err)
				}
				reserved.Close()
				s, err := replicate.New(replicate.Config{Name: name, SourceMode: mode, Source: src, Target: dst, Tables: []string{"w"},
					SkipFullLoad: true, Poll: time.Millisecond, Logger: sourcetest.Quiet()})
				if err != nil {
					b.Fatal(err)
				}
				writeRows(b, src, 1, b.N)
				b.ResetTimer()
				t0 := time.Now()
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- s.Run(rctx) }()
				for {
					var n int
					_ = dst.QueryRow("SELECT COUNT(*) FROM w").Scan(&n)
					if n == b.N {
						break
					}
					if time.Since(t0) > 5*time.Minute {
						b.Fatalf("target has %d rows of %d after 5 minutes", n, b.N)
					}
					time.Sleep(2 * time.Millisecond)
				}
				el := time.Since(t0)
				b.StopTimer()
				cancel()
				<-done
				b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkWrite is what capture costs the writers: inserts into a table
// without capture, with the log source's capture and with the poll
// source's (on SQLite both are triggers; on PostgreSQL the log source
// costs the WAL it writes anyway).
func BenchmarkWrite(b *testing.B) {
	benchSource := benchSources(b)
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"none", replicate.SourceLog, replicate.SourcePoll} {
			b.Run(kind+"-"+mode, func(b *testing.B) {
				src := benchSource(b, kind)
				createW(b, src)
				if mode != "none" {
					if err := replicate.PrepareMode(context.Background(), src, mode, []string{"w"}, sourcetest.Quiet()); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				t0 := time.Now()
				writeRows(b, src, 1, b.N)
				el := time.Since(t0)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
			})
		}
	}
}
