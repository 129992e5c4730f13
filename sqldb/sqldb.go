// Package sqldb opens SQL databases by URL and gives each a Dialect: the DDL
// for a portable table schema, upserts, deletes, quoting and type mapping.
//
// Drivers live in sub-packages (sqldb/sqlite, ...) and register their URL
// scheme in init, like database/sql drivers.
package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math"
	"math/bits"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/intercloud/intercloud/internal/redact"
	"github.com/intercloud/intercloud/internal/registry"
)

// Kind is a portable column type.
type Kind int

// The portable kinds. Drivers map each to their closest exact type.
const (
	KindString    Kind = iota + 1 // bounded text (Type.Length)
	KindText                      // unbounded text
	KindInt                       // 64-bit integer (Type.Unsigned)
	KindFloat                     // 64-bit float
	KindDecimal                   // exact decimal (Type.Precision, Type.Scale)
	KindBool                      // boolean
	KindTimestamp                 // instant, microseconds, UTC
	KindDate                      // calendar date
	KindTime                      // time of day / duration
	KindBytes                     // binary
	KindJSON                      // JSON document
)

var kindNames = map[Kind]string{
	KindString: "string", KindText: "text", KindInt: "int", KindFloat: "float",
	KindDecimal: "decimal", KindBool: "bool", KindTimestamp: "timestamp", KindDate: "date",
	KindTime: "time", KindBytes: "bytes", KindJSON: "json",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Type is a column's portable type with its parameters. A Type whose Kind
// is 0 has no portable counterpart: Native names the source's own type,
// and replicating such a column stops its table with an error naming it.
type Type struct {
	Kind      Kind
	Length    int  // KindString, KindBytes: maximum length; 0 = unbounded
	Precision int  // KindDecimal
	Scale     int  // KindDecimal
	Unsigned  bool // KindInt
	Bits      int  // KindInt: 8, 16, 24, 32, 64 (0 = 64)
	// Local marks a KindTimestamp without time zone: a wall-clock date
	// and time (MySQL DATETIME, PostgreSQL timestamp), kept as written;
	// without it a timestamp is an instant (stored in UTC).
	Local bool
	// Duration marks a KindTime that is a signed duration rather than a
	// time of day (MySQL TIME: -838:59:59 to 838:59:59).
	Duration bool
	// Spatial marks a KindBytes holding a geometry as WKB (EWKB, with
	// the SRID, when the SRID is not 0).
	Spatial bool
	// Values are the members of an ENUM (KindString), or of a SET when Set
	// is true; the target checks its values against them.
	Values []string
	Set    bool
	// Native is the source database's name of the type, for messages.
	Native string
}

// Equal reports whether two types are the same portable type (Native
// aside).
func (t Type) Equal(u Type) bool {
	return t.Kind == u.Kind && t.Length == u.Length && t.Precision == u.Precision && t.Scale == u.Scale &&
		t.Unsigned == u.Unsigned && t.Bits == u.Bits && t.Local == u.Local && t.Duration == u.Duration &&
		t.Spatial == u.Spatial && t.Set == u.Set && slices.Equal(t.Values, u.Values)
}

// Column is one column of a table.
type Column struct {
	Name     string
	Type     Type
	Nullable bool
	// Default is the column's constant default as the canonical text of a
	// value of its type ("n/a", "3", "2024-01-01"); nil when it has none
	// or its default is an expression (CURRENT_TIMESTAMP, uuid()).
	Default *string
}

// Table is a portable table schema.
type Table struct {
	Name       string
	Columns    []Column
	PrimaryKey []string
}

// Column returns the named column.
func (t Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// ColumnNames returns the columns' names in order.
func (t Table) ColumnNames() []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

// Dialect is what differs between SQL databases. Implementations must be
// safe for concurrent use and free of I/O except Describe.
type Dialect interface {
	// Name is the dialect's name: "sqlite", "mysql", "postgres", "sqlserver".
	Name() string
	// Quote quotes an identifier.
	Quote(ident string) string
	// Placeholder returns the n-th (1-based) bind parameter.
	Placeholder(n int) string
	// ColumnType returns the DDL type for a portable type.
	ColumnType(t Type) string
	// CreateTable returns the statements that create the table if it does
	// not exist.
	CreateTable(t Table) []string
	// Upsert returns one statement inserting rows (each with every column
	// of t, in order) and, on a primary-key conflict, overwriting the
	// existing row's other columns.
	Upsert(t Table, rows int) string
	// InsertIgnore is like Upsert but keeps an existing row unchanged.
	InsertIgnore(t Table, rows int) string
	// Value converts a Go value to what the driver binds for a column of
	// type t (for example time.Time to a sortable string in SQLite).
	Value(t Type, v any) (any, error)
	// Describe reads a table's schema from the database; it returns
	// ErrNoTable when the table does not exist.
	Describe(ctx context.Context, q Querier, table string) (Table, error)
}

// ErrNoTable is returned by Describe for a missing table.
var ErrNoTable = errors.New("sqldb: no such table")

// Querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Driver opens a database for a URL of its scheme.
type Driver interface {
	// Open connects; it must not put the URL's password in its error.
	Open(ctx context.Context, u *url.URL) (*sql.DB, Dialect, error)
}

// LoggingDriver is implemented by drivers whose client library logs
// (reconnections, server notices): Open hands it the database's logger so
// those lines go through slog, never straight to stderr.
type LoggingDriver interface {
	OpenLogged(ctx context.Context, u *url.URL, log *slog.Logger) (*sql.DB, Dialect, error)
}

// DriverKind is the registry kind of database drivers (see package
// internal/registry).
const DriverKind = "sqldb"

var drivers = registry.New[Driver](DriverKind, "scheme")

// Register makes a driver available under a URL scheme; it panics when the
// scheme is taken.
func Register(scheme string, d Driver) { drivers.Register(scheme, d) }

// Schemes lists the registered schemes, sorted.
func Schemes() []string { return drivers.Names() }

// DB is an open database with its dialect. It is safe for concurrent use.
type DB struct {
	*sql.DB
	Dialect Dialect
	// Name is the URL without credentials, for logs.
	Name string
	log  *slog.Logger
	url  *url.URL
}

// URL returns a copy of the URL the database was opened with, credentials
// included, for drivers that open connections of their own (a binlog or
// replication connection). Never log it.
func (db *DB) URL() *url.URL {
	if db.url == nil {
		return nil
	}
	u := *db.url
	return &u
}

// Open opens the database a URL names.
func Open(ctx context.Context, rawURL string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("sqldb: bad URL: %w", redact.URLError(err))
	}
	d, err := drivers.Lookup(u.Scheme)
	if err != nil {
		return nil, err
	}
	name := u.Scheme + "://" + u.Host + u.Path
	var db *sql.DB
	var dialect Dialect
	if ld, ok := d.(LoggingDriver); ok {
		db, dialect, err = ld.OpenLogged(ctx, u, log.With("db", name))
	} else {
		db, dialect, err = d.Open(ctx, u)
	}
	if err != nil {
		return nil, fmt.Errorf("sqldb: open %s: %w", name, err)
	}
	return &DB{DB: db, Dialect: dialect, Name: name, log: log, url: u}, nil
}

// EnsureTable creates the table if it does not exist.
func (db *DB) EnsureTable(ctx context.Context, t Table) error {
	for _, stmt := range db.Dialect.CreateTable(t) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sqldb: create %s: %w", t.Name, err)
		}
	}
	return nil
}

// Tx runs fn in a transaction and commits it when fn returns nil. A
// transaction that fails with a transient error (lock timeout, deadlock,
// serialization failure) is retried a few times.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.retry(ctx, func() error { return db.tx(ctx, fn) })
}

// ConnTx is like Tx but begins the transaction on a connection of its own
// and gives fn that connection too, for driver-level work that must run
// inside the transaction (see Copier). fn must not use conn after it
// returns.
func (db *DB) ConnTx(ctx context.Context, fn func(conn *sql.Conn, tx *sql.Tx) error) error {
	return db.retry(ctx, func() error { return db.connTx(ctx, fn) })
}

// txAttempts bounds the tries of one transaction.
const txAttempts = 5

// retry runs one transaction attempt until it succeeds, fails with an
// error that is not Transient, or txAttempts were made, waiting a little
// longer before each retry.
func (db *DB) retry(ctx context.Context, attempt func() error) error {
	var err error
	for n := 0; n < txAttempts; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(n*n) * 20 * time.Millisecond):
			}
		}
		err = attempt()
		if err == nil || !Transient(err) {
			return err
		}
		db.log.Debug("transaction retried", "db", db.Name, "attempt", n+1, "err", err)
	}
	return err
}

func (db *DB) connTx(ctx context.Context, fn func(conn *sql.Conn, tx *sql.Tx) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(conn, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (db *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Transient reports whether err looks like a retryable database error.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	for _, d := range drivers.Drivers() {
		if tc, ok := d.(TransientChecker); ok && tc.Transient(err) {
			return true
		}
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"database is locked", "sqlite_busy", "deadlock", "lock wait timeout", "serialization failure", "could not serialize", "(5)", "(517)"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// TransientChecker is implemented by drivers that recognise their
// database's retryable errors (deadlock, lock timeout, serialization
// failure) by error type and code; Transient consults every registered
// driver that implements it before falling back to message text.
type TransientChecker interface {
	// Transient reports whether err, from this driver's database, means
	// the whole transaction may be retried.
	Transient(err error) bool
}

// ErrorClassifier is implemented by drivers that can tell, from their
// database's error codes, why a statement failed. Unavailable and Rejected
// consult every registered driver that implements it.
type ErrorClassifier interface {
	// Unavailable reports whether err means the database could not serve
	// the statement now, whatever it carried: unreachable, starting or
	// shutting down, out of connections or resources, read-only during a
	// failover. The same statement may succeed later.
	Unavailable(err error) bool
	// Rejected reports whether err means the database refused the
	// statement for the data it carries (a value too long or out of range,
	// a NULL where none is allowed, a constraint violated): the same
	// statement fails the same way every time.
	Rejected(err error) bool
}

// Unavailable reports whether err says a database could not serve a
// statement now (see ErrorClassifier): a registered driver recognises it,
// or the connection to the server failed (refused, reset, timed out, cut
// mid-answer, driver.ErrBadConn). Transaction conflicts (deadlocks, lock
// timeouts) are Transient.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if connectionLost(err) {
		return true
	}
	for _, d := range drivers.Drivers() {
		if ec, ok := d.(ErrorClassifier); ok && ec.Unavailable(err) {
			return true
		}
	}
	return false
}

// connectionLost reports whether err is a failure of the connection itself.
func connectionLost(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}

// Rejected reports whether a database refused a statement for the data it
// carries (see ErrorClassifier), so that retrying it cannot help.
func Rejected(err error) bool {
	if err == nil {
		return false
	}
	for _, d := range drivers.Drivers() {
		if ec, ok := d.(ErrorClassifier); ok && ec.Rejected(err) {
			return true
		}
	}
	return false
}

// ParamLimiter is implemented by dialects whose statements take a bounded
// number of bind parameters: a multi-row Upsert or InsertIgnore of a table
// with c columns must then have at most MaxParams()/c rows.
type ParamLimiter interface {
	// MaxParams is the most bind parameters one statement may have.
	MaxParams() int
}

// MaxRows returns how many rows of cols columns one statement of d may
// bind, at least 1; without a ParamLimiter it is unbounded (math.MaxInt).
func MaxRows(d Dialect, cols int) int {
	pl, ok := d.(ParamLimiter)
	if !ok || cols <= 0 {
		return math.MaxInt
	}
	return max(pl.MaxParams()/cols, 1)
}

// StatementCacher is implemented by dialects whose driver keeps the
// statements a connection ran prepared, so that running the same SQL text
// again skips parsing and compiling it.
type StatementCacher interface {
	// CachesStatements reports whether the driver keeps statements
	// prepared.
	CachesStatements() bool
}

// SingleWriter is implemented by dialects whose database runs one write
// transaction at a time (SQLite): writers that would commit one after the
// other gain by committing their work together.
type SingleWriter interface {
	// WritesOneAtATime reports whether write transactions run one at a
	// time.
	WritesOneAtATime() bool
}

// OneWriter reports whether d's database runs one write transaction at a
// time (see SingleWriter).
func OneWriter(d Dialect) bool {
	sw, ok := d.(SingleWriter)
	return ok && sw.WritesOneAtATime()
}

// StatementRows returns how many of n rows (n ≥ 1) the next multi-row
// statement of d carries, at most most. For a StatementCacher it is the
// largest power of two that fits, and at most CachedStatementRows, so
// that the statements of any n use one of a few texts (at most 9), each
// prepared once per connection and small enough to keep; otherwise it is
// min(n, most), the fewest statements.
func StatementRows(d Dialect, n, most int) int {
	k := max(1, min(n, most))
	if sc, ok := d.(StatementCacher); ok && sc.CachesStatements() {
		return 1 << (bits.Len(uint(min(k, CachedStatementRows))) - 1)
	}
	return k
}

// CachedStatementRows bounds the rows of a multi-row statement of a
// StatementCacher: a statement of more rows saves little per row and
// takes memory while it is kept prepared.
const CachedStatementRows = 256

// StatementChunks splits s into the rows of consecutive multi-row
// statements of d, each of at most most rows, sized by StatementRows.
func StatementChunks[T any](d Dialect, s []T, most int) iter.Seq[[]T] {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			n := StatementRows(d, len(s), most)
			if !yield(s[:n]) {
				return
			}
			s = s[n:]
		}
	}
}

// Placeholders returns n placeholders starting at from, comma-separated.
func Placeholders(d Dialect, from, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Placeholder(from + i))
	}
	return b.String()
}

// QuoteList quotes and joins identifiers.
func QuoteList(d Dialect, names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = d.Quote(n)
	}
	return strings.Join(q, ", ")
}

// ValuesList returns "(?, ?), (?, ?)" for rows of cols columns.
func ValuesList(d Dialect, rows, cols int) string {
	var b strings.Builder
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		b.WriteString(Placeholders(d, r*cols+1, cols))
		b.WriteByte(')')
	}
	return b.String()
}

// IsPrimaryKey reports whether col is part of the table's primary key.
func (t Table) IsPrimaryKey(col string) bool {
	for _, k := range t.PrimaryKey {
		if k == col {
			return true
		}
	}
	return false
}

// Reader is implemented by dialects that store some portable values in a
// form of their own (MySQL's geometries): Read converts a value as scanned
// from a column of type t to what Canonical takes. Other values pass
// unchanged.
type Reader interface {
	Read(t Type, v any) (any, error)
}

// Read converts a scanned value with d's Reader, when it has one.
func Read(d Dialect, t Type, v any) (any, error) {
	if r, ok := d.(Reader); ok && v != nil {
		return r.Read(t, v)
	}
	return v, nil
}

// Limiter is implemented by dialects without LIMIT n (SQL Server).
type Limiter interface {
	// Limit returns the clause ending a query with ORDER BY that keeps
	// its first n rows.
	Limit(n int) string
}

// Limit returns the clause ending a query with ORDER BY that keeps its
// first n rows: " LIMIT n", or the dialect's own (Limiter).
func Limit(d Dialect, n int) string {
	if l, ok := d.(Limiter); ok {
		return l.Limit(n)
	}
	return fmt.Sprintf(" LIMIT %d", n)
}

// Selector is implemented by dialects whose drivers would lose part of
// some values as they scan them (MySQL's driver turns the zero date
// '0000-00-00' into year 1 and '2024-00-15' into 2023-12-15):
// SelectColumn returns the expression that reads a column of type t, whose
// quoted name is q, so that the value arrives whole.
type Selector interface {
	SelectColumn(t Type, q string) string
}

// SelectList returns the select list that reads columns cols of table t:
// each quoted, through d's Selector when it has one.
func SelectList(d Dialect, t Table, cols []string) string {
	sel, ok := d.(Selector)
	if !ok {
		return QuoteList(d, cols)
	}
	out := make([]string, len(cols))
	for i, name := range cols {
		out[i] = d.Quote(name)
		if c, found := t.Column(name); found {
			out[i] = sel.SelectColumn(c.Type, out[i])
		}
	}
	return strings.Join(out, ", ")
}

// Indexer is implemented by dialects that can create secondary indexes.
type Indexer interface {
	// CreateIndex returns the statements that create the index if it does
	// not exist.
	CreateIndex(table, name string, columns []string) []string
}

// CoveringIndexer is implemented by dialects whose indexes can carry
// columns they are not ordered by (INCLUDE): an index that answers a
// query on its own without the wider key, and so the larger tree, that
// ordering by those columns too would make.
type CoveringIndexer interface {
	// CreateCoveringIndex returns the statements that create, if it does
	// not exist, an index on columns that also holds include.
	CreateCoveringIndex(table, name string, columns, include []string) []string
}

// Alterer is implemented by dialects that can change a table's columns in
// place; replication uses it to follow a source's schema changes. Each
// method returns the statements to run, in order (none when the change
// needs no statement in the dialect).
type Alterer interface {
	// AddColumn adds column c to table. With a Default, existing rows
	// get it and the column is NOT NULL when c says so; without one the
	// column is nullable whatever c.Nullable says, since existing rows
	// have no value for it.
	AddColumn(table string, c Column) []string
	// DropColumn drops the named column of table.
	DropColumn(table, column string) []string
	// RenameColumn renames a column of table, keeping its values.
	RenameColumn(table, from, to string) []string
	// RenameTable renames table from to to, keeping its rows, indexes
	// and constraints.
	RenameTable(from, to string) []string
	// WidenColumn changes a column's type to c.Type, converting its
	// values (and replacing the checks of the old type); a value the new
	// type cannot hold fails the statement. Replication uses it for
	// widenings and for the type changes a source made.
	WidenColumn(table string, c Column) []string
}

// Copier is implemented by dialects that can write many rows faster than
// multi-row Upsert statements (PostgreSQL COPY).
type Copier interface {
	// CopyUpsert writes rows (each with every column of t in order, as
	// Value converts them, with distinct primary keys) like Upsert does:
	// a row whose key exists overwrites it. It runs inside the transaction
	// open on conn (begun with conn.BeginTx, see DB.ConnTx) and fails when
	// none is; an error leaves that transaction failed, to be rolled back.
	CopyUpsert(ctx context.Context, conn *sql.Conn, t Table, rows [][]any) error
}
