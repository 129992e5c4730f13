package sqlserver_test

import (
	"context"
	"os"
	"testing"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqldbtest"
)

// LiveEnv names the SQL Server the live tests run against
// (sqlserver://user:pass@host:1433/db?...); unset, they skip.
const LiveEnv = "INTERCLOUD_SQLSERVER_URL"

// TestConformanceLive runs the shared sqldb conformance suite on the SQL
// Server of INTERCLOUD_SQLSERVER_URL (make test-sqlserver). No SQL Server
// runs where this driver was built: unset, it skips and says so.
func TestConformanceLive(t *testing.T) {
	u := os.Getenv(LiveEnv)
	if u == "" {
		t.Skip("SKIPPED: no SQL Server: set " + LiveEnv + " (see README, SQL Server) to run the sqldb conformance suite against one")
	}
	sqldbtest.RunConformance(t, func(t *testing.T) *sqldb.DB {
		db, err := sqldb.Open(context.Background(), u, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
