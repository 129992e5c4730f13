// Package mysql is the sqldb driver for MySQL and MariaDB
// (github.com/go-sql-driver/mysql):
//
//	mysql://user:pass@host:port/db?params
//
// Connections parse DATETIME/DATE into time.Time in UTC, use utf8mb4, run
// one statement per query (multiStatements is refused), and set the session
// to strict SQL mode and time_zone '+00:00' unless the URL sets sql_mode or
// time_zone itself. A statement that returns no rows (Exec) goes with its
// arguments written into its text, escaped by the driver
// (interpolateParams, on unless the URL sets it): one round trip, where a
// server-side prepared statement takes a prepare (whose answer describes
// every parameter: thousands for a multi-row insert), the execution and a
// close. Queries with arguments still run as prepared statements, whose
// binary results carry FLOAT, DOUBLE and TIME values exactly. Other query parameters are go-sql-driver/mysql DSN
// parameters and pass through unchanged: tls=true|skip-verify|preferred|NAME
// (NAME registered with mysql.RegisterTLSConfig), timeout,
// readTimeout, writeTimeout, interpolateParams, ...; unknown ones become
// session variables, as go-sql-driver/mysql does. tls-ca, tls-cert and
// tls-key name PEM files for a custom CA and a client certificate (see
// TLSParams), for the binlog connection too.
//
// # Type map
//
//	string(n)   VARCHAR(n) for 0 < n <= MaxVarchar; else MEDIUMTEXT
//	            (a key column is always VARCHAR: n, or MaxKeyVarchar)
//	text        LONGTEXT
//	int         TINYINT, SMALLINT, INT, BIGINT by Bits, UNSIGNED if Unsigned
//	float       DOUBLE
//	decimal     DECIMAL(p,s); DECIMAL(65,30) when Precision is 0
//	bool        TINYINT(1)
//	timestamp   DATETIME(6), holding UTC. Not TIMESTAMP: that type only
//	            spans 1970-2038, converts through the session time zone,
//	            and on older servers silently gains DEFAULT/ON UPDATE
//	            CURRENT_TIMESTAMP.
//	date        DATE
//	time        TIME(6)
//	bytes(n)    VARBINARY(n) for 0 < n <= MaxVarbinary; else LONGBLOB
//	json        JSON (MariaDB: LONGTEXT with a json_valid check, which
//	            Describe recognises)
//
// Tables are InnoDB, utf8mb4 with a binary collation that does not pad
// (utf8mb4_nopad_bin on MariaDB, utf8mb4_0900_bin on MySQL), so keys
// compare byte for byte as on PostgreSQL and SQLite: "a" and "a " are two
// keys, and "A" is not "a".
//
// Describe is lossy only where the DDL is: string(n) above MaxVarchar reads
// back as string(0), bytes(n) above MaxVarbinary as bytes(0), and an
// unbounded key string as string(MaxKeyVarchar).
//
// Upsert uses INSERT ... ON DUPLICATE KEY UPDATE c = VALUES(c), which both
// MySQL and MariaDB accept (MySQL 8.0.20+ deprecates VALUES() in favour of a
// row alias that MariaDB lacks); its RowsAffected counts 2 per updated row,
// as MySQL does. InsertIgnore is ON DUPLICATE KEY UPDATE pk = pk rather
// than INSERT IGNORE, which would also turn truncation and other errors
// into warnings; its RowsAffected is the number of rows inserted.
package mysql

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/intercloud/intercloud/internal/redact"
	"github.com/intercloud/intercloud/sqldb"
)

// Scheme is the URL scheme this driver registers.
const Scheme = "mysql"

// Pool settings of databases opened by URL.
const (
	MaxOpenConns    = 16
	MaxIdleConns    = 8
	ConnMaxLifetime = 5 * time.Minute // below usual wait_timeout and proxy idle limits
	ConnMaxIdleTime = time.Minute
)

// StrictMode is the sql_mode sessions use unless the URL sets one: bad
// values are errors, never truncated or zeroed.
const StrictMode = "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"

func init() { sqldb.Register(Scheme, Driver{}) }

// Driver opens mysql:// URLs.
type Driver struct{}

var (
	_ sqldb.Driver           = Driver{}
	_ sqldb.LoggingDriver    = Driver{}
	_ sqldb.TransientChecker = Driver{}
)

// driverLogger is go-sql-driver/mysql's Logger over slog (the driver's
// default writes to stderr).
type driverLogger struct{ log *slog.Logger }

// Print implements gomysql.Logger.
func (l driverLogger) Print(v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprint(v...)))
}

// Open implements sqldb.Driver: OpenLogged with slog.Default().
func (d Driver) Open(ctx context.Context, u *url.URL) (*sql.DB, sqldb.Dialect, error) {
	return d.OpenLogged(ctx, u, slog.Default())
}

// OpenLogged implements sqldb.LoggingDriver. It pings the server and reads
// its version to pick the MariaDB or MySQL flavour of the dialect. The
// driver's own lines ("closing bad idle connection: EOF" after a server
// restart) go to log at warning level.
func (Driver) OpenLogged(ctx context.Context, u *url.URL, log *slog.Logger) (*sql.DB, sqldb.Dialect, error) {
	cfg, err := ConfigFromURL(u)
	if err != nil {
		return nil, nil, err
	}
	cfg.Logger = driverLogger{log.With("library", "go-sql-driver/mysql")}
	pass := cfg.Passwd
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("mysql: %s", redact.Password(err.Error(), pass))
	}
	db := sql.OpenDB(bitConnector{conn})
	db.SetMaxOpenConns(MaxOpenConns)
	db.SetMaxIdleConns(MaxIdleConns)
	db.SetConnMaxLifetime(ConnMaxLifetime)
	db.SetConnMaxIdleTime(ConnMaxIdleTime)
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("mysql: connect: %w", redact.PasswordError(err, pass))
	}
	return db, Dialect{MariaDB: strings.Contains(strings.ToLower(version), "mariadb")}, nil
}

// Transient implements sqldb.TransientChecker: deadlocks (1213), lock wait
// timeouts (1205), and Galera/MariaDB's "record has changed" (1020).
func (Driver) Transient(err error) bool {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1213, 1205, 1020:
			return true
		}
	}
	return false
}

// SourceParams are URL query parameters read by the binlog change source
// (replicate/mysqlsrc) rather than by the SQL connection; ConfigFromURL
// leaves them out of the session.
var SourceParams = []string{"flavor", "server_id", "max_tx_changes"}

// TLSParams are the URL parameters of a TLS connection with a custom CA
// or a client certificate: tls-ca (PEM file of the CAs the server's
// certificate must chain to), tls-cert and tls-key (PEM files of a client
// certificate, for mutual TLS). Any of them turns TLS on (tls=true, or
// tls=skip-verify to skip checking the server's certificate).
var TLSParams = []string{"tls-ca", "tls-cert", "tls-key"}

// TLSConfigFromURL returns the TLS settings of a mysql:// URL that names
// files (TLSParams), or nil when it names none (tls=true|skip-verify|NAME
// then work as go-sql-driver/mysql has them). The server's name is the
// URL's host.
func TLSConfigFromURL(u *url.URL) (*tls.Config, error) {
	q := u.Query()
	ca, cert, key := q.Get("tls-ca"), q.Get("tls-cert"), q.Get("tls-key")
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	switch q.Get("tls") {
	case "", "true", "skip-verify":
	default:
		return nil, fmt.Errorf("mysql: URL parameter tls=%q cannot go with tls-ca, tls-cert or tls-key (want true or skip-verify)", q.Get("tls"))
	}
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12, InsecureSkipVerify: q.Get("tls") == "skip-verify"} //nolint:gosec // asked for by the URL
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("mysql: tls-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("mysql: tls-ca %s holds no PEM certificate", ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("mysql: tls-cert and tls-key go together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("mysql: tls-cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// ConfigFromURL converts a mysql:// URL to a go-sql-driver/mysql config
// with the settings this package requires. Its errors never contain the
// password.
func ConfigFromURL(u *url.URL) (*gomysql.Config, error) {
	if u.Scheme != Scheme {
		return nil, fmt.Errorf("mysql: scheme %q is not %q", u.Scheme, Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("mysql: a host is required (mysql://user:pass@host:port/db)")
	}
	// Only the query goes through ParseDSN, so its errors cannot show
	// credentials.
	query := u.Query()
	for _, p := range append(SourceParams, TLSParams...) {
		query.Del(p)
	}
	tc, err := TLSConfigFromURL(u)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		query.Del("tls")
	}
	cfg, err := gomysql.ParseDSN("/?" + query.Encode())
	if err != nil {
		return nil, fmt.Errorf("mysql: bad URL parameters: %w", err)
	}
	if tc != nil {
		cfg.TLS = tc
	}
	if cfg.MultiStatements {
		return nil, errors.New("mysql: multiStatements=true is not allowed")
	}
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if strings.Contains(cfg.DBName, "/") {
		return nil, fmt.Errorf("mysql: bad database name %q", cfg.DBName)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if !query.Has("interpolateParams") {
		cfg.InterpolateParams = true
	}
	cfg.MultiStatements = false
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["sql_mode"]; !ok {
		cfg.Params["sql_mode"] = "'" + StrictMode + "'"
	}
	if _, ok := cfg.Params["time_zone"]; !ok {
		cfg.Params["time_zone"] = "'+00:00'"
	}
	return cfg, nil
}
