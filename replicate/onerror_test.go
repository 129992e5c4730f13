package replicate_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/syncbuf"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

const strictDDL = `CREATE TABLE %s (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER CHECK (qty < 100), price DECIMAL_TEXT(10,2), at TIMESTAMP_TEXT, _trace_id VARCHAR(64))`

// twoTables makes items-like tables good and bad on the source, and bad on
// the target with a CHECK the source lacks.
func twoTables(t *testing.T) (src, dst *sqldb.DB) {
	t.Helper()
	s, d := openDB(t, "src"), openDB(t, "dst")
	for _, name := range []string{"good", "bad"} {
		exec(t, s, strings.Replace(itemsDDL, "items", name, 1))
	}
	exec(t, d, fmt.Sprintf(strictDDL, "bad"))
	if err := replicate.Prepare(context.Background(), s, []string{"good", "bad"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	return s, d
}

func TestRejectedChangeStopsOnlyItsTable(t *testing.T) {
	ctx := context.Background()
	src, dst := twoTables(t)
	exec(t, src, `INSERT INTO good (id, name, qty) VALUES (1, 'a', 1)`)
	exec(t, src, `INSERT INTO bad (id, name, qty) VALUES (1, 'a', 1)`)
	logs := &syncbuf.Buffer{}
	cfg := replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"good", "bad"}, Poll: 5 * time.Millisecond,
		RejectRetries: 1, RejectBackoff: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	r := sourcetest.Start(t, cfg)
	waitCaughtUp(t, r, src)

	// One transaction: a good row, a row the target rejects, more rows.
	inTx(t, src, func(tx *sql.Tx) error {
		for _, q := range []string{
			`INSERT INTO bad (id, name, qty) VALUES (4, 'before', 4)`,
			`INSERT INTO good (id, name, qty) VALUES (2, 'b', 2)`,
			`INSERT INTO bad (id, name, qty) VALUES (5, 'rejected', 500)`,
			`INSERT INTO bad (id, name, qty) VALUES (6, 'after', 6)`,
			`INSERT INTO good (id, name, qty) VALUES (3, 'c', 3)`,
		} {
			if _, err := tx.Exec(q); err != nil {
				return err
			}
		}
		return nil
	})
	waitCaughtUp(t, r, src)
	// The other table goes on.
	exec(t, src, `INSERT INTO good (id, name, qty) VALUES (4, 'd', 4)`)
	exec(t, src, `INSERT INTO bad (id, name, qty) VALUES (7, 'later', 7)`)
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "good")
	if n := count(t, dst, `SELECT COUNT(*) FROM good`); n != 4 {
		t.Fatalf("good has %d rows on the target, want 4", n)
	}
	// bad holds what came before the rejected change, nothing after.
	if got := count(t, dst, `SELECT COUNT(*) FROM bad`); got != 2 || count(t, dst, `SELECT COUNT(*) FROM bad WHERE id IN (1, 4)`) != 2 {
		t.Fatalf("bad has %d rows on the target, want ids 1 and 4", got)
	}
	st := r.Stream.Status()
	if st.Phase != replicate.PhaseCDC || len(st.StoppedTables) != 1 {
		t.Fatalf("status = %+v", st)
	}
	te := st.StoppedTables[0]
	if te.Table != "bad" || te.Key != "5" || te.Op != "upsert" || !strings.Contains(te.Error, "CHECK constraint failed") || te.Position == "" {
		t.Fatalf("stopped table = %+v", te)
	}
	if !strings.Contains(st.State, "streaming; 1 table(s) stopped by an error: bad") {
		t.Fatalf("state = %q", st.State)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			line = l
		}
	}
	for _, want := range []string{"stream=s", "table=bad", "key=5", "op=upsert", "CHECK constraint failed"} {
		if !strings.Contains(line, want) {
			t.Fatalf("ERROR log line %q lacks %q", line, want)
		}
	}
	// The stop is kept on the target.
	states, err := replicate.LoadTableStates(ctx, dst, "s")
	if err != nil || states["bad"].State != "stopped" || states["bad"].Err.Key != "5" || states["good"].State != "loaded" {
		t.Fatalf("table states = %+v, %v", states, err)
	}
	r.Stop(t)

	// Once the cause is gone, a restart loads the table afresh.
	exec(t, src, `UPDATE bad SET qty = 50 WHERE id = 5`)
	r2 := sourcetest.Start(t, cfg)
	waitCaughtUp(t, r2, src)
	mustValidate(t, src, dst, "good", "bad")
	if st := r2.Stream.Status(); len(st.StoppedTables) != 0 {
		t.Fatalf("stopped after the fix: %+v", st.StoppedTables)
	}
}

func TestRejectedChangeSkipped(t *testing.T) {
	ctx := context.Background()
	src, dst := twoTables(t)
	exec(t, src, `INSERT INTO bad (id, name, qty) VALUES (1, 'a', 1), (2, 'full-load', 200)`)
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"good", "bad"}, Poll: 5 * time.Millisecond,
		RejectRetries: 1, RejectBackoff: 10 * time.Millisecond, TableOnError: map[string]replicate.ErrorPolicy{"ba*": replicate.OnErrorSkip}})
	waitCaughtUp(t, r, src)
	exec(t, src, `INSERT INTO bad (id, name, qty) VALUES (5, 'rejected', 500), (6, 'after', 6)`)
	exec(t, src, `DELETE FROM bad WHERE id = 1`)
	exec(t, src, `INSERT INTO good (id, name, qty) VALUES (1, 'g', 1)`)
	waitCaughtUp(t, r, src)
	if n := count(t, dst, `SELECT COUNT(*) FROM bad`); n != 1 || count(t, dst, `SELECT COUNT(*) FROM bad WHERE id = 6`) != 1 {
		t.Fatalf("bad has %d rows on the target, want id 6 only", n)
	}
	mustValidate(t, src, dst, "good")
	st := r.Stream.Status()
	if len(st.StoppedTables) != 0 || st.ApplyExceptions != 2 {
		t.Fatalf("status = %+v", st)
	}
	// The independent look: the exceptions table through the target's SQL.
	rows, err := dst.QueryContext(ctx, `SELECT stream, table_name, op, change_key, error, position, row_image FROM _ic_apply_exceptions ORDER BY change_key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var stream, table, op, key, msg, pos, img string
		if err := rows.Scan(&stream, &table, &op, &key, &msg, &pos, &img); err != nil {
			t.Fatal(err)
		}
		if stream != "s" || table != "bad" || op != "upsert" || !strings.Contains(msg, "CHECK constraint failed") || !strings.Contains(img, `"qty":`) {
			t.Fatalf("exception row = %q %q %q %q %q %q", stream, table, op, key, msg, img)
		}
		got = append(got, key+":"+pos)
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "2:") || !strings.HasPrefix(got[1], "5:") {
		t.Fatalf("exceptions = %v", got)
	}
}

func TestFullLoadOneBadTableBlocksNoOther(t *testing.T) {
	src, dst := openDB(t, "src"), openDB(t, "dst")
	var tables []string
	for i := range 6 {
		name := fmt.Sprintf("t%d", i)
		tables = append(tables, name)
		exec(t, src, strings.Replace(itemsDDL, "items", name, 1))
	}
	// t0 is loaded first and fails on its 3rd chunk on the target.
	exec(t, dst, fmt.Sprintf(strictDDL, "t0"))
	if err := replicate.Prepare(context.Background(), src, tables, quietLogger()); err != nil {
		t.Fatal(err)
	}
	for _, name := range tables {
		inTx(t, src, func(tx *sql.Tx) error {
			for i := 1; i <= 500; i++ {
				if _, err := tx.Exec(`INSERT INTO `+name+` (id, name, qty) VALUES (?, ?, ?)`, i, "n", i%90); err != nil {
					return err
				}
			}
			return nil
		})
	}
	exec(t, src, `UPDATE t0 SET qty = 1000 WHERE id = 250`)
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: tables, BatchSize: 100, LoadParallel: 2, Poll: 5 * time.Millisecond,
		RejectRetries: 1, RejectBackoff: 10 * time.Millisecond})
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, tables[1:]...)
	st := r.Stream.Status()
	if len(st.StoppedTables) != 1 || st.StoppedTables[0].Table != "t0" || st.StoppedTables[0].Key != "250" {
		t.Fatalf("stopped = %+v", st.StoppedTables)
	}
	// Rows of t0's chunks before the rejected one, and of its chunk
	// before the rejected row, are loaded.
	if n := count(t, dst, `SELECT COUNT(*) FROM t0`); n != 249 {
		t.Fatalf("t0 has %d rows on the target, want 249", n)
	}
	// CDC goes on for the others.
	exec(t, src, `INSERT INTO t5 (id, name) VALUES (9999, 'cdc')`)
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, tables[1:]...)
}

// TestRenamedStoppedTableStaysStopped renames a table that a rejected
// change stopped: it stays stopped under its new name, with the error that
// stopped it, and the rename logs no second stop.
func TestRenamedStoppedTableStaysStopped(t *testing.T) {
	src, dst := twoTables(t)
	logs := &syncbuf.Buffer{}
	cfg := replicate.Config{Name: "s", Source: src, Target: dst, Mapping: &replicate.Mapping{Include: []string{"good", "bad*"}}, Poll: 5 * time.Millisecond,
		RejectRetries: 1, RejectBackoff: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	r := sourcetest.Start(t, cfg)
	waitCaughtUp(t, r, src)
	exec(t, src, `INSERT INTO bad (id, name, qty) VALUES (5, 'rejected', 500)`)
	waitFor(t, "bad stopped", 30*time.Second, func() bool { return len(r.Stream.Status().StoppedTables) == 1 })

	exec(t, src, `ALTER TABLE bad RENAME TO bad_renamed`)
	exec(t, src, `INSERT INTO bad_renamed (id, name, qty) VALUES (6, 'after', 6)`)
	exec(t, src, `INSERT INTO good (id, name, qty) VALUES (7, 'g', 7)`)
	waitFor(t, "the rename followed", 30*time.Second, func() bool {
		st := r.Stream.Status()
		return len(st.StoppedTables) == 1 && st.StoppedTables[0].Table == "bad_renamed"
	})
	waitCaughtUp(t, r, src)
	te := r.Stream.Status().StoppedTables[0]
	if te.Key != "5" || te.Op != "upsert" || !strings.Contains(te.Error, "CHECK constraint failed") {
		t.Fatalf("stopped table after the rename = %+v, want the error that stopped it", te)
	}
	if n := strings.Count(logs.String(), "replication of table stopped"); n != 1 {
		t.Fatalf("%d stop lines in the log, want 1 (the rename is no new stop):\n%s", n, logs.String())
	}
}
