// Package sqlserversrc is the log-based replicate source for SQL Server and
// Azure SQL Database: it reads SQL Server's own change data capture (CDC).
// It registers for dialect "sqlserver" as an opt-in log source: a
// database's streams read it only with replication.source: log; the
// default for SQL Server stays the poll source (replicate/pollsrc), which
// needs no CDC.
//
// Capture is enabled in two steps, by two people:
//
//   - on the database, by an operator, once: EXEC sys.sp_cdc_enable_db
//     (sysadmin on SQL Server, db_owner on Azure SQL Database; SQL Server
//     Agent must run the capture and cleanup jobs; Azure SQL Database
//     runs them itself). Check (and every Open) fails with that statement
//     when CDC is off.
//   - on each captured table and on the origin mark table
//     (pollsrc.MarkTable), by intercloud at Prepare or Open when the
//     table has no capture instance yet: sys.sp_cdc_enable_table with the
//     default instance name (schema_table), which needs db_owner. Without
//     it, an operator runs the same statement (see the README) and
//     intercloud then needs only SELECT on the tables and the cdc schema.
//
// A Position is an LSN (binary(10)) as 20 hex digits: every change
// committed at or before it was delivered. The stream commits it on the
// target in the same transaction as the rows it covers (replicate
// checkpoints). A read takes sys.fn_cdc_get_max_lsn() as its end, starts
// each table at sys.fn_cdc_increment_lsn(position), and reads
// cdc.fn_cdc_get_all_changes_<instance>(from, to, N'all'); a position
// older than an instance's sys.fn_cdc_get_min_lsn was removed by the CDC
// cleanup job (its retention, 3 days by default) and the stream stops
// with a permanent error: resync. Batches hold whole transactions (one
// commit LSN): each instance is read with TOP (MaxBatch), and the batch
// ends before the first transaction that an instance returned only in
// part; a transaction larger than MaxBatch is read alone, whole.
//
// __$operation 1 (delete) becomes an OpDelete of the deleted row's key, 2
// (insert) and 4 (update, after image) an OpUpsert of the row; 3 (update,
// before image) is skipped.
//
// Origins: a stream applying into a SQL Server read by this source tags
// its writes with the poll source's marker (pollsrc.Marker: its
// session's row in pollsrc.MarkTable, written and deleted inside the
// apply transaction). CDC captures that table too, and the insert of the
// mark has the commit LSN of the transaction it tags: with
// SkipReplicated, every change with the commit LSN of a marked
// transaction is skipped.
//
// Schema changes: CDC keeps capturing the columns an instance was created
// with. Each read compares cdc.captured_columns with the table's columns
// (sys.columns) and stops the stream with a permanent error naming the
// fix (a new capture instance, then a resync) when they differ.
package sqlserversrc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/pollsrc"
	"github.com/intercloud/intercloud/sqldb"
)

func init() { replicate.RegisterSource("sqlserver", Driver{}) }

// Driver opens CDC sources on SQL Server databases.
type Driver struct{}

var (
	_ replicate.SourceDriver = Driver{}
	_ replicate.Preparer     = Driver{}
	_ replicate.Checker      = Driver{}
	_ replicate.OptIn        = Driver{}
	_ replicate.Source       = (*Source)(nil)
)

// OptIn implements replicate.OptIn: SQL Server databases are read in
// poll mode unless replication.source is log.
func (Driver) OptIn() bool { return true }

// Marker implements replicate.SourceDriver: the poll source's SQL Server
// marker, whose mark table this source captures.
func (Driver) Marker() replicate.OriginMarker { return pollsrc.Driver{}.MarkerFor("sqlserver") }

// enableDBHint is how an operator turns CDC on for a database.
const enableDBHint = "an operator enables it once: EXEC sys.sp_cdc_enable_db (sysadmin on SQL Server, db_owner on Azure SQL Database), " +
	"with SQL Server Agent running on SQL Server"

// Check implements replicate.Checker: CDC is enabled on the database.
func (Driver) Check(ctx context.Context, db *sqldb.DB) error {
	if db.Dialect.Name() != "sqlserver" {
		return replicate.Permanent(fmt.Errorf("sqlserversrc: database %s is %s, not sqlserver", db.Name, db.Dialect.Name()))
	}
	var on bool
	if err := db.QueryRowContext(ctx, cdcEnabledSQL).Scan(&on); err != nil {
		return fmt.Errorf("sqlserversrc: check %s: %w", db.Name, err)
	}
	if !on {
		return replicate.Permanent(fmt.Errorf("sqlserversrc: %s: change data capture is not enabled on the database; %s", db.Name, enableDBHint))
	}
	return nil
}

// Prepare implements replicate.Preparer.
func (d Driver) Prepare(ctx context.Context, db *sqldb.DB, tables []string, _ *slog.Logger) error {
	_, _, err := d.install(ctx, db, tables)
	return err
}

// install checks CDC is on, creates the mark table, enables CDC on it and
// on each table without a capture instance, and returns the instances.
func (d Driver) install(ctx context.Context, db *sqldb.DB, tables []string) ([]*instance, *instance, error) {
	if err := d.Check(ctx, db); err != nil {
		return nil, nil, err
	}
	m := d.Marker().(replicate.OriginSetup)
	if err := m.Setup(ctx, db); err != nil {
		return nil, nil, err
	}
	var out []*instance
	for _, name := range tables {
		in, err := capture(ctx, db, name)
		if err != nil {
			return nil, nil, err
		}
		if len(in.def.PrimaryKey) == 0 {
			return nil, nil, replicate.Permanent(fmt.Errorf("sqlserversrc: capture: table %q %w", name, replicate.ErrNoPrimaryKey))
		}
		out = append(out, in)
	}
	mark, err := capture(ctx, db, pollsrc.MarkTable)
	if err != nil {
		return nil, nil, err
	}
	return out, mark, nil
}

// capture returns a table's capture instance, enabling CDC on the table
// when it has none.
func capture(ctx context.Context, db *sqldb.DB, name string) (*instance, error) {
	def, err := db.Dialect.Describe(ctx, db, name)
	if errors.Is(err, sqldb.ErrNoTable) {
		return nil, replicate.Permanent(fmt.Errorf("sqlserversrc: capture %q: the table does not exist", name))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlserversrc: capture %s: %w", name, err)
	}
	inst, err := instanceOf(ctx, db, name)
	if err != nil {
		return nil, err
	}
	if inst == "" {
		if _, err := db.ExecContext(ctx, enableTableSQL, name); err != nil {
			return nil, replicate.Permanent(fmt.Errorf("sqlserversrc: enable CDC on table %s: %w (this needs db_owner; "+
				"otherwise an operator runs: EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'%s', @role_name = NULL)", name, err, name))
		}
		if inst, err = instanceOf(ctx, db, name); err != nil {
			return nil, err
		}
		if inst == "" {
			return nil, fmt.Errorf("sqlserversrc: enable CDC on table %s: no capture instance after sys.sp_cdc_enable_table", name)
		}
	}
	return &instance{table: name, name: inst, def: def}, nil
}

func instanceOf(ctx context.Context, db *sqldb.DB, name string) (string, error) {
	var inst string
	err := db.QueryRowContext(ctx, instanceSQL, name).Scan(&inst)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlserversrc: capture instance of %s: %w", name, err)
	}
	return inst, nil
}

// Open implements replicate.SourceDriver.
func (d Driver) Open(ctx context.Context, db *sqldb.DB, cfg replicate.SourceConfig) (replicate.Source, error) {
	tables, mark, err := d.install(ctx, db, cfg.Tables)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	byName := make(map[string]*instance, len(tables))
	for _, in := range tables {
		byName[in.table] = in
	}
	return &Source{d: db.Dialect, r: sqlReader{db}, tables: byName, mark: mark,
		log: log.With("component", "replicate.sqlserversrc", "db", db.Name)}, nil
}

// Source reads a SQL Server database's CDC change tables.
type Source struct {
	d      sqldb.Dialect
	r      changeReader
	tables map[string]*instance
	mark   *instance
	log    *slog.Logger

	mu     sync.Mutex
	closed bool
}

// ErrClosed is returned by a closed source.
var ErrClosed = errors.New("sqlserversrc: source closed")

// Close implements replicate.Source; it leaves the database open.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *Source) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Current implements replicate.Source: sys.fn_cdc_get_max_lsn().
func (s *Source) Current(ctx context.Context) (replicate.Position, error) {
	l, err := s.r.maxLSN(ctx)
	if err != nil {
		return "", err
	}
	return l.Position(), nil
}

// Stream implements replicate.Source.
func (s *Source) Stream(ctx context.Context, from replicate.Position, opts replicate.StreamOptions, fn func(context.Context, replicate.Batch) error) error {
	pos, err := PositionLSN(from)
	if err != nil {
		return err
	}
	want, err := replicate.StreamTables(opts, s.tables)
	if err != nil {
		return err
	}
	var tables []*instance
	for _, in := range s.tables {
		if want[in.table] {
			tables = append(tables, in)
		}
	}
	slices.SortFunc(tables, func(a, b *instance) int { return strings.Compare(a.table, b.table) })
	opts = opts.WithDefaults()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if s.isClosed() {
			return ErrClosed
		}
		b, next, short, err := readBatch(ctx, s.r, s.d, pos, tables, s.mark, opts)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if next.Compare(pos) > 0 {
			if err := fn(ctx, b); err != nil {
				return err
			}
			pos = next
			if short {
				continue
			}
		}
		timer.Reset(opts.Poll)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// sqlReader is the changeReader of a live database.
type sqlReader struct{ db *sqldb.DB }

func (r sqlReader) maxLSN(ctx context.Context) (LSN, error) {
	var b []byte
	if err := r.db.QueryRowContext(ctx, maxLSNSQL).Scan(&b); err != nil {
		return LSN{}, fmt.Errorf("sqlserversrc: max LSN: %w", err)
	}
	return ParseLSN(b)
}

func (r sqlReader) bounds(ctx context.Context, inst string, pos LSN) (LSN, LSN, error) {
	var next, lo []byte
	if err := r.db.QueryRowContext(ctx, boundsSQL, pos.Bytes(), inst).Scan(&next, &lo); err != nil {
		return LSN{}, LSN{}, fmt.Errorf("sqlserversrc: LSN bounds of %s: %w", inst, err)
	}
	n, err := ParseLSN(next)
	if err != nil {
		return LSN{}, LSN{}, err
	}
	l, err := ParseLSN(lo)
	return n, l, err
}

func (r sqlReader) names(ctx context.Context, query, arg string) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, query, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func (r sqlReader) columns(ctx context.Context, in *instance) ([]string, []string, error) {
	captured, err := r.names(ctx, capturedSQL, in.name)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlserversrc: captured columns of %s: %w", in.name, err)
	}
	now, err := r.names(ctx, tableColumnsSQL, in.table)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlserversrc: columns of %s: %w", in.table, err)
	}
	return captured, now, nil
}

func (r sqlReader) changes(ctx context.Context, in *instance, from, to LSN, top int) ([]row, error) {
	rows, err := r.db.QueryContext(ctx, changesSQL(r.db.Dialect, in.name, in.def, top), from.Bytes(), to.Bytes())
	if err != nil {
		return nil, fmt.Errorf("sqlserversrc: read %s: %w", in.name, err)
	}
	defer rows.Close()
	var out []row
	n := len(in.def.Columns)
	for rows.Next() {
		var start, seq []byte
		var x row
		x.vals = make([]any, n)
		dst := []any{&start, &seq, &x.op}
		for i := range x.vals {
			dst = append(dst, &x.vals[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("sqlserversrc: read %s: %w", in.name, err)
		}
		if x.start, err = ParseLSN(start); err != nil {
			return nil, err
		}
		if x.seq, err = ParseLSN(seq); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlserversrc: read %s: %w", in.name, err)
	}
	return out, nil
}

func (r sqlReader) lsnTime(ctx context.Context, l LSN) (time.Time, error) {
	var t sql.NullTime
	if err := r.db.QueryRowContext(ctx, lsnTimeSQL, l.Bytes()).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("sqlserversrc: commit time of %s: %w", l, err)
	}
	return t.Time, nil
}
