package replicate

import (
	"context"
	"testing"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
)

// TestFilterSQLMatchesGoRealServers checks on MariaDB (case-insensitive,
// space-padding default collation) and PostgreSQL (locale collation) that
// a filter's SQL selects exactly the rows its Go evaluation accepts.
func TestFilterSQLMatchesGoRealServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	my, pg := peers.StartMariaDB(t), peers.StartPostgres(t)
	for _, tc := range []struct{ name, url string }{{"mariadb", my.URL("app")}, {"postgres", pg.URL("app")}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.EnsureTable(ctx, ordersTable); err != nil {
				t.Fatal(err)
			}
			FilterEquivalence(t, db, ordersTable, orderRows, equivFilters)
		})
	}
}
