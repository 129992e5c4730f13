package pollsrc_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
	_ "github.com/intercloud/intercloud/replicate/mysqlsrc"
	_ "github.com/intercloud/intercloud/replicate/pgsrc"
	"github.com/intercloud/intercloud/replicate/pollsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
	_ "github.com/intercloud/intercloud/sqldb/sqlserver"
)

var dbSeq atomic.Int64

func sqliteDB(t *testing.T) *sqldb.DB {
	return sourcetest.Open(t, fmt.Sprintf("sqlite://%s", filepath.Join(t.TempDir(), fmt.Sprintf("db%d.db", dbSeq.Add(1)))))
}

// sources opens fresh source databases: SQLite, the kinds named (not
// with -short) and SQL Server when INTERCLOUD_SQLSERVER_URL names one;
// the servers start once per test.
func sources(t *testing.T, kinds ...string) map[string]func(t *testing.T) *sqldb.DB {
	out := map[string]func(t *testing.T) *sqldb.DB{"sqlite": sqliteDB}
	if testing.Short() {
		kinds = nil // -short: SQLite (and a SQL Server when one is named) only
	}
	if slices.Contains(kinds, "mariadb") {
		my := peers.StartMariaDB(t)
		out["mariadb"] = func(t *testing.T) *sqldb.DB {
			name := fmt.Sprintf("src%d", dbSeq.Add(1))
			sourcetest.Exec(t, sourcetest.Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port)), "CREATE DATABASE "+name)
			return sourcetest.Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", my.Port, name))
		}
		// SELECT on the captured tables and the change table, and, since
		// MySQL shows a table's triggers only to users who hold TRIGGER
		// on it, that too (the source checks them at every open).
		leastPrivilege["mariadb"] = func(t *testing.T, db *sqldb.DB) *sqldb.DB {
			user := fmt.Sprintf("ro%d", dbSeq.Add(1))
			u := db.URL()
			name := strings.TrimPrefix(u.Path, "/")
			sourcetest.Exec(t, db, "CREATE USER '"+user+"'@'%' IDENTIFIED BY 'ro'")
			sourcetest.Exec(t, db, "GRANT SELECT, TRIGGER ON `"+name+"`.items TO '"+user+"'@'%'")
			sourcetest.Exec(t, db, "GRANT SELECT ON `"+name+"`."+pollsrc.LogTable+" TO '"+user+"'@'%'")
			u.User = url.UserPassword(user, "ro")
			return sourcetest.Open(t, u.String())
		}
	}
	if slices.Contains(kinds, "postgres") {
		pg := peers.StartPostgres(t)
		out["postgres"] = func(t *testing.T) *sqldb.DB {
			name := fmt.Sprintf("src%d", dbSeq.Add(1))
			sourcetest.Exec(t, sourcetest.Open(t, pg.RootURL("postgres")), "CREATE DATABASE "+name+" OWNER app")
			return sourcetest.Open(t, pg.URL(name))
		}
		// SELECT on the captured tables and the change table.
		leastPrivilege["postgres"] = func(t *testing.T, db *sqldb.DB) *sqldb.DB {
			role := fmt.Sprintf("ro%d", dbSeq.Add(1))
			sourcetest.Exec(t, sourcetest.Open(t, pg.RootURL("postgres")), "CREATE ROLE "+role+" LOGIN PASSWORD 'ro'")
			sourcetest.Exec(t, db, "GRANT SELECT ON items, "+pollsrc.LogTable+" TO "+role)
			u := db.URL()
			u.User = url.UserPassword(role, "ro")
			return sourcetest.Open(t, u.String())
		}
	}
	// SQL Server runs only where INTERCLOUD_SQLSERVER_URL names one
	// (make test-sqlserver): a fresh database per source, dropped after.
	if u := os.Getenv(SQLServerEnv); u != "" {
		out["sqlserver"] = func(t *testing.T) *sqldb.DB { return sourcetest.FreshSQLServerDB(t, u, "icpoll") }
	}
	return out
}

// SQLServerEnv names the SQL Server the live tests run against
// (sqlserver://user:pass@host:1433/master?...); unset, they skip.
const SQLServerEnv = "INTERCLOUD_SQLSERVER_URL"

// TestSQLServerLive is the poll source's conformance, concurrency,
// in-flight and origin-mark tests on the SQL Server of
// INTERCLOUD_SQLSERVER_URL (the other tests run them on SQLite, MariaDB
// and PostgreSQL). No SQL Server runs where this was written: it skips,
// saying so, when the variable is unset.
func TestSQLServerLive(t *testing.T) {
	if os.Getenv(SQLServerEnv) == "" {
		t.Skip("SKIPPED: no SQL Server: set " + SQLServerEnv + " (see README, SQL Server) to run the poll source's suites against one")
	}
	t.Run("Conformance", TestConformance)
	t.Run("ConcurrentWriters", TestConcurrentWriters)
	t.Run("CurrentBelowInFlight", TestCurrentBelowInFlight)
	t.Run("MarkDiesWithTransaction", TestMarkDiesWithTransaction)
}

// addColumn adds the conformance suite's column in each database's DDL.
var addColumn = map[string]string{
	"sqlite":    "ALTER TABLE items ADD COLUMN note VARCHAR(30) NOT NULL DEFAULT 'n/a'",
	"mariadb":   "ALTER TABLE items ADD COLUMN note VARCHAR(30) NOT NULL DEFAULT 'n/a'",
	"postgres":  "ALTER TABLE items ADD COLUMN note VARCHAR(30) NOT NULL DEFAULT 'n/a'",
	"sqlserver": "ALTER TABLE items ADD note NVARCHAR(30) NOT NULL DEFAULT 'n/a'",
}

// leastPrivilege opens a source database as a user with only the grants
// a one-way poll stream needs once capture is installed (by PrepareMode,
// which the suite runs as the owner); sources fills it per server.
var leastPrivilege = map[string]func(t *testing.T, db *sqldb.DB) *sqldb.DB{}

// live lists the server-backed sources the tests run on besides SQLite.
var live = []string{"mariadb", "postgres"}

// The conformance suite of the log-based sources, in poll mode, on every
// supported source database (into SQLite targets).
func TestConformance(t *testing.T) {
	srcs := sources(t, live...)
	targets := map[string]func(t *testing.T) *sqldb.DB{"sqlite": sqliteDB}
	if pg, ok := srcs["postgres"]; ok {
		targets["postgres"] = pg
	}
	matrices := map[string]sourcetest.Matrix{
		"sqlite": sourcetest.SQLiteMatrix, "mariadb": sourcetest.MariaDBMatrix, "postgres": sourcetest.PostgresMatrix,
	}
	for name, src := range srcs {
		t.Run(name, func(t *testing.T) {
			sourcetest.Run(t, matrices[name].With(sourcetest.Harness{
				Source:         src,
				Targets:        targets,
				SourceMode:     replicate.SourcePoll,
				AddColumnDDL:   addColumn[name],
				LeastPrivilege: leastPrivilege[name],
			}))
		})
	}
}

func TestSourcetestChild(t *testing.T) { sourcetest.Child(t) }

// Many writers commit out of order (seq taken in one order, committed in
// another, some rolled back, one held open across several polls): the
// target ends with every committed row exactly once, checked by reading
// both databases' ids directly.
func TestConcurrentWriters(t *testing.T) {
	for name, open := range sources(t, live...) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			src, dst := open(t), sqliteDB(t)
			d := src.Dialect
			sourcetest.Exec(t, src, fmt.Sprintf("CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY, %s VARCHAR(40) NOT NULL)", d.Quote("w"), d.Quote("id"), d.Quote("v")))
			if err := replicate.PrepareMode(ctx, src, replicate.SourcePoll, []string{"w"}, sourcetest.Quiet()); err != nil {
				t.Fatal(err)
			}
			s, err := replicate.New(replicate.Config{Name: "poll", SourceMode: replicate.SourcePoll, Source: src, Target: dst,
				Tables: []string{"w"}, Poll: 5 * time.Millisecond, Logger: sourcetest.Quiet()})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			insert := fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, %s)", d.Quote("w"), d.Quote("id"), d.Quote("v"), d.Placeholder(1), d.Placeholder(2))
			// One transaction takes a seq first and commits last.
			slow, err := src.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := slow.ExecContext(ctx, insert, 0, "slow"); err != nil {
				t.Fatal(err)
			}
			writers, per := 8, 40
			if d.Name() == "sqlite" {
				// One writer at a time: the held transaction would block
				// the others, so it commits before they start.
				if err := slow.Commit(); err != nil {
					t.Fatal(err)
				}
				slow = nil
			}
			var wg sync.WaitGroup
			var failed atomic.Int64
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						id := int64(1 + w*per + i)
						err := src.Tx(ctx, func(tx *sql.Tx) error {
							if _, err := tx.ExecContext(ctx, insert, id, fmt.Sprintf("w%d-%d", w, i)); err != nil {
								return err
							}
							time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
							if i%10 == 7 {
								return errRollback
							}
							return nil
						})
						if err != nil && err != errRollback {
							failed.Add(1)
							t.Errorf("writer %d: %v", w, err)
						}
					}
				}()
			}
			if slow != nil {
				// The stream polls past it meanwhile; it commits well
				// within the hold-back (pollsrc.DefaultHoldBack).
				time.Sleep(time.Second)
				if err := slow.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			want := ids(t, src)
			if len(want) != 1+writers*(per-per/10) {
				t.Fatalf("source has %d rows, want %d", len(want), 1+writers*(per-per/10))
			}
			deadline := time.Now().Add(90 * time.Second)
			for {
				got := ids(t, dst)
				if slices.Equal(got, want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("target has %d rows, source %d; status %+v", len(got), len(want), s.Status())
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Log("the stream did not return within 30s of its cancel")
			}
		})
	}
}

var errRollback = fmt.Errorf("rollback")

// ids reads a table's ids in order, with the database's own query.
func ids(t *testing.T, db *sqldb.DB) []int64 {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT "+db.Dialect.Quote("id")+" FROM "+db.Dialect.Quote("w")+" ORDER BY 1")
	if err != nil {
		if db.Dialect.Name() == "sqlite" {
			return nil // not created yet on the target
		}
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// On MariaDB with the binary log on, a user without SUPER cannot create
// the capture triggers unless log_bin_trust_function_creators is on:
// Check says so, naming the setting, and passes once it is set.
func TestCheckTriggerRights(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB")
	}
	my := peers.StartMariaDB(t)
	root := sourcetest.Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port))
	sourcetest.Exec(t, root, "SET GLOBAL log_bin_trust_function_creators = 0")
	app := sourcetest.Open(t, my.URL("app"))
	ctx := context.Background()
	err := replicate.CheckMode(ctx, app, replicate.SourcePoll)
	if err == nil || !errors.Is(err, replicate.ErrPermanent) || !strings.Contains(err.Error(), "log_bin_trust_function_creators") {
		t.Fatalf("check as app = %v, want a permanent error naming log_bin_trust_function_creators", err)
	}
	if err := replicate.CheckMode(ctx, root, replicate.SourcePoll); err != nil {
		t.Fatalf("check as root (SUPER) = %v", err)
	}
	sourcetest.Exec(t, root, "SET GLOBAL log_bin_trust_function_creators = 1")
	if err := replicate.CheckMode(ctx, app, replicate.SourcePoll); err != nil {
		t.Fatalf("check with log_bin_trust_function_creators = 1: %v", err)
	}
}

// Current stops just below a seq still in flight (a transaction holding
// it open), and is exact when nothing is missing.
func TestCurrentBelowInFlight(t *testing.T) {
	ctx := context.Background()
	for name, open := range sources(t, live...) {
		if name == "sqlite" {
			continue // one writer at a time: nothing is ever in flight
		}
		t.Run(name, func(t *testing.T) {
			db := open(t)
			d := db.Dialect
			sourcetest.Exec(t, db, fmt.Sprintf("CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY)", d.Quote("w"), d.Quote("id")))
			src, err := replicate.OpenSourceMode(ctx, db, replicate.SourcePoll, replicate.SourceConfig{Name: "cur", Tables: []string{"w"}})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			insert := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", d.Quote("w"), d.Quote("id"), d.Placeholder(1))
			for i := 1; i <= 3; i++ {
				sourcetest.Exec(t, db, insert, i)
			}
			if pos, err := src.Current(ctx); err != nil || pos != "3" {
				t.Fatalf("current = %q, %v; want 3", pos, err)
			}
			held, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Rollback()
			if _, err := held.ExecContext(ctx, insert, 4); err != nil { // takes seq 4
				t.Fatal(err)
			}
			sourcetest.Exec(t, db, insert, 5) // seq 5, committed
			if pos, err := src.Current(ctx); err != nil || pos != "3" {
				t.Fatalf("current with seq 4 in flight = %q, %v; want 3", pos, err)
			}
		})
	}
}

// The origin mark lives and dies with its transaction: a rolled-back
// apply leaves no mark, and the session's next write is logged as local.
func TestMarkDiesWithTransaction(t *testing.T) {
	ctx := context.Background()
	for name, open := range sources(t, live...) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			d := db.Dialect
			sourcetest.Exec(t, db, fmt.Sprintf("CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY)", d.Quote("w"), d.Quote("id")))
			if err := replicate.PrepareMode(ctx, db, replicate.SourcePoll, []string{"w"}, sourcetest.Quiet()); err != nil {
				t.Fatal(err)
			}
			m := replicate.MarkerForMode(db, replicate.SourcePoll)
			if m == nil {
				t.Fatal("no marker for the poll mode")
			}
			db.SetMaxOpenConns(1) // the same session throughout
			insert := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", d.Quote("w"), d.Quote("id"), d.Placeholder(1))
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.MarkOrigin(ctx, tx, "b"); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, insert, 1); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			err = db.Tx(ctx, func(tx *sql.Tx) error {
				if err := m.MarkOrigin(ctx, tx, "b"); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, insert, 2); err != nil {
					return err
				}
				return m.UnmarkOrigin(ctx, tx)
			})
			if err != nil {
				t.Fatal(err)
			}
			sourcetest.Exec(t, db, insert, 3)
			rows, err := db.QueryContext(ctx, "SELECT pk, origin FROM _ic_poll_log ORDER BY seq")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var pk, origin string
				if err := rows.Scan(&pk, &origin); err != nil {
					t.Fatal(err)
				}
				got = append(got, pk+"="+origin)
			}
			if want := []string{"[2]=b", "[3]="}; !slices.Equal(got, want) {
				t.Fatalf("change log %v, want %v", got, want)
			}
			var marks int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM _ic_poll_origin").Scan(&marks); err != nil || marks != 0 {
				t.Fatalf("%d marks left (%v)", marks, err)
			}
		})
	}
}

// A resync into a database read in poll mode tags its writes there, so
// the reverse stream does not send them back.
func TestResyncTagsPollTarget(t *testing.T) {
	ctx := context.Background()
	src, dst := sqliteDB(t), sqliteDB(t)
	for _, db := range []*sqldb.DB{src, dst} {
		sourcetest.Exec(t, db, "CREATE TABLE w (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(40))")
	}
	if err := replicate.PrepareMode(ctx, dst, replicate.SourcePoll, []string{"w"}, sourcetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	sourcetest.Exec(t, src, "INSERT INTO w (id, v) VALUES (1, 'a'), (2, 'b')")
	rep, err := replicate.Validate(ctx, src, dst, []string{"w"}, 100)
	if err != nil || rep.OK() {
		t.Fatalf("validate before resync: ok %v, %v", rep.OK(), err)
	}
	if err := replicate.ResyncMappingMode(ctx, src, dst, nil, rep, replicate.SourcePoll); err != nil {
		t.Fatal(err)
	}
	var n, tagged int
	if err := dst.QueryRowContext(ctx, "SELECT COUNT(*), SUM(CASE WHEN origin = 'resync' THEN 1 ELSE 0 END) FROM "+pollsrc.LogTable).Scan(&n, &tagged); err != nil {
		t.Fatal(err)
	}
	if n != 2 || tagged != 2 {
		t.Fatalf("%d changes logged on the target, %d tagged resync; want 2 and 2", n, tagged)
	}
}

// A key whose value reads back unlike its logged text (a timestamp: text
// in the change table, a time when read) is not found by the batched
// read; it is read again alone, so it arrives instead of being deleted.
func TestKeyReadBackDiffers(t *testing.T) {
	ctx := context.Background()
	src, dst := sqliteDB(t), sqliteDB(t)
	sourcetest.Exec(t, src, "CREATE TABLE e (at TIMESTAMP NOT NULL PRIMARY KEY, v INTEGER)")
	if err := replicate.PrepareMode(ctx, src, replicate.SourcePoll, []string{"e"}, sourcetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	s, err := replicate.New(replicate.Config{Name: "ts", SourceMode: replicate.SourcePoll, Source: src, Target: dst,
		Tables: []string{"e"}, SkipFullLoad: true, Poll: 5 * time.Millisecond, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	defer func() { cancel(); <-done }()
	sourcetest.Exec(t, src, "INSERT INTO e (at, v) VALUES ('2024-01-02T03:04:05Z', 1), ('2024-01-02T03:04:06Z', 2)")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n, sum int
		_ = dst.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(v), 0) FROM e").Scan(&n, &sum)
		if n == 2 && sum == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("target has %d rows (sum %d), want 2 (3); status %+v", n, sum, s.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStreamPassesOnDurableChanges: on SQLite a commit is visible a little
// before its sync ends (sqldb.DB.WaitDurable), so the source makes sure of
// what it read before it hands a batch on: a change another opener of the
// file (another process) committed makes it sync the log itself.
func TestStreamPassesOnDurableChanges(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "durable.db")
	db := sourcetest.Open(t, "sqlite://"+path)
	other := sourcetest.Open(t, "sqlite://"+path)
	sourcetest.Exec(t, db, `CREATE TABLE w (id INTEGER PRIMARY KEY, v TEXT)`)
	src, err := pollsrc.Driver{HoldBack: time.Millisecond}.Open(ctx, db, replicate.SourceConfig{Tables: []string{"w"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sourcetest.Exec(t, other, `INSERT INTO w VALUES (1, 'one')`)
	syncs := func() int64 { st, _ := db.WriteLock(); return st.Syncs }
	before := syncs()
	var handed int64
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = src.Stream(sctx, "", replicate.StreamOptions{Poll: 5 * time.Millisecond}, func(_ context.Context, b replicate.Batch) error {
		if len(b.Changes) > 0 {
			handed = syncs()
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream = %v", err)
	}
	if handed <= before {
		t.Errorf("syncs of the log: %d before the read, %d when the batch was handed on; want more", before, handed)
	}
}
