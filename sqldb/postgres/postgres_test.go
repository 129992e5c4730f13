package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/postgres"
	"github.com/intercloud/intercloud/sqldb/sqldbtest"
)

func open(t *testing.T, rawURL string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(t.Context(), rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestPostgres runs everything that needs a server against one cluster:
// starting it costs seconds.
func TestPostgres(t *testing.T) {
	start := time.Now()
	p := peers.StartPostgres(t)
	t.Logf("PostgreSQL started in %v", time.Since(start).Round(time.Millisecond))

	t.Run("Conformance", func(t *testing.T) {
		sqldbtest.RunConformance(t, func(t *testing.T) *sqldb.DB { return open(t, p.URL("app")) })
	})

	t.Run("RefusalIsNoOutage", func(t *testing.T) {
		// A server that refuses the database or the credentials answered:
		// no outage, so start fails at once instead of waiting for it. A
		// port nobody listens on is one.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		badPass := strings.Replace(p.URL("app"), "postgres://app:", "postgres://app:wrong", 1)
		for name, tc := range map[string]struct {
			url  string
			want bool
		}{
			"no such database": {p.URL("nosuchdb"), false},
			"wrong password":   {badPass, false},
			"nobody listening": {fmt.Sprintf("postgres://app:x@127.0.0.1:%d/app?sslmode=disable&connect_timeout=5", peers.FreePort(t)), true},
		} {
			_, err := sqldb.Open(ctx, tc.url, nil)
			if err == nil {
				t.Fatalf("%s: opened", name)
			}
			if got := sqldb.Unavailable(err); got != tc.want {
				t.Errorf("%s: Unavailable = %v, want %v (%v)", name, got, tc.want, err)
			}
		}
	})

	t.Run("PostgresqlScheme", func(t *testing.T) {
		db := open(t, strings.Replace(p.URL("app"), "postgres://", "postgresql://", 1))
		if db.Dialect.Name() != "postgres" {
			t.Fatalf("dialect %s", db.Dialect.Name())
		}
	})

	t.Run("UnsignedRangeChecked", func(t *testing.T) {
		// A uint8 is a SMALLINT that refuses what a uint8 cannot hold.
		db := open(t, p.URL("app"))
		tbl := sqldb.Table{Name: "u8", Columns: []sqldb.Column{
			{Name: "k", Type: sqldb.Type{Kind: sqldb.KindInt}},
			{Name: "v", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 8, Unsigned: true}},
		}, PrimaryKey: []string{"k"}}
		if err := db.EnsureTable(t.Context(), tbl); err != nil {
			t.Fatal(err)
		}
		for _, v := range []int64{-1, 256} {
			if _, err := db.ExecContext(t.Context(), db.Dialect.Upsert(tbl, 1), int64(1), v); err == nil {
				t.Fatalf("uint8 column took %d", v)
			}
		}
	})

	t.Run("WrongPasswordNotLeaked", func(t *testing.T) {
		u, _ := url.Parse(p.URL("app"))
		u.User = url.UserPassword("app", "hunter2-wrong")
		_, err := sqldb.Open(t.Context(), u.String(), nil)
		if err == nil {
			t.Fatal("wrong password accepted")
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error leaks the password: %v", err)
		}
		t.Logf("error: %v", err)
	})

	t.Run("Session", func(t *testing.T) {
		db := open(t, p.URL("app"))
		if got := db.Stats().MaxOpenConnections; got != postgres.MaxOpenConns {
			t.Fatalf("MaxOpenConnections %d", got)
		}
		var tz string
		if err := db.QueryRowContext(t.Context(), "SHOW TimeZone").Scan(&tz); err != nil || tz != "UTC" {
			t.Fatalf("TimeZone %q, %v", tz, err)
		}
	})

	t.Run("CopyUpsert", func(t *testing.T) { testCopyUpsert(t, open(t, p.URL("app"))) })
	t.Run("CopyUpsertNewer", func(t *testing.T) { testCopyUpsertNewer(t, open(t, p.URL("app"))) })

	t.Run("MaxRowsPerStatement", func(t *testing.T) {
		// The largest multi-row upsert the parameter limit allows works.
		db := open(t, p.URL("app"))
		tbl := sqldb.Table{Name: "wide", Columns: []sqldb.Column{
			{Name: "k", Type: sqldb.Type{Kind: sqldb.KindInt}},
			{Name: "a", Type: sqldb.Type{Kind: sqldb.KindInt}},
			{Name: "b", Type: sqldb.Type{Kind: sqldb.KindInt}},
		}, PrimaryKey: []string{"k"}}
		if err := db.EnsureTable(t.Context(), tbl); err != nil {
			t.Fatal(err)
		}
		rows := sqldb.MaxRows(db.Dialect, len(tbl.Columns))
		if rows != 65535/3 {
			t.Fatalf("MaxRows %d", rows)
		}
		args := make([]any, 0, rows*3)
		for i := 0; i < rows; i++ {
			args = append(args, int64(i), int64(i), int64(i))
		}
		if _, err := db.ExecContext(t.Context(), db.Dialect.Upsert(tbl, rows), args...); err != nil {
			t.Fatal(err)
		}
	})

	// Last: it stops and starts the server.
	t.Run("Outage", func(t *testing.T) {
		db := open(t, p.URL("app"))
		sqldbtest.RunOutage(t, db, p.Start, p.Stop, p.Kill)
	})
}

func TestConfigFromURL(t *testing.T) {
	for _, tc := range []struct{ url, err string }{
		{url: "postgres://u:p@h:5433/app?sslmode=disable"},
		{url: "postgresql://u:p@h/app?sslmode=verify-full&application_name=x"},
		{url: "postgres://u:p@/app", err: "host is required"},
		{url: "postgres://u:s3cr3t@h/app?sslmode=bogus", err: "bad URL"},
		{url: "mysql://u:p@h/app", err: "scheme"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := postgres.ConfigFromURL(u)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.url, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("%s: error leaks the password: %v", tc.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if cfg.User != "u" || cfg.Password != "p" || cfg.Database != "app" || cfg.RuntimeParams["timezone"] != "UTC" {
			t.Errorf("%s: config user %q db %q params %v", tc.url, cfg.User, cfg.Database, cfg.RuntimeParams)
		}
	}
}

func TestOpenErrorHasNoPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, raw := range []string{
		"postgres://app:s3cr%3At@127.0.0.1:1/app?sslmode=disable&connect_timeout=2",
		"postgres://app:s3cr%3At@127.0.0.1:1/app?sslmode=nonsense",
		"postgres://app:s3cr%3At@127.0.0.1:99999/app",
	} {
		_, err := sqldb.Open(ctx, raw, nil)
		if err == nil {
			t.Fatalf("%s: opened", raw)
		}
		if strings.Contains(err.Error(), "s3cr") {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
}

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{{"40001", true}, {"40P01", true}, {"55P03", true}, {"23505", false}, {"28P01", false}} {
		err := fmt.Errorf("load: %w", &pgconn.PgError{Code: tc.code, Message: "x"})
		if got := sqldb.Transient(err); got != tc.want {
			t.Errorf("code %s: Transient %v, want %v", tc.code, got, tc.want)
		}
	}
}

func TestPostGISDialect(t *testing.T) {
	geom := sqldb.Type{Kind: sqldb.KindBytes, Spatial: true}
	if got := (postgres.Dialect{}).ColumnType(geom); got != "BYTEA" {
		t.Errorf("without PostGIS: %s", got)
	}
	d := postgres.Dialect{PostGIS: true}
	if got := d.ColumnType(geom); got != "geometry" {
		t.Errorf("with PostGIS: %s", got)
	}
	if got := d.ColumnType(sqldb.Type{Kind: sqldb.KindBytes}); got != "BYTEA" {
		t.Errorf("plain bytes with PostGIS: %s", got)
	}
	v, err := d.Value(geom, []byte{1, 1, 0, 0, 0})
	if err != nil || v != "0101000000" {
		t.Errorf("Value = %#v, %v; want the hex EWKB", v, err)
	}
}

// TestConnClosedIsUnavailable: the error of a pooled connection's first use
// after its server went away (pgx closed it; here as pgx wraps it when
// it could not deallocate the connection's cached statements) is an
// outage, retried, not a failure of the statement.
func TestConnClosedIsUnavailable(t *testing.T) {
	err := fmt.Errorf("failed to deallocate cached statement(s): %w", pgconn.ErrConnClosed)
	if !sqldb.Unavailable(err) {
		t.Fatalf("Unavailable(%v) = false, want true", err)
	}
	if sqldb.Unavailable(errors.New("conn closed")) {
		t.Fatal("a message alike without pgx's error is not taken for it")
	}
}
