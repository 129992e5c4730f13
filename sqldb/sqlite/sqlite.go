// Package sqlite is the sqldb driver for SQLite (modernc.org/sqlite, no
// cgo), the embedded default: sqlite:///abs/path/file.db.
//
// Databases open in WAL mode, with a busy timeout and immediate write
// transactions; a commit returns once it is durable (a sync of the log
// that this package runs after the commit has left the write lock, see
// walsync.go), so a committed transaction survives a crash or a power
// loss, and concurrent writers wait rather than fail; with a
// long write-ahead log (WALAutoCheckpoint) and small page caches
// (PageCacheKiB). Each connection keeps the statements it ran last
// prepared (see stmtcache.go).
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	sqlite "modernc.org/sqlite"

	"github.com/intercloud/intercloud/sqldb"
)

// Scheme is the URL scheme this driver registers.
const Scheme = "sqlite"

// WALAutoCheckpoint is how many pages the write-ahead log takes before a
// commit copies them into the database file (SQLite's default is 1,000,
// 4 MB). The pipeline's commits rewrite the same pages (a table's and its
// indexes' last leaves, the change table's) over and over: a checkpoint
// copies each page once however often the log holds it, so a longer log
// writes the database file less often and less in all, for up to 40 MB of
// log on disk.
const WALAutoCheckpoint = 10000

// PageCacheKiB is each connection's page cache in KiB (PRAGMA
// cache_size=-N; SQLite's default is 2,000 KiB). It serves little past
// one transaction here: in WAL mode a connection empties its cache when
// it starts reading after another connection's commit, and the
// pipeline's stages commit to the same database many times a second.
// What it costs is dearer than its size: modernc's allocator rounds
// every cached page (4 KiB and SQLite's header for it) up to an 8 KiB
// slot: at SQLite's default the caches of the two pipeline databases'
// sixteen connections were most of the 68 MB SQLite held at the 160 MB
// peak RSS of a 500,000-record demo. At 512 KiB the demo peaks 20-30 MB
// lower at no cost in CPU a record (see docs/benchmarks.md).
const PageCacheKiB = 512

// TimeFormat is how timestamps are stored: fixed width, so text order is
// time order.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

func init() { sqldb.Register(Scheme, driver{}) }

type driver struct{}

func (driver) Open(ctx context.Context, u *url.URL) (*sql.DB, sqldb.Dialect, error) {
	path := u.Path
	if u.Host != "" { // sqlite://relative/path.db
		path = u.Host + u.Path
	}
	if path == "" {
		return nil, nil, fmt.Errorf("sqlite: a file path is required (sqlite:///abs/file.db)")
	}
	db, gate, err := openFile(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	return db, Dialect{gate: gate}, nil
}

// OpenFile opens (creating if needed, mode 0600 in a 0700 directory) a
// SQLite database file.
func OpenFile(ctx context.Context, path string) (*sql.DB, error) {
	db, _, err := openFile(ctx, path)
	return db, err
}

// openFile is OpenFile, with the gate its writers queue at.
func openFile(ctx context.Context, path string) (*sql.DB, *writeGate, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("sqlite: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: %w", err)
	}
	// A new database is created 0600 (SQLite gives its -wal and -shm
	// files the database file's mode).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: %w", err)
	}
	_ = f.Close()
	dsn := "file:" + path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate" +
		"&_pragma=wal_autocheckpoint(" + strconv.Itoa(WALAutoCheckpoint) + ")" +
		"&_pragma=cache_size(-" + strconv.Itoa(PageCacheKiB) + ")"
	conn, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// NORMAL: the gate's writers sync the log after they leave it.
	gate := newWriteGate(abs, conn.Connect)
	db := sql.OpenDB(cachingConnector{Connector: conn, gate: gate})
	db.SetMaxOpenConns(8)
	// Keep every connection open when idle (database/sql keeps 2 by
	// default and closes the others), and with it the statements it
	// keeps prepared.
	db.SetMaxIdleConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, gate, nil
}

// Dialect is SQLite's SQL. The dialect of a database the driver opened
// also reports how its writers shared the write lock (WriteLock).
type Dialect struct {
	gate *writeGate // nil: no gate known
}

var _ sqldb.Dialect = Dialect{}

// Name implements sqldb.Dialect.
func (Dialect) Name() string { return "sqlite" }

var _ sqldb.StatementCacher = Dialect{}

// CachesStatements implements sqldb.StatementCacher: every connection
// keeps the statements it ran last prepared (stmtcache.go).
func (Dialect) CachesStatements() bool { return true }

var _ sqldb.WriteLocker = Dialect{}

// WriteLock implements sqldb.WriteLocker: how this process's writers
// shared the database's write lock (gate.go); empty for a Dialect the
// driver did not open.
func (d Dialect) WriteLock() sqldb.WriteLockStats {
	if d.gate == nil {
		return sqldb.WriteLockStats{}
	}
	st := d.gate.stats()
	st.Syncs = int64(d.gate.wal.rounds())
	return st
}

var _ sqldb.DurableWaiter = Dialect{}

// WaitDurable implements sqldb.DurableWaiter: a commit is visible a little
// before its sync of the log ends (walsync.go), so unless nothing was
// committed since the last sync began, WaitDurable runs or joins a sync
// that begins after the call. A Dialect the driver did not open has
// nothing to wait for.
func (d Dialect) WaitDurable(ctx context.Context) error {
	if d.gate == nil {
		return nil
	}
	return d.gate.wal.visible(ctx)
}

var _ sqldb.SingleWriter = Dialect{}

// WritesOneAtATime implements sqldb.SingleWriter: a database takes one
// write transaction at a time.
func (Dialect) WritesOneAtATime() bool { return true }

// Quote implements sqldb.Dialect.
func (Dialect) Quote(id string) string { return `"` + strings.ReplaceAll(id, `"`, `""`) + `"` }

// Placeholder implements sqldb.Dialect.
func (Dialect) Placeholder(int) string { return "?" }

// ColumnType implements sqldb.Dialect. The declared names keep the portable
// type readable by Describe while giving SQLite the right affinity: exact
// decimals and timestamps are TEXT, never REAL.
func (Dialect) ColumnType(t sqldb.Type) string {
	switch t.Kind {
	case sqldb.KindString:
		if t.Length > 0 {
			return fmt.Sprintf("VARCHAR(%d)", t.Length)
		}
		return "TEXT"
	case sqldb.KindText:
		return "TEXT"
	case sqldb.KindInt:
		if t.Unsigned && (t.Bits == 0 || t.Bits == 64) {
			// Beyond int64: 20-digit zero-padded text, so text order is
			// numeric order. The name must not contain "INT": SQLite would
			// give the column INTEGER affinity and turn large values into
			// REAL.
			return "UNSIGNED_BIGNUM_TEXT"
		}
		return "INTEGER"
	case sqldb.KindFloat:
		return "REAL"
	case sqldb.KindDecimal:
		return fmt.Sprintf("DECIMAL_TEXT(%d,%d)", t.Precision, t.Scale)
	case sqldb.KindBool:
		return "BOOLEAN"
	case sqldb.KindTimestamp:
		if t.Local {
			return "DATETIME_TEXT"
		}
		return "TIMESTAMP_TEXT"
	case sqldb.KindDate:
		return "DATE_TEXT"
	case sqldb.KindTime:
		if t.Duration {
			return "DURATION_TEXT"
		}
		return "TIME_TEXT"
	case sqldb.KindBytes:
		if t.Spatial {
			return "GEOMETRY_BLOB"
		}
		return "BLOB"
	case sqldb.KindJSON:
		return "JSON_TEXT"
	}
	return ""
}

// CreateTable implements sqldb.Dialect.
func (d Dialect) CreateTable(t sqldb.Table) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", d.Quote(t.Name))
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", d.Quote(c.Name), d.ColumnType(c.Type))
		if !c.Nullable {
			b.WriteString(" NOT NULL")
		}
	}
	if len(t.PrimaryKey) > 0 {
		fmt.Fprintf(&b, ", PRIMARY KEY (%s)", sqldb.QuoteList(d, t.PrimaryKey))
	}
	b.WriteString(")")
	return []string{b.String()}
}

// Upsert implements sqldb.Dialect.
func (d Dialect) Upsert(t sqldb.Table, rows int) string {
	var set []string
	for _, c := range t.Columns {
		if !t.IsPrimaryKey(c.Name) {
			set = append(set, fmt.Sprintf("%s = excluded.%s", d.Quote(c.Name), d.Quote(c.Name)))
		}
	}
	conflict := "DO NOTHING"
	if len(set) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(set, ", ")
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s ON CONFLICT (%s) %s",
		d.Quote(t.Name), sqldb.QuoteList(d, t.ColumnNames()), sqldb.ValuesList(d, rows, len(t.Columns)),
		sqldb.QuoteList(d, t.PrimaryKey), conflict)
}

// UpsertNewer implements sqldb.NewerUpserter: the conflict's update runs
// only WHERE the incoming version is greater.
func (d Dialect) UpsertNewer(t sqldb.Table, rows int, version []string) string {
	cond := sqldb.NewerCondition(version,
		func(c string) string { return "excluded." + d.Quote(c) },
		func(c string) string { return d.Quote(t.Name) + "." + d.Quote(c) })
	return d.Upsert(t, rows) + " WHERE " + cond
}

// InsertIgnore implements sqldb.Dialect.
func (d Dialect) InsertIgnore(t sqldb.Table, rows int) string {
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s ON CONFLICT DO NOTHING",
		d.Quote(t.Name), sqldb.QuoteList(d, t.ColumnNames()), sqldb.ValuesList(d, rows, len(t.Columns)))
}

// Value implements sqldb.Dialect.
func (Dialect) Value(t sqldb.Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t.Kind {
	case sqldb.KindTimestamp:
		switch x := v.(type) {
		case time.Time:
			return x.UTC().Format(TimeFormat), nil
		case string:
			ts, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return nil, fmt.Errorf("sqlite: timestamp %q: %w", x, err)
			}
			return ts.UTC().Format(TimeFormat), nil
		}
	case sqldb.KindDate:
		if x, ok := v.(time.Time); ok {
			return x.Format("2006-01-02"), nil
		}
	case sqldb.KindBool:
		if x, ok := v.(bool); ok {
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case sqldb.KindInt:
		if t.Unsigned && (t.Bits == 0 || t.Bits == 64) {
			switch x := v.(type) {
			case uint64:
				return fmt.Sprintf("%020d", x), nil
			case int64:
				if x < 0 {
					return nil, fmt.Errorf("sqlite: %d out of range for uint64", x)
				}
				return fmt.Sprintf("%020d", x), nil
			}
		}
		if x, ok := v.(uint64); ok {
			return int64(x), nil
		}
	}
	return v, nil
}

var declRE = regexp.MustCompile(`^([A-Z_]+)(?:\((\d+)(?:,(\d+))?\))?$`)

// Describe implements sqldb.Dialect.
func (Dialect) Describe(ctx context.Context, q sqldb.Querier, table string) (sqldb.Table, error) {
	rows, err := q.QueryContext(ctx, "SELECT name, type, \"notnull\", pk, dflt_value FROM pragma_table_info(?) ORDER BY cid", table)
	if err != nil {
		return sqldb.Table{}, fmt.Errorf("sqlite: describe %s: %w", table, err)
	}
	defer rows.Close()
	t := sqldb.Table{Name: table}
	pks := map[int]string{}
	for rows.Next() {
		var name, decl string
		var notnull, pk int
		var def sql.NullString
		if err := rows.Scan(&name, &decl, &notnull, &pk, &def); err != nil {
			return sqldb.Table{}, fmt.Errorf("sqlite: describe %s: %w", table, err)
		}
		t.Columns = append(t.Columns, sqldb.Column{Name: name, Type: parseDecl(decl), Nullable: notnull == 0, Default: sqldb.ParseDefault(def.String)})
		if pk > 0 {
			pks[pk] = name
		}
	}
	if err := rows.Err(); err != nil {
		return sqldb.Table{}, fmt.Errorf("sqlite: describe %s: %w", table, err)
	}
	if len(t.Columns) == 0 {
		return sqldb.Table{}, fmt.Errorf("sqlite: describe %s: %w", table, sqldb.ErrNoTable)
	}
	for i := 1; i <= len(pks); i++ {
		t.PrimaryKey = append(t.PrimaryKey, pks[i])
	}
	return t, nil
}

func parseDecl(decl string) sqldb.Type {
	m := declRE.FindStringSubmatch(strings.ToUpper(strings.ReplaceAll(decl, " ", "")))
	if m == nil {
		return sqldb.Type{Kind: sqldb.KindText}
	}
	n1, _ := strconv.Atoi(m[2])
	n2, _ := strconv.Atoi(m[3])
	switch m[1] {
	case "VARCHAR":
		return sqldb.Type{Kind: sqldb.KindString, Length: n1}
	case "INTEGER", "INT", "BIGINT":
		return sqldb.Type{Kind: sqldb.KindInt}
	case "UNSIGNED_BIGNUM_TEXT", "UNSIGNED_BIGINT_TEXT":
		return sqldb.Type{Kind: sqldb.KindInt, Unsigned: true}
	case "REAL", "DOUBLE", "FLOAT":
		return sqldb.Type{Kind: sqldb.KindFloat}
	case "DECIMAL_TEXT":
		return sqldb.Type{Kind: sqldb.KindDecimal, Precision: n1, Scale: n2}
	case "BOOLEAN":
		return sqldb.Type{Kind: sqldb.KindBool}
	case "TIMESTAMP_TEXT":
		return sqldb.Type{Kind: sqldb.KindTimestamp}
	case "DATETIME_TEXT":
		return sqldb.Type{Kind: sqldb.KindTimestamp, Local: true}
	case "DATE_TEXT":
		return sqldb.Type{Kind: sqldb.KindDate}
	case "TIME_TEXT":
		return sqldb.Type{Kind: sqldb.KindTime}
	case "DURATION_TEXT":
		return sqldb.Type{Kind: sqldb.KindTime, Duration: true}
	case "GEOMETRY_BLOB":
		return sqldb.Type{Kind: sqldb.KindBytes, Spatial: true}
	case "BLOB":
		return sqldb.Type{Kind: sqldb.KindBytes}
	case "JSON_TEXT":
		return sqldb.Type{Kind: sqldb.KindJSON}
	}
	return sqldb.Type{Kind: sqldb.KindText}
}

var _ sqldb.Indexer = Dialect{}

// CreateIndex implements sqldb.Indexer.
func (d Dialect) CreateIndex(table, name string, columns []string) []string {
	return []string{fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", d.Quote(name), d.Quote(table), sqldb.QuoteList(d, columns))}
}

var _ sqldb.NewerUpserter = Dialect{}
