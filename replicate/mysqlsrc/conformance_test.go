package mysqlsrc_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// TestConformance runs the source conformance suite on MariaDB.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	e := newEnv(t, true)
	sourcetest.Run(t, sourcetest.MariaDBMatrix.With(sourcetest.Harness{
		Source: func(t *testing.T) *sqldb.DB { return sourcetest.Open(t, e.mysqlURL(t, "")) },
		Targets: map[string]func(t *testing.T) *sqldb.DB{
			"postgres": func(t *testing.T) *sqldb.DB { return sourcetest.Open(t, e.pgURL(t)) },
			"mysql":    func(t *testing.T) *sqldb.DB { return sourcetest.Open(t, e.mysqlURL(t, "")) },
			"sqlite":   func(t *testing.T) *sqldb.DB { return sourcetest.Open(t, sqliteURL(t)) },
		},
		AddColumnDDL: "ALTER TABLE items ADD COLUMN note VARCHAR(30) NOT NULL DEFAULT 'n/a'",
		RenameDDL:    "ALTER TABLE %s RENAME TO %s",
		LeastPrivilege: func(t *testing.T, db *sqldb.DB) *sqldb.DB {
			// A user with exactly the documented grants of a one-way stream.
			var name string
			if err := db.QueryRowContext(context.Background(), "SELECT DATABASE()").Scan(&name); err != nil {
				t.Fatal(err)
			}
			user := "least_" + name
			sourcetest.Exec(t, db, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw'", user))
			sourcetest.Exec(t, db, fmt.Sprintf("GRANT SELECT ON %s.* TO '%s'@'%%'", name, user))
			sourcetest.Exec(t, db, fmt.Sprintf("GRANT REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO '%s'@'%%'", user))
			return sourcetest.Open(t, fmt.Sprintf("mysql://%s:pw@127.0.0.1:%d/%s", user, e.my.Port, name))
		},
	}))
}

// TestSourcetestChild is the child process of the suite's kill test.
func TestSourcetestChild(t *testing.T) { sourcetest.Child(t) }
