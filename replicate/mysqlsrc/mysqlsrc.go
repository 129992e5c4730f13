// Package mysqlsrc is the replicate source for MySQL and MariaDB: change
// data capture from the server's binary log, read as a replica would
// (go-mysql's replication.BinlogSyncer), the way a managed migration
// service reads RDS MySQL. It registers the "mysql" dialect:
//
//	import _ "github.com/intercloud/intercloud/replicate/mysqlsrc"
//
// # Server requirements
//
// The binary log must be on with binlog_format=ROW and binlog_row_image=FULL;
// binlog_row_metadata=FULL is recommended (column names, signedness and
// ENUM/SET labels then come from the log itself, so rows written before a
// schema change decode with the schema they were written with; without it
// they come from information_schema as of now). The user needs SELECT,
// REPLICATION SLAVE and REPLICATION CLIENT (on MariaDB 10.5 and later an
// alias of BINLOG MONITOR), nothing more (TestMariaDB/ReadOnlySource).
// Open checks the settings and fails with a clear error.
//
// # URL parameters
//
// The source reads these query parameters of the database's mysql:// URL
// (the sqldb driver leaves them out of the SQL session):
//
//	flavor=mysql|mariadb   the binlog protocol flavour; default: detected
//	server_id=N            the replica server id this reader registers
//	                       with; default: derived from the stream name
//	                       (stable, in 1<<30 .. 1<<31, so unlikely to
//	                       collide with real replicas)
//	max_tx_changes=N       the most changes of one transaction held in
//	                       memory before it is delivered in parts
//	                       (default DefaultMaxTxChanges)
//
// tls=true|skip-verify, and tls-ca, tls-cert, tls-key (see
// mysql.TLSParams), turn TLS on for the binlog connection too.
//
// # Positions
//
// A Position is "file:NAME:OFFSET" (a binlog file and the offset after a
// transaction's last event), or "gtid:SET" on MySQL servers with
// gtid_mode=ON (the executed GTID set, in MySQL's syntax; it survives a
// failover to another server of the set). The empty Position is the start
// of the oldest binlog file the server still has.
//
// Current returns the position a stream starts from after a full load
// that reads the tables once Current has returned: every transaction is in
// the load or in the stream. A transaction is written to the binary
// log before the storage engine commits it (two-phase commit), so the end
// of the log (SHOW MASTER STATUS) can be past a transaction that other
// sessions do not see yet: a load reading then misses its rows, and a
// stream from that position skips them. On MariaDB, Current therefore
// reads binlog_snapshot_file and binlog_snapshot_position inside START
// TRANSACTION WITH CONSISTENT SNAPSHOT: the binlog position that matches
// the snapshot, so every transaction before it is visible to the snapshot
// and to every later read (no locks, no privilege beyond the source's).
// MySQL has no such status: Current returns gtid_executed with GTIDs, or
// the end of the binary log without them (SHOW BINARY LOG STATUS, or SHOW
// MASTER STATUS before 8.4); either may be ahead of what a load sees by a
// transaction caught between the two commit steps (the tests run MariaDB
// only). Closing that gap on MySQL needs performance_schema.log_status
// (BACKUP_ADMIN) or FLUSH TABLES WITH READ LOCK (RELOAD), more than the
// source asks for.
//
// # Transactions
//
// Stream delivers whole transactions in commit order: the row events
// between a transaction's start (BEGIN, or MariaDB's GTID event) and its
// XID event go into one batch, and several small transactions share a
// batch up to MaxBatch changes. A transaction larger than MaxBatch is
// delivered whole, in one batch, unless it exceeds max_tx_changes: then it
// comes in parts, and every part's Position is the position before the
// transaction, so a stream that stops between parts re-reads the whole
// transaction (applying is idempotent) and only the part that ends it moves
// the position past it.
//
// # Schema changes
//
// A DDL statement on a replicated table (ALTER TABLE, DROP TABLE,
// TRUNCATE, CREATE/DROP INDEX) becomes a replicate.Change with Op OpSchema
// and the statement in DDL, in log order, as a transaction of its own; the
// per-table schema cache is dropped then. A CREATE TABLE of any table is
// one too (the stream may select it). RENAME TABLE (each of its pairs) and
// ALTER TABLE ... RENAME give one OpSchema change per renamed table with
// Change.NewTable, for every table of the database (the stream decides
// what the new name means to it); a replicated table's rows are read under
// its new name from then on, its cached schema moving with it, so rows
// logged before the rename still decode when read after it. A table moved
// to another database is an OpSchema change without NewTable (it is gone
// from this one).
//
// # Origin marker
//
// Marker tags writes that replication applies to a MySQL or MariaDB target:
// MarkOrigin upserts the stream's row in table _ic_replication_origin (id,
// origin, at, n) inside the apply transaction, before its other writes, so
// the binlog carries that row event at the start of the same transaction.
// A source with SkipReplicated skips every transaction that writes that
// table. UnmarkOrigin does nothing. Setup creates the table.
package mysqlsrc

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/intercloud/intercloud/internal/readpace"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
	mysqldb "github.com/intercloud/intercloud/sqldb/mysql"
	"github.com/intercloud/intercloud/telemetry"
)

// DefaultMaxTxChanges is how many changes of one transaction are held in
// memory before the transaction is delivered in parts.
const DefaultMaxTxChanges = 250_000

// OriginTable is the table Marker writes in a target.
const OriginTable = "_ic_replication_origin"

// Errors. All are permanent (errors.Is(err, replicate.ErrPermanent)): a
// stream stops on them instead of retrying.
var (
	// ErrBinlogConfig is returned by Open when the server's binary log is
	// off or not in the ROW format with FULL row images.
	ErrBinlogConfig = replicate.Permanent(errors.New("mysqlsrc: binary log not usable for change data capture"))
	// ErrBadPosition is returned for a Position this source did not make.
	ErrBadPosition = replicate.Permanent(errors.New("mysqlsrc: bad position"))
	// ErrPositionLost is returned by Stream when the server no longer has
	// the binary log of the position to resume from (it was purged): the
	// changes between are gone and the target needs a new full load.
	ErrPositionLost = replicate.Permanent(errors.New("mysqlsrc: the binary log of the requested position is no longer on the server"))
)

func init() { replicate.RegisterSource("mysql", Driver{}) }

// The interfaces a source package implements, checked at compile time.
var (
	_ replicate.SourceDriver = Driver{}
	_ replicate.Source       = (*Source)(nil)
	_ replicate.OriginMarker = Marker{}
)

// Driver opens binlog sources; it is registered for the "mysql" dialect.
type Driver struct{}

var (
	_ replicate.SourceDriver = Driver{}
	_ replicate.Source       = (*Source)(nil)
	_ replicate.OriginMarker = Marker{}
	_ replicate.OriginSetup  = Marker{}
)

// Marker returns the MySQL origin marker.
func (Driver) Marker() replicate.OriginMarker { return Marker{} }

// Open implements replicate.SourceDriver.
func (Driver) Open(ctx context.Context, db *sqldb.DB, cfg replicate.SourceConfig) (replicate.Source, error) {
	return Open(ctx, db, cfg)
}

// Source reads one MySQL or MariaDB database's binlog.
type Source struct {
	db       *sqldb.DB
	log      *slog.Logger
	tables   map[string]bool
	schema   string // the database
	flavor   string
	serverID uint32
	maxTx    int
	gtid     bool
	conn     connParams

	mu    sync.Mutex
	cache map[string]*tableInfo // information_schema, by table
}

type connParams struct {
	host, user, pass string
	port             uint16
	tls              *tls.Config
}

// Open checks the server's binlog settings and the tables (each must exist
// and have a primary key) and returns a source for them.
func Open(ctx context.Context, db *sqldb.DB, cfg replicate.SourceConfig) (*Source, error) {
	if db.Dialect.Name() != "mysql" {
		return nil, fmt.Errorf("mysqlsrc: dialect %q is not mysql", db.Dialect.Name())
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	u := db.URL()
	if u == nil {
		return nil, errors.New("mysqlsrc: the database has no URL to connect with")
	}
	s := &Source{
		db:     db,
		log:    log.With("component", "mysqlsrc"),
		tables: map[string]bool{},
		schema: strings.TrimPrefix(u.Path, "/"),
		maxTx:  DefaultMaxTxChanges,
		cache:  map[string]*tableInfo{},
	}
	if s.schema == "" {
		return nil, errors.New("mysqlsrc: the URL names no database")
	}
	q := u.Query()
	s.flavor = gmysql.MySQLFlavor
	if d, ok := db.Dialect.(mysqldb.Dialect); ok && d.MariaDB {
		s.flavor = gmysql.MariaDBFlavor
	}
	switch f := q.Get("flavor"); f {
	case "":
	case gmysql.MySQLFlavor, gmysql.MariaDBFlavor:
		s.flavor = f
	default:
		return nil, fmt.Errorf("mysqlsrc: URL parameter flavor=%q: want mysql or mariadb", f)
	}
	s.serverID = ServerID(cfg.Name)
	if v := q.Get("server_id"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("mysqlsrc: URL parameter server_id=%q: want a number in 1..4294967295", v)
		}
		s.serverID = uint32(n)
	}
	if v := q.Get("max_tx_changes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("mysqlsrc: URL parameter max_tx_changes=%q: want a positive number", v)
		}
		s.maxTx = n
	}
	s.conn.host = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("mysqlsrc: bad port %q", port)
	}
	s.conn.port = uint16(p)
	if u.User != nil {
		s.conn.user = u.User.Username()
		s.conn.pass, _ = u.User.Password()
	}
	tc, err := mysqldb.TLSConfigFromURL(u)
	if err != nil {
		return nil, fmt.Errorf("mysqlsrc: %w", err)
	}
	switch {
	case tc != nil:
		s.conn.tls = tc
	case q.Get("tls") == "true":
		s.conn.tls = &tls.Config{ServerName: s.conn.host, MinVersion: tls.VersionTLS12}
	case q.Get("tls") == "skip-verify":
		s.conn.tls = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by the URL
	}
	if err := s.checkServer(ctx); err != nil {
		return nil, err
	}
	for _, t := range cfg.Tables {
		def, err := db.Dialect.Describe(ctx, db, t)
		if err != nil {
			if errors.Is(err, sqldb.ErrNoTable) {
				return nil, fmt.Errorf("mysqlsrc: table %q does not exist", t)
			}
			return nil, fmt.Errorf("mysqlsrc: describe %s: %w", t, err)
		}
		if len(def.PrimaryKey) == 0 {
			return nil, fmt.Errorf("mysqlsrc: table %q %w", t, replicate.ErrNoPrimaryKey)
		}
		s.tables[t] = true
	}
	return s, nil
}

// ServerID derives a replica server id from a stream name: stable, non-zero
// and in 1<<30 .. 1<<31-1, away from the small ids servers usually get.
func ServerID(name string) uint32 {
	h := fnv.New32a()
	_, _ = io.WriteString(h, "intercloud/mysqlsrc/"+name)
	return 1<<30 | h.Sum32()&(1<<30-1)
}

// Check implements replicate.Checker: the binary log is on, in ROW format
// with full row images.
func (Driver) Check(ctx context.Context, db *sqldb.DB) error {
	return checkBinlog(ctx, db.DB)
}

// checkBinlog verifies the binlog settings; the error says how to fix them.
func checkBinlog(ctx context.Context, db *sql.DB) error {
	var logBin, format, image string
	err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image").Scan(&logBin, &format, &image)
	if err != nil {
		return fmt.Errorf("mysqlsrc: read binlog settings: %w", err)
	}
	if logBin != "1" && !strings.EqualFold(logBin, "ON") {
		return fmt.Errorf("%w: log_bin is off (start the server with log_bin, binlog_format=ROW and binlog_row_image=FULL)", ErrBinlogConfig)
	}
	if !strings.EqualFold(format, "ROW") {
		return fmt.Errorf("%w: binlog_format is %s, need ROW (SET GLOBAL binlog_format=ROW, and binlog_format=ROW in the server's configuration)", ErrBinlogConfig, format)
	}
	if !strings.EqualFold(image, "FULL") {
		return fmt.Errorf("%w: binlog_row_image is %s, need FULL (SET GLOBAL binlog_row_image=FULL, and in the server's configuration)", ErrBinlogConfig, image)
	}
	return nil
}

// checkServer verifies the binlog settings and whether GTIDs are on.
func (s *Source) checkServer(ctx context.Context) error {
	if err := checkBinlog(ctx, s.db.DB); err != nil {
		return err
	}
	if s.flavor == gmysql.MySQLFlavor {
		var mode sql.NullString
		if err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_mode").Scan(&mode); err == nil {
			s.gtid = strings.EqualFold(mode.String, "ON")
		}
	}
	return nil
}

// Close implements replicate.Source; the database stays open.
func (s *Source) Close() error { return nil }

// Current implements replicate.Source (see the package doc, Positions).
func (s *Source) Current(ctx context.Context) (replicate.Position, error) {
	if s.gtid {
		var set string
		if err := s.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&set); err != nil {
			return "", fmt.Errorf("mysqlsrc: gtid_executed: %w", err)
		}
		return gtidPosition(set), nil
	}
	file, pos, ok, err := s.snapshotStatus(ctx)
	if err != nil {
		return "", fmt.Errorf("mysqlsrc: binlog snapshot position: %w", err)
	}
	if ok {
		return filePosition(file, pos), nil
	}
	file, pos, err = s.status(ctx, "SHOW BINARY LOG STATUS")
	if err != nil {
		file, pos, err = s.status(ctx, "SHOW MASTER STATUS")
	}
	if err != nil {
		return "", fmt.Errorf("mysqlsrc: binlog status: %w", err)
	}
	return filePosition(file, pos), nil
}

// snapshotStatus returns MariaDB's binlog position of a consistent
// snapshot (binlog_snapshot_file and binlog_snapshot_position inside
// START TRANSACTION WITH CONSISTENT SNAPSHOT): every transaction before it
// is committed in the storage engine, so visible to every later read. ok
// is false on servers without these status variables (MySQL).
func (s *Source) snapshotStatus(ctx context.Context) (file string, pos uint32, ok bool, err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return "", 0, false, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return "", 0, false, err
	}
	vars, err := func() (map[string]string, error) {
		rows, err := conn.QueryContext(ctx, `SHOW SESSION STATUS WHERE Variable_name IN ('binlog_snapshot_file', 'binlog_snapshot_position')`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		vars := map[string]string{}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				return nil, err
			}
			vars[strings.ToLower(k)] = v
		}
		return vars, rows.Err()
	}()
	if _, cerr := conn.ExecContext(ctx, "COMMIT"); cerr != nil {
		// The connection must not go back to the pool inside the
		// transaction: drop it.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		return "", 0, false, err
	}
	file, p := vars["binlog_snapshot_file"], vars["binlog_snapshot_position"]
	if file == "" || p == "" {
		return "", 0, false, nil
	}
	n, err := strconv.ParseUint(p, 10, 32)
	if err != nil {
		return "", 0, false, fmt.Errorf("binlog_snapshot_position %q: %w", p, err)
	}
	return file, uint32(n), true, nil
}

// status runs a SHOW ... STATUS statement and returns File and Position.
func (s *Source) status(ctx context.Context, stmt string) (string, uint32, error) {
	rows, err := s.db.QueryContext(ctx, stmt)
	if err != nil {
		return "", 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", 0, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", 0, err
		}
		return "", 0, fmt.Errorf("%w: %s returned nothing", ErrBinlogConfig, stmt)
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", 0, err
	}
	if len(vals) < 2 {
		return "", 0, fmt.Errorf("%s: unexpected columns %v", stmt, cols)
	}
	pos, err := strconv.ParseUint(string(vals[1]), 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("%s: position %q: %w", stmt, vals[1], err)
	}
	return string(vals[0]), uint32(pos), nil
}

// firstFile returns the oldest binlog file the server has.
func (s *Source) firstFile(ctx context.Context) (string, error) {
	rows, err := s.db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return "", fmt.Errorf("mysqlsrc: show binary logs: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	if !rows.Next() {
		return "", fmt.Errorf("%w: no binary logs", ErrBinlogConfig)
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", err
	}
	return string(vals[0]), nil
}

func filePosition(file string, pos uint32) replicate.Position {
	return replicate.Position("file:" + file + ":" + strconv.FormatUint(uint64(pos), 10))
}

func gtidPosition(set string) replicate.Position {
	return replicate.Position("gtid:" + strings.ReplaceAll(set, "\n", ""))
}

// ParsePosition splits a Position into a binlog file and offset (kind
// "file") or a GTID set text (kind "gtid").
func ParsePosition(p replicate.Position) (kind, file string, pos uint32, gtid string, err error) {
	s := string(p)
	switch {
	case strings.HasPrefix(s, "file:"):
		rest := s[len("file:"):]
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 {
			return "", "", 0, "", fmt.Errorf("%w %q", ErrBadPosition, s)
		}
		n, perr := strconv.ParseUint(rest[i+1:], 10, 32)
		if perr != nil {
			return "", "", 0, "", fmt.Errorf("%w %q", ErrBadPosition, s)
		}
		return "file", rest[:i], uint32(n), "", nil
	case strings.HasPrefix(s, "gtid:"):
		return "gtid", "", 0, s[len("gtid:"):], nil
	}
	return "", "", 0, "", fmt.Errorf("%w %q", ErrBadPosition, s)
}

// readAhead bounds the binlog events read and decoded ahead of the
// stream's batches: go-mysql's event channel holds it (10,240 by default)
// and the stream's own channel a quarter of it. A rows event holds up to
// 8 KiB of rows (binlog_row_event_max_size), decoded a value each, so
// while the target was slower than the source the library's default alone
// held tens of megabytes of decoded rows, and the collector, held to the
// process's soft memory limit (package gcsettings), took the CPU the
// stream needed to catch up. 256 events are a few full batches
// (replicate.DefaultBatchSize changes) ahead of the applier: the server
// waits on TCP's flow control, not the stream on the server.
const readAhead = 256

// syncer returns a binlog reader for this source.
func (s *Source) syncer() *replication.BinlogSyncer {
	return replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		EventCacheCount:         readAhead,
		ServerID:                s.serverID,
		Flavor:                  s.flavor,
		Host:                    s.conn.host,
		Port:                    s.conn.port,
		User:                    s.conn.user,
		Password:                s.conn.pass,
		TLSConfig:               s.conn.tls,
		Charset:                 "utf8mb4",
		UseDecimal:              true,
		ParseTime:               false,
		RowsEventDecodeFunc:     newRowsDecoder().decode,
		TimestampStringLocation: time.UTC,
		HeartbeatPeriod:         time.Second,
		ReadTimeout:             10 * time.Second,
		DisableRetrySync:        true,
		Logger:                  telemetry.LibraryLogger(s.log, "go-mysql"),
		Dialer:                  binlogDialer(),
	})
}

// binlogDialer opens the binlog connection, its reads paced (package
// readpace: the server sends each event on its own).
func binlogDialer() readpace.DialFunc {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return readpace.Dial(d.DialContext, readpace.DefaultGap)
}

// Marker is the MySQL/MariaDB origin marker (see the package doc).
type Marker struct{}

// Setup implements replicate.OriginSetup.
func (Marker) Setup(ctx context.Context, db *sqldb.DB) error {
	_, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+OriginTable+
		" (id VARCHAR(200) NOT NULL PRIMARY KEY, origin VARCHAR(200) NOT NULL, at DATETIME(6) NOT NULL, n BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
	if err != nil {
		return fmt.Errorf("mysqlsrc: create %s: %w", OriginTable, err)
	}
	return nil
}

// MarkOrigin implements replicate.OriginMarker: it upserts the origin's row
// (bumping n, so the binlog always gets a row event).
func (Marker) MarkOrigin(ctx context.Context, tx *sql.Tx, origin string) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO "+OriginTable+" (id, origin, at, n) VALUES (?, ?, UTC_TIMESTAMP(6), 1) "+
		"ON DUPLICATE KEY UPDATE at = UTC_TIMESTAMP(6), n = n + 1", origin, origin)
	if err != nil {
		return fmt.Errorf("mysqlsrc: mark origin: %w", err)
	}
	return nil
}

// UnmarkOrigin implements replicate.OriginMarker; there is nothing to undo.
func (Marker) UnmarkOrigin(context.Context, *sql.Tx) error { return nil }
