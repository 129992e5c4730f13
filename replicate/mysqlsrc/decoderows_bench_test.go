package mysqlsrc

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
)

// BenchmarkDecodeRows decodes the rows events MariaDB logged for one
// INSERT ... SELECT of 20,000 rows with DATETIME(6) columns (one table
// map, then its rows events), read once from the server's binlog file:
// "per-event" copies the table map for each rows event (as the decoder
// did before it kept the copy), "cached" copies it once per table map.
// Run it with:
//
//	go test ./replicate/mysqlsrc/ -run '^$' -bench DecodeRows -count 5
func BenchmarkDecodeRows(b *testing.B) {
	my := peers.StartMariaDB(b)
	db, err := sqldb.Open(context.Background(), fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE DATABASE bench",
		"CREATE TABLE bench.t (id INT PRIMARY KEY, a DATETIME(6), b DATETIME(6), c VARCHAR(40), d INT UNSIGNED)",
		"FLUSH BINARY LOGS",
		"INSERT INTO bench.t SELECT seq, '2024-01-02 03:04:05.123456', '2024-01-31 10:00:00', CONCAT('row ', seq), seq FROM bench.seq_1_to_20000",
		"FLUSH BINARY LOGS",
	} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	// The file the INSERT went to: the second-to-last one.
	rows, err := db.QueryContext(context.Background(), "SHOW BINARY LOGS")
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var name string
		var size any
		if err := rows.Scan(&name, &size); err != nil {
			b.Fatal(err)
		}
		names = append(names, name)
	}
	rows.Close()
	if len(names) < 2 {
		b.Fatalf("binary logs: %v", names)
	}
	file := names[len(names)-2]
	// The raw events of the file, parsed again in each round.
	var raw [][]byte
	p := replication.NewBinlogParser()
	p.SetRawMode(true)
	if err := p.ParseFile(filepath.Join(my.Dir, "binlog", file), 4, func(e *replication.BinlogEvent) error {
		raw = append(raw, append([]byte(nil), e.RawData...))
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name   string
		decode func() func(*replication.RowsEvent, []byte) error
	}{
		{"per-event", func() func(*replication.RowsEvent, []byte) error {
			return func(e *replication.RowsEvent, data []byte) error { return newRowsDecoder().decode(e, data) }
		}},
		{"cached", func() func(*replication.RowsEvent, []byte) error { return newRowsDecoder().decode }},
	} {
		b.Run(v.name, func(b *testing.B) {
			var events, rows int
			for b.Loop() {
				p := replication.NewBinlogParser()
				p.SetUseDecimal(true)
				p.SetRowsEventDecodeFunc(v.decode())
				events, rows = 0, 0
				for _, data := range raw {
					e, err := p.Parse(data)
					if err != nil {
						b.Fatal(err)
					}
					if re, ok := e.Event.(*replication.RowsEvent); ok {
						events++
						rows += len(re.Rows)
					}
				}
			}
			if rows != 20000 {
				b.Fatalf("decoded %d rows in %d rows events, want 20000", rows, events)
			}
			b.ReportMetric(float64(events), "rows-events")
		})
	}
}
