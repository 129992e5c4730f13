// Package pollsrc is the query-based replicate source (mode "poll") for
// any SQL database with triggers: SQLite, MySQL/MariaDB and PostgreSQL
// here. It is the timestamp+incrementing mode of JDBC source connectors,
// made exact for deletes and for concurrent writers.
//
// Install (replicate.PrepareMode and every Open) creates the change table
//
//	_ic_poll_log(seq, tbl, pk, op, at)
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
// The mode cannot tag origins (Marker is nil), so it serves one-way
// streams only. The change table grows until pruned through
// replicate.PruneLog or Config.PruneSource.
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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// LogTable is the change table.
const LogTable = "_ic_poll_log"

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
	_ replicate.SourceDriver = Driver{}
	_ replicate.Preparer     = Driver{}
	_ replicate.LogPruner    = Driver{}
	_ replicate.Backlogger   = Driver{}
	_ replicate.Source       = (*Source)(nil)
	_ replicate.Pruner       = (*Source)(nil)
)

// Marker implements replicate.SourceDriver: the mode cannot tag origins.
func (Driver) Marker() replicate.OriginMarker { return nil }

// Prepare implements replicate.Preparer.
func (Driver) Prepare(ctx context.Context, db *sqldb.DB, tables []string, _ *slog.Logger) error {
	_, err := install(ctx, db, tables)
	return err
}

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
	return &Source{db: db, tables: t, holdBack: hb, log: log.With("component", "replicate.pollsrc", "db", db.Name)}, nil
}

// table is what the source knows of one captured table.
type table struct {
	def   sqldb.Table
	cols  []string
	types []sqldb.Type
	sel   string // SELECT cols FROM t WHERE
}

// dialect is what differs between the supported databases.
type dialect struct {
	logDDL   string
	jsonArr  string // function building a JSON array
	hex      func(string) string
	triggers func(def sqldb.Table, q func(string) string, key func(row string) string) []string
	// count counts the capture triggers of a table (binds: the table,
	// then the trigger names: one, or want of them).
	count string
	want  int
}

// installed reports whether a table's capture triggers all exist.
func (d dialect) installed(ctx context.Context, tx *sql.Tx, tbl string) (bool, error) {
	if d.count == "" {
		return false, nil
	}
	var n int
	args := []any{tbl, "_ic_poll_" + tbl}
	if d.want == 3 {
		args = []any{tbl, "_ic_poll_" + tbl + "_ins", "_ic_poll_" + tbl + "_upd", "_ic_poll_" + tbl + "_del"}
	}
	if err := tx.QueryRowContext(ctx, d.count, args...).Scan(&n); err != nil {
		return false, err
	}
	return n == d.want, nil
}

var dialects = map[string]dialect{
	"sqlite": {
		logDDL: `CREATE TABLE IF NOT EXISTS ` + LogTable + ` (seq INTEGER PRIMARY KEY AUTOINCREMENT,
			tbl TEXT NOT NULL, pk TEXT NOT NULL, op TEXT NOT NULL,
			at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))`,
		jsonArr: "json_array",
		hex:     func(x string) string { return "hex(" + x + ")" },
		triggers: func(def sqldb.Table, q func(string) string, key func(string) string) []string {
			ins := func(row, op string) string {
				return fmt.Sprintf("INSERT INTO %s (tbl, pk, op) VALUES (%s, %s, '%s');", LogTable, sqlString(def.Name), key(row), op)
			}
			name := func(s string) string { return q("_ic_poll_" + def.Name + "_" + s) }
			return []string{
				"DROP TRIGGER IF EXISTS " + name("ins"),
				"DROP TRIGGER IF EXISTS " + name("upd"),
				"DROP TRIGGER IF EXISTS " + name("del"),
				fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s BEGIN %s END", name("ins"), q(def.Name), ins("NEW", "I")),
				fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s BEGIN %s %s END", name("upd"), q(def.Name),
					fmt.Sprintf("INSERT INTO %s (tbl, pk, op) SELECT %s, %s, 'D' WHERE %s;", LogTable, sqlString(def.Name), key("OLD"), keyChanged(def, q, " IS NOT ")),
					ins("NEW", "U")),
				fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s BEGIN %s END", name("del"), q(def.Name), ins("OLD", "D")),
			}
		},
	},
	"mysql": {
		logDDL: `CREATE TABLE IF NOT EXISTS ` + LogTable + ` (seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
			tbl VARCHAR(255) NOT NULL, pk TEXT NOT NULL, op CHAR(1) NOT NULL,
			at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
		jsonArr: "JSON_ARRAY",
		count: `SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ?
			AND TRIGGER_NAME IN (?, ?, ?)`,
		want: 3,
		hex:  func(x string) string { return "HEX(" + x + ")" },
		triggers: func(def sqldb.Table, q func(string) string, key func(string) string) []string {
			ins := func(row, op string) string {
				return fmt.Sprintf("INSERT INTO %s (tbl, pk, op) VALUES (%s, %s, '%s');", LogTable, sqlString(def.Name), key(row), op)
			}
			name := func(s string) string { return q("_ic_poll_" + def.Name + "_" + s) }
			return []string{
				"DROP TRIGGER IF EXISTS " + name("ins"),
				"DROP TRIGGER IF EXISTS " + name("upd"),
				"DROP TRIGGER IF EXISTS " + name("del"),
				fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s FOR EACH ROW %s", name("ins"), q(def.Name), strings.TrimSuffix(ins("NEW", "I"), ";")),
				fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s FOR EACH ROW BEGIN IF %s THEN %s END IF; %s END", name("upd"), q(def.Name),
					keyChangedMy(def, q), ins("OLD", "D"), ins("NEW", "U")),
				fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s FOR EACH ROW %s", name("del"), q(def.Name), strings.TrimSuffix(ins("OLD", "D"), ";")),
			}
		},
	},
	"postgres": {
		logDDL: `CREATE TABLE IF NOT EXISTS ` + LogTable + ` (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			tbl TEXT NOT NULL, pk TEXT NOT NULL, op CHAR(1) NOT NULL,
			at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())`,
		jsonArr: "json_build_array",
		count: `SELECT COUNT(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
			WHERE c.relname = $1 AND pg_table_is_visible(c.oid) AND t.tgname = $2`,
		want: 1,
		hex:  func(x string) string { return "encode(" + x + ", 'hex')" },
		triggers: func(def sqldb.Table, q func(string) string, key func(string) string) []string {
			fn := q("_ic_poll_" + def.Name)
			ins := func(row, op string) string {
				return fmt.Sprintf("INSERT INTO %s (tbl, pk, op) VALUES (%s, %s::text, %s);", LogTable, sqlString(def.Name), key(row), op)
			}
			return []string{
				fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (%s)) THEN %s END IF;
  IF TG_OP <> 'DELETE' THEN %s END IF;
  RETURN NULL;
END $f$`, fn, keyChanged(def, q, " IS DISTINCT FROM "), ins("OLD", "'D'"), ins("NEW", "left(TG_OP, 1)")),
				fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", fn, q(def.Name)),
				fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()", fn, q(def.Name), fn),
			}
		},
	},
}

func sqlString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func keyChanged(def sqldb.Table, q func(string) string, op string) string {
	var ors []string
	for _, k := range def.PrimaryKey {
		ors = append(ors, "OLD."+q(k)+op+"NEW."+q(k))
	}
	return strings.Join(ors, " OR ")
}

func keyChangedMy(def sqldb.Table, q func(string) string) string {
	var ors []string
	for _, k := range def.PrimaryKey {
		ors = append(ors, "NOT (OLD."+q(k)+" <=> NEW."+q(k)+")")
	}
	return strings.Join(ors, " OR ")
}

func dialectOf(db *sqldb.DB) (dialect, error) {
	d, ok := dialects[db.Dialect.Name()]
	if !ok {
		return d, replicate.Permanent(fmt.Errorf("pollsrc: database %s is %s; the poll source supports sqlite, mysql and postgres", db.Name, db.Dialect.Name()))
	}
	return d, nil
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
		stmts := []string{d.logDDL}
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
			key := func(row string) string {
				parts := make([]string, len(def.PrimaryKey))
				for i, k := range def.PrimaryKey {
					c, _ := def.Column(k)
					parts[i] = row + "." + q(k)
					if c.Type.Kind == sqldb.KindBytes {
						parts[i] = d.hex(parts[i])
					}
				}
				return d.jsonArr + "(" + strings.Join(parts, ", ") + ")"
			}
			// Recreating a trigger takes an exclusive lock on the table,
			// which waits for every open writer and blocks the ones after
			// it: only install what is missing.
			have, err := d.installed(ctx, tx, def.Name)
			if err != nil {
				return fmt.Errorf("pollsrc: capture %s: %w", name, err)
			}
			if !have {
				stmts = append(stmts, d.triggers(def, q, key)...)
			}
			t := &table{def: def, cols: def.ColumnNames()}
			for _, c := range def.Columns {
				t.types = append(t.types, c.Type)
			}
			t.sel = "SELECT " + sqldb.SelectList(db.Dialect, def, t.cols) + " FROM " + q(def.Name) + " WHERE "
			out[name] = t
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
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

// Source polls a database's change table.
type Source struct {
	db       *sqldb.DB
	tables   map[string]*table
	holdBack time.Duration
	log      *slog.Logger

	mu     sync.Mutex
	closed bool
}

// ErrClosed is returned by a closed source.
var ErrClosed = errors.New("pollsrc: source closed")

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

// FormatPosition returns the position of a seq.
func FormatPosition(seq int64) replicate.Position {
	return replicate.Position(strconv.FormatInt(seq, 10))
}

// ParsePosition returns the seq of a position ("" is 0).
func ParsePosition(p replicate.Position) (int64, error) {
	if p == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(p), 10, 64)
	if err != nil || n < 0 {
		return 0, replicate.Permanent(fmt.Errorf("pollsrc: bad position %q: want a non-negative decimal seq", string(p)))
	}
	return n, nil
}

// Current implements replicate.Source: the highest seq committed. Changes
// in flight below it are found by Stream's hold-back, not skipped.
func (s *Source) Current(ctx context.Context) (replicate.Position, error) {
	var seq sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT MAX(seq) FROM "+LogTable).Scan(&seq); err != nil {
		return "", fmt.Errorf("pollsrc: current position: %w", err)
	}
	// A mark at MAX(seq) would skip smaller seqs still in flight: start
	// below the ones that may be, and let the hold-back wait for them.
	return FormatPosition(max(seq.Int64-inFlightMargin, 0)), nil
}

// inFlightMargin is how far below the highest visible seq Current starts:
// changes in that window are delivered again (harmless, applying is
// idempotent) rather than missed when their transactions commit late.
const inFlightMargin = 1000

type entry struct {
	seq     int64
	tbl, pk string
	op      string
	at      time.Time
}

// Stream implements replicate.Source.
func (s *Source) Stream(ctx context.Context, from replicate.Position, opts replicate.StreamOptions, fn func(context.Context, replicate.Batch) error) error {
	if opts.SkipReplicated {
		return replicate.Permanent(errors.New("pollsrc: the poll source cannot tell replicated changes apart; use it for one-way streams"))
	}
	mark, err := ParsePosition(from)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, t := range opts.Tables {
		if _, ok := s.tables[t]; !ok {
			return fmt.Errorf("pollsrc: stream: table %q is not captured by this source", t)
		}
		want[t] = true
	}
	if len(opts.Tables) == 0 {
		for t := range s.tables {
			want[t] = true
		}
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = replicate.DefaultBatchSize
	}
	if opts.Poll <= 0 {
		opts.Poll = replicate.DefaultPoll
	}
	gaps := map[int64]time.Time{} // first seq of a gap → when first seen
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if s.isClosed() {
			return ErrClosed
		}
		b, next, full, err := s.read(ctx, mark, want, opts.MaxBatch, gaps)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if next > mark {
			if err := fn(ctx, b); err != nil {
				return err
			}
			mark = next
			for g := range gaps {
				if g <= mark {
					delete(gaps, g)
				}
			}
			if full {
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

// read returns the batch after mark and the mark after it; full says the
// batch was cut at maxBatch (read again at once).
func (s *Source) read(ctx context.Context, mark int64, want map[string]bool, maxBatch int, gaps map[int64]time.Time) (replicate.Batch, int64, bool, error) {
	var b replicate.Batch
	next := mark
	full := false
	opts := &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	if s.db.Dialect.Name() == "sqlite" {
		opts = nil
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return b, mark, false, fmt.Errorf("pollsrc: read: %w", err)
	}
	defer tx.Rollback()
	ph := s.db.Dialect.Placeholder
	rows, err := tx.QueryContext(ctx, "SELECT seq, tbl, pk, op, at FROM "+LogTable+" WHERE seq > "+ph(1)+" ORDER BY seq LIMIT "+strconv.Itoa(maxBatch), mark)
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
		if err := rows.Scan(&e.seq, &e.tbl, &e.pk, &e.op, &at); err != nil {
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
	for i, e := range entries {
		if j, ok := last[e.tbl+"\x00"+e.pk]; !ok || j != i {
			continue
		}
		t := s.tables[e.tbl]
		key, err := decodeKey(t, e.pk)
		if err != nil {
			return b, mark, false, replicate.Permanent(fmt.Errorf("pollsrc: change %d: %w", e.seq, err))
		}
		ch, err := s.current(ctx, tx, t, key)
		if err != nil {
			return b, mark, false, err
		}
		b.Changes = append(b.Changes, ch)
	}
	return b, next, full, nil
}

// current reads the current row of key as a change.
func (s *Source) current(ctx context.Context, tx *sql.Tx, t *table, key []any) (replicate.Change, error) {
	var where []string
	for i, k := range t.def.PrimaryKey {
		where = append(where, s.db.Dialect.Quote(k)+" = "+s.db.Dialect.Placeholder(i+1))
	}
	vals := make([]any, len(t.cols))
	ptrs := make([]any, len(t.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := tx.QueryRowContext(ctx, t.sel+strings.Join(where, " AND "), key...).Scan(ptrs...)
	if errors.Is(err, sql.ErrNoRows) {
		return replicate.Change{Table: t.def.Name, Op: replicate.OpDelete, Key: key}, nil
	}
	if err != nil {
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
	res, err := db.ExecContext(ctx, "DELETE FROM "+LogTable+" WHERE seq <= "+db.Dialect.Placeholder(1), seq)
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
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+LogTable+" WHERE seq > "+db.Dialect.Placeholder(1), seq).Scan(&n); err != nil {
		return -1, -1, fmt.Errorf("pollsrc: backlog: %w", err)
	}
	return n, -1, nil
}
