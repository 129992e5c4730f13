package sqlitesrc_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

var seq atomic.Int64

func openURL(t *testing.T, url string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), url, sourcetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func execOn(t *testing.T, db *sqldb.DB, q string) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestConformance runs the source conformance suite on SQLite.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and MariaDB")
	}
	pg := peers.StartPostgres(t)
	my := peers.StartMariaDB(t)
	sqliteDB := func(t *testing.T) *sqldb.DB {
		return openURL(t, "sqlite://"+filepath.Join(t.TempDir(), fmt.Sprintf("db%d.db", seq.Add(1))))
	}
	sourcetest.Run(t, sourcetest.SQLiteMatrix.With(sourcetest.Harness{
		Source: sqliteDB,
		Targets: map[string]func(t *testing.T) *sqldb.DB{
			"postgres": func(t *testing.T) *sqldb.DB {
				name := fmt.Sprintf("dst%d", seq.Add(1))
				execOn(t, openURL(t, pg.RootURL("postgres")), "CREATE DATABASE "+name+" OWNER app")
				return openURL(t, pg.URL(name))
			},
			"mysql": func(t *testing.T) *sqldb.DB {
				name := fmt.Sprintf("dst%d", seq.Add(1))
				execOn(t, openURL(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port)), "CREATE DATABASE "+name)
				return openURL(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", my.Port, name))
			},
			"sqlite": sqliteDB,
		},
		// SQLite keeps no log of schema changes: the source notices them
		// by the schema version and the target follows.
		AddColumnDDL: "ALTER TABLE items ADD COLUMN note VARCHAR(30) NOT NULL DEFAULT 'n/a'",
		RenameDDL:    "ALTER TABLE %s RENAME TO %s",
	}))
}

// TestSourcetestChild is the child process of the suite's kill test.
func TestSourcetestChild(t *testing.T) { sourcetest.Child(t) }
