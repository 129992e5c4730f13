// Package pollsrc is the query-based replicate source (mode "poll") for
// any SQL database with triggers: SQLite, MySQL/MariaDB, PostgreSQL and
// SQL Server / Azure SQL Database (dialects.go; SQL Server's statements
// are pinned by golden files and run live only by make test-sqlserver,
// since no SQL Server runs where this was built). It is the timestamp+incrementing mode of JDBC source connectors,
// made exact for deletes and for concurrent writers.
//
// Install (replicate.PrepareMode and every Open) creates the change table
//
//	_ic_poll_log(seq, tbl, pk, op, origin, at)
//
// whose seq is a monotonically increasing value the database assigns
// itself (INTEGER PRIMARY KEY AUTOINCREMENT, AUTO_INCREMENT, an identity
// column), and AFTER INSERT, UPDATE and DELETE triggers on every captured
// table that append one row per changed key (pk is a JSON array of the
// key's values, BLOB keys as hex). Deletes are captured there too: the
// change table is the tombstone table. The captured tables are not
// altered.
//
// A Position is the high-water mark: the seq up to which every change was
// delivered, as a decimal string. The stream commits it on the target in
// the same transaction as the rows it covers (replicate checkpoints).
//
// Concurrent writers take seq values in one order and commit in another,
// so a reader can see seq 11 while 10 is still in flight. Stream never
// moves the mark past a missing seq (a gap) until the gap has been
// missing for HoldBack (default 10s): a gap that old is a rolled-back
// transaction (or a value the database skipped), never a committed one,
// unless a writer holds a captured write uncommitted for longer than
// HoldBack. That is the bound: a transaction that commits more than
// HoldBack after its first captured write may be missed; keep writer
// transactions shorter or raise HoldBack. A rolled-back transaction
// delays the stream by HoldBack once.
//
// Each read takes the changes after the mark and, in the same read
// transaction, the current row of every changed key: a row that exists
// becomes an OpUpsert with its full image, a missing one an OpDelete, so
// several changes of one key collapse into one and the target converges.
//
// Origins: a stream applying into a database read in this mode tags its
// writes through Marker (replicate.MarkerForMode): inside the apply
// transaction it writes its session's row of _ic_poll_origin(conn,
// origin), keyed by the connection (CONNECTION_ID(), pg_backend_pid(),
// 0 on SQLite's single writer), and the triggers copy that origin into the
// origin column of each change they log; every other session logs an
// empty origin.
// With SkipReplicated, a key whose last change in a batch was tagged is
// skipped: its current row came from the other side. A key whose current
// row was replaced by replication after the change the batch read (a
// later change, not yet read) is sent once more; the other side's
// last-writer-wins upsert (replicate.Config.Version) makes that a no-op,
// and since that side tags what it applies, it never loops.
//
// The change table grows until pruned through replicate.PruneLog or
// Config.PruneSource.
package pollsrc

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// LogTable is the change table.
const LogTable = "_ic_poll_log"

// MarkTable holds the origin of each session (connection) applying
// replicated changes, for the length of its transaction (Marker).
const MarkTable = "_ic_poll_origin"

// DefaultHoldBack is how long a missing seq holds the stream back.
const DefaultHoldBack = 10 * time.Second

func init() { replicate.RegisterSourceMode(replicate.SourcePoll, Driver{}) }

// Driver opens poll sources for every supported dialect.
type Driver struct {
	// HoldBack is how long a gap in the change table's seq holds the
	// stream back (default DefaultHoldBack).
	HoldBack time.Duration
}

var (
	_ replicate.SourceDriver  = Driver{}
	_ replicate.Preparer      = Driver{}
	_ replicate.LogPruner     = Driver{}
	_ replicate.Backlogger    = Driver{}
	_ replicate.Checker       = Driver{}
	_ replicate.DialectMarker = Driver{}
	_ replicate.OriginMarker  = Marker{}
	_ replicate.OriginSetup   = Marker{}
	_ replicate.Source        = (*Source)(nil)
	_ replicate.Pruner        = (*Source)(nil)
)

// Marker implements replicate.SourceDriver: nil, the marker depends on
// the dialect (MarkerFor).
func (Driver) Marker() replicate.OriginMarker { return nil }

// MarkerFor implements replicate.DialectMarker.
func (Driver) MarkerFor(dialect string) replicate.OriginMarker {
	if _, ok := dialects[dialect]; !ok {
		return nil
	}
	return Marker{dialect: dialect}
}

// Marker tags the writes of a replication apply transaction with their
// origin: MarkOrigin writes the session's row of MarkTable, which the
// capture triggers copy into each change they log, and UnmarkOrigin
// deletes it before commit. The row lives and dies with the transaction
// (a rollback takes it away), so no other write of the session is ever
// tagged.
type Marker struct{ dialect string }

// Setup implements replicate.OriginSetup: it creates MarkTable.
func (m Marker) Setup(ctx context.Context, db *sqldb.DB) error {
	if _, err := db.ExecContext(ctx, dialects[m.dialect].markDDL); err != nil {
		return fmt.Errorf("pollsrc: origin table: %w", err)
	}
	return nil
}

// MarkOrigin implements replicate.OriginMarker.
func (m Marker) MarkOrigin(ctx context.Context, tx *sql.Tx, origin string) error {
	if _, err := tx.ExecContext(ctx, dialects[m.dialect].mark, origin); err != nil {
		return fmt.Errorf("pollsrc: mark origin: %w", err)
	}
	return nil
}

// UnmarkOrigin implements replicate.OriginMarker.
func (m Marker) UnmarkOrigin(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, unmarkSQL(dialects[m.dialect])); err != nil {
		return fmt.Errorf("pollsrc: unmark origin: %w", err)
	}
	return nil
}

// Prepare implements replicate.Preparer.
func (Driver) Prepare(ctx context.Context, db *sqldb.DB, tables []string, _ *slog.Logger) error {
	_, err := install(ctx, db, tables)
	return err
}

// Check implements replicate.Checker: the dialect is supported and, on
// MySQL/MariaDB with the binary log on, the user may create the capture
// triggers (SUPER, or log_bin_trust_function_creators=1).
func (Driver) Check(ctx context.Context, db *sqldb.DB) error {
	if _, err := dialectOf(db); err != nil {
		return err
	}
	if db.Dialect.Name() != "mysql" {
		return nil
	}
	var logBin, trust, super int
	err := db.QueryRowContext(ctx, `SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators,
		(SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE = 'SUPER'
		 AND GRANTEE = CONCAT("'", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'"))`).Scan(&logBin, &trust, &super)
	if err != nil {
		return fmt.Errorf("pollsrc: check %s: %w", db.Name, err)
	}
	if logBin == 1 && trust == 0 && super == 0 {
		return replicate.Permanent(fmt.Errorf("pollsrc: %s: %s", db.Name, trustHint))
	}
	return nil
}

// trustHint says how a MySQL/MariaDB user without SUPER may create
// triggers while the binary log is on.
const trustHint = "the binary log is on and log_bin_trust_function_creators is off, so creating the capture triggers needs SUPER: " +
	"SET GLOBAL log_bin_trust_function_creators = 1 (and in the server's configuration; on RDS and Azure Database for MySQL, the parameter group / server parameter)"

// Open implements replicate.SourceDriver.
func (d Driver) Open(ctx context.Context, db *sqldb.DB, cfg replicate.SourceConfig) (replicate.Source, error) {
	t, err := install(ctx, db, cfg.Tables)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	hb := d.HoldBack
	if hb <= 0 {
		hb = DefaultHoldBack
	}
	dl, _ := dialectOf(db) // install checked it
	return &Source{db: db, d: dl, tables: t, holdBack: hb, log: log.With("component", "replicate.pollsrc", "db", db.Name)}, nil
}

// table is what the source knows of one captured table.
type table struct {
	def   sqldb.Table
	cols  []string
	types []sqldb.Type
	row   string // reads the row of a key (binds: the key's values)
}

// newTable is what the source reads of a table with schema def.
func newTable(db *sqldb.DB, def sqldb.Table) *table {
	t := &table{def: def, cols: def.ColumnNames()}
	for _, c := range def.Columns {
		t.types = append(t.types, c.Type)
	}
	t.row = rowSQL(db.Dialect, def)
	return t
}

// refresh compares a table's columns now (in the read transaction) with
// the ones the source reads, and reads its schema again when they differ:
// changed says the batch must carry an OpSchema change for it first.
func (s *Source) refresh(ctx context.Context, tx *sql.Tx, name string) (changed bool, err error) {
	t := s.tables[name]
	rows, err := tx.QueryContext(ctx, columnsSQL(s.db.Dialect, name))
	if err != nil {
		return false, fmt.Errorf("pollsrc: read %s: %w", name, err)
	}
	cols, err := rows.Columns()
	rows.Close()
	if err != nil {
		return false, fmt.Errorf("pollsrc: read %s: %w", name, err)
	}
	if slices.Equal(cols, t.cols) {
		return false, nil
	}
	def, err := s.db.Dialect.Describe(ctx, tx, name)
	if err != nil {
		return false, fmt.Errorf("pollsrc: schema change of %s: %w", name, err)
	}
	s.log.Info("pollsrc: schema change", "table", name, "columns", def.ColumnNames())
	s.tables[name] = newTable(s.db, def)
	return true, nil
}

// install creates the change table and (re)creates the triggers of each
// table, in one transaction where the database allows (MySQL commits DDL
// statement by statement; every statement is idempotent).
func install(ctx context.Context, db *sqldb.DB, tables []string) (map[string]*table, error) {
	d, err := dialectOf(db)
	if err != nil {
		return nil, err
	}
	out := map[string]*table{}
	q := db.Dialect.Quote
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		reinstall, err := installLog(ctx, db, tx, d)
		if err != nil {
			return err
		}
		var stmts []string
		for _, name := range tables {
			def, err := db.Dialect.Describe(ctx, tx, name)
			if err != nil {
				if errors.Is(err, sqldb.ErrNoTable) {
					return replicate.Permanent(fmt.Errorf("pollsrc: capture %q: the table does not exist", name))
				}
				return fmt.Errorf("pollsrc: capture %s: %w", name, err)
			}
			if len(def.PrimaryKey) == 0 {
				return replicate.Permanent(fmt.Errorf("pollsrc: capture: table %q %w", name, replicate.ErrNoPrimaryKey))
			}
			key := func(row string) string { return d.keyText(def, q, row) }
			// Recreating a trigger takes an exclusive lock on the table,
			// which waits for every open writer and blocks the ones after
			// it: only install what is missing.
			have, err := d.installed(ctx, tx, def.Name)
			if err != nil {
				return fmt.Errorf("pollsrc: capture %s: %w", name, err)
			}
			if !have || reinstall {
				stmts = append(stmts, d.triggers(def, q, key)...)
			}
			out[name] = newTable(db, def)
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				if me := (*mysql.MySQLError)(nil); errors.As(err, &me) && me.Number == 1419 {
					return replicate.Permanent(fmt.Errorf("pollsrc: install capture: %w (%s)", err, trustHint))
				}
				return fmt.Errorf("pollsrc: install capture: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// installLog creates the mark and change tables (in that order: a change
// table of this version means its mark table exists) and adds the origin
// column to a change table made before it had one; reinstall says the
// triggers must be made again (they do not write the origin). When the
// change table is there with its origin column, it runs no DDL at all,
// so a reader with SELECT alone opens the source.
func installLog(ctx context.Context, db *sqldb.DB, tx *sql.Tx, d dialect) (reinstall bool, err error) {
	def, err := db.Dialect.Describe(ctx, tx, LogTable)
	if err == nil {
		if _, ok := def.Column("origin"); ok {
			return false, nil
		}
	} else if !errors.Is(err, sqldb.ErrNoTable) {
		return false, fmt.Errorf("pollsrc: install capture: %w", err)
	}
	for _, s := range []string{d.markDDL, d.logDDL} {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return false, fmt.Errorf("pollsrc: install capture: %w", err)
		}
	}
	if def, err = db.Dialect.Describe(ctx, tx, LogTable); err != nil {
		return false, fmt.Errorf("pollsrc: install capture: %w", err)
	}
	if _, ok := def.Column("origin"); ok {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, d.addCol); err != nil {
		return false, fmt.Errorf("pollsrc: install capture: add the origin column: %w", err)
	}
	return true, nil
}

// Source polls a database's change table.
type Source struct {
	db       *sqldb.DB
	d        dialect
	tables   map[string]*table
	holdBack time.Duration
	log      *slog.Logger

	closed atomic.Bool
}

// ErrClosed is returned by a closed source.
var ErrClosed = errors.New("pollsrc: source closed")

// Close implements replicate.Source; it leaves the database open.
func (s *Source) Close() error {
	s.closed.Store(true)
	return nil
}

// FormatPosition returns the position of a seq.
func FormatPosition(seq int64) replicate.Position {
	return replicate.SeqPosition(seq)
}

// ParsePosition returns the seq of a position ("" is 0).
func ParsePosition(p replicate.Position) (int64, error) { return replicate.ParseSeqPosition(p) }

// Current implements replicate.Source: the highest seq committed, or
// just below the lowest seq missing among the last inFlightMargin (a
// change still in flight, or a rolled-back one): Stream's hold-back waits
// for those, instead of skipping them.
func (s *Source) Current(ctx context.Context) (replicate.Position, error) {
	var hi sql.NullInt64
	if err := s.db.QueryRowContext(ctx, maxSeqSQL).Scan(&hi); err != nil {
		return "", fmt.Errorf("pollsrc: current position: %w", err)
	}
	lo := max(hi.Int64-inFlightMargin, 0)
	rows, err := s.db.QueryContext(ctx, seqsAfterSQL(s.db.Dialect), lo)
	if err != nil {
		return "", fmt.Errorf("pollsrc: current position: %w", err)
	}
	defer rows.Close()
	prev := lo
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return "", fmt.Errorf("pollsrc: current position: %w", err)
		}
		if seq != prev+1 {
			break
		}
		prev = seq
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("pollsrc: current position: %w", err)
	}
	return FormatPosition(prev), nil
}

// inFlightMargin is how far below the highest visible seq Current looks
// for missing seqs; below it, changes are taken as committed (or pruned).
const inFlightMargin = 1000

type entry struct {
	seq     int64
	tbl, pk string
	op      string
	origin  string
	at      time.Time
}

// Stream implements replicate.Source.
func (s *Source) Stream(ctx context.Context, from replicate.Position, opts replicate.StreamOptions, fn func(context.Context, replicate.Batch) error) error {
	mark, err := ParsePosition(from)
	if err != nil {
		return err
	}
	want, err := replicate.StreamTables(opts, s.tables)
	if err != nil {
		return err
	}
	opts = opts.WithDefaults()
	gaps := map[int64]time.Time{} // first seq of a gap → when first seen
	// The next batch is read while fn applies the last one.
	return replicate.Poll(ctx, s.db, opts.Poll, fn, func(ctx context.Context) (replicate.Batch, bool, bool, error) {
		if s.closed.Load() {
			return replicate.Batch{}, false, false, ErrClosed
		}
		b, next, full, err := s.read(ctx, mark, want, opts, gaps)
		if err != nil || next <= mark {
			return b, false, false, err
		}
		mark = next
		for g := range gaps {
			if g <= mark {
				delete(gaps, g)
			}
		}
		return b, true, full, nil
	})
}

// read returns the batch after mark and the mark after it; full says the
// batch was cut at maxBatch (read again at once).
func (s *Source) read(ctx context.Context, mark int64, want map[string]bool, opts replicate.StreamOptions, gaps map[int64]time.Time) (replicate.Batch, int64, bool, error) {
	maxBatch := opts.MaxBatch
	var b replicate.Batch
	next := mark
	full := false
	tx, err := s.db.BeginTx(ctx, s.d.readTx)
	if err != nil {
		return b, mark, false, fmt.Errorf("pollsrc: read: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, readSQL(s.db.Dialect, maxBatch), mark)
	if err != nil {
		return b, mark, false, fmt.Errorf("pollsrc: read changes: %w", err)
	}
	var entries []entry
	n := 0
	now := time.Now()
	held := false
	prev := mark
	for rows.Next() {
		var e entry
		var at any
		if err := rows.Scan(&e.seq, &e.tbl, &e.pk, &e.op, &e.origin, &at); err != nil {
			rows.Close()
			return b, mark, false, fmt.Errorf("pollsrc: read changes: %w", err)
		}
		n++
		if held {
			// Note the later gaps too, so their hold-backs run at once.
			if e.seq != prev+1 {
				if _, ok := gaps[prev+1]; !ok {
					gaps[prev+1] = now
				}
			}
			prev = e.seq
			continue
		}
		prev = e.seq
		if e.seq != next+1 {
			// seqs next+1 .. e.seq-1 are not visible: in flight, or
			// rolled back. Wait for them up to the hold-back.
			since, ok := gaps[next+1]
			if !ok {
				gaps[next+1], since = now, now
			}
			if now.Sub(since) < s.holdBack {
				held = true
				continue
			}
			s.log.Debug("pollsrc: gap past the hold-back, skipped", "from", next+1, "to", e.seq-1)
		}
		e.at = parseTime(at)
		entries = append(entries, e)
		next = e.seq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return b, mark, false, fmt.Errorf("pollsrc: read changes: %w", err)
	}
	full = n == maxBatch && !held
	b.Position = FormatPosition(next)
	if len(entries) > 0 {
		b.CommitTime = entries[len(entries)-1].at
	}
	last := map[string]int{}
	for i, e := range entries {
		if want[e.tbl] {
			last[e.tbl+"\x00"+e.pk] = i
		}
	}
	// Every row is read as it is now: a table whose columns changed
	// since the last read gets its OpSchema change ahead of them all.
	var keys []readKey
	checked := map[string]bool{}
	for i, e := range entries {
		if j, ok := last[e.tbl+"\x00"+e.pk]; !ok || j != i {
			continue
		}
		if !checked[e.tbl] {
			checked[e.tbl] = true
			changed, err := s.refresh(ctx, tx, e.tbl)
			if err != nil {
				return b, mark, false, err
			}
			if changed {
				b.Changes = append(b.Changes, replicate.Change{Table: e.tbl, Op: replicate.OpSchema})
			}
		}
		if opts.SkipReplicated && e.origin != "" {
			// The key's last change was replication's: its current row
			// came from the other side.
			continue
		}
		t := s.tables[e.tbl]
		key, err := decodeKey(t, e.pk)
		if err != nil {
			return b, mark, false, replicate.Permanent(fmt.Errorf("pollsrc: change %d: %w", e.seq, err))
		}
		keys = append(keys, readKey{t: t, key: key})
	}
	rowChanges, err := s.readRows(ctx, tx, keys)
	if err != nil {
		return b, mark, false, err
	}
	b.Changes = append(b.Changes, rowChanges...)
	return b, next, full, nil
}

// readKey is a changed key whose current row a batch reads.
type readKey struct {
	t   *table
	key []any
}

// keysPerRead bounds the keys of one batched row read (SQL Server takes
// at most 2,100 parameters).
const keysPerRead = 500

// readRows reads the current rows of the keys, in their order: per table,
// up to keysPerRead keys in one query; a key the query did not return
// (deleted, or a value that compares equal but reads back differently,
// such as another letter case under a case-insensitive collation) is
// read again alone, and only a key that read misses too is a delete.
func (s *Source) readRows(ctx context.Context, tx *sql.Tx, keys []readKey) ([]replicate.Change, error) {
	found := make([]*replicate.Change, len(keys))
	byTable := map[*table][]int{}
	for i, k := range keys {
		byTable[k.t] = append(byTable[k.t], i)
	}
	for t, idx := range byTable {
		for len(idx) > 0 {
			part := idx[:min(keysPerRead, len(idx))]
			idx = idx[len(part):]
			want := make(map[string]int, len(part))
			var args []any
			for _, i := range part {
				want[keyString(keys[i].key)] = i
				args = append(args, keys[i].key...)
			}
			rows, err := tx.QueryContext(ctx, rowsSQL(s.db.Dialect, t.def, len(part)), args...)
			if err != nil {
				return nil, fmt.Errorf("pollsrc: read %s: %w", t.def.Name, err)
			}
			for rows.Next() {
				ch, err := s.scanRow(rows, t)
				if err != nil {
					rows.Close()
					return nil, err
				}
				if i, ok := want[keyString(ch.Key)]; ok {
					found[i] = &ch
				}
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, fmt.Errorf("pollsrc: read %s: %w", t.def.Name, err)
			}
		}
	}
	out := make([]replicate.Change, len(keys))
	for i, k := range keys {
		if found[i] != nil {
			out[i] = *found[i]
			continue
		}
		ch, err := s.current(ctx, tx, k.t, k.key)
		if err != nil {
			return nil, err
		}
		out[i] = ch
	}
	return out, nil
}

// keyString is a key's values as one comparable string.
func keyString(key []any) string {
	var b strings.Builder
	for _, v := range key {
		switch x := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "x%x", x)
		default:
			fmt.Fprint(&b, v)
		}
		b.WriteByte(0)
	}
	return b.String()
}

// current reads the current row of key as a change.
func (s *Source) current(ctx context.Context, tx *sql.Tx, t *table, key []any) (replicate.Change, error) {
	rows, err := tx.QueryContext(ctx, t.row, key...)
	if err != nil {
		return replicate.Change{}, fmt.Errorf("pollsrc: read %s: %w", t.def.Name, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return replicate.Change{}, fmt.Errorf("pollsrc: read %s: %w", t.def.Name, err)
		}
		return replicate.Change{Table: t.def.Name, Op: replicate.OpDelete, Key: key}, nil
	}
	return s.scanRow(rows, t)
}

// scanRow reads the row rows is at as an upsert of its table.
func (s *Source) scanRow(rows *sql.Rows, t *table) (replicate.Change, error) {
	vals := make([]any, len(t.cols))
	ptrs := make([]any, len(t.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return replicate.Change{}, fmt.Errorf("pollsrc: read %s: %w", t.def.Name, err)
	}
	row := make(map[string]any, len(vals))
	ch := replicate.Change{Table: t.def.Name, Op: replicate.OpUpsert, Row: row}
	for i, c := range t.cols {
		v, err := sqldb.Read(s.db.Dialect, t.types[i], vals[i])
		if err != nil {
			return ch, fmt.Errorf("pollsrc: read %s.%s: %w", t.def.Name, c, err)
		}
		row[c] = v
		if c == "_trace_id" {
			switch x := v.(type) {
			case string:
				ch.TraceID = x
			case []byte:
				ch.TraceID = string(x)
			}
		}
	}
	for _, k := range t.def.PrimaryKey {
		ch.Key = append(ch.Key, row[k])
	}
	return ch, nil
}

func parseTime(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x
	case []byte:
		return parseTime(string(x))
	case string:
		for _, l := range []string{"2006-01-02T15:04:05.999Z", "2006-01-02 15:04:05.999999"} {
			if t, err := time.Parse(l, x); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// decodeKey parses a change's JSON key into values to bind.
func decodeKey(t *table, pk string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(pk))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("key %q: %w", pk, err)
	}
	if len(raw) != len(t.def.PrimaryKey) {
		return nil, fmt.Errorf("key %q: %d values for a %d-column primary key", pk, len(raw), len(t.def.PrimaryKey))
	}
	key := make([]any, len(raw))
	for i, v := range raw {
		c, _ := t.def.Column(t.def.PrimaryKey[i])
		switch x := v.(type) {
		case json.Number:
			if n, err := x.Int64(); err == nil {
				key[i] = n
			} else {
				key[i] = x.String()
			}
		case string:
			if c.Type.Kind == sqldb.KindBytes {
				bs, err := hex.DecodeString(x)
				if err != nil {
					return nil, fmt.Errorf("key %q: bad hex: %w", pk, err)
				}
				key[i] = bs
			} else {
				key[i] = x
			}
		case bool:
			key[i] = x
		case nil:
			return nil, fmt.Errorf("key %q: null in the primary key", pk)
		default:
			return nil, fmt.Errorf("key %q: unexpected %T", pk, v)
		}
	}
	return key, nil
}

// PruneLog implements replicate.LogPruner: it deletes the changes at or
// before upTo.
func (Driver) PruneLog(ctx context.Context, db *sqldb.DB, upTo replicate.Position) (int64, error) {
	seq, err := ParsePosition(upTo)
	if err != nil {
		return 0, err
	}
	res, err := db.ExecContext(ctx, pruneSQL(db.Dialect), seq)
	if err != nil {
		return 0, fmt.Errorf("pollsrc: prune: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Prune implements replicate.Pruner.
func (s *Source) Prune(ctx context.Context, upTo replicate.Position) error {
	_, err := Driver{}.PruneLog(ctx, s.db, upTo)
	return err
}

// ComparePositions implements replicate.LogPruner.
func (Driver) ComparePositions(a, b replicate.Position) (int, error) {
	x, err := ParsePosition(a)
	if err != nil {
		return 0, err
	}
	y, err := ParsePosition(b)
	if err != nil {
		return 0, err
	}
	return cmp.Compare(x, y), nil
}

// Backlog implements replicate.Backlogger: the changes after from (bytes
// unknown).
func (Driver) Backlog(ctx context.Context, db *sqldb.DB, _ string, from replicate.Position) (int64, int64, error) {
	seq, err := ParsePosition(from)
	if err != nil {
		return -1, -1, err
	}
	var n int64
	if err := db.QueryRowContext(ctx, backlogSQL(db.Dialect), seq).Scan(&n); err != nil {
		return -1, -1, fmt.Errorf("pollsrc: backlog: %w", err)
	}
	return n, -1, nil
}
