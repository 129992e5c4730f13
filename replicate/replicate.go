// Package replicate copies tables from a source database into a target
// database the way a managed migration service does: a full load in
// primary-key chunks, then change data capture (CDC) from the source's own
// change log, with type mapping through the sqldb dialects.
//
// The applied position is stored in the target, in table _ic_checkpoints,
// in the same transaction as the rows it covers, so a restart (even after
// kill -9) resumes exactly where the last commit stopped: nothing is applied
// twice in effect and nothing is missed. Applying is idempotent (full row
// upserts and key deletes), which is what makes replaying the changes that
// happened during a full load safe.
//
// Sources are drivers registered by sqldb dialect name (RegisterSource),
// like database/sql drivers: replicate/sqlitesrc (a trigger-fed change
// table) registers "sqlite". A program imports the source packages it ships.
//
// Source modes other than the log (RegisterSourceMode; SourcePoll,
// replicate/pollsrc) read any dialect. For a bidirectional pair (A→B and
// B→A), each stream tags the writes it applies with its Origin through the
// OriginMarker of the mode the other stream reads its target in
// (MarkerForMode, Config.TargetMode), and the other stream, with
// SkipReplicated, skips changes so tagged: nothing echoes. A full load copies every row its source holds, replicated ones
// included, so in a pair at most one stream does one: when both databases
// were prepared (Prepare) before any write, both streams set
// Config.SkipFullLoad and read their source's log from the start; when one
// side has older data, its stream does the full load and the reverse
// stream, with SkipFullLoad, starts once that load is done (Status().Phase
// is PhaseCDC). The pair assumes a key is written on one side at a time (records
// have unique ids); concurrent conflicting writes of one key on both sides
// are not reconciled.
package replicate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	perm "github.com/intercloud/intercloud/internal/permanent"
	"github.com/intercloud/intercloud/internal/registry"
	"github.com/intercloud/intercloud/sqldb"
)

// Position is a source-specific, opaque place in the source's change log.
// The empty Position is the beginning of the log.
type Position string

// SeqPosition is the position of a change log's sequence number (the
// SQLite and poll sources' positions).
func SeqPosition(seq int64) Position { return Position(strconv.FormatInt(seq, 10)) }

// ParseSeqPosition returns the sequence number of a SeqPosition ("" is 0);
// anything else is a permanent error.
func ParseSeqPosition(p Position) (int64, error) {
	if p == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(p), 10, 64)
	if err != nil || n < 0 {
		return 0, Permanent(fmt.Errorf("replicate: bad position %q: want a non-negative decimal seq", string(p)))
	}
	return n, nil
}

// Op is what a change does to its row.
type Op uint8

// The change operations.
const (
	// OpUpsert makes the row with Change.Key equal to Change.Row.
	OpUpsert Op = iota + 1
	// OpDelete removes the row with Change.Key.
	OpDelete
	// OpSchema says the table's schema changed at this point of the log
	// (Change.DDL holds the statement when the source knows it); Key and
	// Row are nil. The stream follows the change on the target or stops
	// with an error naming the statement.
	OpSchema
)

// String names the operation.
func (o Op) String() string {
	switch o {
	case OpUpsert:
		return "upsert"
	case OpDelete:
		return "delete"
	case OpSchema:
		return "schema"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Change is one row change.
type Change struct {
	Table string
	Op    Op
	// Key holds the primary-key values in primary-key order.
	Key []any
	// Row is the full row image for OpUpsert (column → value as the source
	// read it; see Normalize for the values accepted), nil for OpDelete.
	Row map[string]any
	// TraceID is the row's _trace_id column when it has one (for logs).
	TraceID string
	// DDL is the statement of an OpSchema change, when known.
	DDL string
	// NewTable is, for an OpSchema change, the table's new name when the
	// change renamed it (RENAME TABLE, ALTER TABLE ... RENAME TO): the
	// changes after it name the table NewTable. A source emits one such
	// change per renamed table, in the order the statement renames them,
	// also for a table it does not capture whose new name may be one the
	// stream selects.
	NewTable string
}

// Batch is a run of changes delivered and applied together.
type Batch struct {
	// Changes are whole source transactions in commit order (as far as the
	// source can tell; see the source package's documentation).
	Changes []Change
	// Position is the position after the last change of the batch.
	Position Position
	// CommitTime is the source commit time of the last change (for lag).
	CommitTime time.Time
	// Snapshot is set on batches of the full load given to
	// Config.OnApplied; their Position is the load's start position.
	Snapshot bool
	// Read is how many entries of the change log the source read for the
	// batch, counting those it left out (a key's earlier changes, kept
	// once as its latest; changes of other tables; replicated ones); 0
	// when the source does not tell. Read reaching MaxBatch means the read
	// was cut there, so more is waiting, however few Changes it made.
	Read int
	// ReadAt is when the source handed the batch over (Pipeline.Send sets
	// it); zero: when the consumer received it.
	ReadAt time.Time
	// Applied is how long the batch took from read to committed on the
	// target, and AppliedAt when it committed (set on batches given to
	// Config.OnApplied during change data capture).
	Applied   time.Duration
	AppliedAt time.Time
}

// StreamOptions tune Source.Stream.
type StreamOptions struct {
	// Tables limits the stream to these tables.
	Tables []string
	// SkipReplicated skips changes that replication itself wrote into the
	// source (origin tagging), so a bidirectional pair does not echo.
	SkipReplicated bool
	// MaxBatch bounds the changes of one batch. Whole transactions are never
	// split across batches unless one transaction alone exceeds it (sources
	// that cannot see transactions document their boundaries).
	MaxBatch int
	// Poll is how often a polling source looks for new changes when idle.
	// A polling source may read again at once, without waiting Poll, after
	// a busy batch (see Busy; the SQLite change table's source does).
	Poll time.Duration
	// Durable, when set, returns the position up to which the consumer's
	// work is durable (its saved checkpoint), for a consumer that accepts
	// batches before it checkpoints them (the publisher holds batches to
	// write their results together). A source that keeps the consumer's
	// position on the server (a PostgreSQL replication slot, which then
	// discards what came before) tells the server no more than it, so the
	// consumer can always start again from its checkpoint. Nil: every
	// batch fn accepted is durable.
	Durable func() Position
}

// Busy reports whether a batch of read changes says the source is busy:
// at least a quarter of MaxBatch (BusyBatchDivisor). What arrived while
// such a batch was read and applied is likely a batch worth reading
// already, so a polling source reads again at once: a stage that keeps up
// adds the time of its own work to a change's latency, not that plus
// Poll, while a batch stays large enough (a quarter of MaxBatch at least)
// that its fixed costs (a read transaction, a target commit) stay spread
// over many changes.
func (o StreamOptions) Busy(read int) bool {
	return read > 0 && read >= o.MaxBatch/BusyBatchDivisor
}

// BusyBatchDivisor: a batch of at least MaxBatch / BusyBatchDivisor
// changes is busy (StreamOptions.Busy).
const BusyBatchDivisor = 4

// WithDefaults returns the options with MaxBatch and Poll defaulted
// (DefaultBatchSize, DefaultPoll) where they are not positive.
func (o StreamOptions) WithDefaults() StreamOptions {
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultBatchSize
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	return o
}

// StreamTables returns the set of tables a stream reads: the options'
// Tables, each of which the source must capture (a key of captured), or
// every captured table when Tables is empty.
func StreamTables[T any](o StreamOptions, captured map[string]T) (map[string]bool, error) {
	want := make(map[string]bool, len(captured))
	for _, t := range o.Tables {
		if _, ok := captured[t]; !ok {
			return nil, fmt.Errorf("replicate: stream: table %q is not captured by this source", t)
		}
		want[t] = true
	}
	if len(o.Tables) == 0 {
		for t := range captured {
			want[t] = true
		}
	}
	return want, nil
}

// Source reads a database's change log.
type Source interface {
	// Current returns the position at the end of the log now. Every change
	// committed after Current returns is after that position.
	Current(ctx context.Context) (Position, error)
	// Stream delivers the changes after from, in order, one batch per call
	// of fn, and blocks until ctx is done (returning ctx.Err()) or fn fails
	// (returning its error) or the source fails. Calls of fn are
	// sequential, not necessarily on the caller's goroutine, and Stream
	// returns only after the last one did. A source may read or decode
	// its next batch while fn applies the last one (Pipeline): what fn
	// accepted is durable only as far as StreamOptions.Durable says. A
	// batch may carry no changes and only move the position (for example
	// when every change it covered was skipped).
	Stream(ctx context.Context, from Position, opts StreamOptions, fn func(context.Context, Batch) error) error
	// Close releases the source; it does not close the database.
	Close() error
}

// OriginMarker is implemented by a source package for its dialect. A target
// calls MarkOrigin inside its apply transaction, before its writes, so the
// database's own change log records that those writes came from
// replication (and SkipReplicated then skips them), and UnmarkOrigin before
// commit.
type OriginMarker interface {
	MarkOrigin(ctx context.Context, tx *sql.Tx, origin string) error
	UnmarkOrigin(ctx context.Context, tx *sql.Tx) error
}

// OriginSetup is implemented by markers that need objects in the target
// database (for example a table holding the mark) before MarkOrigin works.
// Setup must be idempotent.
type OriginSetup interface {
	Setup(ctx context.Context, db *sqldb.DB) error
}

// SourceConfig says which changes a source reads, for whom.
type SourceConfig struct {
	// Name identifies the consumer (the stream's name). Sources that keep
	// state per consumer in the database (a Postgres replication slot)
	// key it by Name; one name must be read by one stream at a time.
	Name string
	// Tables are the tables to capture.
	Tables []string
	// ReplicatedInserts, when set, names inserts the source may leave
	// out of its change feed unread (see ReplicatedInserts).
	ReplicatedInserts *ReplicatedInserts
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// ReplicatedInserts names the inserts of one table that only the other
// stream of a bidirectional pair writes into a source: rows whose Column
// holds Value (the records table's _origin naming the other cloud). A
// source that can leave them out before reading them does (PostgreSQL: a
// publication row filter, evaluated by the server's walsender), sparing
// the server sending and this process receiving rows that SkipReplicated
// would skip anyway; the other sources ignore it. SkipReplicated stays
// the guarantee against echo. Updates and deletes are never left out (a
// local update that sets Column to Value is replicated), but a local
// insert whose Column holds Value is: name only a column that nothing but
// replication sets to Value.
type ReplicatedInserts struct {
	Table  string
	Column string
	Value  string
}

// SourceDriver opens sources for one sqldb dialect.
type SourceDriver interface {
	// Open installs whatever capture needs for the tables (idempotent) and
	// returns a source reading their changes for the named consumer. A
	// source that keeps per-consumer state creates it no later than
	// Current, so no change after that position is lost.
	Open(ctx context.Context, db *sqldb.DB, cfg SourceConfig) (Source, error)
	// Marker returns the dialect's origin marker, nil when the dialect
	// cannot tag origins.
	Marker() OriginMarker
}

// Preparer is implemented by drivers whose capture can be installed without
// opening a source; Prepare uses it when present.
type Preparer interface {
	Prepare(ctx context.Context, db *sqldb.DB, tables []string, log *slog.Logger) error
}

// Checker is implemented by drivers that can tell, before anything starts,
// whether a database's settings allow change data capture (a MySQL binary
// log in ROW format, a Postgres wal_level of logical); the error names the
// setting and how to fix it.
type Checker interface {
	Check(ctx context.Context, db *sqldb.DB) error
}

// Check reports whether the database can be a replication source: its
// dialect has a source driver and, where the driver can tell, the server's
// settings allow capture.
func Check(ctx context.Context, db *sqldb.DB) error {
	return CheckMode(ctx, db, SourceLog)
}

// CheckMode is Check for a source mode ("" is SourceLog).
func CheckMode(ctx context.Context, db *sqldb.DB, mode string) error {
	d, err := driverFor(db, mode)
	if err != nil {
		return err
	}
	if c, ok := d.(Checker); ok {
		return c.Check(ctx, db)
	}
	return nil
}

// Pruner is implemented by sources whose change log the consumer trims:
// Prune drops the changes at or before upTo. Only a caller that knows every
// consumer of the log has passed upTo may call it (see Config.PruneSource).
type Pruner interface {
	Prune(ctx context.Context, upTo Position) error
}

// Errors.
var (
	// ErrNoSourceDriver matches (errors.Is) the error for a dialect no
	// source registered; it is registry.ErrUnknown.
	ErrNoSourceDriver = registry.ErrUnknown
	// ErrNoPrimaryKey is returned for a table without a primary key.
	ErrNoPrimaryKey = errors.New("has no primary key; replication needs one to apply updates and deletes exactly once")
	// ErrPermanent matches (errors.Is) every error a retry cannot fix: a
	// source's log no longer holding the position to resume from, a
	// change the target cannot follow, a configuration or schema error.
	// Stream.Run stops on such an error (Status.Phase "stopped",
	// Status.LastError its text) and returns it, instead of retrying.
	// Sources mark their errors with Permanent. It is the same value as
	// functions.ErrPermanent (package internal/permanent).
	ErrPermanent = perm.Err
)

// Permanent returns an error with err's text that matches both err and
// ErrPermanent with errors.Is; Permanent(nil) is nil.
func Permanent(err error) error { return perm.Mark(err) }

// Lagger is implemented by sources that can tell how far the change log
// they read is ahead of what the stream confirmed (for example the WAL a
// PostgreSQL replication slot retains). Stream.Status reports it as
// SourceBacklogBytes, polled every few seconds, never on the apply path.
type Lagger interface {
	Lag(ctx context.Context) (bytes int64, err error)
}

// Backlogger is implemented by source drivers that can tell, without an
// open stream, how much of the source's change log a consumer (by name)
// has not applied after position from: changes counts the changes, bytes
// the log's bytes; -1 when that measure is unknown.
type Backlogger interface {
	Backlog(ctx context.Context, db *sqldb.DB, consumer string, from Position) (changes, bytes int64, err error)
}

// SourceDriverKind is the registry kind of source drivers (see package
// internal/registry); they are named by sqldb dialect.
const SourceDriverKind = "replicate"

var sources = registry.New[SourceDriver](SourceDriverKind, "dialect")

// RegisterSource makes a source driver available for a sqldb dialect name;
// it panics when the name is taken.
func RegisterSource(dialect string, d SourceDriver) { sources.Register(dialect, d) }

// SourceDialects lists the dialects with a registered source driver.
func SourceDialects() []string { return sources.Names() }

// sourceDriver returns the driver of a dialect, or an error
// ("replicate: no driver for dialect ...") listing the registered ones.
func sourceDriver(dialect string) (SourceDriver, error) { return sources.Lookup(dialect) }

// HasLogSource reports whether a dialect's databases are read in
// SourceLog by default: a log-based source driver is registered for it and
// is not opt-in (OptIn).
func HasLogSource(dialect string) bool {
	d, err := sourceDriver(dialect)
	if err != nil {
		return false
	}
	if o, ok := d.(OptIn); ok && o.OptIn() {
		return false
	}
	return true
}

// OptIn is implemented by log-based source drivers that run only when
// SourceLog is asked for explicitly (replication.source: log), for
// example because the database needs its own change capture enabled by
// an operator first (replicate/sqlserversrc): HasLogSource reports false
// for their dialect, so its default mode stays SourcePoll.
type OptIn interface {
	OptIn() bool
}

// MarkerFor returns the origin marker of a dialect, nil when no source
// driver is registered for it or it cannot tag origins.
func MarkerFor(dialect string) OriginMarker {
	d, err := sourceDriver(dialect)
	if err != nil {
		return nil
	}
	return d.Marker()
}

// DialectMarker is implemented by mode drivers that serve several dialects
// (SourcePoll): their marker depends on the target's dialect, and
// Marker() alone is nil.
type DialectMarker interface {
	// MarkerFor returns the marker for a dialect, nil when it has none.
	MarkerFor(dialect string) OriginMarker
}

// MarkerForMode returns the origin marker that tags writes into db so
// that a stream reading db in a source mode ("" is SourceLog) with
// SkipReplicated skips them; nil when that mode cannot tag db's writes.
func MarkerForMode(db *sqldb.DB, mode string) OriginMarker {
	d, err := driverFor(db, mode)
	if err != nil {
		return nil
	}
	if dm, ok := d.(DialectMarker); ok {
		return dm.MarkerFor(db.Dialect.Name())
	}
	return d.Marker()
}

// Source modes (Config.SourceMode): how a stream reads its source's changes.
const (
	// SourceLog reads the database's own change log through the driver
	// registered for its dialect (binlog, logical decoding, change table).
	SourceLog = "log"
	// SourcePoll queries the tables for changes through a monotonically
	// increasing change column, for any SQL database (replicate/pollsrc).
	SourcePoll = "poll"
)

// SourceModeKind is the registry kind of source modes other than
// SourceLog; they are named by mode.
const SourceModeKind = "replicate source mode"

var modes = registry.New[SourceDriver](SourceModeKind, "mode")

// RegisterSourceMode makes a source driver available for a mode other than
// SourceLog (for example SourcePoll), whatever the database's dialect; it
// panics when the mode is taken.
func RegisterSourceMode(mode string, d SourceDriver) { modes.Register(mode, d) }

// SourceModes lists the registered modes, SourceLog first.
func SourceModes() []string { return append([]string{SourceLog}, modes.Names()...) }

// driverFor returns the source driver of db in a mode ("" is SourceLog).
func driverFor(db *sqldb.DB, mode string) (SourceDriver, error) {
	if mode == "" || mode == SourceLog {
		return sourceDriver(db.Dialect.Name())
	}
	return modes.Lookup(mode)
}

// OpenSource opens the change source of db through the driver registered for
// its dialect, installing capture for the tables (idempotent).
func OpenSource(ctx context.Context, db *sqldb.DB, cfg SourceConfig) (Source, error) {
	return OpenSourceMode(ctx, db, SourceLog, cfg)
}

// OpenSourceMode is OpenSource in a source mode ("" is SourceLog).
func OpenSourceMode(ctx context.Context, db *sqldb.DB, mode string, cfg SourceConfig) (Source, error) {
	d, err := driverFor(db, mode)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return d.Open(ctx, db, cfg)
}

// Prepare installs capture for the tables on db (idempotent). Call it after
// creating the tables and before anything writes to them, so CDC sees every
// write even before a stream starts.
func Prepare(ctx context.Context, db *sqldb.DB, tables []string, log *slog.Logger) error {
	return PrepareMode(ctx, db, SourceLog, tables, log)
}

// PrepareMode is Prepare in a source mode ("" is SourceLog).
func PrepareMode(ctx context.Context, db *sqldb.DB, mode string, tables []string, log *slog.Logger) error {
	d, err := driverFor(db, mode)
	if err != nil {
		return err
	}
	if log == nil {
		log = slog.Default()
	}
	if p, ok := d.(Preparer); ok {
		return p.Prepare(ctx, db, tables, log)
	}
	src, err := d.Open(ctx, db, SourceConfig{Tables: tables, Logger: log})
	if err != nil {
		return err
	}
	return src.Close()
}
