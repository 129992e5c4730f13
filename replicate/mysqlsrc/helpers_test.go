package mysqlsrc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/mysqlsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func quietLogger() *slog.Logger {
	if os.Getenv("REPLICATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// env is one MariaDB and one PostgreSQL server shared by the subtests of
// a test; each subtest gets databases of its own.
type env struct {
	my *peers.MariaDB
	pg *peers.Postgres
}

var dbSeq atomic.Int64

func newEnv(t *testing.T, withPG bool) *env {
	t.Helper()
	e := &env{my: peers.StartMariaDB(t)}
	if withPG {
		e.pg = peers.StartPostgres(t)
	}
	return e
}

// mysqlURL creates a fresh MariaDB database and returns its URL (user
// root, which has the replication grants).
func (e *env) mysqlURL(t testing.TB, extra string) string {
	t.Helper()
	name := fmt.Sprintf("src%d", dbSeq.Add(1))
	root := open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", e.my.Port))
	execSQL(t, root, "CREATE DATABASE "+name)
	u := fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", e.my.Port, name)
	if extra != "" {
		u += "?" + extra
	}
	return u
}

// pgURL creates a fresh PostgreSQL database and returns its URL.
func (e *env) pgURL(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("dst%d", dbSeq.Add(1))
	root := open(t, e.pg.RootURL("postgres"))
	execSQL(t, root, "CREATE DATABASE "+name+" OWNER app")
	return e.pg.URL(name)
}

func sqliteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "dst.db")
}

func open(t testing.TB, url string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), url, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func execSQL(t testing.TB, db *sqldb.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func count(t testing.TB, db *sqldb.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// current is the source's binlog position now.
func current(t testing.TB, db *sqldb.DB) replicate.Position {
	t.Helper()
	src, err := mysqlsrc.Open(context.Background(), db, replicate.SourceConfig{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := src.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// reached reports whether position a is at or after b (file positions).
func reached(a, b replicate.Position) bool {
	_, fa, pa, _, err1 := mysqlsrc.ParsePosition(a)
	_, fb, pb, _, err2 := mysqlsrc.ParsePosition(b)
	if err1 != nil || err2 != nil {
		return false
	}
	if fa != fb {
		return fa > fb
	}
	return pa >= pb
}

// waitCaughtUp waits until the stream applied everything logged so far.
func waitCaughtUp(t testing.TB, r *sourcetest.Running, src *sqldb.DB) {
	t.Helper()
	want := current(t, src)
	waitFor(t, "position "+string(want), 60*time.Second, func() bool {
		st := r.Stream.Status()
		return st.Phase == replicate.PhaseCDC && reached(st.Position, want)
	})
}

func mustValidate(t testing.TB, src, dst *sqldb.DB, tables ...string) {
	t.Helper()
	rep, err := replicate.Validate(context.Background(), src, dst, tables, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("source and target differ:\n%s", rep)
	}
}

// canonicalRow reads one row by id as canonical texts ("NULL" for nil).
func canonicalRow(t testing.TB, db *sqldb.DB, table string, id int) map[string]string {
	t.Helper()
	def, err := db.Dialect.Describe(context.Background(), db, table)
	if err != nil {
		t.Fatal(err)
	}
	cols := def.ColumnNames()
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", sqldb.QuoteList(db.Dialect, cols), db.Dialect.Quote(table), db.Dialect.Quote("id"), db.Dialect.Placeholder(1))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := db.QueryRowContext(context.Background(), q, id).Scan(ptrs...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out := map[string]string{}
	for i, c := range def.Columns {
		if vals[i] == nil {
			out[c.Name] = "NULL"
			continue
		}
		s, err := sqldb.Text(c.Type, vals[i])
		if err != nil {
			t.Fatalf("%s.%s: %v", table, c.Name, err)
		}
		out[c.Name] = s
	}
	return out
}

func diffRows(want, got map[string]string) string {
	var b strings.Builder
	for k, w := range want {
		if g := got[k]; g != w {
			fmt.Fprintf(&b, "  %s: got %q, want %q\n", k, g, w)
		}
	}
	return b.String()
}
