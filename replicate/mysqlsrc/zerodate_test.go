package mysqlsrc_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/syncbuf"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
)

// TestZeroDates replicates MariaDB's zero dates ('0000-00-00', and dates
// with a zero month or day, which a permissive sql_mode stores) to
// PostgreSQL, MariaDB and SQLite through the full load and the binlog: in a nullable column
// they arrive as NULL and validate agrees; in a NOT NULL column the row is
// rejected, naming table, key and column, and the table's on_error policy
// (here skip) handles it while every other row goes on.
func TestZeroDates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	e := newEnv(t, true)
	for _, target := range []struct{ name, url string }{{"postgres", e.pgURL(t)}, {"mysql", e.mysqlURL(t, "")}, {"sqlite", sqliteURL(t)}} {
		t.Run(target.name, func(t *testing.T) { testZeroDates(t, e, target.name, target.url) })
	}
}

func testZeroDates(t *testing.T, e *env, target, dstURL string) {
	ctx := context.Background()
	srcURL := e.mysqlURL(t, "")
	src, dst := sourcetest.Open(t, srcURL), sourcetest.Open(t, dstURL)
	// A session whose sql_mode allows zero dates, as legacy applications run.
	loose := sourcetest.Open(t, srcURL+"?sql_mode=%27NO_ENGINE_SUBSTITUTION%27")
	sourcetest.Exec(t, src, `CREATE TABLE zd (id INT NOT NULL PRIMARY KEY, d DATE NULL, dt DATETIME(3) NULL,
		ts TIMESTAMP NULL DEFAULT NULL, good DATE NULL) ENGINE=InnoDB`)
	sourcetest.Exec(t, src, `CREATE TABLE zd_nn (id INT NOT NULL PRIMARY KEY, d DATE NOT NULL) ENGINE=InnoDB`)
	fill := func(base int) {
		sourcetest.Exec(t, loose, `INSERT INTO zd VALUES
			(?, '0000-00-00', '0000-00-00 00:00:00.000', '0000-00-00 00:00:00', '2024-02-29'),
			(?, '2024-00-15', '2024-01-00 10:00:00.500', NULL, '1000-01-01'),
			(?, NULL, '1960-01-00 10:00:00.500', NULL, NULL),
			(?, '2024-03-00', NULL, NULL, NULL),
			(?, '2024-01-02', '2024-01-02 03:04:05.678', '2038-01-19 03:14:07', '9999-12-31')`, base+1, base+2, base+5, base+3, base+4)
		sourcetest.Exec(t, loose, `INSERT INTO zd_nn VALUES (?, '2024-01-01'), (?, '0000-00-00')`, base+1, base+2)
	}
	fill(0)
	var logs syncbuf.Buffer
	r := sourcetest.Start(t, replicate.Config{Name: "zero", Source: src, Target: dst, Tables: []string{"zd", "zd_nn"},
		Logger:        slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		RejectRetries: 1, RejectBackoff: 10 * time.Millisecond,
		TableOnError: map[string]replicate.ErrorPolicy{"zd_nn": replicate.OnErrorSkip}})
	sourcetest.WaitFor(t, "full load", 60*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	fill(100)
	sourcetest.Exec(t, loose, `UPDATE zd SET good = '0000-00-00' WHERE id = 4`)
	waitCaughtUp(t, r, src)

	// Every zero date is NULL on the target (the target's own count).
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM zd WHERE d IS NULL AND dt IS NULL AND ts IS NULL"); n != 8 {
		t.Errorf("%d rows with NULL for their zero dates, want 8 (1, 2, 3 and 5 of the full load and of CDC)", n)
	}
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM zd WHERE good IS NULL"); n != 5 {
		t.Errorf("%d rows with NULL good, want 5 (3, 5, 103, 105, and 4 set to a zero date)", n)
	}
	// PostgreSQL's own text of every value.
	for _, base := range []int{0, 100} {
		if target != "postgres" {
			break
		}
		good4 := "9999-12-31"
		if base == 0 {
			good4 = "NULL" // updated to a zero date during CDC
		}
		want := map[int]string{
			1: "NULL|NULL|NULL|2024-02-29",
			2: "NULL|NULL|NULL|1000-01-01",
			3: "NULL|NULL|NULL|NULL",
			5: "NULL|NULL|NULL|NULL",
			4: "2024-01-02|2024-01-02 03:04:05.678|2038-01-19 03:14:07+00|" + good4,
		}
		for id, w := range want {
			got := pgText(t, dst, `SELECT concat_ws('|', coalesce(d::text, 'NULL'), coalesce(dt::text, 'NULL'),
				coalesce(ts::text, 'NULL'), coalesce(good::text, 'NULL')) FROM zd WHERE id = $1`, base+id)
			if got != w {
				t.Errorf("zd %d: target %s, want %s", base+id, got, w)
			}
		}
	}
	mustValidate(t, src, dst, "zd")

	// The NOT NULL table: the good rows arrived, the zero dates are
	// exceptions naming the key and column.
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM zd_nn WHERE id IN (1, 101)"); n != 2 || sourcetest.Count(t, dst, "SELECT COUNT(*) FROM zd_nn") != 2 {
		t.Errorf("zd_nn on the target: %d of rows 1 and 101, want only those", n)
	}
	rows, err := dst.QueryContext(ctx, `SELECT change_key, error FROM _ic_apply_exceptions WHERE table_name = 'zd_nn' ORDER BY change_key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var key, msg string
		if err := rows.Scan(&key, &msg); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(msg, "zd_nn.d is NOT NULL: sqldb: zero date") {
			t.Errorf("exception for key %s: %s", key, msg)
		}
		keys = append(keys, key)
	}
	if strings.Join(keys, ",") != "102,2" {
		t.Errorf("exceptions for keys %v, want 102 and 2", keys)
	}
	// Validate names the rows the target could not take.
	rep, err := replicate.Validate(ctx, src, dst, []string{"zd_nn"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.String(); rep.OK() || !strings.Contains(s, "(2)") || !strings.Contains(s, "(102)") {
		t.Errorf("validate of zd_nn:\n%s", s)
	}
}
