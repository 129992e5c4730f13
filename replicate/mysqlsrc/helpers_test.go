package mysqlsrc_test

import (
	"context"
	"fmt"
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
	root := sourcetest.Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", e.my.Port))
	sourcetest.Exec(t, root, "CREATE DATABASE "+name)
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
	root := sourcetest.Open(t, e.pg.RootURL("postgres"))
	sourcetest.Exec(t, root, "CREATE DATABASE "+name+" OWNER app")
	return e.pg.URL(name)
}

func sqliteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "dst.db")
}

// current is the source's binlog position now.
func current(t testing.TB, db *sqldb.DB) replicate.Position {
	t.Helper()
	src, err := mysqlsrc.Open(context.Background(), db, replicate.SourceConfig{Logger: sourcetest.Quiet()})
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
	sourcetest.WaitFor(t, "position "+string(want), 60*time.Second, func() bool {
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
