package mysqlsrc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/mysqlsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// holdCommits makes the server hold every commit after its transaction is
// in the binary log and before the storage engine commits it (other
// sessions do not see it yet): semi-synchronous replication that waits
// after the binlog sync for a replica acknowledgement that never comes (no
// semi-synchronous replica connects). release ends the wait.
func holdCommits(t *testing.T, root *sqldb.DB) (release func()) {
	t.Helper()
	set := func(stmts ...string) {
		for _, s := range stmts {
			sourcetest.Exec(t, root, s)
		}
	}
	off := func() { set("SET GLOBAL rpl_semi_sync_master_enabled = OFF") }
	t.Cleanup(off)
	set("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC",
		"SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON",
		"SET GLOBAL rpl_semi_sync_master_timeout = 300000",
		"SET GLOBAL rpl_semi_sync_master_enabled = ON")
	return off
}

// testCurrentBeforeInvisible: a transaction that is in the binary log but
// not yet committed in the storage engine (two-phase commit) is neither in
// a full load read right after Current nor in the stream from the position
// if the position is after it. Current must return a position consistent
// with what later reads see.
func testCurrentBeforeInvisible(t *testing.T, e *env) {
	ctx := context.Background()
	db := sourcetest.Open(t, e.mysqlURL(t, ""))
	root := sourcetest.Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", e.my.Port))
	sourcetest.Exec(t, db, itemsDDL)
	src, err := mysqlsrc.Open(ctx, db, replicate.SourceConfig{Name: "invisible", Tables: []string{"items"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	before := binlogEnd(t, root)

	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var id int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	release := holdCommits(t, root)
	inserted := make(chan error, 1)
	go func() {
		_, err := conn.ExecContext(ctx, "INSERT INTO items (id, name) VALUES (1, 'held')")
		inserted <- err
	}()
	var once sync.Once
	var insertErr error
	finish := func() error {
		once.Do(func() { release(); insertErr = <-inserted })
		return insertErr
	}
	t.Cleanup(func() { _ = finish() })
	sourcetest.WaitFor(t, "the insert to wait for a replica's acknowledgement", 30*time.Second, func() bool {
		return sourcetest.Count(t, root, "SELECT COUNT(*) FROM information_schema.processlist WHERE id = ? AND state LIKE '%semi-sync%'", id) == 1
	})
	if n := sourcetest.Count(t, db, "SELECT COUNT(*) FROM items"); n != 0 {
		t.Fatalf("the held row is visible already (%d rows)", n)
	}
	if cur := binlogEnd(t, root); !reached(cur, before) || cur == before {
		t.Fatalf("the held transaction is not in the binary log: position %s, before it %s", cur, before)
	}

	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	pos, err := src.Current(cctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	// What a full load starting now reads.
	loaded := sourcetest.Count(t, db, "SELECT COUNT(*) FROM items WHERE id = 1")
	if err := finish(); err != nil {
		t.Fatalf("held insert: %v", err)
	}
	sourcetest.Exec(t, db, "INSERT INTO items (id, name) VALUES (2, 'after')")

	sctx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	streamed := 0
	done := errors.New("done")
	err = src.Stream(sctx, pos, replicate.StreamOptions{}, func(_ context.Context, b replicate.Batch) error {
		for _, ch := range b.Changes {
			switch fmt.Sprint(ch.Key[0]) {
			case "1":
				streamed++
			case "2":
				return done
			}
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("stream from %s: %v", pos, err)
	}
	if loaded+int64(streamed) == 0 {
		t.Fatalf("row 1 is lost: Current returned %s; a load then did not see it and the stream from there did not deliver it", pos)
	}
	if n := sourcetest.Count(t, db, "SELECT COUNT(*) FROM items"); n != 2 {
		t.Fatalf("source has %d rows, want 2", n)
	}
	t.Logf("Current = %s (before the held commit: %s); loaded %d, streamed %d", pos, before, loaded, streamed)
}

// binlogEnd is the end of the server's binary log (SHOW MASTER STATUS),
// read with the server's own statement rather than through the source.
func binlogEnd(t testing.TB, db *sqldb.DB) replicate.Position {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatalf("SHOW MASTER STATUS: no row (%v)", rows.Err())
	}
	vals := make([]any, len(cols))
	var file string
	var pos uint64
	vals[0], vals[1] = &file, &pos
	for i := 2; i < len(vals); i++ {
		vals[i] = new(any)
	}
	if err := rows.Scan(vals...); err != nil {
		t.Fatal(err)
	}
	return replicate.Position(fmt.Sprintf("file:%s:%d", file, pos))
}
