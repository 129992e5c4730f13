package mysqlsrc_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	osexec "os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// BenchmarkMariaDBToPostgres measures, in one run, MariaDB → PostgreSQL
// full-load and CDC rows/s for a table of INTERCLOUD_BENCH_ROWS rows
// (default 1,000,000), the raw rate of PostgreSQL COPY of the same rows,
// pgloader migrating the same table (when installed: apt-get install
// pgloader), and the replication lag under a steady 10,000 rows/s write
// load for 20 s.
// Run it alone:
//
//	go test ./replicate/mysqlsrc/ -run '^$' -bench MariaDBToPostgres -benchtime 1x
func BenchmarkMariaDBToPostgres(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("INTERCLOUD_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("INTERCLOUD_BENCH_ROWS=%q", v)
		}
		rows = n
	}
	e := &env{my: peers.StartMariaDB(b), pg: peers.StartPostgres(b)}
	srcURL := e.mysqlURL(b, "")
	src := sourcetest.Open(b, srcURL)
	dstURL := e.pgURL(b)
	dst := sourcetest.Open(b, dstURL)
	sourcetest.Exec(b, src, itemsDDL)
	fillBig(b, src, 1, rows)
	ctx := context.Background()
	b.ResetTimer()

	// Full load.
	t0 := time.Now()
	r := sourcetest.Start(b, replicate.Config{Name: "bench", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 5000})
	sourcetest.WaitFor(b, "full load", 30*time.Minute, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	full := time.Since(t0)
	r.Stop(b)

	// The baseline: pgloader migrating the same table (schema, rows, the
	// primary key index) into a database of its own, when it is installed.
	pgloaderDur := runPgloader(b, e, srcURL, rows)

	// Raw COPY of the same rows, right before and right after the CDC
	// catch-up (the machine is shared: the two bracket it in time).
	conn, err := pgx.Connect(ctx, dstURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	rawCopy := func(table string) time.Duration {
		if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, qty INTEGER, price NUMERIC(12,2), _trace_id VARCHAR(64))"); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		n, err := conn.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "name", "qty", "price"}, &itemSource{n: rows})
		if err != nil || n != int64(rows) {
			b.Fatalf("copy: %d, %v", n, err)
		}
		return time.Since(t0)
	}

	// CDC: the same number of rows written while the stream is stopped,
	// then caught up.
	fillBig(b, src, rows+1, rows)
	copyBefore := rawCopy("copied_before")
	t0 = time.Now()
	r = sourcetest.Start(b, replicate.Config{Name: "bench", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 5000})
	waitCaughtUp(b, r, src)
	cdc := time.Since(t0)
	copyAfter := rawCopy("copied_after")
	copyDur := (copyBefore + copyAfter) / 2
	if n := sourcetest.Count(b, dst, "SELECT COUNT(*) FROM items"); n != int64(2*rows) {
		b.Fatalf("target has %d rows, want %d", n, 2*rows)
	}

	// Lag at 10,000 rows/s (100-row transactions every 10 ms) for 20 s.
	var mu sync.Mutex
	written := map[int64]time.Time{}
	var lags []time.Duration
	r.Stop(b)
	r = sourcetest.Start(b, replicate.Config{Name: "bench", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 5000,
		OnApplied: func(bt replicate.Batch) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range bt.Changes {
				if id, ok := c.Key[0].(int64); ok {
					if w, ok := written[id]; ok {
						lags = append(lags, now.Sub(w))
						delete(written, id)
					}
				}
			}
		}})
	waitCaughtUp(b, r, src)
	base := int64(10 * rows)
	tick := time.NewTicker(10 * time.Millisecond)
	end := time.Now().Add(20 * time.Second)
	sent := 0
	for time.Now().Before(end) {
		<-tick.C
		first := base + int64(sent)
		var sb strings.Builder
		args := make([]any, 0, 400)
		for j := 0; j < 100; j++ {
			if j > 0 {
				sb.WriteString(",")
			}
			sb.WriteString("(?,?,?,?)")
			id := first + int64(j)
			args = append(args, id, "lag", j, "1.00")
		}
		mu.Lock()
		written[first] = time.Now()
		mu.Unlock()
		if _, err := src.ExecContext(ctx, "INSERT INTO items (id, name, qty, price) VALUES "+sb.String(), args...); err != nil {
			b.Fatal(err)
		}
		sent += 100
	}
	tick.Stop()
	waitCaughtUp(b, r, src)
	mu.Lock()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	p := func(q float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(q*float64(len(lags))))]
	}
	p50, p99 := p(0.50), p(0.99)
	mu.Unlock()
	b.StopTimer()

	fullRate := float64(rows) / full.Seconds()
	cdcRate := float64(rows) / cdc.Seconds()
	copyRate := float64(rows) / copyDur.Seconds()
	b.ReportMetric(fullRate, "fullload_rows/s")
	b.ReportMetric(cdcRate, "cdc_rows/s")
	b.ReportMetric(copyRate, "copy_rows/s")
	b.ReportMetric(cdcRate/copyRate, "cdc/copy")
	pglRate := 0.0
	if pgloaderDur > 0 {
		pglRate = float64(rows) / pgloaderDur.Seconds()
		b.ReportMetric(pglRate, "pgloader_rows/s")
		b.ReportMetric(fullRate/pglRate, "fullload/pgloader")
	}
	b.ReportMetric(float64(p50.Milliseconds()), "lag_p50_ms")
	b.ReportMetric(float64(p99.Milliseconds()), "lag_p99_ms")
	fmt.Fprintf(os.Stderr, "rows=%d full_load=%.0f rows/s pgloader=%.0f rows/s cdc=%.0f rows/s copy=%.0f rows/s cdc/copy=%.2f lag p50=%v p99=%v (%d rows at %.0f rows/s)\n",
		rows, fullRate, pglRate, cdcRate, copyRate, cdcRate/copyRate, p50, p99, sent, float64(sent)/20)
}

// fillBig inserts n items from id lo in transactions of 10,000 rows.
func fillBig(b testing.TB, db *sqldb.DB, lo, n int) {
	const tx = 10_000
	for i := 0; i < n; i += tx {
		k := min(tx, n-i)
		err := db.Tx(context.Background(), func(t *sql.Tx) error {
			for j := 0; j < k; j += 1000 {
				m := min(1000, k-j)
				var sb strings.Builder
				args := make([]any, 0, 4*m)
				for x := 0; x < m; x++ {
					if x > 0 {
						sb.WriteString(",")
					}
					sb.WriteString("(?,?,?,?)")
					id := lo + i + j + x
					args = append(args, id, "item-"+strconv.Itoa(id), id%17, strconv.Itoa(id%100000)+".25")
				}
				if _, err := t.Exec("INSERT INTO items (id, name, qty, price) VALUES "+sb.String(), args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// itemSource feeds CopyFrom the rows fillBig writes.
type itemSource struct {
	n, i int
}

func (s *itemSource) Next() bool { s.i++; return s.i <= s.n }
func (s *itemSource) Values() ([]any, error) {
	return []any{int64(s.i), "item-" + strconv.Itoa(s.i), int32(s.i % 17), strconv.Itoa(s.i%100000) + ".25"}, nil
}
func (s *itemSource) Err() error { return nil }

// runPgloader migrates the source database (the items table) into a fresh
// PostgreSQL database with pgloader and returns how long it took; 0 when
// pgloader is not installed (apt-get install pgloader).
func runPgloader(b *testing.B, e *env, srcURL string, rows int) time.Duration {
	path, err := osexec.LookPath("pgloader")
	if err != nil {
		b.Log("pgloader is not installed: no baseline")
		return 0
	}
	u, err := url.Parse(srcURL)
	if err != nil {
		b.Fatal(err)
	}
	srcDB := strings.TrimPrefix(u.Path, "/")
	dstURL := e.pgURL(b)
	d, err := url.Parse(dstURL)
	if err != nil {
		b.Fatal(err)
	}
	d.Scheme, d.RawQuery = "postgresql", ""
	cmd := osexec.Command(path, "--no-ssl-cert-verification", "--dynamic-space-size", "2048", "--root-dir", b.TempDir(),
		"mysql://root@127.0.0.1:"+u.Port()+"/"+srcDB, d.String())
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	dur := time.Since(t0)
	if err != nil {
		b.Fatalf("pgloader: %v\n%s", err, out)
	}
	dst := sourcetest.Open(b, dstURL)
	if n := sourcetest.Count(b, dst, "SELECT COUNT(*) FROM "+srcDB+".items"); n != int64(rows) {
		b.Fatalf("pgloader loaded %d rows, want %d\n%s", n, rows, out)
	}
	return dur
}
