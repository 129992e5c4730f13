// Package sourcetest is the conformance suite every change-data-capture
// source (sqlitesrc, mysqlsrc, pgsrc) passes against a real database:
// full load, change data capture, a replicating process killed with
// SIGKILL and restarted, origin tagging without echo, schema changes, and
// a matrix of the source's column types written before the full load and
// during CDC into every target.
//
// Every comparison reads both sides with Dump: each database's own text
// conversion of each column (hand-written SQL per dialect and type) with a
// light textual normalisation written here, never the replicator's value
// model, so the suite cannot agree with a bug in it.
//
// A source package runs the suite from a test with its Harness, and
// defines the child process the kill test starts:
//
//	func TestConformance(t *testing.T) { sourcetest.Run(t, harness(t)) }
//	func TestSourcetestChild(t *testing.T) { sourcetest.Child(t) }
package sourcetest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	osexec "os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/testchild"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// Harness gives the suite databases of one source kind.
type Harness struct {
	// Source opens a fresh, empty database of the source's kind, able to
	// capture changes (binary log on, logical replication, ...).
	Source func(t *testing.T) *sqldb.DB
	// Targets open fresh, empty target databases by name ("postgres",
	// "mysql", "sqlite"); the matrix runs into each.
	Targets map[string]func(t *testing.T) *sqldb.DB
	// Matrix is the source's type matrix: statements creating table
	// "matrix" (primary key "id", an integer) in the source's own DDL.
	Matrix []string
	// MatrixRows are INSERT ... VALUES tuples of table matrix, each with
	// a %d for its id; every row is written before the full load and
	// again (id + 1000) during CDC.
	MatrixRows []string
	// MatrixColumns is the column list of MatrixRows, "id, a, b, ...".
	MatrixColumns string
	// Unportable lists, per target, matrix columns the target cannot
	// hold (they are excluded from the stream into it and the stream
	// must refuse them otherwise).
	Unportable map[string][]string
	// AddColumnDDL adds to table items a column "note", a string NOT NULL
	// with the default 'n/a', in the source's own DDL; "" when the source
	// cannot follow schema changes.
	AddColumnDDL string
	// RenameDDL renames a table in the source's own DDL, a format with
	// the quoted old and new names ("ALTER TABLE %s RENAME TO %s"); ""
	// when the source cannot follow renamed tables.
	RenameDDL string
	// LeastPrivilege, when set, returns the source database opened as a
	// user with only the grants one-way replication needs; the suite then
	// checks a stream reading through it writes nothing into the source.
	LeastPrivilege func(t *testing.T, db *sqldb.DB) *sqldb.DB
	// SourceMode is the replicate source mode under test ("" is
	// replicate.SourceLog); a mode that cannot tag origins sets NoOrigin.
	SourceMode string
	// NoOrigin skips the origin-tagging test (one-way sources).
	NoOrigin bool
}

// Quiet is the suite's logger: silent unless SOURCETEST_LOG is set.
func Quiet() *slog.Logger {
	if os.Getenv("SOURCETEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("FullLoadAndCDC", func(t *testing.T) { testFullLoadCDC(t, h) })
	t.Run("KillAndResume", func(t *testing.T) { testKill(t, h) })
	t.Run("OriginNoEcho", func(t *testing.T) {
		if h.NoOrigin {
			t.Skip("the source cannot tag origins")
		}
		testNoEcho(t, h)
	})
	t.Run("AddColumnWithDefault", func(t *testing.T) {
		if h.AddColumnDDL == "" {
			t.Skip("the source follows no schema changes")
		}
		testAddColumn(t, h)
	})
	t.Run("RenameTable", func(t *testing.T) {
		if h.RenameDDL == "" {
			t.Skip("the source follows no renamed tables")
		}
		testRenameTable(t, h)
	})
	t.Run("TypeMatrix", func(t *testing.T) {
		if len(h.Matrix) == 0 {
			t.Skip("no type matrix")
		}
		testMatrix(t, h)
	})
	t.Run("LeastPrivilege", func(t *testing.T) {
		if h.LeastPrivilege == nil {
			t.Skip("no least-privilege user for this source")
		}
		testLeastPrivilege(t, h)
	})
}

var items = sqldb.Table{
	Name: "items",
	Columns: []sqldb.Column{
		{Name: "id", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 64}},
		{Name: "name", Type: sqldb.Type{Kind: sqldb.KindString, Length: 100}},
		{Name: "qty", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 32}, Nullable: true},
		{Name: "price", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 12, Scale: 2}, Nullable: true},
	},
	PrimaryKey: []string{"id"},
}

// Exec runs a statement on db or fails the test.
func Exec(t testing.TB, db *sqldb.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// Count runs a query that returns one number on db and returns it, or
// fails the test.
func Count(t testing.TB, db *sqldb.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// Queryer is what Column reads through: a *sql.DB, *sql.Tx, *sql.Conn or
// *sqldb.DB.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Column runs a query on db and returns the first column of every row,
// or fails the test.
func Column[T any](t testing.TB, db Queryer, q string, args ...any) []T {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// Open opens the database at u for the test, closed when it ends.
func Open(t testing.TB, u string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), u, Quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var dbSeq atomic.Int64

// FreshSQLServerDB creates a database of its own (named prefix, the
// process id and a sequence number) on the SQL Server at u (a login that
// may create databases), opens it, and drops it when the test ends.
func FreshSQLServerDB(t testing.TB, u, prefix string) *sqldb.DB {
	t.Helper()
	admin := Open(t, u)
	name := fmt.Sprintf("%s%d_%d", prefix, os.Getpid(), dbSeq.Add(1))
	Exec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		_, _ = admin.Exec("ALTER DATABASE " + name + " SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
		_, _ = admin.Exec("DROP DATABASE " + name)
	})
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Path = "/" + name
	return Open(t, pu.String())
}

// createItems creates table items and installs capture for it.
func createItems(t testing.TB, h Harness, db *sqldb.DB) {
	t.Helper()
	if err := db.EnsureTable(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	if err := replicate.PrepareMode(context.Background(), db, h.SourceMode, []string{"items"}, Quiet()); err != nil {
		t.Fatal(err)
	}
}

func insertItems(t testing.TB, db *sqldb.DB, lo, hi int) {
	t.Helper()
	insertItemsInto(t, db, "items", lo, hi)
}

// Running is a stream running in a goroutine of its own, stopped when
// the test ends; a Run that failed without the test asking for its error
// (Wait) fails the test then.
type Running struct {
	// Stream is the running stream.
	Stream *replicate.Stream
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
	seen   bool  // the result was handed to the test
}

// Start runs a stream of cfg (with Quiet logging and a 10ms poll unless
// cfg says otherwise) until the test ends or Stop.
func Start(tb testing.TB, cfg replicate.Config) *Running {
	tb.Helper()
	return StartCtx(tb, context.Background(), cfg)
}

// StartCtx is Start with a parent context: the stream also stops when
// parent is done.
func StartCtx(tb testing.TB, parent context.Context, cfg replicate.Config) *Running {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = Quiet()
	}
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	s, err := replicate.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(parent)
	r := &Running{Stream: s, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = s.Run(ctx)
		close(r.done)
	}()
	tb.Cleanup(func() { r.Stop(tb) })
	return r
}

// Cancel asks the stream to stop, without waiting for it.
func (r *Running) Cancel() { r.cancel() }

// Stop cancels the stream and waits for Run to return nil; it fails the
// test when Run returned an error not handed out by Wait before, or does
// not return within a minute.
func (r *Running) Stop(tb testing.TB) {
	tb.Helper()
	r.cancel()
	seen := r.seen
	if err := r.Wait(tb); err != nil && !seen {
		tb.Errorf("Run: %v", err)
	}
}

// Wait waits (up to a minute) for Run to return and returns its result.
func (r *Running) Wait(tb testing.TB) error {
	tb.Helper()
	select {
	case <-r.done:
		r.seen = true
		return r.err
	case <-time.After(60 * time.Second):
		tb.Fatal("Run did not return")
		return nil
	}
}

// Done is closed when Run returned.
func (r *Running) Done() <-chan struct{} { return r.done }

// WaitFor polls cond until it holds, and fails the test when it does not
// within timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSame waits until Dump of the tables is equal on both sides, and
// fails with the first difference when it never is.
func waitSame(t testing.TB, r *Running, src, dst *sqldb.DB, skip []string, tables ...string) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		diff := ""
		for _, tbl := range tables {
			if d := DiffDumps(Dump(t, src, tbl, skip), Dump(t, dst, tbl, nil)); d != "" {
				diff = tbl + ":\n" + d
				break
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			st := ""
			if r != nil {
				st = fmt.Sprintf("\nstream: %+v", r.Stream.Status())
			}
			t.Fatalf("source and target still differ: %s%s", diff, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testFullLoadCDC(t *testing.T, h Harness) {
	src := h.Source(t)
	createItems(t, h, src)
	insertItems(t, src, 1, 201)
	for name, open := range h.Targets {
		t.Run(name, func(t *testing.T) {
			dst := open(t)
			r := Start(t, replicate.Config{SourceMode: h.SourceMode, Name: "conf", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 64})
			waitSame(t, r, src, dst, nil, "items")
			// The rows are on the target before the stream counts the
			// batch that wrote them: wait for the count, not only the rows.
			WaitFor(t, "the full load's count of 200 rows", 10*time.Second, func() bool { return r.Stream.Status().SnapshotRows >= 200 })
		})
	}
	// Changes during CDC, into the first target again.
	name := firstTarget(h)
	dst := h.Targets[name](t)
	r := Start(t, replicate.Config{SourceMode: h.SourceMode, Name: "conf-cdc", Source: src, Target: dst, Tables: []string{"items"}})
	WaitFor(t, "full load", 120*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	insertItems(t, src, 300, 350)
	d := src.Dialect
	Exec(t, src, fmt.Sprintf("UPDATE %s SET %s = NULL, %s = %s WHERE %s < 20", d.Quote("items"), d.Quote("qty"), d.Quote("name"), d.Placeholder(1), d.Quote("id")), "")
	Exec(t, src, fmt.Sprintf("DELETE FROM %s WHERE %s BETWEEN 100 AND 149", d.Quote("items"), d.Quote("id")))
	Exec(t, src, fmt.Sprintf("UPDATE %s SET %s = 5000 WHERE %s = 300", d.Quote("items"), d.Quote("id"), d.Quote("id")))
	waitSame(t, r, src, dst, nil, "items")
	if n := len(Dump(t, dst, "items", nil)); n != 200 {
		t.Errorf("target has %d rows, want 200", n)
	}
}

func firstTarget(h Harness) string {
	names := make([]string, 0, len(h.Targets))
	for n := range h.Targets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names[0]
}

func testAddColumn(t *testing.T, h Harness) {
	src := h.Source(t)
	createItems(t, h, src)
	insertItems(t, src, 1, 21)
	streams := map[string]*Running{}
	targets := map[string]*sqldb.DB{}
	for name, open := range h.Targets {
		dst := open(t)
		r := Start(t, replicate.Config{SourceMode: h.SourceMode, Name: "conf-ddl-" + name, Source: src, Target: dst, Tables: []string{"items"}})
		WaitFor(t, "full load", 120*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
		streams[name], targets[name] = r, dst
	}
	for name, r := range streams {
		waitSame(t, r, src, targets[name], nil, "items")
	}
	Exec(t, src, h.AddColumnDDL)
	insertItems(t, src, 100, 105)
	for name, r := range streams {
		t.Run(name, func(t *testing.T) {
			waitSame(t, r, src, targets[name], nil, "items")
			for _, line := range Dump(t, targets[name], "items", nil) {
				if !strings.Contains(line, `note="n/a"`) {
					t.Fatalf("target row without the default: %s", line)
				}
			}
		})
	}
}

// Child is the child process of the kill test: it runs a stream between
// the databases its environment names until it is killed. Define
// TestSourcetestChild in the source's package to call it.
func Child(t *testing.T) {
	srcURL, dstURL := os.Getenv(childSrcEnv), os.Getenv(childDstEnv)
	if srcURL == "" || dstURL == "" {
		t.Skip("runs only as the child of the kill test")
	}
	ctx := context.Background()
	src, err := sqldb.Open(ctx, srcURL, Quiet())
	if err != nil {
		t.Fatal(err)
	}
	dst, err := sqldb.Open(ctx, dstURL, Quiet())
	if err != nil {
		t.Fatal(err)
	}
	s, err := replicate.New(replicate.Config{SourceMode: os.Getenv(childModeEnv), Name: "killed", Source: src, Target: dst, Tables: []string{"items"},
		BatchSize: 50, Poll: 5 * time.Millisecond, Logger: Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

const (
	childSrcEnv  = "SOURCETEST_CHILD_SRC"
	childDstEnv  = "SOURCETEST_CHILD_DST"
	childModeEnv = "SOURCETEST_CHILD_MODE"
)

func startChild(t *testing.T, h Harness, src, dst *sqldb.DB) *osexec.Cmd {
	t.Helper()
	return testchild.Start(t, "TestSourcetestChild",
		childSrcEnv+"="+src.URL().String(), childDstEnv+"="+dst.URL().String(), childModeEnv+"="+h.SourceMode)
}

func testKill(t *testing.T, h Harness) {
	src := h.Source(t)
	createItems(t, h, src)
	insertItems(t, src, 1, 301)
	dst := h.Targets[firstTarget(h)](t)
	for round := 0; round < 3; round++ {
		child := startChild(t, h, src, dst)
		// Let it work, write meanwhile, then kill it mid-stream.
		insertItems(t, src, 1000+round*100, 1050+round*100)
		time.Sleep(time.Duration(300+round*400) * time.Millisecond)
		testchild.Kill(t, child)
		insertItems(t, src, 1050+round*100, 1100+round*100)
	}
	child := startChild(t, h, src, dst)
	waitSame(t, nil, src, dst, nil, "items")
	if n := len(Dump(t, dst, "items", nil)); n != 300+3*100 {
		t.Errorf("target has %d rows after the kills, want %d", n, 600)
	}
	_ = child.Process.Signal(syscall.SIGTERM)
	_ = child.Wait()
}

func testNoEcho(t *testing.T, h Harness) {
	a, b := h.Source(t), h.Source(t)
	createItems(t, h, a)
	createItems(t, h, b)
	insertItems(t, a, 1, 51)
	ab := Start(t, replicate.Config{SourceMode: h.SourceMode, Name: "a-to-b", Origin: "a", Source: a, Target: b, Tables: []string{"items"}, SkipReplicated: true})
	WaitFor(t, "full load", 120*time.Second, func() bool { return ab.Stream.Status().Phase == replicate.PhaseCDC })
	ba := Start(t, replicate.Config{SourceMode: h.SourceMode, Name: "b-to-a", Origin: "b", Source: b, Target: a, Tables: []string{"items"}, SkipReplicated: true, SkipFullLoad: true})
	WaitFor(t, "reverse stream", 120*time.Second, func() bool { return ba.Stream.Status().Phase == replicate.PhaseCDC })
	waitSame(t, ab, a, b, nil, "items")
	insertItems(t, a, 100, 120) // 20 changes on a
	insertItems(t, b, 200, 230) // 30 changes on b
	waitSame(t, ab, a, b, nil, "items")
	d := a.Dialect
	Exec(t, b, fmt.Sprintf("UPDATE %s SET %s = 1 WHERE %s BETWEEN 1 AND 10", d.Quote("items"), d.Quote("qty"), d.Quote("id"))) // 10 on b
	waitSame(t, ab, a, b, nil, "items")
	// Let an echo show before counting: each side applied exactly the
	// other's changes.
	time.Sleep(2 * time.Second)
	waitSame(t, ab, a, b, nil, "items")
	if n := ab.Stream.Status().CDCRows; n != 20 {
		t.Errorf("a→b applied %d rows during CDC, want 20 (an echo?)", n)
	}
	if n := ba.Stream.Status().CDCRows; n != 40 {
		t.Errorf("b→a applied %d rows, want 40 (an echo?)", n)
	}
}

func testMatrix(t *testing.T, h Harness) {
	src := h.Source(t)
	for _, q := range h.Matrix {
		Exec(t, src, q)
	}
	if err := replicate.PrepareMode(context.Background(), src, h.SourceMode, []string{"matrix"}, Quiet()); err != nil {
		t.Fatal(err)
	}
	insert := func(base int) {
		for i, r := range h.MatrixRows {
			Exec(t, src, "INSERT INTO matrix ("+h.MatrixColumns+") VALUES "+fmt.Sprintf(r, base+i+1))
		}
	}
	insert(0)
	for name, open := range h.Targets {
		t.Run(name, func(t *testing.T) {
			dst := open(t)
			cfg := replicate.Config{SourceMode: h.SourceMode, Name: "matrix-" + name, Source: src, Target: dst, Tables: []string{"matrix"}}
			if cols := h.Unportable[name]; len(cols) > 0 {
				// Refused as a whole, naming the column ...
				r := Start(t, cfg)
				WaitFor(t, "the refusal", 120*time.Second, func() bool { return r.Stream.Status().LastError != "" })
				if msg := r.Stream.Status().LastError; !strings.Contains(msg, cols[0]) {
					t.Errorf("refusal %q does not name column %s", msg, cols[0])
				}
				r.Cancel()
				_ = r.Wait(t) // the refusal
				// ... and replicated without those columns.
				cfg.Name += "-mapped"
				cfg.Mapping = &replicate.Mapping{Include: []string{"matrix"}, Rules: []replicate.Rule{{Table: "matrix", ExcludeColumns: cols}}}
				cfg.Tables = nil
			}
			r := Start(t, cfg)
			WaitFor(t, "full load", 120*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
			if name == firstTarget(h) {
				insert(1000) // through the change log
			}
			waitSame(t, r, src, dst, h.Unportable[name], "matrix")
		})
	}
}

func testLeastPrivilege(t *testing.T, h Harness) {
	src := h.Source(t)
	createItems(t, h, src)
	insertItems(t, src, 1, 11)
	ro := h.LeastPrivilege(t, src)
	// What the owner's preparation left (a change table, an origin table)
	// is there before the stream starts; the stream adds nothing.
	before, err := replicate.ListTables(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	dst := h.Targets[firstTarget(h)](t)
	r := Start(t, replicate.Config{SourceMode: h.SourceMode, Name: "least", Source: ro, Target: dst, Tables: []string{"items"}})
	WaitFor(t, "full load", 120*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	insertItems(t, src, 100, 110)
	waitSame(t, r, src, dst, nil, "items")
	tables, err := replicate.ListTables(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tables, before) {
		t.Errorf("the source had tables %v and now has %v; a one-way stream must write nothing into it", before, tables)
	}
}

// query runs a query, once more when a pooled connection had gone stale
// (MySQL's driver reports a connection the server closed while idle as
// invalid).
func query(db *sqldb.DB, q string, args ...any) (*sql.Rows, error) {
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil && (errors.Is(err, driver.ErrBadConn) || strings.Contains(err.Error(), "invalid connection")) {
		rows, err = db.QueryContext(context.Background(), q, args...)
	}
	return rows, err
}

// column is one column of a table as its database's catalogue has it.
type column struct{ name, typ string }

func columns(t testing.TB, db *sqldb.DB, table string) []column {
	t.Helper()
	var q string
	switch db.Dialect.Name() {
	case "postgres":
		q = `SELECT column_name, CASE WHEN data_type = 'USER-DEFINED' THEN udt_name ELSE data_type END FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
	case "mysql":
		q = `SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`
	case "sqlite":
		q = `SELECT name, lower(type) FROM pragma_table_info(?) ORDER BY cid`
	default:
		t.Fatalf("sourcetest: no dump for dialect %s", db.Dialect.Name())
	}
	rows, err := query(db, q, table)
	if err != nil {
		t.Fatalf("columns of %s: %v", table, err)
	}
	defer rows.Close()
	var out []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			t.Fatal(err)
		}
		c.typ = strings.ToLower(c.typ)
		out = append(out, c)
	}
	return out
}

// isBytes reports whether textExpr reads the column as hex.
func isBytes(dialect string, c column) bool {
	switch dialect {
	case "postgres":
		return c.typ == "bytea"
	case "mysql":
		return strings.Contains(c.typ, "binary") || strings.Contains(c.typ, "blob") || strings.Contains(c.typ, "geometry") ||
			slices.Contains([]string{"point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon"}, c.typ)
	}
	return strings.Contains(c.typ, "blob")
}

// textExpr is the SQL that reads a column as text in the database's own
// conversion.
func textExpr(dialect string, c column, q string) string {
	switch dialect {
	case "postgres":
		switch c.typ {
		case "bytea":
			return "encode(" + q + ", 'hex')"
		case "timestamp with time zone":
			return "to_char(" + q + " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
		case "timestamp without time zone":
			return "to_char(" + q + ", 'YYYY-MM-DD HH24:MI:SS.US')"
		case "boolean":
			return "CASE WHEN " + q + " THEN '1' WHEN NOT " + q + " THEN '0' END"
		}
		// The type's output function: a cast to text would strip char(n)'s
		// padding and add an inet host's /32.
		return "CASE WHEN " + q + " IS NOT NULL THEN format('%s', " + q + ") END"
	case "mysql":
		switch c.typ {
		case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
			return "HEX(" + q + ")"
		case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
			return "HEX(ST_AsWKB(" + q + "))"
		case "datetime", "timestamp":
			return "DATE_FORMAT(" + q + ", '%Y-%m-%d %H:%i:%s.%f')"
		case "bit":
			return "CAST(" + q + " + 0 AS CHAR)"
		case "float":
			return "CAST(CAST(" + q + " AS DOUBLE) AS CHAR)"
		}
		return "CAST(" + q + " AS CHAR)"
	}
	switch {
	case strings.Contains(c.typ, "blob"):
		return "CASE WHEN " + q + " IS NOT NULL THEN hex(" + q + ") END"
	}
	return "CAST(" + q + " AS TEXT)"
}

// Dump reads every row of a table (without the columns in skip) as
// "col=value ..." lines sorted by id, each value the database's own text of
// it, normalised by Canon.
func Dump(t testing.TB, db *sqldb.DB, table string, skip []string) []string {
	t.Helper()
	cols := columns(t, db, table)
	if len(cols) == 0 {
		return nil // no such table (yet)
	}
	d := db.Dialect
	var exprs, names []string
	var hex []bool
	for _, c := range cols {
		if slices.Contains(skip, c.name) {
			continue
		}
		exprs = append(exprs, textExpr(d.Name(), c, d.Quote(c.name)))
		names = append(names, c.name)
		hex = append(hex, isBytes(d.Name(), c))
	}
	for i := range exprs { // output names must not hide the table's id
		exprs[i] += " AS " + d.Quote(fmt.Sprintf("c%d", i))
	}
	q := fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(exprs, ", "), d.Quote(table), d.Quote("id"))
	rows, err := query(db, q)
	if err != nil {
		t.Fatalf("dump %s: %s: %v", table, q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]*string, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		var b strings.Builder
		for i, v := range vals {
			if i > 0 {
				b.WriteByte('\t')
			}
			s := "NULL"
			switch {
			case v != nil && hex[i]:
				s = "0x" + strings.ToLower(*v)
			case v != nil:
				s = strconv.Quote(Canon(*v))
			}
			b.WriteString(names[i] + "=" + s)
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	return out
}

var (
	integerText = regexp.MustCompile(`^-?\d+$`)
	decimalText = regexp.MustCompile(`^-?\d+\.\d+$`)
	timeText    = regexp.MustCompile(`^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d+))?(?:Z|\+00(?::?00)?)?$`)
	clockText   = regexp.MustCompile(`^(-?\d+:\d\d:\d\d)(?:\.(\d+))?$`)
)

// Canon normalises one value's text so that databases' spellings of one
// value agree: trailing fraction zeros of decimals, times and timestamps
// trimmed, leading zeros of integers, floats in shortest form, booleans
// as 0/1, JSON re-encoded with sorted keys.
func Canon(s string) string {
	switch {
	case s == "t" || s == "true":
		return "1"
	case s == "f" || s == "false":
		return "0"
	}
	if m := timeText.FindStringSubmatch(s); m != nil {
		out := m[1] + " " + m[2]
		if f := strings.TrimRight(m[3], "0"); f != "" {
			out += "." + f
		}
		return out
	}
	if m := clockText.FindStringSubmatch(s); m != nil {
		out := m[1]
		if f := strings.TrimRight(m[2], "0"); f != "" {
			out += "." + f
		}
		return strings.TrimPrefix(strings.Replace(out, "-00:00:00", "00:00:00", 1), "+")
	}
	if integerText.MatchString(s) {
		if n, ok := new(big.Int).SetString(s, 10); ok {
			return n.String() // SQLite's zero-padded uint64
		}
	}
	if decimalText.MatchString(s) {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		if s == "-0" {
			return "0"
		}
		return s
	}
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		if r, ok := new(big.Rat).SetString(s); ok && strings.ContainsAny(s, "eE") {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				return strconv.FormatFloat(f, 'g', -1, 64)
			}
			return r.String()
		}
	}
	if len(s) > 0 && (s[0] == '{' || s[0] == '[') {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err == nil {
			b, _ := json.Marshal(v)
			return string(b)
		}
	}
	return s
}

// DiffDumps describes the first differences of two dumps, "" when equal:
// per row, the columns that differ with both values (long ones cut).
func DiffDumps(src, dst []string) string {
	var b strings.Builder
	n := 0
	short := func(s string) string {
		if len(s) > 120 {
			return s[:120] + fmt.Sprintf("…(%d bytes)", len(s))
		}
		return s
	}
	for i := 0; i < max(len(src), len(dst)) && n < 8; i++ {
		var s, d string
		if i < len(src) {
			s = src[i]
		}
		if i < len(dst) {
			d = dst[i]
		}
		if s == d {
			continue
		}
		n++
		sc, dc := strings.Split(s, "\t"), strings.Split(d, "\t")
		if len(sc) != len(dc) || sc[0] != dc[0] {
			fmt.Fprintf(&b, "  row %d: source %s\n          target %s\n", i, short(sc[0]), short(dc[0]))
			continue
		}
		for j := range sc {
			if sc[j] != dc[j] {
				fmt.Fprintf(&b, "  %s: source %s, target %s\n", sc[0], short(sc[j]), short(dc[j]))
			}
		}
	}
	if len(src) != len(dst) {
		fmt.Fprintf(&b, "  source has %d rows, target %d\n", len(src), len(dst))
	}
	return b.String()
}
