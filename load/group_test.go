package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/mysql"
	"github.com/intercloud/intercloud/sqldb/postgres"
	"github.com/intercloud/intercloud/sqldb/sqlite"
	"github.com/intercloud/intercloud/sqldb/sqlserver"
)

// holdWrites takes the database's write lock in a transaction of its own
// and returns the function that ends it.
func holdWrites(t *testing.T, db *sqldb.DB) func() {
	t.Helper()
	started, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- db.Tx(context.Background(), func(tx *sql.Tx) error {
			if _, err := tx.Exec("UPDATE " + LoadedTable + " SET records = records WHERE 0"); err != nil {
				return err
			}
			close(started)
			<-release
			return nil
		})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("hold the write lock: %v", err)
	}
	var once sync.Once
	end := func() {
		once.Do(func() {
			close(release)
			if err := <-done; err != nil {
				t.Errorf("hold the write lock: %v", err)
			}
		})
	}
	t.Cleanup(end)
	return end
}

// waitQueued waits until a group is committing and n objects queue behind
// it.
func waitQueued(t *testing.T, l *Loader, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.groupMu.Lock()
		leading, queued := l.leading, len(l.queued)
		l.groupMu.Unlock()
		if leading && queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leading %v, %d queued; want %d queued", leading, queued, n)
		}
	}
}

// loaded is one Load's outcome.
type loaded struct {
	res Result
	err error
}

// startLoad loads key in a goroutine and returns where its outcome
// arrives.
func startLoad(ctx context.Context, l *Loader, key string) <-chan loaded {
	out := make(chan loaded, 1)
	go func() {
		res, err := l.Load(ctx, key)
		out <- loaded{res, err}
	}()
	return out
}

// putObjects puts n objects of per records each and returns their keys.
func putObjects(t *testing.T, b *objects.Bucket, n, per int) []string {
	t.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("raw/2026/11/24/10/%03d.ndjson", i)
		ids := make([]string, per)
		for j := range ids {
			ids[j] = fmt.Sprintf("r%03d-%03d", i, j)
		}
		if err := b.Put(context.Background(), keys[i], rawObject(t, ids...), nil); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// queueBehind holds the database's write lock, starts a load of each
// key in turn once the one before is queued (the first leads a group of
// its own and waits for the lock), then lets the lock go; it returns
// each load's outcome, in the order of keys.
func queueBehind(t *testing.T, ctx context.Context, l *Loader, db *sqldb.DB, keys []string) []<-chan loaded {
	t.Helper()
	release := holdWrites(t, db)
	outs := make([]<-chan loaded, 0, len(keys))
	for i, key := range keys {
		outs = append(outs, startLoad(ctx, l, key))
		waitQueued(t, l, i)
	}
	release()
	return outs
}

func TestLoadsCommitTogether(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	keys := putObjects(t, b, 8, 10)
	// The first load leads a group of its own and waits for the lock;
	// the others, and the first object again, queue behind it.
	outs := queueBehind(t, ctx, l, db, append(keys, keys[0]))
	inserted, skipped := 0, 0
	for i, out := range outs {
		o := <-out
		if o.err != nil {
			t.Fatalf("load %d: %v", i, o.err)
		}
		inserted += o.res.Inserted
		if o.res.Skipped {
			skipped++
		}
	}
	if inserted != 80 || skipped != 1 {
		t.Fatalf("%d inserted, %d skipped; want 80 and the object loaded twice skipped once", inserted, skipped)
	}
	if n := count(t, db); n != 80 {
		t.Fatalf("rows = %d, want 80", n)
	}
	var marks int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + LoadedTable).Scan(&marks); err != nil || marks != 8 {
		t.Fatalf("%d load markers (%v), want 8", marks, err)
	}
	if g := l.groups.Load(); g != 2 {
		t.Fatalf("%d transactions for 9 loads queued behind one, want 2", g)
	}
}

// TestGroupsAreBounded: a group takes at most groupObjects objects, and
// stops at the object that brings it to groupRecords records.
func TestGroupsAreBounded(t *testing.T) {
	for _, c := range []struct {
		name       string
		objects    int
		per        int
		wantGroups int64
	}{
		// The first load alone, then 64 of the 69 queued, then 5.
		{"by objects", 70, 1, 3},
		// 2,000 records each: the first alone, then two groups that
		// each stop at their fifth object (10,000 records).
		{"by records", 11, 2000, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			l, b, db := setup(t)
			keys := putObjects(t, b, c.objects, c.per)
			outs := queueBehind(t, ctx, l, db, keys)
			for i, out := range outs {
				if o := <-out; o.err != nil || o.res.Inserted != c.per {
					t.Fatalf("load %d: %+v, %v", i, o.res, o.err)
				}
			}
			if n := count(t, db); n != c.objects*c.per {
				t.Fatalf("rows = %d, want %d", n, c.objects*c.per)
			}
			if g := l.groups.Load(); g != c.wantGroups {
				t.Fatalf("%d transactions, want %d", g, c.wantGroups)
			}
		})
	}
}

func TestGroupFailureLoadsEachAlone(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	keys := putObjects(t, b, 5, 10)
	// The database refuses one record of the fourth object.
	if _, err := db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.id = 'r003-007'
		BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	outs := queueBehind(t, ctx, l, db, keys)
	for i, out := range outs {
		o := <-out
		switch {
		case i == 3 && !errors.Is(o.err, functions.ErrPermanent):
			t.Errorf("load of the refused object: %v, want a permanent failure", o.err)
		case i != 3 && (o.err != nil || o.res.Inserted != 10):
			t.Errorf("load %d: %+v, %v; want 10 inserted", i, o.res, o.err)
		}
	}
	if n := count(t, db); n != 40 {
		t.Fatalf("rows = %d, want 40 (the refused object's none)", n)
	}
	if loaded, err := l.isLoaded(ctx, db, keys[3]); err != nil || loaded {
		t.Fatalf("refused object marked loaded: %v, %v", loaded, err)
	}
}

func TestQueuedLoadsOutliveTheirLeadersContext(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	keys := putObjects(t, b, 4, 10)
	release := holdWrites(t, db)
	first := startLoad(ctx, l, keys[0])
	waitQueued(t, l, 0)
	// The next group's leader gives up (its invocation timed out) before
	// the group commits: the objects queued behind it load alone.
	cctx, cancel := context.WithCancel(ctx)
	gone := startLoad(cctx, l, keys[1])
	waitQueued(t, l, 1)
	rest := []<-chan loaded{startLoad(ctx, l, keys[2])}
	waitQueued(t, l, 2)
	rest = append(rest, startLoad(ctx, l, keys[3]))
	waitQueued(t, l, 3)
	cancel()
	release()
	if o := <-first; o.err != nil || o.res.Inserted != 10 {
		t.Fatalf("first load: %+v, %v", o.res, o.err)
	}
	if o := <-gone; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("load with its context cancelled: %+v, %v; want context.Canceled", o.res, o.err)
	}
	for i, out := range rest {
		if o := <-out; o.err != nil || o.res.Inserted != 10 {
			t.Fatalf("load %d queued behind the cancelled leader: %+v, %v", i+2, o.res, o.err)
		}
	}
	if n := count(t, db); n != 30 {
		t.Fatalf("rows = %d, want 30", n)
	}
}

// TestConcurrentLoadsLoadEverything loads objects from many goroutines
// at once, each object from each of them, as redelivered events and the
// reconciler do: every record is loaded once.
func TestConcurrentLoadsLoadEverything(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	keys := putObjects(t, b, 120, 7)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inserted int
	)
	for w := range 16 {
		wg.Go(func() {
			for i := range keys {
				res, err := l.Load(ctx, keys[(i+w*8)%len(keys)])
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inserted += res.Inserted
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n := count(t, db); n != 840 || inserted != 840 {
		t.Fatalf("rows = %d, inserted %d; want 840", n, inserted)
	}
}

// TestGroupedOnlyOnOneWriter: loads commit in groups on SQLite only; the
// other databases overlap concurrent loads' transactions (group.go).
func TestGroupedOnlyOnOneWriter(t *testing.T) {
	for _, c := range []struct {
		name string
		d    sqldb.Dialect
		want bool
	}{
		{"sqlite", sqlite.Dialect{}, true},
		{"mysql", mysql.Dialect{}, false},
		{"postgres", postgres.Dialect{}, false},
		{"sqlserver", sqlserver.Dialect{}, false},
	} {
		if got := sqldb.OneWriter(c.d); got != c.want {
			t.Errorf("%s: OneWriter = %v, want %v", c.name, got, c.want)
		}
	}
	if l, _, _ := setup(t); !l.grouped {
		t.Error("a loader on SQLite does not group its loads")
	}
}
