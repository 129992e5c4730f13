package lease_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/lease"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

const ttl = time.Second

func TestSQLite(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "lease.db")
	runSuite(t, url)
}

func TestMariaDB(t *testing.T) {
	m := peers.StartMariaDB(t)
	runSuite(t, m.URL("app"))
}

func TestPostgres(t *testing.T) {
	p := peers.StartPostgres(t)
	runSuite(t, p.URL("app"))
}

func open(t *testing.T, url string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// candidate is one process campaigning for a lease on its own pool.
type candidate struct {
	db     *sqldb.DB
	l      *lease.Lease
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, url, name string, active *atomic.Int32, maxActive *atomic.Int32, onRole func(token int64)) *candidate {
	t.Helper()
	db := open(t, url)
	l, err := lease.New(lease.Config{DB: db, Name: name, Holder: lease.NewHolder(), TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{db: db, l: l, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_ = l.Run(ctx, func(ctx context.Context, token int64) {
			n := active.Add(1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			if onRole != nil {
				onRole(token)
			}
			<-ctx.Done()
			active.Add(-1)
		})
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

func (c *candidate) stop() {
	c.cancel()
	<-c.done
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func holders(cs []*candidate) (n int, who *candidate) {
	for _, c := range cs {
		if c.l.Status().Held {
			n++
			who = c
		}
	}
	return n, who
}

func runSuite(t *testing.T, url string) {
	t.Run("OneHolderAndTakeoverAfterDeath", func(t *testing.T) {
		var active, maxActive atomic.Int32
		var mu sync.Mutex
		var tokens []int64
		record := func(tok int64) { mu.Lock(); tokens = append(tokens, tok); mu.Unlock() }
		cs := []*candidate{
			start(t, url, "death", &active, &maxActive, record),
			start(t, url, "death", &active, &maxActive, record),
			start(t, url, "death", &active, &maxActive, record),
		}
		waitFor(t, "a holder", 10*ttl, func() bool { n, _ := holders(cs); return n == 1 })
		// A few renewals later still one.
		time.Sleep(2 * ttl)
		if n, _ := holders(cs); n != 1 {
			t.Fatalf("%d holders", n)
		}
		_, dead := holders(cs)
		oldToken := dead.l.Token()
		// The holder dies without a word: its connections go away (its
		// role keeps running, as a paused process would, until it
		// notices it cannot renew).
		dead.db.Close()
		took := waitFor(t, "takeover", 10*ttl, func() bool {
			for _, c := range cs {
				if c != dead && c.l.Status().Held {
					return true
				}
			}
			return false
		})
		t.Logf("takeover %v after the holder's death (TTL %v)", took.Round(time.Millisecond), ttl)
		if took > 3*ttl {
			t.Errorf("takeover took %v, want within 3 TTLs", took)
		}
		waitFor(t, "the dead holder steps down", 3*ttl, func() bool { return !dead.l.Status().Held })
		if m := maxActive.Load(); m != 1 {
			t.Errorf("%d roles ran at once", m)
		}
		_, now := holders(cs)
		if now.l.Token() <= oldToken {
			t.Errorf("token %d after %d, want larger", now.l.Token(), oldToken)
		}

		// The deposed holder's late write is fenced off and changes nothing.
		db := open(t, url)
		tbl := sqldb.Table{Name: "fenced_writes", Columns: []sqldb.Column{{Name: "k", Type: sqldb.Type{Kind: sqldb.KindInt}}}, PrimaryKey: []string{"k"}}
		if err := db.EnsureTable(t.Context(), tbl); err != nil {
			t.Fatal(err)
		}
		write := func(holder string, token int64, k int64) error {
			return db.Tx(t.Context(), func(tx *sql.Tx) error {
				if err := lease.FenceToken(t.Context(), tx, db.Dialect, "death", holder, token); err != nil {
					return err
				}
				_, err := tx.ExecContext(t.Context(), db.Dialect.Upsert(tbl, 1), k)
				return err
			})
		}
		if err := write(dead.l.Status().Holder, oldToken, 1); !errors.Is(err, lease.ErrFenced) {
			t.Fatalf("late write: %v, want ErrFenced", err)
		}
		st := now.l.Status()
		if err := write(st.Holder, st.Token, 2); err != nil {
			t.Fatalf("holder's write: %v", err)
		}
		var got []int64
		rows, err := db.QueryContext(t.Context(), "SELECT k FROM fenced_writes ORDER BY k")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k int64
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			got = append(got, k)
		}
		rows.Close()
		if len(got) != 1 || got[0] != 2 {
			t.Fatalf("rows %v, want [2]: the fenced write must change nothing", got)
		}
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < len(tokens); i++ {
			if tokens[i] <= tokens[i-1] {
				t.Fatalf("tokens %v do not grow", tokens)
			}
		}
	})

	t.Run("ReleaseOnStop", func(t *testing.T) {
		var active, maxActive atomic.Int32
		a := start(t, url, "release", &active, &maxActive, nil)
		waitFor(t, "a holds", 10*ttl, func() bool { return a.l.Status().Held })
		b := start(t, url, "release", &active, &maxActive, nil)
		time.Sleep(ttl / 2)
		a.stop()
		took := waitFor(t, "b takes over", 10*ttl, func() bool { return b.l.Status().Held })
		t.Logf("takeover %v after a clean stop", took.Round(time.Millisecond))
		if took > ttl {
			t.Errorf("takeover after a release took %v, want under one TTL", took)
		}
		if err := b.db.Tx(t.Context(), func(tx *sql.Tx) error { return b.l.Fence(t.Context(), tx) }); err != nil {
			t.Fatalf("holder fenced: %v", err)
		}
		if err := a.db.Tx(t.Context(), func(tx *sql.Tx) error { return a.l.Fence(t.Context(), tx) }); !errors.Is(err, lease.ErrFenced) {
			t.Fatalf("stopped holder: %v, want ErrFenced", err)
		}
	})

	t.Run("IndependentNames", func(t *testing.T) {
		var active, maxActive atomic.Int32
		a := start(t, url, "one", &active, &maxActive, nil)
		b := start(t, url, "two", &active, &maxActive, nil)
		waitFor(t, "both hold", 10*ttl, func() bool { return a.l.Status().Held && b.l.Status().Held })
	})
}

func TestConfig(t *testing.T) {
	db := open(t, "sqlite://"+filepath.Join(t.TempDir(), "c.db"))
	long := string(make([]byte, 191))
	for _, tc := range []struct {
		name string
		cfg  lease.Config
	}{
		{"no db", lease.Config{Name: "n", Holder: "h"}},
		{"no name", lease.Config{DB: db, Holder: "h"}},
		{"no holder", lease.Config{DB: db, Name: "n"}},
		{"long name", lease.Config{DB: db, Name: long, Holder: "h"}},
		{"long holder", lease.Config{DB: db, Name: "n", Holder: long}},
		{"negative ttl", lease.Config{DB: db, Name: "n", Holder: "h", TTL: -1}},
		{"tiny ttl", lease.Config{DB: db, Name: "n", Holder: "h", TTL: time.Millisecond}},
	} {
		if _, err := lease.New(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := lease.New(lease.Config{DB: db, Name: "n", Holder: "h"}); err != nil {
		t.Fatal(err)
	}
	if a, b := lease.NewHolder(), lease.NewHolder(); a == b {
		t.Fatalf("NewHolder twice: %q", a)
	}
}
