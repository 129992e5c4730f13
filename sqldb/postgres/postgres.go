// Package postgres is the sqldb driver for PostgreSQL (github.com/jackc/pgx/v5
// through its database/sql adapter):
//
//	postgres://user:pass@host:port/db?sslmode=...   (also postgresql://)
//
// The URL is a libpq connection URL: sslmode, sslrootcert, sslcert and
// sslkey (mutual TLS), connect_timeout, application_name, ... pass through
// to pgx; other parameters become session settings. Sessions use
// TimeZone UTC unless the URL sets timezone.
//
// # Type map
//
//	string(n)   VARCHAR(n); string(0) is VARCHAR (unbounded)
//	text        TEXT
//	int         SMALLINT (Bits 8, 16), INTEGER (32), BIGINT (64); unsigned
//	            ones take the next wider type with a CHECK of their range:
//	            uint8 SMALLINT, uint16 INTEGER, uint32 BIGINT,
//	            uint64 NUMERIC(20,0); int8 is a SMALLINT with a CHECK too
//	float       DOUBLE PRECISION
//	decimal     NUMERIC(p,s); NUMERIC (unbounded) when Precision is 0
//	bool        BOOLEAN
//	timestamp   TIMESTAMPTZ(6): an instant, whatever the session time zone
//	            (TIMESTAMP would keep a wall clock and depend on every
//	            writer converting to UTC first)
//	date        DATE
//	time        TIME(6)
//	bytes(n)    BYTEA (unbounded)
//	json        JSONB (keys reordered and duplicates dropped, as JSONB does)
//
// Describe is lossy where the DDL is: int8 reads back as int16, uint8 as
// int16, uint16 as int32, uint32 as int64, uint64 as decimal(20,0) (all
// with the same range of values, enforced by CHECKs), and bytes(n) as
// bytes(0).
//
// Statements take at most 65,535 bind parameters (MaxParams): a multi-row
// Upsert of a table with c columns may have at most 65535/c rows, and the
// rows of one Upsert must have distinct keys (ON CONFLICT DO UPDATE cannot
// touch a row twice). Identifiers longer than 63 bytes are truncated by
// the server.
//
// The dialect is a sqldb.Copier: CopyUpsert writes many rows with COPY
// inside a transaction begun on a *sql.Conn (sqldb.DB.ConnTx), straight
// into the table when every key is new, otherwise through a temporary
// staging table and one INSERT ... SELECT ... ON CONFLICT DO UPDATE. It is
// a sqldb.NewerCopier too: CopyUpsertNewer does the same with
// UpsertNewer's condition on the update.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/intercloud/intercloud/internal/redact"
	"github.com/intercloud/intercloud/sqldb"
)

// The URL schemes this driver registers.
const (
	Scheme      = "postgres"
	SchemeLong  = "postgresql"
	maxParams   = 65535
	defaultPort = "5432"
)

// Pool settings of databases opened by URL.
const (
	MaxOpenConns    = 16
	MaxIdleConns    = 8
	ConnMaxLifetime = 30 * time.Minute
	ConnMaxIdleTime = time.Minute
)

func init() {
	sqldb.Register(Scheme, Driver{})
	sqldb.Register(SchemeLong, Driver{})
}

// Driver opens postgres:// and postgresql:// URLs.
type Driver struct{}

var (
	_ sqldb.Driver           = Driver{}
	_ sqldb.LoggingDriver    = Driver{}
	_ sqldb.TransientChecker = Driver{}
)

// logNotice logs a server notice: WARNING at warning level, the rest
// (NOTICE, INFO, DEBUG, LOG) at debug.
func logNotice(log *slog.Logger, n *pgconn.Notice) {
	level := slog.LevelDebug
	if n.Severity == "WARNING" {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, n.Message, "severity", n.Severity, "sqlstate", n.Code)
}

// Open implements sqldb.Driver: OpenLogged with slog.Default().
func (d Driver) Open(ctx context.Context, u *url.URL) (*sql.DB, sqldb.Dialect, error) {
	return d.OpenLogged(ctx, u, slog.Default())
}

// OpenLogged implements sqldb.LoggingDriver; it pings the server. The
// server's notices (pgx drops them by default) go to log: warnings at
// warning level, the rest at debug.
func (Driver) OpenLogged(ctx context.Context, u *url.URL, log *slog.Logger) (*sql.DB, sqldb.Dialect, error) {
	cfg, err := ConfigFromURL(u)
	if err != nil {
		return nil, nil, err
	}
	nlog := log.With("library", "pgx")
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { logNotice(nlog, n) }
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(MaxOpenConns)
	db.SetMaxIdleConns(MaxIdleConns)
	db.SetConnMaxLifetime(ConnMaxLifetime)
	db.SetConnMaxIdleTime(ConnMaxIdleTime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("postgres: connect: %w", redact.PasswordError(err, cfg.Password))
	}
	var d Dialect
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')`).Scan(&d.PostGIS); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("postgres: look for PostGIS: %w", redact.PasswordError(err, cfg.Password))
	}
	return db, d, nil
}

// ConfigFromURL parses a postgres URL into a pgx connection config with
// TimeZone UTC. Its errors never contain the password.
func ConfigFromURL(u *url.URL) (*pgx.ConnConfig, error) {
	if u.Scheme != Scheme && u.Scheme != SchemeLong {
		return nil, fmt.Errorf("postgres: scheme %q is not %q", u.Scheme, Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("postgres: a host is required (postgres://user:pass@host:port/db)")
	}
	pass, _ := u.User.Password()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		// Not wrapped: pgconn.ParseConfigError keeps the raw URL.
		return nil, fmt.Errorf("postgres: bad URL: %s", redact.Password(err.Error(), pass))
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["timezone"]; !ok {
		cfg.RuntimeParams["timezone"] = "UTC"
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	return cfg, nil
}

// Transient implements sqldb.TransientChecker: serialization failures
// (40001), deadlocks (40P01) and lock timeouts (55P03).
func (Driver) Transient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03":
			return true
		}
	}
	return false
}
