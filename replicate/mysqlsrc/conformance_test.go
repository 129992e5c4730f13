package mysqlsrc_test

import (
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
		Source: func(t *testing.T) *sqldb.DB { return open(t, e.mysqlURL(t, "")) },
		Targets: map[string]func(t *testing.T) *sqldb.DB{
			"postgres": func(t *testing.T) *sqldb.DB { return open(t, e.pgURL(t)) },
			"mysql":    func(t *testing.T) *sqldb.DB { return open(t, e.mysqlURL(t, "")) },
			"sqlite":   func(t *testing.T) *sqldb.DB { return open(t, sqliteURL(t)) },
		},
		AddColumnDDL: "ALTER TABLE items ADD COLUMN note VARCHAR(30) NOT NULL DEFAULT 'n/a'",
	}))
}

// TestSourcetestChild is the child process of the suite's kill test.
func TestSourcetestChild(t *testing.T) { sourcetest.Child(t) }
