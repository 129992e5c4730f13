// Package sqlitesrc is the replicate source for SQLite (dialect "sqlite"): a
// trigger-fed change table.
//
// Install (called by replicate.Prepare and by every Open) adds AFTER
// INSERT, UPDATE and DELETE triggers to each replicated table. They append
// one row per changed key to
//
//	_ic_changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl, pk, op, origin, at, rid)
//
// where pk is a JSON array of the key's values (BLOB key columns as hex),
// op is I, U or D, at the time of the change in milliseconds since the
// Unix epoch (changes logged by earlier versions hold RFC 3339 text, UTC,
// which is read too), rid the changed row's rowid when the table has one
// (a hint for the read, see below; NULL in changes logged by earlier
// versions, whose change table the next Install gives the column), and
// origin the content of the one-row table _ic_origin, which
// Marker.MarkOrigin sets inside a replication apply transaction and
// UnmarkOrigin clears before it commits. SQLite has one writer at a time, so only that transaction's
// writes carry the tag. An update that changes the primary key records the
// old key (as a delete) and the new one.
//
// A Position is the seq as a decimal string. Because SQLite commits one
// writer at a time and seq grows with every insert, seq order is commit
// order and the log has no gaps a reader could later see filled.
//
// Stream polls the change table and, in the same read transaction, reads
// the current row of every changed key: a row that exists becomes an
// OpUpsert with its full current image, a missing one an OpDelete. The
// result converges and is consistent as of that read, and several changes
// of one key in a batch collapse into one. SQLite does not expose
// transaction ids, so batch boundaries may fall anywhere between changes;
// since each batch carries current row images that is still consistent.
// A source of one table reads the changes and their rows in one statement:
// the change table joined on the row at the logged rowid, which is one
// B-tree lookup by integer where a lookup by key is two (the key's index,
// then the row), and, for a change without a rowid or of a table without
// rowids, on the primary key. A rowid is only a hint (VACUUM may renumber
// the rowids of a table without an INTEGER PRIMARY KEY, a deleted rowid may
// be reused): a row whose key is not the change's is read again by key. A
// source of several tables reads the rows by key afterwards. A stream that
// skips replicated changes does not read them, only counts them.
//
// Schema changes are noticed by SQLite's schema version when changes are
// next read. A replicated table renamed with ALTER TABLE ... RENAME TO
// keeps its capture triggers (SQLite moves them with it), which go on
// logging the old name: the source finds the new name by the triggers'
// table, emits an OpSchema change with Change.NewTable, and reads the
// changes logged under either name as the new one's. The next Install of
// the table under its new name moves the logged changes to it and
// replaces the triggers.
//
// The change table grows until pruned: Prune drops the changes at or before
// a position. Whoever knows every consumer of a database's log trims it
// through replicate.PruneLog (the driver is a replicate.LogPruner), up to
// the smallest position they have all applied; a replicate.Stream with
// Config.PruneSource does it itself when it is the only consumer.
package sqlitesrc

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// Dialect is the sqldb dialect this source registers for.
const Dialect = "sqlite"

// Names of the capture objects.
const (
	ChangesTable = "_ic_changes"
	OriginTable  = "_ic_origin"
)

func init() { replicate.RegisterSource(Dialect, Driver{}) }

// The interfaces a source package implements, checked at compile time.
var (
	_ replicate.SourceDriver = Driver{}
	_ replicate.Source       = (*Source)(nil)
	_ replicate.OriginMarker = Marker{}
)

// Driver is the SQLite source driver.
type Driver struct{}

var (
	_ replicate.SourceDriver = Driver{}
	_ replicate.Preparer     = Driver{}
	_ replicate.Source       = (*Source)(nil)
	_ replicate.Pruner       = (*Source)(nil)
	_ replicate.LogPruner    = Driver{}
	_ replicate.OriginMarker = Marker{}
	_ replicate.OriginSetup  = Marker{}
)

// Open implements replicate.SourceDriver.
func (Driver) Open(ctx context.Context, db *sqldb.DB, cfg replicate.SourceConfig) (replicate.Source, error) {
	tables, log := cfg.Tables, cfg.Logger
	return Open(ctx, db, tables, log)
}

// Marker implements replicate.SourceDriver.
func (Driver) Marker() replicate.OriginMarker { return Marker{} }

// Prepare implements replicate.Preparer.
func (Driver) Prepare(ctx context.Context, db *sqldb.DB, tables []string, log *slog.Logger) error {
	return Install(ctx, db, tables)
}

// table is what the source knows of one captured table.
type table struct {
	def       sqldb.Table
	cols      []string
	selectAll string // SELECT cols FROM t
	byKey     string // SELECT cols FROM t WHERE pk = ?
	// joined reads the changes of a span of seqs with the current row
	// of each change's key (see readJoined).
	joined string
	pkIdx  []int // the primary key's columns among cols
	kinds  []sqldb.Kind
	tid    int // the _trace_id column among cols, -1 for none
}

// Install creates the change and origin tables and (re)creates the capture
// triggers of each table, in one transaction. It is idempotent. Every table
// must exist and have a primary key.
func Install(ctx context.Context, db *sqldb.DB, tables []string) error {
	_, err := install(ctx, db, tables)
	return err
}

func install(ctx context.Context, db *sqldb.DB, tables []string) (map[string]*table, error) {
	if db.Dialect.Name() != Dialect {
		return nil, fmt.Errorf("sqlitesrc: database %s is %s, not sqlite", db.Name, db.Dialect.Name())
	}
	out := map[string]*table{}
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if err := createChanges(ctx, tx); err != nil {
			return err
		}
		var stmts []string
		for _, name := range tables {
			def, err := db.Dialect.Describe(ctx, tx, name)
			if err != nil {
				if errors.Is(err, sqldb.ErrNoTable) {
					return fmt.Errorf("sqlitesrc: capture %q: the table does not exist", name)
				}
				return fmt.Errorf("sqlitesrc: capture %s: %w", name, err)
			}
			if len(def.PrimaryKey) == 0 {
				return fmt.Errorf("sqlitesrc: capture: table %q %w", name, replicate.ErrNoPrimaryKey)
			}
			moved, err := formerCapture(ctx, tx, name)
			if err != nil {
				return err
			}
			rowid, err := rowidName(ctx, tx, def)
			if err != nil {
				return err
			}
			stmts = append(stmts, moved...)
			stmts = append(stmts, triggers(def, rowid)...)
			out[name] = newTable(def, rowid)
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("sqlitesrc: install capture: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// createChanges creates the change and origin tables, and adds the rid
// column to a change table created by an earlier version.
func createChanges(ctx context.Context, tx *sql.Tx) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + ChangesTable + ` (
			seq INTEGER PRIMARY KEY AUTOINCREMENT,
			tbl TEXT NOT NULL,
			pk TEXT NOT NULL,
			op TEXT NOT NULL,
			origin TEXT NOT NULL DEFAULT '',
			at TEXT NOT NULL,
			rid INTEGER)`,
		`CREATE TABLE IF NOT EXISTS ` + OriginTable + ` (id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT)`,
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("sqlitesrc: install capture: %w", err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = 'rid'`, ChangesTable).Scan(&n); err != nil {
		return fmt.Errorf("sqlitesrc: install capture: %w", err)
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE `+ChangesTable+` ADD COLUMN rid INTEGER`); err != nil {
			return fmt.Errorf("sqlitesrc: install capture: add rid: %w", err)
		}
	}
	return nil
}

// rowidName returns the name a table's rowid goes by in its statements:
// rowid, or _rowid_ or oid when a column takes that name; "" for a table
// without rowids or whose columns take all three.
func rowidName(ctx context.Context, tx *sql.Tx, def sqldb.Table) (string, error) {
	var withoutRowid bool
	if err := tx.QueryRowContext(ctx, `SELECT wr FROM pragma_table_list(?) WHERE schema = 'main'`, def.Name).Scan(&withoutRowid); err != nil {
		return "", fmt.Errorf("sqlitesrc: capture %s: %w", def.Name, err)
	}
	if withoutRowid {
		return "", nil
	}
	for _, name := range []string{"rowid", "_rowid_", "oid"} {
		if !slices.ContainsFunc(def.Columns, func(c sqldb.Column) bool { return strings.EqualFold(c.Name, name) }) {
			return name, nil
		}
	}
	return "", nil
}

// formerCapture returns the statements that move the capture of a table
// renamed since it was installed (SQLite's ALTER TABLE ... RENAME TO keeps
// the triggers, named after the old name and logging it) to its name: the
// changes logged under the old name are renamed, the old triggers dropped.
func formerCapture(ctx context.Context, tx *sql.Tx, table string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? AND name LIKE '\_ic\_%' ESCAPE '\'`, table)
	if err != nil {
		return nil, fmt.Errorf("sqlitesrc: capture %s: triggers: %w", table, err)
	}
	defer rows.Close()
	var stmts []string
	seen := map[string]bool{}
	for rows.Next() {
		var trig string
		if err := rows.Scan(&trig); err != nil {
			return nil, fmt.Errorf("sqlitesrc: capture %s: triggers: %w", table, err)
		}
		old, ok := triggerTable(trig)
		if !ok || old == table {
			continue
		}
		stmts = append(stmts, "DROP TRIGGER IF EXISTS "+sqliteQuote(trig))
		if !seen[old] {
			seen[old] = true
			stmts = append(stmts, "UPDATE "+ChangesTable+" SET tbl = "+sqliteString(table)+" WHERE tbl = "+sqliteString(old))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitesrc: capture %s: triggers: %w", table, err)
	}
	return stmts, nil
}

// triggerTable returns the table a capture trigger was made for, from its
// name ("_ic_<table>_ins", "_upd", "_del").
func triggerTable(trigger string) (string, bool) {
	rest, ok := strings.CutPrefix(trigger, "_ic_")
	if !ok {
		return "", false
	}
	for _, suffix := range []string{"_ins", "_upd", "_del"} {
		if t, ok := strings.CutSuffix(rest, suffix); ok && t != "" {
			return t, true
		}
	}
	return "", false
}

// captured returns the captured table def.
func captured(ctx context.Context, tx *sql.Tx, def sqldb.Table) (*table, error) {
	rowid, err := rowidName(ctx, tx, def)
	if err != nil {
		return nil, err
	}
	return newTable(def, rowid), nil
}

// newTable prepares the statements of a captured table whose rowid goes by
// rowid ("" for none, see rowidName).
func newTable(def sqldb.Table, rowid string) *table {
	d := sqliteQuote
	t := &table{def: def, cols: def.ColumnNames()}
	var where []string
	for _, k := range def.PrimaryKey {
		where = append(where, d(k)+" = ?")
		c, _ := def.Column(k)
		t.kinds = append(t.kinds, c.Type.Kind)
	}
	qcols := make([]string, len(t.cols))
	for i, c := range t.cols {
		qcols[i] = d(c)
	}
	t.selectAll = fmt.Sprintf("SELECT %s FROM %s", strings.Join(qcols, ", "), d(def.Name))
	t.byKey = t.selectAll + " WHERE " + strings.Join(where, " AND ")
	t.tid = slices.Index(t.cols, "_trace_id")
	// The key of a change is a JSON array of the key's values (BLOBs as
	// hex): each is matched to its column as its JSON type reads.
	keyIs := func(alias string) string {
		var on []string
		for i, k := range def.PrimaryKey {
			v := fmt.Sprintf("json_extract(c.pk, '$[%d]')", i)
			if t.kinds[i] == sqldb.KindBytes {
				v = "unhex(" + v + ")"
			}
			on = append(on, alias+"."+d(k)+" = "+v)
		}
		return strings.Join(on, " AND ")
	}
	for _, k := range def.PrimaryKey {
		t.pkIdx = append(t.pkIdx, slices.Index(t.cols, k))
	}
	on := keyIs("t")
	if rowid != "" {
		// The logged rowid, or for a change logged without one the
		// rowid of its key's row (coalesce evaluates the subquery only
		// then).
		on = fmt.Sprintf("t.%s = coalesce(c.rid, (SELECT k.%s FROM %s AS k WHERE %s))", rowid, rowid, d(def.Name), keyIs("k"))
	}
	tcols := make([]string, len(t.cols))
	for i, c := range qcols {
		tcols[i] = "t." + c
	}
	t.joined = fmt.Sprintf("SELECT c.pk, %s FROM %s AS c LEFT JOIN %s AS t ON %s "+
		"WHERE c.seq > ? AND c.seq <= ? AND c.tbl = %s AND (? = 0 OR c.origin = '') ORDER BY c.seq",
		strings.Join(tcols, ", "), ChangesTable, d(def.Name), on, sqliteString(def.Name))
	return t
}

func sqliteQuote(id string) string { return `"` + strings.ReplaceAll(id, `"`, `""`) + `"` }

func sqliteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// triggers returns the statements that (re)create a table's capture, for
// a table whose rowid goes by rowid ("" for none, see rowidName).
func triggers(def sqldb.Table, rowid string) []string {
	q := sqliteQuote
	keyJSON := func(row string) string {
		parts := make([]string, len(def.PrimaryKey))
		for i, k := range def.PrimaryKey {
			c, _ := def.Column(k)
			ref := row + "." + q(k)
			if c.Type.Kind == sqldb.KindBytes {
				ref = "hex(" + ref + ")"
			}
			parts[i] = ref
		}
		return "json_array(" + strings.Join(parts, ", ") + ")"
	}
	keyChanged := func() string {
		var ors []string
		for _, k := range def.PrimaryKey {
			ors = append(ors, "OLD."+q(k)+" IS NOT NEW."+q(k))
		}
		return strings.Join(ors, " OR ")
	}
	// ins appends the change of row's key, when cond holds.
	ins := func(row, op, cond string) string {
		rid := "NULL"
		if rowid != "" {
			rid = row + "." + rowid
		}
		// The time in milliseconds (rounded: unixepoch gives seconds
		// as a REAL), which is what strftime with %f printed, for a
		// fraction of its cost.
		stmt := fmt.Sprintf("INSERT INTO %s (tbl, pk, op, origin, at, rid) SELECT %s, %s, '%s', "+
			"COALESCE((SELECT origin FROM %s WHERE id = 1), ''), CAST(unixepoch('subsec') * 1000 + 0.5 AS INTEGER), %s",
			ChangesTable, sqliteString(def.Name), keyJSON(row), op, OriginTable, rid)
		if cond != "" {
			stmt += " WHERE " + cond
		}
		return stmt + ";"
	}
	name := func(suffix string) string { return q("_ic_" + def.Name + "_" + suffix) }
	tbl := q(def.Name)
	return []string{
		"DROP TRIGGER IF EXISTS " + name("ins"),
		"DROP TRIGGER IF EXISTS " + name("upd"),
		"DROP TRIGGER IF EXISTS " + name("del"),
		fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s BEGIN %s END", name("ins"), tbl, ins("NEW", "I", "")),
		fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s BEGIN %s %s END", name("upd"), tbl,
			ins("OLD", "D", keyChanged()), ins("NEW", "U", "")),
		fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s BEGIN %s END", name("del"), tbl, ins("OLD", "D", "")),
	}
}

// Source reads a SQLite database's change table.
type Source struct {
	db     *sqldb.DB
	log    *slog.Logger
	tables map[string]*table

	// schema is the schema version the tables were described at (only
	// Stream's goroutine reads and changes it, and tables and alias after
	// Open).
	schema int64
	// alias maps the name a renamed table's triggers log to its name.
	alias map[string]string

	closed atomic.Bool
}

// Open installs capture for the tables and returns their source.
func Open(ctx context.Context, db *sqldb.DB, tables []string, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.Default()
	}
	t, err := install(ctx, db, tables)
	if err != nil {
		return nil, err
	}
	src := &Source{db: db, log: log.With("component", "replicate.sqlitesrc", "db", db.Name), tables: t, alias: map[string]string{}}
	if src.schema, err = schemaVersion(ctx, db); err != nil {
		return nil, err
	}
	return src, nil
}

// schemaVersion is SQLite's count of schema changes, which every
// CREATE, ALTER and DROP advances.
func schemaVersion(ctx context.Context, q sqldb.Querier) (int64, error) {
	var v int64
	if err := q.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlitesrc: schema version: %w", err)
	}
	return v, nil
}

// schemaChanges notices a schema change since the last read (SQLite keeps
// no log of them): each wanted table whose columns or key changed is
// described afresh, and an OpSchema change for it goes first in the batch,
// so that the target follows (an added column with its default, a
// dropped one, a changed type) before the rows read with the new columns.
// A table that no longer exists gets one too, which stops it visibly, and
// leaves want.
func (s *Source) schemaChanges(ctx context.Context, tx *sql.Tx, want map[string]bool) ([]replicate.Change, error) {
	v, err := schemaVersion(ctx, tx)
	if err != nil || v == s.schema {
		return nil, err
	}
	var out []replicate.Change
	for _, name := range slices.Sorted(maps.Keys(s.tables)) {
		if !want[name] {
			continue
		}
		def, err := s.db.Dialect.Describe(ctx, tx, name)
		if errors.Is(err, sqldb.ErrNoTable) {
			delete(want, name)
			logged := name // the name its triggers log (it may have been renamed before)
			for from, now := range s.alias {
				if now == name {
					logged = from
				}
			}
			to, err := s.renamedTo(ctx, tx, logged)
			if err != nil {
				return nil, err
			}
			if to == "" {
				// Its rows can no longer be read; the change stops it.
				out = append(out, replicate.Change{Table: name, Op: replicate.OpSchema})
				continue
			}
			// Renamed: its triggers still log the old name, read as
			// the new one from now on.
			def, err := s.db.Dialect.Describe(ctx, tx, to)
			if err != nil {
				return nil, fmt.Errorf("sqlitesrc: describe %s: %w", to, err)
			}
			nt, err := captured(ctx, tx, def)
			if err != nil {
				return nil, err
			}
			delete(s.tables, name)
			s.tables[to] = nt
			s.alias[logged] = to
			want[to] = true
			out = append(out, replicate.Change{Table: name, Op: replicate.OpSchema, NewTable: to,
				DDL: "ALTER TABLE " + sqliteQuote(name) + " RENAME TO " + sqliteQuote(to)})
			s.log.Info("table rename noticed", "table", name, "renamed_to", to)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sqlitesrc: describe %s: %w", name, err)
		}
		old := s.tables[name].def
		same := slices.Equal(old.PrimaryKey, def.PrimaryKey) && slices.EqualFunc(old.Columns, def.Columns, func(a, b sqldb.Column) bool {
			return a.Name == b.Name && a.Type.Equal(b.Type) && a.Nullable == b.Nullable
		})
		if same {
			continue
		}
		if s.tables[name], err = captured(ctx, tx, def); err != nil {
			return nil, err
		}
		out = append(out, replicate.Change{Table: name, Op: replicate.OpSchema})
		s.log.Info("schema change noticed", "table", name)
	}
	s.schema = v
	return out, nil
}

// renamedTo returns the name of the table that the capture triggers of
// table now belong to ("" when there is none): SQLite's ALTER TABLE ...
// RENAME TO moves them along with the table.
func (s *Source) renamedTo(ctx context.Context, tx *sql.Tx, table string) (string, error) {
	var to string
	err := tx.QueryRowContext(ctx, `SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name = ?`, "_ic_"+table+"_ins").Scan(&to)
	if errors.Is(err, sql.ErrNoRows) || to == table {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlitesrc: find renamed %s: %w", table, err)
	}
	return to, nil
}

// ErrClosed is returned by a closed source.
var ErrClosed = errors.New("sqlitesrc: source closed")

// Close implements replicate.Source; it leaves the database open.
func (s *Source) Close() error {
	s.closed.Store(true)
	return nil
}

// Current implements replicate.Source: the last seq ever assigned.
func (s *Source) Current(ctx context.Context) (replicate.Position, error) {
	var seq int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), (SELECT MAX(seq) FROM `+ChangesTable+`), 0)`, ChangesTable).Scan(&seq)
	if err != nil {
		return "", fmt.Errorf("sqlitesrc: current position: %w", err)
	}
	return FormatPosition(seq), nil
}

// FormatPosition returns the position of a seq.
func FormatPosition(seq int64) replicate.Position {
	return replicate.SeqPosition(seq)
}

// ParsePosition returns the seq of a position ("" is 0).
func ParsePosition(p replicate.Position) (int64, error) { return replicate.ParseSeqPosition(p) }

// Stream implements replicate.Source. The next batch is read while fn
// applies the last one (replicate.Poll): the read is of this database,
// the apply usually of another, so the two overlap.
func (s *Source) Stream(ctx context.Context, from replicate.Position, opts replicate.StreamOptions, fn func(context.Context, replicate.Batch) error) error {
	seq, err := ParsePosition(from)
	if err != nil {
		return err
	}
	want, err := replicate.StreamTables(opts, s.tables)
	if err != nil {
		return err
	}
	opts = opts.WithDefaults()
	return replicate.Poll(ctx, s.db, opts.Poll, fn, func(ctx context.Context) (replicate.Batch, bool, bool, error) {
		if s.closed.Load() {
			return replicate.Batch{}, false, false, ErrClosed
		}
		b, read, err := s.read(ctx, seq, want, opts)
		if err != nil || read == 0 {
			return b, false, false, err
		}
		if seq, err = ParsePosition(b.Position); err != nil {
			return b, false, false, err
		}
		return b, true, opts.Busy(read), nil
	})
}

// entry is one row of the change table.
type entry struct {
	seq    int64
	tbl    string
	pk     string
	origin string
	at     string
}

// read reads up to MaxBatch changes after seq and the current rows of their
// keys in one read transaction. It returns how many change rows it read.
func (s *Source) read(ctx context.Context, seq int64, want map[string]bool, opts replicate.StreamOptions) (replicate.Batch, int, error) {
	var b replicate.Batch
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // a deferred (snapshot) read
	if err != nil {
		return b, 0, fmt.Errorf("sqlitesrc: read changes: %w", err)
	}
	defer tx.Rollback()
	var (
		sp      span
		entries []entry
		images  [][]any // with one: the row read with each entry, nil for none
	)
	one := s.only(want)
	if one != nil {
		// The joined statement reads the table as last described: after
		// a schema change (the table renamed, dropped, altered) the
		// changes are read alone first, and schemaChanges follows it.
		if v, err := schemaVersion(ctx, tx); err != nil || v != s.schema {
			one = nil
		}
	}
	if one != nil {
		sp, entries, images, err = one.readJoined(ctx, tx, seq, opts)
	} else {
		entries, err = readEntries(ctx, tx, seq, opts.MaxBatch)
		if len(entries) > 0 {
			last := entries[len(entries)-1]
			sp = span{n: len(entries), last: last.seq, at: last.at}
		}
	}
	if err != nil || sp.n == 0 {
		return b, 0, err
	}
	if b.Changes, err = s.schemaChanges(ctx, tx, want); err != nil {
		return b, 0, err
	}
	if one != nil && s.tables[one.def.Name] != one {
		images = nil // described afresh: read its rows with its new columns
	}
	for i, e := range entries {
		if to, ok := s.alias[e.tbl]; ok {
			entries[i].tbl = to
		}
	}
	b.Position = FormatPosition(sp.last)
	b.CommitTime, _ = parseAt(sp.at)
	b.Read = sp.n
	// Keep each key's last change (the image read below is the same for
	// all of them), in the order of those last changes.
	type tableKey struct{ tbl, pk string }
	lastOf := make(map[tableKey]int, len(entries))
	for i, e := range entries {
		if !want[e.tbl] || (opts.SkipReplicated && e.origin != "") {
			continue
		}
		lastOf[tableKey{e.tbl, e.pk}] = i
	}
	type wanted struct {
		e    *entry
		key  []any
		vals []any // the row read with the change; nil: not read yet
	}
	kept := make([]wanted, 0, len(lastOf))
	byTable := map[string][][]any{}
	for i := range entries {
		e := &entries[i]
		if j, ok := lastOf[tableKey{e.tbl, e.pk}]; !ok || j != i {
			continue
		}
		t := s.tables[e.tbl]
		key, err := decodeKey(t, e.pk)
		if err != nil {
			return b, 0, fmt.Errorf("sqlitesrc: change of %s: %w", e.tbl, err)
		}
		w := wanted{e: e, key: key}
		if images != nil {
			// The row at the logged rowid, if it is still this key's.
			if w.vals = images[i]; w.vals != nil && !t.hasKey(w.vals, key) {
				w.vals = nil
			}
		} else {
			byTable[e.tbl] = append(byTable[e.tbl], key)
		}
		kept = append(kept, w)
	}
	// Read the current rows of the kept keys not read yet, a table at a
	// time.
	current := make(map[string]map[string][]any, len(byTable))
	for tbl, keys := range byTable {
		rows, err := s.t(tbl).readRows(ctx, s.db.Dialect, tx, keys)
		if err != nil {
			return b, 0, err
		}
		current[tbl] = rows
	}
	b.Changes = slices.Grow(b.Changes, len(kept))
	for _, w := range kept {
		t := s.tables[w.e.tbl]
		vals, ok := w.vals, w.vals != nil
		if !ok && images == nil {
			vals, ok = current[w.e.tbl][keyString(w.key)]
		}
		if !ok {
			// Not found in bulk: confirm with the exact key before
			// calling it deleted (a value the bulk match may have
			// represented differently).
			var err error
			if vals, ok, err = t.readRow(ctx, tx, w.key); err != nil {
				return b, 0, err
			}
		}
		if !ok {
			b.Changes = append(b.Changes, replicate.Change{Table: w.e.tbl, Op: replicate.OpDelete, Key: w.key})
			continue
		}
		row := make(map[string]any, len(vals))
		for k, c := range t.cols {
			row[c] = vals[k]
		}
		ch := replicate.Change{Table: w.e.tbl, Op: replicate.OpUpsert, Key: w.key, Row: row}
		if t.tid >= 0 {
			switch v := vals[t.tid].(type) {
			case string:
				ch.TraceID = v
			case []byte:
				ch.TraceID = string(v)
			}
		}
		b.Changes = append(b.Changes, ch)
	}
	return b, sp.n, nil
}

// span is the changes one read covers: how many, the last one's seq and
// its time.
type span struct {
	n    int
	last int64
	at   string
}

// spanQuery finds the span of up to LIMIT changes after a seq.
const spanQuery = `WITH r AS (SELECT seq FROM ` + ChangesTable + ` WHERE seq > ? ORDER BY seq LIMIT ?)
	SELECT n, last, (SELECT at FROM ` + ChangesTable + ` WHERE seq = last) FROM (SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS last FROM r)`

// only returns the table of a source that captures one table, when the
// stream reads it and it was not renamed (its triggers log its old name
// until the next Install, which the joined statement does not match);
// nil otherwise.
func (s *Source) only(want map[string]bool) *table {
	if len(s.tables) != 1 || len(s.alias) > 0 {
		return nil
	}
	for name, t := range s.tables {
		if want[name] {
			return t
		}
	}
	return nil
}

// readEntries reads up to limit changes after seq.
func readEntries(ctx context.Context, tx *sql.Tx, seq int64, limit int) ([]entry, error) {
	rows, err := tx.QueryContext(ctx, `SELECT seq, tbl, pk, origin, at FROM `+ChangesTable+` WHERE seq > ? ORDER BY seq LIMIT ?`, seq, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitesrc: read changes: %w", err)
	}
	defer rows.Close()
	var entries []entry
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.seq, &e.tbl, &e.pk, &e.origin, &e.at); err != nil {
			return nil, fmt.Errorf("sqlitesrc: read changes: %w", err)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitesrc: read changes: %w", err)
	}
	return entries, nil
}

// readJoined reads up to MaxBatch changes after seq, and with each change
// of t the current row at its logged rowid (or of its key; see t.joined),
// in one statement: one pass over the change table with a lookup per
// change, instead of a second query binding every key. A change's image
// is nil when there is no such row (then read confirms by key). Only t's
// changes are read, and when the stream skips replicated changes those
// are not read either, only counted in the span.
func (t *table) readJoined(ctx context.Context, tx *sql.Tx, seq int64, opts replicate.StreamOptions) (span, []entry, [][]any, error) {
	var sp span
	var at sql.NullString
	if err := tx.QueryRowContext(ctx, spanQuery, seq, opts.MaxBatch).Scan(&sp.n, &sp.last, &at); err != nil {
		return sp, nil, nil, fmt.Errorf("sqlitesrc: read changes: %w", err)
	}
	sp.at = at.String
	if sp.n == 0 {
		return sp, nil, nil, nil
	}
	skip := 0
	if opts.SkipReplicated {
		skip = 1
	}
	rows, err := tx.QueryContext(ctx, t.joined, seq, sp.last, skip)
	if err != nil {
		return sp, nil, nil, fmt.Errorf("sqlitesrc: read changes of %s: %w", t.def.Name, err)
	}
	defer rows.Close()
	var (
		entries = make([]entry, 0, sp.n)
		images  = make([][]any, 0, sp.n)
		n       = len(t.cols)
		all     []any // the values of the rows, in one allocation
		pk      string
		ptrs    = make([]any, 1+n)
	)
	ptrs[0] = &pk
	for rows.Next() {
		if len(all) < n {
			all = make([]any, n*max(sp.n-len(entries), 1))
		}
		vals := all[:n:n]
		all = all[n:]
		for k := range vals {
			ptrs[1+k] = &vals[k]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return sp, nil, nil, fmt.Errorf("sqlitesrc: read changes of %s: %w", t.def.Name, err)
		}
		for _, j := range t.pkIdx {
			if vals[j] == nil {
				vals = nil
				break
			}
		}
		entries = append(entries, entry{tbl: t.def.Name, pk: pk})
		images = append(images, vals)
	}
	if err := rows.Err(); err != nil {
		return sp, nil, nil, fmt.Errorf("sqlitesrc: read changes of %s: %w", t.def.Name, err)
	}
	return sp, entries, images, nil
}

// hasKey reports whether vals, a row of t, has key (as decodeKey returns
// it).
func (t *table) hasKey(vals, key []any) bool {
	for i, j := range t.pkIdx {
		switch k := key[i].(type) {
		case string:
			if v, ok := vals[j].(string); !ok || v != k {
				return false
			}
		case int64:
			if v, ok := vals[j].(int64); !ok || v != k {
				return false
			}
		case float64:
			if v, ok := vals[j].(float64); !ok || v != k {
				return false
			}
		case []byte:
			if v, ok := vals[j].([]byte); !ok || !bytes.Equal(v, k) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// parseAt reads the time of a change: milliseconds since the Unix epoch,
// or RFC 3339 text (changes logged by earlier versions).
func parseAt(at string) (time.Time, bool) {
	if ms, err := strconv.ParseInt(at, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), true
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	return t, err == nil
}

func (s *Source) t(name string) *table { return s.tables[name] }

// maxKeysPerQuery bounds the keys of one bulk read (SQLite allows 32766
// parameters).
const maxKeysPerQuery = 500

// readRows returns the current rows of keys that exist, by keyString, in
// queries sized for d (sqldb.StatementRows).
func (t *table) readRows(ctx context.Context, d sqldb.Dialect, tx *sql.Tx, keys [][]any) (map[string][]any, error) {
	out := make(map[string][]any, len(keys))
	pkIdx := make([]int, len(t.def.PrimaryKey))
	for i, k := range t.def.PrimaryKey {
		for j, c := range t.cols {
			if c == k {
				pkIdx[i] = j
			}
		}
	}
	for len(keys) > 0 {
		n := sqldb.StatementRows(d, len(keys), maxKeysPerQuery)
		var args []any
		var q string
		if len(t.def.PrimaryKey) == 1 {
			q = t.selectAll + " WHERE " + sqliteQuote(t.def.PrimaryKey[0]) + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
			for _, k := range keys[:n] {
				args = append(args, k[0])
			}
		} else {
			one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(t.def.PrimaryKey)), ", ") + ")"
			cols := make([]string, len(t.def.PrimaryKey))
			for i, c := range t.def.PrimaryKey {
				cols[i] = sqliteQuote(c)
			}
			q = t.selectAll + " WHERE (" + strings.Join(cols, ", ") + ") IN (VALUES " + strings.TrimSuffix(strings.Repeat(one+", ", n), ", ") + ")"
			for _, k := range keys[:n] {
				args = append(args, k...)
			}
		}
		keys = keys[n:]
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlitesrc: read %s: %w", t.def.Name, err)
		}
		for rows.Next() {
			vals := make([]any, len(t.cols))
			ptrs := make([]any, len(t.cols))
			for k := range vals {
				ptrs[k] = &vals[k]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlitesrc: read %s: %w", t.def.Name, err)
			}
			key := make([]any, len(pkIdx))
			for i, j := range pkIdx {
				key[i] = vals[j]
			}
			out[keyString(key)] = vals
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlitesrc: read %s: %w", t.def.Name, err)
		}
	}
	return out, nil
}

// readRow reads the current row of one key.
func (t *table) readRow(ctx context.Context, tx *sql.Tx, key []any) ([]any, bool, error) {
	vals := make([]any, len(t.cols))
	ptrs := make([]any, len(t.cols))
	for k := range vals {
		ptrs[k] = &vals[k]
	}
	err := tx.QueryRowContext(ctx, t.byKey, key...).Scan(ptrs...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("sqlitesrc: read %s: %w", t.def.Name, err)
	}
	return vals, true, nil
}

// keyString identifies a key's values by type and value.
func keyString(key []any) string {
	var b strings.Builder
	for _, v := range key {
		switch x := v.(type) {
		case int64:
			b.WriteString("i")
			b.WriteString(strconv.FormatInt(x, 10))
		case float64:
			b.WriteString("f")
			b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		case string:
			b.WriteString("s")
			b.WriteString(strconv.Itoa(len(x)))
			b.WriteString(":")
			b.WriteString(x)
		case []byte:
			b.WriteString("b")
			b.WriteString(hex.EncodeToString(x))
		default:
			fmt.Fprintf(&b, "?%T:%v", x, x)
		}
		b.WriteByte(0)
	}
	return b.String()
}

// decodeKey parses a change's JSON key into values to bind.
func decodeKey(t *table, pk string) ([]any, error) {
	// The common key, one text column without escapes (like a UUID),
	// without a JSON decoder: ["..."] holds the text as it is.
	if len(t.kinds) == 1 && t.kinds[0] != sqldb.KindBytes && len(pk) >= 4 && pk[:2] == `["` && pk[len(pk)-2:] == `"]` {
		inner := pk[2 : len(pk)-2]
		plain := utf8.ValidString(inner)
		for i := 0; plain && i < len(inner); i++ {
			plain = inner[i] >= 0x20 && inner[i] != '"' && inner[i] != '\\'
		}
		if plain {
			return []any{inner}, nil
		}
	}
	return decodeKeyJSON(t, pk)
}

// decodeKeyJSON is decodeKey for any key.
func decodeKeyJSON(t *table, pk string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(pk))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("key %q: %w", pk, err)
	}
	if len(raw) != len(t.kinds) {
		return nil, fmt.Errorf("key %q: %d values for a %d-column primary key", pk, len(raw), len(t.kinds))
	}
	key := make([]any, len(raw))
	for i, v := range raw {
		switch x := v.(type) {
		case json.Number:
			if n, err := x.Int64(); err == nil {
				key[i] = n
			} else if f, err := x.Float64(); err == nil {
				key[i] = f
			} else {
				return nil, fmt.Errorf("key %q: bad number %s", pk, x)
			}
		case string:
			if t.kinds[i] == sqldb.KindBytes {
				bs, err := hex.DecodeString(x)
				if err != nil {
					return nil, fmt.Errorf("key %q: bad hex: %w", pk, err)
				}
				key[i] = bs
			} else {
				key[i] = x
			}
		case nil:
			key[i] = nil
		default:
			return nil, fmt.Errorf("key %q: unexpected %T", pk, v)
		}
	}
	return key, nil
}

// PruneLog implements replicate.LogPruner: it is Prune.
func (Driver) PruneLog(ctx context.Context, db *sqldb.DB, upTo replicate.Position) (int64, error) {
	return Prune(ctx, db, upTo)
}

// ComparePositions implements replicate.LogPruner: positions are ordered by
// their seq.
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

// Prune implements replicate.Pruner.
func (s *Source) Prune(ctx context.Context, upTo replicate.Position) error {
	_, err := Prune(ctx, s.db, upTo)
	return err
}

// pruneChunk bounds the changes one statement of Prune deletes.
const pruneChunk = 4096

// Prune deletes the changes at or before upTo from db's change table and
// returns how many it deleted. Call it only with a position every consumer
// of the log has applied (the smallest of their checkpoints). It deletes
// the oldest pruneChunk changes at a time, each in a transaction of its
// own, so the writers of the database (a loader, a replication apply)
// wait for one chunk at most, not for the whole trim of a busy log.
//
// Each chunk's bound is read first and bound to the DELETE as a value:
// a DELETE whose WHERE holds a subquery collects the rowids it matches and
// then seeks each one again from the root, while one bounded by a value
// deletes the rows as its scan meets them.
func Prune(ctx context.Context, db *sqldb.DB, upTo replicate.Position) (int64, error) {
	seq, err := ParsePosition(upTo)
	if err != nil {
		return 0, err
	}
	first := `SELECT min(seq) FROM ` + ChangesTable
	del := `DELETE FROM ` + ChangesTable + ` WHERE seq <= ?`
	var total int64
	for {
		var lo sql.NullInt64
		if err := db.QueryRowContext(ctx, first).Scan(&lo); err != nil {
			return total, fmt.Errorf("sqlitesrc: prune: %w", err)
		}
		if !lo.Valid || lo.Int64 > seq {
			return total, nil
		}
		res, err := db.ExecContext(ctx, del, min(seq, lo.Int64+pruneChunk-1))
		if err != nil {
			return total, fmt.Errorf("sqlitesrc: prune: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
}

var _ replicate.Backlogger = Driver{}

// Backlog implements replicate.Backlogger: the changes of the change table
// after from (bytes are unknown).
func (Driver) Backlog(ctx context.Context, db *sqldb.DB, _ string, from replicate.Position) (int64, int64, error) {
	seq, err := ParsePosition(from)
	if err != nil {
		return -1, -1, err
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+sqliteQuote(ChangesTable)+" WHERE seq > ?", seq).Scan(&n); err != nil {
		return -1, -1, fmt.Errorf("sqlitesrc: backlog: %w", err)
	}
	return n, -1, nil
}

// Marker tags the writes of a replication apply transaction on a SQLite
// target with their origin (see the package doc).
type Marker struct{}

// Setup implements replicate.OriginSetup: it creates the origin table.
func (Marker) Setup(ctx context.Context, db *sqldb.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+OriginTable+` (id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT)`)
	if err != nil {
		return fmt.Errorf("sqlitesrc: origin table: %w", err)
	}
	return nil
}

// MarkOrigin implements replicate.OriginMarker.
func (Marker) MarkOrigin(ctx context.Context, tx *sql.Tx, origin string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO `+OriginTable+` (id, origin) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET origin = excluded.origin`, origin)
	if err != nil {
		return fmt.Errorf("sqlitesrc: mark origin: %w", err)
	}
	return nil
}

// UnmarkOrigin implements replicate.OriginMarker.
func (Marker) UnmarkOrigin(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+OriginTable+` WHERE id = 1`); err != nil {
		return fmt.Errorf("sqlitesrc: unmark origin: %w", err)
	}
	return nil
}
