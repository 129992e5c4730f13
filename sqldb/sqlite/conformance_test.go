package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqldbtest"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func TestConformance(t *testing.T) {
	sqldbtest.RunConformance(t, func(t *testing.T) *sqldb.DB {
		db, err := sqldb.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "conf.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
