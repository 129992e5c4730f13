package pgsrc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/pgsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
)

// holdCommit makes the cluster hold every commit of a session that asks for
// synchronous replication (synchronous_commit = on) after the commit is
// recorded (pg_xact_status says committed) and before other sessions see
// it: the commit waits for a standby that never connects. Sessions that do
// not ask keep committing at once (synchronous_commit = local).
func holdCommit(t *testing.T, c *cluster) {
	t.Helper()
	set := func(standbys, commit string) {
		sourcetest.Exec(t, c.root, `ALTER SYSTEM SET synchronous_standby_names = '`+standbys+`'`)
		sourcetest.Exec(t, c.root, `ALTER SYSTEM SET synchronous_commit = '`+commit+`'`)
		sourcetest.Exec(t, c.root, `SELECT pg_reload_conf()`)
		sourcetest.WaitFor(t, "the configuration reload", 20*time.Second, func() bool {
			return queryString(t, c.root, `SHOW synchronous_standby_names`) == standbys
		})
	}
	set("intercloud_absent_standby", "local")
	t.Cleanup(func() {
		sourcetest.Exec(t, c.root, `ALTER SYSTEM RESET synchronous_standby_names`)
		sourcetest.Exec(t, c.root, `ALTER SYSTEM RESET synchronous_commit`)
		sourcetest.Exec(t, c.root, `SELECT pg_reload_conf()`)
	})
}

// testCurrentWaitsForVisibility: a transaction whose commit record is
// before the position Current returns, but which other sessions do not
// see yet, is neither in a full load read right after Current nor in the
// stream from the position. Current must wait until it is visible.
func testCurrentWaitsForVisibility(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "src")
	sourcetest.Exec(t, db, itemsDDL)
	src, err := pgsrc.Open(ctx, db, replicate.SourceConfig{Name: "visible", Tables: []string{"items"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	holdCommit(t, c)

	// The held transaction: committed in the log, not yet visible.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int64
	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `SET synchronous_commit = on`); err != nil {
		t.Fatal(err)
	}
	// The reload reaches the session at once but the cluster-wide "a
	// standby is configured" flag only when the checkpointer has read it:
	// until then a commit does not wait. An insert that did not wait is
	// taken back and tried again.
	inserted := make(chan error, 1)
	for try := 1; ; try++ {
		go func() {
			_, err := conn.ExecContext(ctx, `INSERT INTO items (id, name) VALUES (1, 'held')`)
			inserted <- err
		}()
		waiting := false
		sourcetest.WaitFor(t, "the insert to wait for the standby or end", 20*time.Second, func() bool {
			waiting = sourcetest.Count(t, c.root, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'`, pid) == 1
			return waiting || len(inserted) > 0
		})
		if waiting {
			break
		}
		if err := <-inserted; err != nil {
			t.Fatalf("held insert: %v", err)
		}
		if try == 10 {
			t.Fatal("10 inserts committed without waiting for the configured standby")
		}
		if _, err := conn.ExecContext(ctx, `SET synchronous_commit = local`); err != nil {
			t.Fatal(err)
		}
		sourcetest.Exec(t, db, `DELETE FROM items`)
		if _, err := conn.ExecContext(ctx, `SET synchronous_commit = on`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var releaseOnce sync.Once
	var insertErr error
	release := func() {
		releaseOnce.Do(func() {
			// Cancelling the wait lets the committed transaction end.
			_, _ = c.root.ExecContext(ctx, `SELECT pg_cancel_backend($1)`, pid)
			insertErr = <-inserted
		})
		if insertErr != nil {
			t.Fatalf("held insert: %v", insertErr)
		}
	}
	t.Cleanup(func() {
		releaseOnce.Do(func() { _, _ = c.root.ExecContext(ctx, `SELECT pg_cancel_backend($1)`, pid); <-inserted })
	})
	if n := sourcetest.Count(t, db, `SELECT count(*) FROM items`); n != 0 {
		t.Fatalf("the held row is visible already (%d rows)", n)
	}

	type result struct {
		pos replicate.Position
		err error
	}
	current := make(chan result, 1)
	go func() {
		pos, err := src.Current(ctx)
		current <- result{pos, err}
	}()
	// Current should wait for the held transaction. Give a Current that
	// does not wait time to return, then let the transaction finish.
	var res result
	released := false
	select {
	case res = <-current:
	case <-time.After(5 * time.Second):
		release()
		released = true
		res = <-current
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	// What a full load starting now reads.
	loaded := sourcetest.Count(t, db, `SELECT count(*) FROM items WHERE id = 1`)
	if !released {
		release()
	}
	sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES (2, 'after')`)
	bs, err := collect(t, src, res.pos, replicate.StreamOptions{}, func(bs []replicate.Batch) bool {
		for _, ch := range changesOf(bs) {
			if ch.Key[0] == int64(2) {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	streamed := 0
	for _, ch := range changesOf(bs) {
		if ch.Key[0] == int64(1) {
			streamed++
		}
	}
	if loaded+int64(streamed) == 0 {
		t.Fatalf("row 1 is lost: Current returned %s (released first: %v); a load then did not see it and the stream from there did not deliver it", res.pos, released)
	}
	if n := sourcetest.Count(t, db, `SELECT count(*) FROM items`); n != 2 {
		t.Fatalf("source has %d rows, want 2", n)
	}
}
