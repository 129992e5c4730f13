package pgsrc_test

import (
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
				root := open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port))
				exec(t, root, fmt.Sprintf("CREATE DATABASE dst%d", n))
				return open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/dst%d", my.Port, n))
			},
			"sqlite": func(t *testing.T) *sqldb.DB { return sqliteDB(t, "dst") },
		},
		AddColumnDDL: "ALTER TABLE items ADD COLUMN note varchar(30) NOT NULL DEFAULT 'n/a'",
	}))
}

// TestSourcetestChild is the child process of the suite's kill test.
func TestSourcetestChild(t *testing.T) { sourcetest.Child(t) }
