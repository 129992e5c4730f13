package mysqlsrc_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/mysqlsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

const typesDDL = "CREATE TABLE types (" +
	"id INT NOT NULL PRIMARY KEY, " +
	"ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED, " +
	"i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED, " +
	"dec1 DECIMAL(38,10), dec2 DECIMAL(65,30), dec3 DECIMAL(5,0), fl FLOAT, db DOUBLE, " +
	"b1 BIT(1), b8 BIT(8), b64 BIT(64), " +
	"d DATE, tm TIME(6), dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, yr YEAR, " +
	"c CHAR(10), vc VARCHAR(100), tx TEXT, bn BINARY(4), vb VARBINARY(16), bl BLOB, " +
	"en ENUM('small','medium','large'), st SET('a','b','c','d'), js JSON" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

var typesCols = "id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, dec1, dec2, dec3, fl, db, b1, b8, b64, d, tm, dt, ts, yr, c, vc, tx, bn, vb, bl, en, st, js"

// typeRows are the rows of the type test: extremes, ordinary values and
// NULLs. Their ids are 1..3; the copies written during CDC get +100.
var typeRows = []string{
	"(%d, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615, " +
		"'-1234567890123456789012345678.0123456789', '12345678901234567890123456789012345.123456789012345678901234567891', -99999, 1.5, -2.2250738585072014e-308, " +
		"b'1', b'10100101', b'1111111111111111111111111111111111111111111111111111111111111111', " +
		"'1000-01-01', '00:00:00', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', 1901, " +
		"'a', 'x\U0001F600y ñ', 'long text \U0001F680', x'01000000', x'00ff00', x'deadbeef00', 'small', '', '{\"a\": 1, \"b\": [true, null, \"\U0001F600\"]}')",
	"(%d, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 9223372036854775808, " +
		"'0.0000000001', '-0.000000000000000000000000000001', 0, -3.25, 1.7976931348623157e308, " +
		"b'0', b'0', b'1000000000000000000000000000000000000000000000000000000000000001', " +
		"'9999-12-31', '23:59:59.999999', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', 2155, " +
		"'', '', '', x'00000000', x'', x'', 'large', 'a,b,c,d', '[]')",
	"(%d, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
}

// wantRow1 is what row 1 reads as on any target (canonical texts).
var wantRow1 = map[string]string{
	"ti": "-128", "tiu": "255", "si": "-32768", "siu": "65535", "mi": "-8388608", "miu": "16777215",
	"i": "-2147483648", "iu": "4294967295", "bi": "-9223372036854775808", "biu": "18446744073709551615",
	"dec1": "-1234567890123456789012345678.0123456789", "dec2": "12345678901234567890123456789012345.123456789012345678901234567891",
	"dec3": "-99999", "fl": "1.5", "db": "-2.2250738585072014e-308",
	"b1": "1", "b8": "165", "b64": "18446744073709551615",
	"d": "1000-01-01", "tm": "00:00:00", "dt": "1000-01-01T00:00:00.000000Z", "ts": "1970-01-01T00:00:01.000000Z", "yr": "1901",
	"c": "a", "vc": "x\U0001F600y ñ", "tx": "long text \U0001F680", "bn": "01000000", "vb": "00ff00", "bl": "deadbeef00",
	"en": "small", "st": "", "js": `{"a":1,"b":[true,null,"` + "\U0001F600" + `"]}`,
}

func insertTypes(t testing.TB, db *sqldb.DB, offset int) {
	t.Helper()
	for i, r := range typeRows {
		sourcetest.Exec(t, db, "INSERT INTO types ("+typesCols+") VALUES "+fmt.Sprintf(r, offset+i+1))
	}
}

func TestMariaDB(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	e := newEnv(t, true)
	t.Run("Types", func(t *testing.T) { testTypes(t, e) })
	t.Run("CDC", func(t *testing.T) { testCDC(t, e) })
	t.Run("LargeTransaction", func(t *testing.T) { testLargeTransaction(t, e) })
	t.Run("SplitTransaction", func(t *testing.T) { testSplitTransaction(t, e) })
	t.Run("NoPrimaryKey", func(t *testing.T) { testNoPrimaryKey(t, e) })
	t.Run("DDL", func(t *testing.T) { testDDL(t, e) })
	t.Run("KillRestart", func(t *testing.T) { testKill(t, e) })
	t.Run("Bidirectional", func(t *testing.T) { testBidirectional(t, e) })
	t.Run("ServerRestart", func(t *testing.T) { testServerRestart(t, e) })
	t.Run("ReadOnlySource", func(t *testing.T) { testReadOnlySource(t, e) })
	t.Run("CurrentBeforeInvisible", func(t *testing.T) { testCurrentBeforeInvisible(t, e) })
	t.Run("CurrentUnderLoad", func(t *testing.T) { testCurrentUnderLoad(t, e) })
	t.Run("SchemaFull", func(t *testing.T) { testSchemaFull(t, e) })
	t.Run("ReadAheadBounded", func(t *testing.T) { testReadAheadBounded(t, e) })
}

func testTypes(t *testing.T, e *env) {
	src := sourcetest.Open(t, e.mysqlURL(t, ""))
	sourcetest.Exec(t, src, typesDDL)
	insertTypes(t, src, 0)
	for _, target := range []struct{ name, url string }{{"postgres", e.pgURL(t)}, {"sqlite", sqliteURL(t)}} {
		t.Run(target.name, func(t *testing.T) {
			dst := sourcetest.Open(t, target.url)
			r := sourcetest.Start(t, replicate.Config{Name: "types-" + target.name, Source: src, Target: dst, Tables: []string{"types"}})
			sourcetest.WaitFor(t, "full load", 30*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
			if target.name == "postgres" {
				insertTypes(t, src, 100) // rows that arrive through the binlog
			}
			waitCaughtUp(t, r, src)
			mustValidate(t, src, dst, "types")
			ids := []int{1}
			if target.name == "postgres" {
				ids = append(ids, 101)
			}
			for _, id := range ids {
				got := canonicalRow(t, dst, "types", id)
				if d := diffRows(wantRow1, got); d != "" {
					t.Errorf("row %d on %s:\n%s", id, target.name, d)
				}
			}
			if target.name == "postgres" {
				for _, id := range []int{2, 3} {
					a, b := canonicalRow(t, dst, "types", id), canonicalRow(t, dst, "types", id+100)
					delete(a, "id")
					if d := diffRows(a, b); d != "" {
						t.Errorf("row %d: binlog copy differs from the full load's:\n%s", id, d)
					}
				}
				// The source's own reading agrees.
				if d := diffRows(wantRow1, canonicalRow(t, src, "types", 101)); d != "" {
					t.Errorf("source row 101:\n%s", d)
				}
			}
		})
	}
}

const itemsDDL = "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL, qty INT NULL, price DECIMAL(12,2) NULL, _trace_id VARCHAR(64) NULL) ENGINE=InnoDB"

func fillItems(t testing.TB, db *sqldb.DB, lo, hi int) {
	t.Helper()
	err := db.Tx(context.Background(), func(tx *sql.Tx) error {
		const per = 1000
		for i := lo; i < hi; i += per {
			n := min(per, hi-i)
			var b strings.Builder
			args := make([]any, 0, 4*n)
			for j := 0; j < n; j++ {
				if j > 0 {
					b.WriteString(",")
				}
				b.WriteString("(?,?,?,?)")
				id := i + j
				args = append(args, id, fmt.Sprintf("item-%d", id), id%17, fmt.Sprintf("%d.%02d", id, id%100))
			}
			if _, err := tx.Exec("INSERT INTO items (id, name, qty, price) VALUES "+b.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testCDC(t *testing.T, e *env) {
	src := sourcetest.Open(t, e.mysqlURL(t, ""))
	dst := sourcetest.Open(t, e.pgURL(t))
	sourcetest.Exec(t, src, itemsDDL)
	fillItems(t, src, 1, 501)
	r := sourcetest.Start(t, replicate.Config{Name: "cdc", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 100})
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM items"); n != 500 {
		t.Fatalf("full load: %d rows", n)
	}
	sourcetest.Exec(t, src, "INSERT INTO items (id, name, qty) VALUES (1000, 'new', NULL)")
	sourcetest.Exec(t, src, "UPDATE items SET qty = qty + 1000, name = CONCAT(name, '-u') WHERE id % 7 = 0")
	sourcetest.Exec(t, src, "UPDATE items SET id = id + 10000 WHERE id BETWEEN 10 AND 19") // key change
	sourcetest.Exec(t, src, "DELETE FROM items WHERE id BETWEEN 100 AND 149")
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM items WHERE id BETWEEN 10 AND 19"); n != 0 {
		t.Errorf("old keys of changed rows remain: %d", n)
	}
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM items WHERE id BETWEEN 10010 AND 10019"); n != 10 {
		t.Errorf("new keys: %d rows, want 10", n)
	}
	var name string
	if err := dst.QueryRowContext(context.Background(), "SELECT name FROM items WHERE id = 14").Scan(&name); err == nil {
		t.Errorf("row 14 still on target")
	}
	if err := dst.QueryRowContext(context.Background(), "SELECT name FROM items WHERE id = 10014").Scan(&name); err != nil || name != "item-14-u" {
		t.Errorf("row 10014: %q, %v", name, err)
	}
}

// testLargeTransaction writes 100k rows in one transaction while a reader
// watches the target: the count goes from before to after in one step.
func testLargeTransaction(t *testing.T, e *env) {
	src := sourcetest.Open(t, e.mysqlURL(t, ""))
	dst := sourcetest.Open(t, e.pgURL(t))
	sourcetest.Exec(t, src, itemsDDL)
	fillItems(t, src, 1, 11)
	r := sourcetest.Start(t, replicate.Config{Name: "large", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 2000})
	waitCaughtUp(t, r, src)
	const big = 100_000
	var partial atomic.Int64
	var seen atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int64
			if err := dst.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM items").Scan(&n); err == nil {
				seen.Add(1)
				if n != 10 && n != 10+big {
					partial.Store(n)
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	fillItems(t, src, 100, 100+big)
	waitCaughtUp(t, r, src)
	close(stop)
	<-done
	if n := partial.Load(); n != 0 {
		t.Fatalf("a reader saw %d rows: part of a transaction", n)
	}
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM items"); n != 10+big {
		t.Fatalf("target has %d rows, want %d", n, 10+big)
	}
	t.Logf("reader polled %d times", seen.Load())
}

// testSplitTransaction sets max_tx_changes low, so a transaction comes in
// parts; the checkpoint never points inside it and the result is right.
func testSplitTransaction(t *testing.T, e *env) {
	srcURL := e.mysqlURL(t, "max_tx_changes=300")
	src := sourcetest.Open(t, srcURL)
	dst := sourcetest.Open(t, sqliteURL(t))
	sourcetest.Exec(t, src, itemsDDL)
	var positions []replicate.Position
	var sizes []int
	r := sourcetest.Start(t, replicate.Config{Name: "split", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 100,
		OnApplied: func(b replicate.Batch) {
			if !b.Snapshot && len(b.Changes) > 0 {
				positions = append(positions, b.Position)
				sizes = append(sizes, len(b.Changes))
			}
		}})
	sourcetest.WaitFor(t, "cdc", 30*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	before := current(t, src)
	fillItems(t, src, 1, 1001)
	after := current(t, src)
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
	r.Stop(t)
	if len(positions) < 2 {
		t.Fatalf("batches %v: want the transaction in parts", sizes)
	}
	for i, p := range positions {
		if p != before {
			t.Errorf("part %d at %s, want the position before the transaction %s", i, p, before)
		}
	}
	if cp := loadCheckpoint(t, dst, "split"); cp.Position != after {
		t.Errorf("checkpoint at %s, want %s", cp.Position, after)
	}
}

func testNoPrimaryKey(t *testing.T, e *env) {
	src := sourcetest.Open(t, e.mysqlURL(t, ""))
	sourcetest.Exec(t, src, "CREATE TABLE nokey (a INT, b INT)")
	_, err := mysqlsrc.Open(context.Background(), src, replicate.SourceConfig{Tables: []string{"nokey"}})
	if !errors.Is(err, replicate.ErrNoPrimaryKey) || !strings.Contains(err.Error(), "nokey") {
		t.Fatalf("Open: %v", err)
	}
}
