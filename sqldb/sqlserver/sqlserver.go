// Package sqlserver is the sqldb driver for Microsoft SQL Server and Azure
// SQL Database (github.com/microsoft/go-mssqldb):
//
//	sqlserver://user:pass@host:port/db?encrypt=true&...
//
// The URL's path is the database (go-mssqldb itself reads it as an
// instance name; name instances by port instead). Other parameters are
// go-mssqldb's: encrypt, TrustServerCertificate, certificate,
// hostNameInCertificate, connection timeout, app name, ...
//
// A fedauth parameter (ActiveDirectoryDefault,
// ActiveDirectoryManagedIdentity, ActiveDirectoryServicePrincipal, ...)
// authenticates with Microsoft Entra ID through go-mssqldb's azuread
// connector instead of the URL's user and password.
//
// NOT VERIFIED AGAINST A LIVE SERVER: no SQL Server can run where this
// package was built. Its SQL is covered by golden files (testdata/*.golden,
// regenerated with go test -update) and its value conversions by unit
// tests; the shared conformance suite (sqldbtest) has never run against it.
// make test-sqlserver runs it (TestConformanceLive) against the server
// INTERCLOUD_SQLSERVER_URL names; run it before relying on this driver.
//
// # Type map
//
//	string(n)   NVARCHAR(n) for 0 < n <= 4000, else NVARCHAR(MAX); a key
//	            column is NVARCHAR(n) up to 450 (900-byte index keys), else
//	            NVARCHAR(450)
//	text        NVARCHAR(MAX)
//	int         SMALLINT (int8: TINYINT is unsigned here), SMALLINT, INT,
//	            BIGINT by Bits; uint8 TINYINT, uint16 INT, uint32 BIGINT,
//	            uint64 DECIMAL(20,0), with CHECKs of the portable range
//	float       FLOAT (53 bits)
//	decimal     DECIMAL(p,s); DECIMAL(38,10) when Precision is 0; a
//	            precision above 38 (MySQL's DECIMAL(65,s)) is refused
//	bool        BIT
//	timestamp   DATETIME2(6), holding UTC
//	date        DATE
//	time        TIME(6)
//	bytes(n)    VARBINARY(n) for 0 < n <= 8000, else VARBINARY(MAX)
//	json        NVARCHAR(MAX) with CHECK (ISJSON(col) = 1)
//
// Describe reads back int8 as int16, uint16 as int32, uint32 as int64,
// uint64 as decimal(20,0), string(n>4000) as text, bytes(n>8000) as
// bytes(0), and json as json when its ISJSON check is found.
//
// Upsert is MERGE ... WITH (HOLDLOCK) over a VALUES source whose
// parameters are CAST to the column types; the rows of one call must have
// distinct keys, and a statement takes at most 2,100 parameters
// (MaxParams), so a table of c columns takes at most 2100/c rows per call.
package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/azuread"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/intercloud/intercloud/internal/redact"
	"github.com/intercloud/intercloud/sqldb"
)

// Scheme is the URL scheme this driver registers.
const Scheme = "sqlserver"

// Pool settings of databases opened by URL.
const (
	MaxOpenConns    = 16
	MaxIdleConns    = 8
	ConnMaxLifetime = 30 * time.Minute
	ConnMaxIdleTime = time.Minute
)

func init() { sqldb.Register(Scheme, Driver{}) }

// Driver opens sqlserver:// URLs.
type Driver struct{}

var (
	_ sqldb.Driver           = Driver{}
	_ sqldb.TransientChecker = Driver{}
)

// Open implements sqldb.Driver; it pings the server.
func (Driver) Open(ctx context.Context, u *url.URL) (*sql.DB, sqldb.Dialect, error) {
	cfg, err := ConfigFromURL(u)
	if err != nil {
		return nil, nil, err
	}
	conn, err := connector(u, cfg)
	if err != nil {
		return nil, nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(MaxOpenConns)
	db.SetMaxIdleConns(MaxIdleConns)
	db.SetConnMaxLifetime(ConnMaxLifetime)
	db.SetConnMaxIdleTime(ConnMaxIdleTime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sqlserver: connect: %s", redact.Password(err.Error(), cfg.Password))
	}
	return db, Dialect{}, nil
}

// connector returns the connector of a parsed URL: with a fedauth
// parameter, go-mssqldb's Microsoft Entra ID (Azure AD) connector, which
// gets its tokens from azidentity (ActiveDirectoryDefault,
// ActiveDirectoryManagedIdentity, ActiveDirectoryServicePrincipal, ...);
// else SQL authentication with the URL's user and password.
func connector(u *url.URL, cfg msdsn.Config) (*mssql.Connector, error) {
	if cfg.Parameters["fedauth"] == "" {
		return mssql.NewConnectorConfig(cfg), nil
	}
	dsn, pass, err := dsnOf(u)
	if err != nil {
		return nil, err
	}
	c, err := azuread.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlserver: fedauth %s: %s", cfg.Parameters["fedauth"], redact.Password(err.Error(), pass))
	}
	return c, nil
}

// dsnOf is the go-mssqldb DSN of a URL: the path's database moved into
// the query (go-mssqldb reads a path as an instance name).
func dsnOf(u *url.URL) (dsn, pass string, err error) {
	if u.Scheme != Scheme {
		return "", "", fmt.Errorf("sqlserver: scheme %q is not %q", u.Scheme, Scheme)
	}
	if u.Host == "" {
		return "", "", errors.New("sqlserver: a host is required (sqlserver://user:pass@host:port/db)")
	}
	pass, _ = u.User.Password()
	q := u.Query()
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if strings.Contains(db, "/") {
			return "", "", fmt.Errorf("sqlserver: bad database name %q", db)
		}
		if other := q.Get("database"); other != "" && other != db {
			return "", "", fmt.Errorf("sqlserver: database %q in the path and %q in the query", db, other)
		}
		q.Set("database", db)
	}
	v := url.URL{Scheme: Scheme, User: u.User, Host: u.Host, RawQuery: q.Encode()}
	return v.String(), pass, nil
}

// ConfigFromURL converts a sqlserver:// URL, whose path names the
// database, to a go-mssqldb config. Its errors never contain the password.
func ConfigFromURL(u *url.URL) (msdsn.Config, error) {
	dsn, pass, err := dsnOf(u)
	if err != nil {
		return msdsn.Config{}, err
	}
	cfg, err := msdsn.Parse(dsn)
	if err != nil {
		return msdsn.Config{}, fmt.Errorf("sqlserver: bad URL: %s", redact.Password(err.Error(), pass))
	}
	return cfg, nil
}

// Transient implements sqldb.TransientChecker: deadlock victim (1205),
// lock request timeout (1222), snapshot update conflicts (3960), and Azure
// SQL's documented transient errors (40501 service busy, 40613 database
// unavailable, 49918-49920 cannot process, 10928/10929 resource limits,
// 40197 failover).
func (Driver) Transient(err error) bool {
	var me mssql.Error
	if errors.As(err, &me) {
		return transientNumber(me.Number)
	}
	var pe *mssql.Error
	if errors.As(err, &pe) && pe != nil {
		return transientNumber(pe.Number)
	}
	return false
}

func transientNumber(n int32) bool {
	switch n {
	case 1205, 1222, 3960, 40501, 40613, 49918, 49919, 49920, 10928, 10929, 40197:
		return true
	}
	return false
}
