package sqlserver

import (
	"errors"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/intercloud/intercloud/sqldb"
)

var _ sqldb.ErrorClassifier = Driver{}

func errorNumber(err error) (int32, bool) {
	var me mssql.Error
	if errors.As(err, &me) {
		return me.Number, true
	}
	var pe *mssql.Error
	if errors.As(err, &pe) && pe != nil {
		return pe.Number, true
	}
	return 0, false
}

// Unavailable implements sqldb.ErrorClassifier: the errors Transient names
// (Azure SQL's busy, unavailable and failover errors) and a database that
// is starting, shutting down or unreachable (4060 cannot open database,
// 6005 shutdown in progress, 233 and 10053/10054/10060 transport errors,
// 40143 and 40540 service errors). A failed login is not an outage.
func (Driver) Unavailable(err error) bool {
	n, ok := errorNumber(err)
	if !ok {
		return false
	}
	switch n {
	case 4060, 6005, 233, 10053, 10054, 10060, 40143, 40540:
		return true
	}
	return transientNumber(n)
}

// Rejected implements sqldb.ErrorClassifier: a NULL where none is allowed
// (515), a foreign key or CHECK constraint (547), a duplicate key (2601,
// 2627), a value truncated (2628, 8152), a conversion or overflow failure
// (220, 241, 242, 245, 8114, 8115).
func (Driver) Rejected(err error) bool {
	n, ok := errorNumber(err)
	if !ok {
		return false
	}
	switch n {
	case 515, 547, 2601, 2627, 2628, 8152, 220, 241, 242, 245, 8114, 8115:
		return true
	}
	return false
}
