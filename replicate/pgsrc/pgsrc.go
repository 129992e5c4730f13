// Package pgsrc is the replicate source for PostgreSQL (dialect
// "postgres"): change data capture from logical replication with the
// built-in pgoutput plugin (protocol version 1), read over a replication
// connection (github.com/jackc/pglogrepl on pgx).
//
// # Capture objects
//
// Prepare (and every Open) installs, idempotently and under an advisory
// lock:
//
//   - the table _ic_replication_origin (the origin marker, see below),
//     when the user may create tables (a one-way stream needs none);
//   - REPLICA IDENTITY FULL on every replicated table (see TOAST below);
//   - the publication "intercloud" covering the replicated tables and the
//     marker table; tables are added with ALTER PUBLICATION when a later
//     Prepare names more, and never removed (another stream may read them).
//
// One publication per database, rather than one per table set, because
// pgoutput reads publications through the catalog as of the WAL it
// decodes: a publication created after a stream's position would make
// resuming from that position fail, while one that only grows is always
// there. Call Prepare before anything writes to the tables. A consumer
// opened with replicate.SourceConfig.ReplicatedInserts (the reverse stream
// of a bidirectional pair) reads two publications of its own instead,
// whose row filter leaves out the other stream's inserts in the server's
// walsender (see filter.go, "Filtered publications").
//
// Each step only writes when something is missing, so a user with
// nothing but SELECT on the tables and the REPLICATION attribute reads a
// source that its owner prepared (CREATE PUBLICATION intercloud FOR TABLE
// ...; ALTER TABLE ... REPLICA IDENTITY FULL) without writing to it; what
// is missing and cannot be made is named in the error.
//
// Every consumer (replicate.SourceConfig.Name) has its own logical
// replication slot, SlotName(name) = "intercloud_<sanitized name>",
// created by Open (or EnsureSlot). A slot keeps the server's WAL from its
// confirmed position on, so a stream can stop for any time and resume
// without loss; the price is that a slot whose consumer is gone retains
// WAL forever: operators must DropSlot the slot of a removed stream
// (Source.Lag shows how much WAL a slot holds).
//
// # Positions and delivery
//
// A Position is an LSN in its text form ("16/B374D848"). Stream delivers
// whole transactions in commit order, several small ones per batch up to
// MaxBatch changes; a batch's Position is the end LSN of its last
// transaction, so resuming from it starts with the next transaction. A
// single transaction is never split unless it has more than
// MaxTxnChanges changes; then its parts are delivered with the position
// before the transaction (a restart replays it whole: the target
// converges, but is not atomic for that transaction). When idle the
// stream moves the position on with empty batches, so the slot does not
// retain WAL written for other tables or databases.
//
// The server is told (standby status update) that a position is flushed
// only after the batch ending there was applied (fn returned nil, and the
// engine commits the target before), so the slot never discards WAL that
// was not applied. A stream asked to start before the slot's confirmed
// position fails with ErrPositionLost instead of silently skipping
// changes.
//
// Current returns pg_current_wal_insert_lsn() after the slot exists, and
// then waits until every transaction that was running at that moment has
// ended and is visible to new snapshots (until it lets go of the lock on
// its own transaction ID, pg_locks). A transaction is thus either seen by
// every read that starts after Current returns (a full load), or has its
// commit record after the position, where the slot retains it. Neither
// its status in the commit log (pg_xact_status) nor a snapshot's list of
// running transactions is enough: a commit is recorded in the log before
// other sessions see it (for a moment, or for as long as it waits for a
// synchronous standby), and a snapshot leaves out running transactions
// whose IDs are at or past its xmax; a load reading in between would miss
// the row, and the stream would skip it as committed before the position.
//
// # Row images
//
// Values arrive in text form and are decoded by type OID: integers to
// int64, float4/8 to float64, bool, bytea to []byte, timestamptz and
// timestamp to time.Time in UTC (the replication session runs with
// TimeZone UTC and DateStyle ISO), date to time.Time, and numeric (exact
// text), time, timetz, json, jsonb, uuid and every other type to their
// text. Infinite timestamps and BC dates are rejected with an error.
//
// An UPDATE that does not change a TOASTed (large, out-of-line) column
// does not carry its value. The replicated tables use REPLICA IDENTITY
// FULL, so the old row image, which the server sends with such values
// inlined, fills them in: the image is the row exactly as that transaction
// left it. (Reading the current row instead would give a later state and
// break transactional consistency.) FULL also makes the old image carry
// the old primary key, so an UPDATE that changes the key becomes a delete
// of the old key and an upsert of the new one. The cost is WAL volume:
// every UPDATE and DELETE logs the whole old row.
//
// A Relation message whose columns (names, types, type modifiers) differ
// from the ones last seen for the table (at first, the catalog's when the
// source was opened) emits a replicate.OpSchema change for the table before
// its next row. A Relation message that gives a relation (by OID) a new
// name (ALTER TABLE ... RENAME TO) — a name other than the one its last
// Relation message had, or, for its first one in the stream, than the one
// it had when the stream started, when that new name is its name now —
// emits an OpSchema change with Change.NewTable before its next row, and
// the table's rows are read under the new name from then on; the
// publication keeps the table, since it holds it by OID. (pgoutput sends
// it only with the table's next row change: a stream that restarts
// between the rename and that change finds the table under its new name
// only, as a table new to it.) A table not
// in the publication sends nothing, so one renamed into the stream's
// table globs joins it at its next start. A TRUNCATE of a replicated table is an OpSchema change
// whose DDL is "TRUNCATE <table>", at its place in the transaction: the
// stream deletes the target's rows there.
//
// # Origins
//
// Marker implements replicate.OriginMarker for Postgres targets:
// MarkOrigin upserts the row (id = origin) of _ic_replication_origin
// inside the apply transaction, and a source streaming with SkipReplicated
// skips every transaction that wrote to that table, so a bidirectional
// pair does not echo. (PostgreSQL 16 can filter with the publication
// option origin = none and replication origins, pg_replication_origin_*
// set in the applying session; this marker table also works on 15 and
// needs no superuser.)
package pgsrc

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intercloud/intercloud/internal/readpace"
	"github.com/intercloud/intercloud/internal/redact"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/postgres"
)

// Dialect is the sqldb dialect this source registers for.
const Dialect = "postgres"

// Names of the capture objects.
const (
	// Publication is the publication every stream of a database reads.
	Publication = "intercloud"
	// OriginTable holds the origin marks of replication apply
	// transactions.
	OriginTable = "_ic_replication_origin"
	// SlotPrefix starts every replication slot name.
	SlotPrefix = "intercloud_"
)

// MaxTxnChanges bounds the changes of one transaction held in memory; a
// larger transaction is delivered in parts (see the package doc).
const MaxTxnChanges = 500_000

// Errors.
var (
	// ErrTruncate was returned by Stream at a TRUNCATE of a replicated
	// table; a TRUNCATE is now an OpSchema change. Kept for callers that
	// test for it.
	//
	// Deprecated: Stream no longer returns it.
	ErrTruncate = replicate.Permanent(errors.New("pgsrc: a replicated table was truncated; the target needs a new full load"))
	// ErrPositionLost is returned by Stream when asked to start before the
	// slot's confirmed position (the changes between were discarded). It
	// is permanent, like ErrTruncate.
	ErrPositionLost = replicate.Permanent(errors.New("pgsrc: the replication slot has moved past the requested position"))
	// ErrNoSlot is returned when a stream's replication slot does not
	// exist.
	ErrNoSlot = errors.New("pgsrc: replication slot does not exist")
)

func init() { replicate.RegisterSource(Dialect, Driver{}) }

// The interfaces a source package implements, checked at compile time.
var (
	_ replicate.SourceDriver = Driver{}
	_ replicate.Source       = (*Source)(nil)
	_ replicate.OriginMarker = Marker{}
)

// Driver is the Postgres source driver.
type Driver struct{}

var (
	_ replicate.SourceDriver = Driver{}
	_ replicate.Preparer     = Driver{}
	_ replicate.Source       = (*Source)(nil)
	_ replicate.OriginMarker = Marker{}
	_ replicate.OriginSetup  = Marker{}
)

// Open implements replicate.SourceDriver.
func (Driver) Open(ctx context.Context, db *sqldb.DB, cfg replicate.SourceConfig) (replicate.Source, error) {
	return Open(ctx, db, cfg)
}

// Marker implements replicate.SourceDriver.
func (Driver) Marker() replicate.OriginMarker { return Marker{} }

// ErrWALLevel is returned by Check when the server's wal_level is not
// logical, which logical replication needs.
var ErrWALLevel = replicate.Permanent(errors.New("pgsrc: wal_level is not logical"))

// Check implements replicate.Checker: the server's wal_level is logical.
func (Driver) Check(ctx context.Context, db *sqldb.DB) error {
	var level string
	if err := db.QueryRowContext(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return fmt.Errorf("pgsrc: read wal_level: %w", err)
	}
	if level != "logical" {
		return fmt.Errorf("%w: it is %s (ALTER SYSTEM SET wal_level = logical, then restart the server)", ErrWALLevel, level)
	}
	return nil
}

// Prepare implements replicate.Preparer.
func (Driver) Prepare(ctx context.Context, db *sqldb.DB, tables []string, log *slog.Logger) error {
	_, err := Install(ctx, db, tables)
	return err
}

// tableInfo is what the source knows of one captured table.
type tableInfo struct {
	def  sqldb.Table
	cols []relColumn // from the catalog when opened
}

// Install creates the capture objects for the tables (see the package doc)
// and returns their schemas. It is idempotent. Every table must exist and
// have a primary key.
func Install(ctx context.Context, db *sqldb.DB, tables []string) (map[string]sqldb.Table, error) {
	if db.Dialect.Name() != Dialect {
		return nil, fmt.Errorf("pgsrc: database %s is %s, not postgres", db.Name, db.Dialect.Name())
	}
	out := map[string]sqldb.Table{}
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('intercloud.pgsrc.install'))`); err != nil {
			return fmt.Errorf("pgsrc: install: lock: %w", err)
		}
		// The marker table is created when the user may create tables; a
		// user with SELECT and REPLICATION only (a one-way stream, whose
		// source nothing replicates into) reads without it.
		var haveOrigin, mayCreate bool
		if err := tx.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL, has_schema_privilege(current_schema(), 'CREATE')`, OriginTable).Scan(&haveOrigin, &mayCreate); err != nil {
			return fmt.Errorf("pgsrc: install: %s: %w", OriginTable, err)
		}
		if !haveOrigin && mayCreate {
			if _, err := tx.ExecContext(ctx, originDDL); err != nil {
				return fmt.Errorf("pgsrc: install: create %s: %w", OriginTable, err)
			}
			haveOrigin = true
		}
		for _, name := range tables {
			if name == OriginTable {
				continue
			}
			def, err := db.Dialect.Describe(ctx, tx, name)
			if err != nil {
				if errors.Is(err, sqldb.ErrNoTable) {
					return fmt.Errorf("pgsrc: capture %q: the table does not exist", name)
				}
				return fmt.Errorf("pgsrc: capture %s: %w", name, err)
			}
			if len(def.PrimaryKey) == 0 {
				return fmt.Errorf("pgsrc: capture: table %q %w", name, replicate.ErrNoPrimaryKey)
			}
			out[name] = def
			var ident string
			if err := tx.QueryRowContext(ctx, `SELECT relreplident::text FROM pg_class WHERE oid = to_regclass(quote_ident($1))`, name).Scan(&ident); err != nil {
				return fmt.Errorf("pgsrc: capture %s: replica identity: %w", name, err)
			}
			if ident != "f" {
				if _, err := tx.ExecContext(ctx, `ALTER TABLE `+quote(name)+` REPLICA IDENTITY FULL`); err != nil {
					return fmt.Errorf("pgsrc: capture %s: set replica identity full (a user who may not alter the table needs its owner to run ALTER TABLE %s REPLICA IDENTITY FULL): %w", name, quote(name), err)
				}
			}
		}
		want := slices.Clone(tables)
		if haveOrigin {
			want = append([]string{OriginTable}, tables...)
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, Publication).Scan(&exists); err != nil {
			return fmt.Errorf("pgsrc: install: publication: %w", err)
		}
		if !exists {
			if _, err := tx.ExecContext(ctx, `CREATE PUBLICATION `+quote(Publication)+` FOR TABLE `+quoteList(dedup(want))); err != nil {
				return fmt.Errorf("pgsrc: install: create publication (a user who may not create it needs the tables' owner to run CREATE PUBLICATION %s FOR TABLE %s): %w",
					quote(Publication), quoteList(dedup(want)), err)
			}
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT tablename FROM pg_publication_tables WHERE pubname = $1 AND schemaname = current_schema()`, Publication)
		if err != nil {
			return fmt.Errorf("pgsrc: install: publication tables: %w", err)
		}
		have := map[string]bool{}
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return fmt.Errorf("pgsrc: install: publication tables: %w", err)
			}
			have[t] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("pgsrc: install: publication tables: %w", err)
		}
		var missing []string
		for _, t := range dedup(want) {
			if !have[t] {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			if _, err := tx.ExecContext(ctx, `ALTER PUBLICATION `+quote(Publication)+` ADD TABLE `+quoteList(missing)); err != nil {
				return fmt.Errorf("pgsrc: install: add tables to publication (a user who may not alter it needs its owner to run ALTER PUBLICATION %s ADD TABLE %s): %w",
					quote(Publication), quoteList(missing), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const originDDL = `CREATE TABLE IF NOT EXISTS ` + OriginTable + ` (
	id TEXT PRIMARY KEY,
	origin TEXT NOT NULL,
	at TIMESTAMPTZ NOT NULL DEFAULT now())`

func quote(id string) string { return `"` + strings.ReplaceAll(id, `"`, `""`) + `"` }

func quoteList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = quote(id)
	}
	return strings.Join(q, ", ")
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// SlotName returns the replication slot name of a consumer:
// "intercloud_" and the name in lower case with every character other than
// a-z, 0-9 and _ replaced by _; a name that needed changes or is too long
// gets a hash suffix, so distinct names have distinct slots.
func SlotName(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s != name || len(SlotPrefix)+len(s) > 63 {
		sum := sha256.Sum256([]byte(name))
		if len(s) > 40 {
			s = s[:40]
		}
		s += "_" + hex.EncodeToString(sum[:5])
	}
	return SlotPrefix + s
}

// EnsureSlot creates the consumer's logical replication slot (pgoutput)
// when it does not exist. The slot captures every change committed after
// EnsureSlot returns. Call it after Prepare and before writes when a
// stream will start without a full load (replicate.Config.SkipFullLoad).
func EnsureSlot(ctx context.Context, db *sqldb.DB, name string) error {
	slot := SlotName(name)
	var plugin sql.NullString
	err := db.QueryRowContext(ctx, `SELECT plugin FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&plugin)
	switch {
	case err == nil:
		if plugin.String != "pgoutput" {
			return fmt.Errorf("pgsrc: replication slot %s exists with plugin %q, not pgoutput", slot, plugin.String)
		}
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("pgsrc: replication slot %s: %w", slot, err)
	}
	_, err = db.ExecContext(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42710" { // created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgsrc: create replication slot %s: %w", slot, err)
	}
	return nil
}

// DropSlot drops the consumer's replication slot (and with it the WAL it
// retains), and then the consumer's filtered publications, which no other
// consumer reads (see dropFiltered). Call it when a stream is removed for
// good; a later stream of that name needs a full load. Dropping a missing
// slot is not an error; a slot in use is, and then nothing is dropped.
//
// A slot still held by a stream that just stopped stays active until the
// server notices its walsender is gone; DropSlot waits for that (up to
// 10 s) rather than fail.
func DropSlot(ctx context.Context, db *sqldb.DB, name string) error {
	slot := SlotName(name)
	err := whileSlotActive(ctx, func() error {
		_, err := db.ExecContext(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgsrc: drop replication slot %s: %w", slot, err)
	}
	return dropFiltered(ctx, db, name)
}

// slotActiveWait is how long whileSlotActive waits for a slot to be let go.
const slotActiveWait = 10 * time.Second

// whileSlotActive runs fn again while it fails because the replication
// slot is still active (SQLSTATE 55006, object_in_use), for up to
// slotActiveWait: a stream that just stopped holds its slot until the
// server notices its walsender is gone.
func whileSlotActive(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(slotActiveWait)
	for {
		err := fn()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Source reads a Postgres database's changes for one consumer.
type Source struct {
	db     *sqldb.DB
	log    *slog.Logger
	slot   string
	tables map[string]*tableInfo
	// pubs are the consumer's filtered publications, readable from
	// pubsFrom on (see "Filtered publications"); nil: it reads Publication.
	pubs     []string
	pubsFrom pglogrepl.LSN
	// inserts counts the insert messages received.
	inserts atomic.Int64
}

// Open installs capture for the tables, creates the consumer's slot when
// missing, and returns the consumer's source.
func Open(ctx context.Context, db *sqldb.DB, cfg replicate.SourceConfig) (*Source, error) {
	if cfg.Name == "" {
		return nil, errors.New("pgsrc: open: SourceConfig.Name is required (it names the replication slot)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	defs, err := Install(ctx, db, cfg.Tables)
	if err != nil {
		return nil, err
	}
	s := &Source{
		db:     db,
		slot:   SlotName(cfg.Name),
		log:    cfg.Logger.With("component", "replicate.pgsrc", "db", db.Name, "slot", SlotName(cfg.Name)),
		tables: map[string]*tableInfo{},
	}
	for name, def := range defs {
		cols, err := catalogColumns(ctx, db, name)
		if err != nil {
			return nil, err
		}
		s.tables[name] = &tableInfo{def: def, cols: cols}
	}
	// The filtered publications exist before the slot (see "Filtered
	// publications").
	if s.pubs, s.pubsFrom, err = installFiltered(ctx, db, cfg.Name, slices.Sorted(maps.Keys(defs)), cfg.ReplicatedInserts, s.log); err != nil {
		return nil, err
	}
	if err := EnsureSlot(ctx, db, cfg.Name); err != nil {
		return nil, err
	}
	return s, nil
}

// catalogColumns returns a table's live columns as a Relation message
// describes them.
func catalogColumns(ctx context.Context, db *sqldb.DB, table string) ([]relColumn, error) {
	rows, err := db.QueryContext(ctx, `SELECT attname, atttypid, atttypmod FROM pg_attribute
WHERE attrelid = to_regclass(quote_ident($1)) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	if err != nil {
		return nil, fmt.Errorf("pgsrc: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []relColumn
	for rows.Next() {
		var c relColumn
		var typ int64
		if err := rows.Scan(&c.name, &typ, &c.mod); err != nil {
			return nil, fmt.Errorf("pgsrc: columns of %s: %w", table, err)
		}
		c.typ = uint32(typ)
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgsrc: columns of %s: %w", table, err)
	}
	return cols, nil
}

// Close implements replicate.Source; it leaves the database and the slot.
func (s *Source) Close() error { return nil }

// Slot returns the source's replication slot name.
func (s *Source) Slot() string { return s.slot }

// Current implements replicate.Source (see the package doc).
func (s *Source) Current(ctx context.Context) (replicate.Position, error) {
	var lsn string
	if err := s.db.QueryRowContext(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		return "", fmt.Errorf("pgsrc: current position: %w", err)
	}
	// The transactions running now: each holds the lock on its own ID
	// until after other sessions see it ended. (A snapshot's list of
	// running IDs leaves out those at or past its xmax, and the commit
	// log shows a commit before other sessions see it.)
	if err := waitRunning(ctx, s.db); err != nil {
		return "", fmt.Errorf("pgsrc: current position: %w", err)
	}
	l, err := pglogrepl.ParseLSN(lsn)
	if err != nil {
		return "", fmt.Errorf("pgsrc: current position: %w", err)
	}
	return FormatPosition(l), nil
}

var (
	_ replicate.Lagger     = (*Source)(nil)
	_ replicate.Backlogger = Driver{}
)

// Backlog implements replicate.Backlogger: the WAL bytes the consumer's
// slot retains (changes are unknown).
func (Driver) Backlog(ctx context.Context, db *sqldb.DB, consumer string, _ replicate.Position) (int64, int64, error) {
	n, err := SlotLag(ctx, db, SlotName(consumer))
	if err != nil {
		return -1, -1, err
	}
	return -1, n, nil
}

// Lag returns how many bytes of WAL the source's slot retains beyond its
// confirmed position: how far the consumer is behind the server.
func (s *Source) Lag(ctx context.Context) (int64, error) {
	return SlotLag(ctx, s.db, s.slot)
}

// SlotLag returns pg_wal_lsn_diff(pg_current_wal_lsn(),
// confirmed_flush_lsn) of a slot, by its full name.
func SlotLag(ctx context.Context, db *sqldb.DB, slot string) (int64, error) {
	var lag sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&lag)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", ErrNoSlot, slot)
	}
	if err != nil {
		return 0, fmt.Errorf("pgsrc: slot lag of %s: %w", slot, err)
	}
	return lag.Int64, nil
}

// xactLocks selects the locks transactions hold on their own IDs.
const xactLocks = `WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted`

// confirmed returns the slot's confirmed position.
func (s *Source) confirmed(ctx context.Context) (pglogrepl.LSN, error) {
	var lsn sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, s.slot).Scan(&lsn)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", ErrNoSlot, s.slot)
	}
	if err != nil {
		return 0, fmt.Errorf("pgsrc: slot %s: %w", s.slot, err)
	}
	if !lsn.Valid {
		return 0, nil
	}
	return pglogrepl.ParseLSN(lsn.String)
}

// FormatPosition returns the position of an LSN.
func FormatPosition(l pglogrepl.LSN) replicate.Position {
	return replicate.Position(l.String())
}

// ParsePosition returns the LSN of a position ("" is 0: the slot's
// confirmed position).
func ParsePosition(p replicate.Position) (pglogrepl.LSN, error) {
	if p == "" {
		return 0, nil
	}
	s := string(p)
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 || strings.Trim(hi+lo, "0123456789abcdefABCDEF") != "" {
		return 0, fmt.Errorf("pgsrc: bad position %q: want an LSN like 16/B374D848", s)
	}
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		return 0, fmt.Errorf("pgsrc: bad position %q: %w", s, err)
	}
	return l, nil
}

// connect opens a replication connection (replication=database) to db's
// server with the session settings the decoder relies on, its reads paced
// (package readpace: the walsender flushes each message on its own).
func connect(ctx context.Context, db *sqldb.DB) (*pgconn.PgConn, error) {
	u := db.URL()
	if u == nil {
		return nil, errors.New("pgsrc: the database has no URL to open a replication connection with")
	}
	cfg, err := postgres.ConfigFromURL(u)
	if err != nil {
		return nil, fmt.Errorf("pgsrc: replication connection: %w", err)
	}
	pc := cfg.Config.Copy()
	params := map[string]string{}
	for k, v := range pc.RuntimeParams {
		params[k] = v
	}
	params["replication"] = "database"
	params["timezone"] = "UTC"
	params["datestyle"] = "ISO, YMD"
	params["bytea_output"] = "hex"
	params["extra_float_digits"] = "3"
	params["intervalstyle"] = "postgres"
	params["application_name"] = "intercloud-pgsrc"
	pc.RuntimeParams = params
	pc.DialFunc = readpace.Dial(pc.DialFunc, readpace.DefaultGap)
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgsrc: replication connection to %s: %s", db.Name, redact.URLPassword(err.Error(), u))
	}
	return conn, nil
}

// Marker tags the writes of a replication apply transaction on a Postgres
// target with their origin (see the package doc).
type Marker struct{}

// Setup implements replicate.OriginSetup: it creates the marker table.
func (Marker) Setup(ctx context.Context, db *sqldb.DB) error {
	if _, err := db.ExecContext(ctx, originDDL); err != nil {
		return fmt.Errorf("pgsrc: origin table: %w", err)
	}
	return nil
}

// MarkOrigin implements replicate.OriginMarker.
func (Marker) MarkOrigin(ctx context.Context, tx *sql.Tx, origin string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO `+OriginTable+` (id, origin, at) VALUES ($1, $1, now())
ON CONFLICT (id) DO UPDATE SET origin = EXCLUDED.origin, at = EXCLUDED.at`, origin)
	if err != nil {
		return fmt.Errorf("pgsrc: mark origin: %w", err)
	}
	return nil
}

// UnmarkOrigin implements replicate.OriginMarker; the mark is in the
// transaction's WAL already, so there is nothing to undo.
func (Marker) UnmarkOrigin(ctx context.Context, tx *sql.Tx) error { return nil }
