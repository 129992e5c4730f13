package load

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/retry"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
)

// server is a real database the test can stop and start.
type server struct {
	url         string
	stop, start func(testing.TB)
	// query runs SQL with the server's own client.
	query func(t testing.TB, db, query string) []string
}

// TestOutageIsTransientRejectionPermanent loads into MariaDB and
// PostgreSQL: while the server is down (stopped, or killed) a load fails
// with a transient error, never a permanent one, and succeeds once it is
// back; a record the database refuses for its content is permanent. Then
// the same records load from an object of each layout (self-contained
// lines, shared lines) to the same rows, as the server's own client
// prints them.
func TestOutageIsTransientRejectionPermanent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	for _, name := range []string{"mariadb", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var s server
			if name == "mariadb" {
				m := peers.StartMariaDB(t)
				s = server{m.URL("app"), m.Kill, m.Start, m.Query} // a crash
			} else {
				p := peers.StartPostgres(t)
				s = server{p.URL("app"), p.Stop, p.Start, p.Query} // a clean shutdown
			}
			ctx := context.Background()
			dir := t.TempDir()
			b, err := objects.Open(ctx, "file://"+filepath.Join(dir, "objects"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			db, err := sqldb.Open(ctx, s.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			l := New(b, db, config.Default(dir).Schema, nil)
			if err := l.Prepare(ctx); err != nil {
				t.Fatal(err)
			}
			part := PartitionOf(time.Now())

			// A record whose origin is longer than its column.
			r := record.Record{ID: "long-origin", Origin: strings.Repeat("o", 100), TraceID: "t", IngestedAt: time.Now(),
				Fields: map[string]any{"device": "d", "metric": "cpu", "value": 1.0, "ts": time.Now()}}
			line, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Put(ctx, part+"rejected.ndjson", append(line, '\n'), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Load(ctx, part+"rejected.ndjson"); !errors.Is(err, functions.ErrPermanent) {
				t.Fatalf("rejected record: %v, want permanent", err)
			}

			key := part + "outage.ndjson"
			if err := b.Put(ctx, key, rawObject(t, "o1", "o2"), nil); err != nil {
				t.Fatal(err)
			}
			s.stop(t)
			_, err = l.Load(ctx, key)
			if err == nil || errors.Is(err, functions.ErrPermanent) || !retry.Transient(err) {
				t.Fatalf("load while the database is down: %v (transient %v)", err, retry.Transient(err))
			}
			s.start(t)
			deadline := time.Now().Add(30 * time.Second)
			for {
				res, err := l.Load(ctx, key)
				if err == nil {
					if res.Inserted != 2 {
						t.Fatalf("load after restart = %+v", res)
					}
					break
				}
				if errors.Is(err, functions.ErrPermanent) || time.Now().After(deadline) {
					t.Fatalf("load after restart: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
			}

			if _, err := db.ExecContext(ctx, "DELETE FROM records"); err != nil {
				t.Fatal(err)
			}
			loadBothLayouts(t, l, db, part, func() []string {
				return s.query(t, "app", "SELECT * FROM records ORDER BY id")
			})

			// One object loaded by eight at once (redelivered events):
			// one load inserts, the others find its marker, none fails.
			key = part + "together.ndjson"
			if err := b.Put(ctx, key, rawObject(t, "t1", "t2", "t3"), nil); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			results := make([]Result, 8)
			errs := make([]error, 8)
			for i := range results {
				wg.Go(func() { results[i], errs[i] = l.Load(ctx, key) })
			}
			wg.Wait()
			loaded := 0
			for i, r := range results {
				if errs[i] != nil {
					t.Fatalf("concurrent load %d: %v", i, errs[i])
				}
				if !r.Skipped {
					loaded++
					if r.Inserted != 3 {
						t.Errorf("the load that inserted: %+v", r)
					}
				}
			}
			if loaded != 1 {
				t.Errorf("%d of 8 concurrent loads of one object inserted, want 1", loaded)
			}
			if got := s.query(t, "app", "SELECT COUNT(*) FROM records WHERE id IN ('t1', 't2', 't3')"); len(got) != 1 || got[0] != "3" {
				t.Errorf("records t1..t3: %q, want 3", got)
			}
			if got := s.query(t, "app", "SELECT records FROM "+LoadedTable+" WHERE "+db.Dialect.Quote("key")+" = '"+key+"'"); len(got) != 1 || got[0] != "3" {
				t.Errorf("load marker of %s: %q, want one of 3 records", key, got)
			}
		})
	}
}
