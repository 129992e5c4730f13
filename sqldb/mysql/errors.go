package mysql

import (
	"errors"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/intercloud/intercloud/sqldb"
)

var _ sqldb.ErrorClassifier = Driver{}

// Unavailable implements sqldb.ErrorClassifier: a connection lost mid-way
// (the driver's ErrInvalidConn), and the server errors that say it cannot
// serve now — too many connections (1040), shutdown in progress (1053),
// network read and write errors (1158-1161), connection killed (1927),
// read-only during a failover (1290, 1836), idle client disconnected
// (4031), and the client codes of a lost or refused server (2002, 2003,
// 2006, 2013).
func (Driver) Unavailable(err error) bool {
	if errors.Is(err, gomysql.ErrInvalidConn) {
		return true
	}
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1040, 1053, 1158, 1159, 1160, 1161, 1927, 1290, 1836, 4031, 2002, 2003, 2006, 2013:
		return true
	}
	return false
}

// Rejected implements sqldb.ErrorClassifier: the server refused the data —
// a NULL where none is allowed (1048), a duplicate key (1062), a foreign
// key (1216, 1217, 1451, 1452), a value out of range or truncated (1264,
// 1265, 1406, 1690), an invalid date, number or string (1292, 1366, 1367,
// 1411), invalid JSON (3140), a failed CHECK constraint (3819, 4025).
func (Driver) Rejected(err error) bool {
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1048, 1062, 1216, 1217, 1451, 1452, 1264, 1265, 1406, 1690, 1292, 1366, 1367, 1411, 3140, 3819, 4025:
		return true
	}
	return false
}
