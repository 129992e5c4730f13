package sqlitesrc

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/cputime"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// benchDDL is a table shaped like the records table of the default schema
// (a UUIDv7-like text key, two strings, a number, a timestamp and the
// system columns).
const benchDDL = `CREATE TABLE records (id VARCHAR(64) NOT NULL, device VARCHAR(256) NOT NULL,
	metric VARCHAR(256) NOT NULL, value REAL NOT NULL, ts TIMESTAMP_TEXT NOT NULL,
	_origin VARCHAR(32) NOT NULL, _trace_id VARCHAR(64) NOT NULL, _ingested_at TIMESTAMP_TEXT NOT NULL,
	PRIMARY KEY (id))`

// benchInsert writes n rows into records with multi-row inserts of 256
// rows, 2,000 rows per transaction (the statements load uses).
func benchInsert(b *testing.B, db *sqldb.DB, from, n int) {
	ctx := context.Background()
	tbl, err := db.Dialect.Describe(ctx, db, "records")
	if err != nil {
		b.Fatal(err)
	}
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i := from; i < from+n; {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			for end := min(i+2000, from+n); i < end; {
				k := min(256, end-i)
				vals := make([]any, 0, k*len(tbl.Columns))
				for j := i; j < i+k; j++ {
					at := base.Add(time.Duration(j) * time.Millisecond)
					vals = append(vals, fmt.Sprintf("019ad4c2-%04x-7000-8000-%012x", j>>16&0xffff, j),
						fmt.Sprint("device-", j%100), "temperature", float64(j)/7, at.Format("2006-01-02T15:04:05.000000Z"),
						"aws", fmt.Sprintf("%032x", j), at.Format("2006-01-02T15:04:05.000000Z"))
				}
				if _, err := tx.ExecContext(ctx, db.Dialect.InsertIgnore(tbl, k), vals...); err != nil {
					return err
				}
				i += k
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead measures the change feed's read of a source capturing one
// table (the records table's feed: the replication stream and the
// publisher read it so): b.N inserted rows waiting, read in batches of
// 2,000 changes with the current row of each, as Stream does.
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	db := openDB(b)
	if _, err := db.ExecContext(ctx, benchDDL); err != nil {
		b.Fatal(err)
	}
	src, err := Open(ctx, db, []string{"records"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchInsert(b, db, 0, b.N)
	want := map[string]bool{"records": true}
	opts := replicate.StreamOptions{Tables: []string{"records"}, MaxBatch: replicate.DefaultBatchSize}.WithDefaults()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Used(b)
	var seq int64
	changes := 0
	for {
		batch, n, err := src.read(ctx, seq, want, opts)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		changes += len(batch.Changes)
		if seq, err = ParsePosition(batch.Position); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cputime.Used(b) - cpu0
	b.StopTimer()
	if changes != b.N {
		b.Fatalf("read %d changes, want %d", changes, b.N)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/change")
}

// BenchmarkCapture measures what capture adds to the writes of a captured
// table: b.N rows inserted as load inserts them, each logged by the
// capture trigger.
func BenchmarkCapture(b *testing.B) {
	db := capturedDB(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Used(b)
	benchInsert(b, db, 0, b.N)
	cpu := cputime.Used(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/row")
}

// BenchmarkPrune measures the trim of the change table: b.N changes of
// the records table logged, then pruned, as the pipeline's prune loop
// does once every consumer has applied them.
func BenchmarkPrune(b *testing.B) {
	ctx := context.Background()
	db := capturedDB(b)
	benchInsert(b, db, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Used(b)
	n, err := Prune(ctx, db, FormatPosition(int64(b.N)))
	cpu := cputime.Used(b) - cpu0
	b.StopTimer()
	if err != nil || n != int64(b.N) {
		b.Fatalf("pruned %d changes (%v), want %d", n, err, b.N)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/change")
}

// capturedDB is a database with benchDDL's records table, captured.
func capturedDB(b *testing.B) *sqldb.DB {
	db := openDB(b)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, benchDDL); err != nil {
		b.Fatal(err)
	}
	if err := Install(ctx, db, []string{"records"}); err != nil {
		b.Fatal(err)
	}
	return db
}
