package mysql_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/syncbuf"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/mysql"
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

// TestMariaDB runs everything that needs a server against one MariaDB
// instance: starting it costs seconds.
func TestMariaDB(t *testing.T) {
	start := time.Now()
	m := peers.StartMariaDB(t)
	t.Logf("MariaDB started in %v", time.Since(start).Round(time.Millisecond))

	t.Run("Conformance", func(t *testing.T) {
		sqldbtest.RunConformance(t, func(t *testing.T) *sqldb.DB { return open(t, m.URL("app")) })
	})

	t.Run("Flavor", func(t *testing.T) {
		db := open(t, m.URL("app"))
		d, ok := db.Dialect.(mysql.Dialect)
		if !ok || !d.MariaDB {
			t.Fatalf("dialect %#v, want MariaDB", db.Dialect)
		}
	})

	t.Run("NoPadKeys", func(t *testing.T) {
		// "a" and "a " are two keys, "A" and "a" too: the collation is
		// binary and does not pad, as on PostgreSQL and SQLite.
		db := open(t, m.URL("app"))
		tbl := sqldb.Table{Name: "nopad", Columns: []sqldb.Column{{Name: "k", Type: sqldb.Type{Kind: sqldb.KindString, Length: 10}}}, PrimaryKey: []string{"k"}}
		if err := db.EnsureTable(t.Context(), tbl); err != nil {
			t.Fatal(err)
		}
		res, err := db.ExecContext(t.Context(), db.Dialect.InsertIgnore(tbl, 3), "a", "a ", "A")
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 3 {
			t.Fatalf("%d rows inserted, want 3", n)
		}
	})

	t.Run("StrictMode", func(t *testing.T) {
		// Too long a string is an error, also for InsertIgnore, and
		// changes nothing.
		db := open(t, m.URL("app"))
		tbl := sqldb.Table{Name: "strict", Columns: []sqldb.Column{
			{Name: "k", Type: sqldb.Type{Kind: sqldb.KindString, Length: 10}},
			{Name: "v", Type: sqldb.Type{Kind: sqldb.KindString, Length: 3}},
		}, PrimaryKey: []string{"k"}}
		if err := db.EnsureTable(t.Context(), tbl); err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{db.Dialect.InsertIgnore(tbl, 1), db.Dialect.Upsert(tbl, 1)} {
			if _, err := db.ExecContext(t.Context(), stmt, "a", "toolong"); err == nil {
				t.Fatalf("%s: truncation accepted", stmt)
			}
		}
		var n int
		if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM strict").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows, %v", n, err)
		}
	})

	t.Run("InterpolatedStatements", func(t *testing.T) { testInterpolated(t, m, open(t, m.URL("app"))) })

	t.Run("EnsureIndex", func(t *testing.T) {
		db := open(t, m.URL("app"))
		tbl := sqldb.Table{Name: "ensidx", Columns: []sqldb.Column{
			{Name: "k", Type: sqldb.Type{Kind: sqldb.KindString, Length: 10}},
			{Name: "v", Type: sqldb.Type{Kind: sqldb.KindInt}},
		}, PrimaryKey: []string{"k"}}
		if err := db.EnsureTable(t.Context(), tbl); err != nil {
			t.Fatal(err)
		}
		// The MySQL flavour's plain CREATE INDEX, guarded by statistics.
		for i := 0; i < 2; i++ {
			if err := (mysql.Dialect{}).EnsureIndex(t.Context(), db, "ensidx", "ix_v", []string{"v"}); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("WrongPasswordNotLeaked", func(t *testing.T) {
		u, _ := url.Parse(m.URL("app"))
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

	t.Run("PoolSettings", func(t *testing.T) {
		db := open(t, m.URL("app"))
		if got := db.Stats().MaxOpenConnections; got != mysql.MaxOpenConns {
			t.Fatalf("MaxOpenConnections %d", got)
		}
		var zone, mode string
		if err := db.QueryRowContext(t.Context(), "SELECT @@session.time_zone, @@session.sql_mode").Scan(&zone, &mode); err != nil {
			t.Fatal(err)
		}
		if zone != "+00:00" || !strings.Contains(mode, "STRICT_ALL_TABLES") {
			t.Fatalf("time_zone %q sql_mode %q", zone, mode)
		}
	})

	// Last: it stops and starts the server.
	t.Run("Outage", func(t *testing.T) {
		// The driver's own lines go to the database's slog logger.
		var logs syncbuf.Buffer
		db, err := sqldb.Open(t.Context(), m.URL("app"), slog.New(slog.NewJSONHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		sqldbtest.RunOutage(t, db, m.Start, m.Stop, m.Kill)
		if out := logs.String(); !strings.Contains(out, `"library":"go-sql-driver/mysql"`) || !strings.Contains(out, "bad idle connection") {
			t.Errorf("the driver's lines did not reach slog:\n%s", out)
		}
	})
}

func TestConfigFromURL(t *testing.T) {
	for _, tc := range []struct {
		url, addr, db, err string
	}{
		{url: "mysql://u:p@h:3307/app", addr: "h:3307", db: "app"},
		{url: "mysql://u:p@h/app?tls=skip-verify&timeout=3s", addr: "h:3306", db: "app"},
		{url: "mysql://u:p@[::1]:3306/app", addr: "[::1]:3306", db: "app"},
		{url: "mysql://u:p@/app", err: "host is required"},
		{url: "mysql://u:p@h/app?multiStatements=true", err: "multiStatements"},
		{url: "mysql://u:p@h/app?timeout=bogus", err: "bad URL parameters"},
		{url: "mysql://u:p@h/a/b", err: "bad database name"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := mysql.ConfigFromURL(u)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if cfg.Addr != tc.addr || cfg.DBName != tc.db || cfg.User != "u" || cfg.Passwd != "p" ||
			!cfg.ParseTime || cfg.Loc != time.UTC || cfg.MultiStatements {
			t.Errorf("%s: config %+v", tc.url, cfg)
		}
	}
	for raw, want := range map[string]bool{
		"mysql://u:p@h/app":                         true,
		"mysql://u:p@h/app?interpolateParams=false": false,
		"mysql://u:p@h/app?interpolateParams=true":  true,
	} {
		u, _ := url.Parse(raw)
		if cfg, err := mysql.ConfigFromURL(u); err != nil || cfg.InterpolateParams != want {
			t.Errorf("%s: interpolateParams %v, %v; want %v", raw, cfg.InterpolateParams, err, want)
		}
	}
	u, _ := url.Parse("mysql://u:p@h/app?tls=skip-verify")
	cfg, _ := mysql.ConfigFromURL(u)
	if cfg.TLSConfig != "skip-verify" {
		t.Errorf("tls parameter not passed through: %q", cfg.TLSConfig)
	}
}

func TestOpenErrorHasNoPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, raw := range []string{
		"mysql://app:s3cr%3At@127.0.0.1:1/app",
		"mysql://app:s3cr%3At@127.0.0.1:1/app?timeout=nonsense",
		"mysql://app:s3cr%3At@127.0.0.1:1/app?multiStatements=true",
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
		n    uint16
		want bool
	}{{1213, true}, {1205, true}, {1020, true}, {1062, false}, {1045, false}} {
		// The message says nothing: the number decides.
		err := fmt.Errorf("load: %w", &gomysql.MySQLError{Number: tc.n, Message: "x"})
		if got := sqldb.Transient(err); got != tc.want {
			t.Errorf("error %d: Transient %v, want %v", tc.n, got, tc.want)
		}
	}
}

// testInterpolated checks that statements go with their arguments in their
// text (no server-side prepare) and write exactly what a prepared
// statement writes, as the server's own client reads it back, and that
// queries with arguments still run prepared.
func testInterpolated(t *testing.T, m *peers.MariaDB, db *sqldb.DB) {
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE interp (k INT PRIMARY KEY, s VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
b VARBINARY(300), d DOUBLE, f FLOAT, u BIGINT UNSIGNED, ts DATETIME(6), j JSON, bo TINYINT(1))`); err != nil {
		t.Fatal(err)
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	str := "quote' dq\" backslash\\ nul\x00 ctrl-z\x1a ? -- # /* ünïcødé ☃ \r\n"
	ts := time.Date(2026, 11, 30, 12, 34, 56, 123456000, time.UTC)
	args := [][]any{
		{1, str, all, 1e300, float32(3.4028235e38), uint64(18446744073709551615), ts, `{"a": "b'c\\d"}`, true},
		{2, "", []byte{}, 5e-324, float32(-1.5), uint64(0), time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), `[]`, false},
		{3, nil, nil, nil, nil, nil, nil, nil, nil},
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prepares := func() int {
		t.Helper()
		var name string
		var n int
		if err := conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Com_stmt_prepare'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := prepares()
	for _, a := range args[:2] {
		if _, err := conn.ExecContext(ctx, "INSERT INTO interp VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", a...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO interp (k, s, b, d, f, u, ts, j, bo) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", args[2]...); err != nil {
		t.Fatal(err)
	}
	if n := prepares() - before; n != 0 {
		t.Fatalf("%d statements prepared for three inserts, want none", n)
	}
	var k int
	if err := conn.QueryRowContext(ctx, "SELECT k FROM interp WHERE k = ?", 2).Scan(&k); err != nil || k != 2 {
		t.Fatalf("query: %d, %v", k, err)
	}
	if n := prepares() - before; n != 1 {
		t.Fatalf("%d statements prepared for a query with an argument, want 1", n)
	}
	// The same rows through a prepared statement, for the server to compare.
	if _, err := db.ExecContext(ctx, "CREATE TABLE interp_prepared LIKE interp"); err != nil {
		t.Fatal(err)
	}
	stmt, err := conn.PrepareContext(ctx, "INSERT INTO interp_prepared VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	for _, a := range args {
		if _, err := stmt.ExecContext(ctx, a...); err != nil {
			t.Fatal(err)
		}
	}
	q := "SELECT k, HEX(s), HEX(b), d, HEX(CAST(f AS BINARY)), f = %s, u, ts, j, bo FROM %s ORDER BY k"
	got := m.Query(t, "app", fmt.Sprintf(q, "-1.5", "interp"))
	want := m.Query(t, "app", fmt.Sprintf(q, "-1.5", "interp_prepared"))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("interpolated rows:\n%s\nprepared rows:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantFirst := fmt.Sprintf("1\t%X\t%X\t1e300", str, all)
	if len(got) != 3 || !strings.HasPrefix(got[0], wantFirst) || !strings.Contains(got[0], "18446744073709551615\t2026-11-30 12:34:56.123456") {
		t.Fatalf("rows as the server's client reads them:\n%s", strings.Join(got, "\n"))
	}
}
