package pgsrc_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
)

// TestConformance runs the source conformance suite on PostgreSQL.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and MariaDB")
	}
	c := startCluster(t)
	my := peers.StartMariaDB(t)
	var n int
	sourcetest.Run(t, sourcetest.PostgresMatrix.With(sourcetest.Harness{
		Source: func(t *testing.T) *sqldb.DB { return c.newDB(t, "src") },
		Targets: map[string]func(t *testing.T) *sqldb.DB{
			"postgres": func(t *testing.T) *sqldb.DB { return c.newDB(t, "dst") },
			"mysql": func(t *testing.T) *sqldb.DB {
				n++
				root := sourcetest.Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port))
				sourcetest.Exec(t, root, fmt.Sprintf("CREATE DATABASE dst%d", n))
				return sourcetest.Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/dst%d", my.Port, n))
			},
			"sqlite": func(t *testing.T) *sqldb.DB { return sqliteDB(t, "dst") },
		},
		AddColumnDDL: "ALTER TABLE items ADD COLUMN note varchar(30) NOT NULL DEFAULT 'n/a'",
		RenameDDL:    "ALTER TABLE %s RENAME TO %s",
		LeastPrivilege: func(t *testing.T, db *sqldb.DB) *sqldb.DB {
			// The owner prepares the publication and replica identity; the
			// stream's user has SELECT and the REPLICATION attribute only.
			var name string
			if err := db.QueryRowContext(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
				t.Fatal(err)
			}
			sourcetest.Exec(t, db, `ALTER TABLE items REPLICA IDENTITY FULL`)
			sourcetest.Exec(t, db, `DO $$ BEGIN
				IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'intercloud') THEN CREATE PUBLICATION intercloud; END IF;
				IF NOT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = 'intercloud' AND tablename = 'items') THEN
					ALTER PUBLICATION intercloud ADD TABLE items; END IF; END $$`)
			role := "least_" + name
			sourcetest.Exec(t, c.root, `CREATE ROLE `+role+` LOGIN REPLICATION PASSWORD 'pw'`)
			sourcetest.Exec(t, db, `GRANT SELECT ON items TO `+role)
			return sourcetest.Open(t, fmt.Sprintf("postgres://%s:pw@127.0.0.1:%d/%s?sslmode=disable", role, c.p.Port, name))
		},
	}))
}

// TestSourcetestChild is the child process of the suite's kill test.
func TestSourcetestChild(t *testing.T) { sourcetest.Child(t) }
