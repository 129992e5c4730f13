package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/cputime"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

// BenchmarkWriterApply measures the apply alone (converting change images
// and writing them with multi-row upserts) into SQLite, on rows shaped
// as the pipeline's records (the ingest time shared by 100 records, the
// last-writer-wins version columns), 2,000 changes per transaction, rolled
// back so that every transaction inserts; it reports the CPU time per
// change.
func BenchmarkWriterApply(b *testing.B) {
	ctx := context.Background()
	open := func(name string) *sqldb.DB {
		db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), name+".db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db
	}
	src, dst := open("src"), open("dst")
	ts := sqldb.Type{Kind: sqldb.KindTimestamp}
	tbl := sqldb.Table{Name: "records", PrimaryKey: []string{"id"}, Columns: []sqldb.Column{
		{Name: "id", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
		{Name: "device", Type: sqldb.Type{Kind: sqldb.KindString, Length: 256}},
		{Name: "metric", Type: sqldb.Type{Kind: sqldb.KindString, Length: 256}},
		{Name: "value", Type: sqldb.Type{Kind: sqldb.KindFloat}},
		{Name: "ts", Type: ts},
		{Name: "_origin", Type: sqldb.Type{Kind: sqldb.KindString, Length: 32}},
		{Name: "_trace_id", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
		{Name: "_ingested_at", Type: ts},
	}}
	if err := src.EnsureTable(ctx, tbl); err != nil {
		b.Fatal(err)
	}
	tp, err := describePair(ctx, src, dst, "records", true)
	if err != nil {
		b.Fatal(err)
	}
	const perTx = 2000
	at := time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)
	changes := make([]Change, perTx)
	for i := range changes {
		id := fmt.Sprintf("0193a1b2-%04x-7000-8000-%012x", i>>16, i)
		changes[i] = Change{Table: "records", Op: OpUpsert, Key: []any{id}, Row: map[string]any{
			"id": id, "device": fmt.Sprintf("device-%d", i%50), "metric": "cpu", "value": float64(i) / 7,
			"ts":        at.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000000Z"),
			"_origin":   "aws",
			"_trace_id": fmt.Sprintf("%032x", i/100), "_ingested_at": at.Add(time.Duration(i/100) * time.Millisecond).Format("2006-01-02T15:04:05.000000Z"),
		}}
	}
	w := &writer{d: dst.Dialect, tables: map[string]*tablePair{"records": tp}, version: []string{"_ingested_at", "_origin"}}
	errDone := fmt.Errorf("rolled back")
	b.ResetTimer()
	cpu0, _ := cputime.Process()
	for n := 0; n < b.N; n += perTx {
		err := dst.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := w.apply(ctx, tx, changes[:min(perTx, b.N-n)]); err != nil {
				return err
			}
			return errDone
		})
		if err != errDone {
			b.Fatal(err)
		}
	}
	cpu, _ := cputime.Process()
	b.StopTimer()
	b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N), "cpu-µs/change")
}
