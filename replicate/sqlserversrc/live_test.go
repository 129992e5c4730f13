package sqlserversrc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	_ "github.com/intercloud/intercloud/replicate/sqlserversrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
	_ "github.com/intercloud/intercloud/sqldb/sqlserver"
)

// SQLServerEnv names the SQL Server the live tests run against
// (sqlserver://user:pass@host:1433/master?..., a login that may create
// databases and run sys.sp_cdc_enable_db, with SQL Server Agent running);
// unset, they skip.
const SQLServerEnv = "INTERCLOUD_SQLSERVER_URL"

var dbSeq atomic.Int64

// cdcDB creates a fresh database on the server, enables CDC on it (the
// operator's step) and drops it after the test.
func cdcDB(t *testing.T) *sqldb.DB {
	db := sourcetest.FreshSQLServerDB(t, os.Getenv(SQLServerEnv), "iccdc")
	sourcetest.Exec(t, db, "EXEC sys.sp_cdc_enable_db")
	return db
}

func sqliteDB(t *testing.T) *sqldb.DB {
	return sourcetest.Open(t, "sqlite://"+filepath.Join(t.TempDir(), fmt.Sprintf("dst%d.db", dbSeq.Add(1))))
}

// TestSQLServerLive is the CDC source's conformance suite (full load,
// CDC, kill -9 and resume, origin tagging without echo) and its
// schema-change stop on the SQL Server of INTERCLOUD_SQLSERVER_URL (make
// test-sqlserver). No SQL Server runs where this was written: unset, it
// skips and says so.
func TestSQLServerLive(t *testing.T) {
	if os.Getenv(SQLServerEnv) == "" {
		t.Skip("SKIPPED: no SQL Server: set " + SQLServerEnv + " (see README, SQL Server) to run the CDC source's suites against one")
	}
	t.Run("Conformance", func(t *testing.T) {
		sourcetest.Run(t, sourcetest.Harness{
			Source:     cdcDB,
			Targets:    map[string]func(t *testing.T) *sqldb.DB{"sqlite": sqliteDB},
			SourceMode: replicate.SourceLog,
			// CDC does not follow schema changes: AddColumnStops checks
			// the stream stops instead.
		})
	})
	t.Run("AddColumnStops", testAddColumnStops)
}

func TestSourcetestChild(t *testing.T) { sourcetest.Child(t) }

// A column added to a captured table stops the stream with a permanent
// error naming sys.sp_cdc_enable_table.
func testAddColumnStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := cdcDB(t)
	sourcetest.Exec(t, db, "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, name NVARCHAR(50) NULL)")
	src, err := replicate.OpenSourceMode(ctx, db, replicate.SourceLog, replicate.SourceConfig{Name: "t", Tables: []string{"items"}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pos, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.Exec(t, db, "INSERT INTO items (id, name) VALUES (1, N'a')")
	sourcetest.Exec(t, db, "ALTER TABLE items ADD note NVARCHAR(30) NOT NULL DEFAULT N'n/a'")
	sourcetest.Exec(t, db, "INSERT INTO items (id, name) VALUES (2, N'b')")
	err = src.Stream(ctx, pos, replicate.StreamOptions{Poll: 200 * time.Millisecond}, func(context.Context, replicate.Batch) error { return nil })
	if !errors.Is(err, replicate.ErrPermanent) || !strings.Contains(err.Error(), "sys.sp_cdc_enable_table") {
		t.Fatalf("stream: %v, want a permanent error naming sys.sp_cdc_enable_table", err)
	}
}
