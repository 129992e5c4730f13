package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intercloud/intercloud/sqldb"
)

var _ sqldb.ErrorClassifier = Driver{}

// Unavailable implements sqldb.ErrorClassifier: a connection that could not
// be made (pgconn.ConnectError without the server's error: a refusal of the
// database or the credentials is no outage) or timed out, and the SQLSTATEs of a server
// that cannot serve now — connection exceptions (class 08), insufficient
// resources (class 53), operator intervention (57P01 admin shutdown, 57P02
// crash shutdown, 57P03 cannot connect now, 57014 query cancelled), system
// errors (class 58) and a read-only transaction during a failover (25006).
func (Driver) Unavailable(err error) bool {
	// A connection the driver closed under the caller (its server went
	// away: a pooled connection's first use after a restart) is as much an
	// outage as one refused.
	if pgconn.Timeout(err) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	// A server that answered the connection with an error (no such
	// database, credentials refused) is unavailable only for the codes
	// below; one that did not answer (refused, cut, unknown host) is.
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		var ce *pgconn.ConnectError
		return errors.As(err, &ce)
	}
	switch {
	case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "58"):
		return true
	}
	switch pe.Code {
	case "57P01", "57P02", "57P03", "57014", "25006":
		return true
	}
	return false
}

// Rejected implements sqldb.ErrorClassifier: data exceptions (class 22: a
// value too long, out of range, malformed) and integrity constraint
// violations (class 23: NULL, unique, foreign key, check).
func (Driver) Rejected(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")
}
