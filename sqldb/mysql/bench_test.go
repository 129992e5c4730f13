package mysql_test

import (
	"context"
	"testing"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/sqldb"
)

// BenchmarkReadDates measures reading a table's DATETIME(6) and DATE
// columns to portable values the two ways: the driver's time.Time (which
// loses zero dates) and the server's text (SelectColumn, what the full
// load and validate use). Both run in the same process, one after the
// other per iteration, so their ratio holds on a loaded machine:
//
//	go test ./sqldb/mysql/ -run '^$' -bench ReadDates -benchtime 5x
func BenchmarkReadDates(b *testing.B) {
	const rows = 100_000
	m := peers.StartMariaDB(b)
	db, err := sqldb.Open(context.Background(), m.URL("app"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		"SET SESSION max_recursive_iterations = 1000000",
		"CREATE TABLE dates (id INT PRIMARY KEY, dt DATETIME(6) NOT NULL, d DATE NOT NULL)",
		"INSERT INTO dates WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) " +
			"SELECT i, TIMESTAMPADD(SECOND, i, '2024-01-01 00:00:00.123456'), DATE_ADD('1990-01-01', INTERVAL i % 10000 DAY) FROM n",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	conn.Close()
	tbl, err := db.Dialect.Describe(ctx, db, "dates")
	if err != nil {
		b.Fatal(err)
	}
	read := func(b *testing.B, list string) {
		r, err := db.QueryContext(ctx, "SELECT "+list+" FROM dates")
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		vals := make([]any, 3)
		ptrs := []any{&vals[0], &vals[1], &vals[2]}
		n := 0
		for r.Next() {
			if err := r.Scan(ptrs...); err != nil {
				b.Fatal(err)
			}
			for i, c := range tbl.Columns {
				if _, err := sqldb.Normalize(c.Type, vals[i]); err != nil {
					b.Fatal(err)
				}
			}
			n++
		}
		if err := r.Err(); err != nil || n != rows {
			b.Fatalf("%d rows, %v", n, err)
		}
	}
	b.Run("driver-time", func(b *testing.B) {
		for b.Loop() {
			read(b, sqldb.QuoteList(db.Dialect, tbl.ColumnNames()))
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})
	b.Run("server-text", func(b *testing.B) {
		for b.Loop() {
			read(b, sqldb.SelectList(db.Dialect, tbl, tbl.ColumnNames()))
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})
}
