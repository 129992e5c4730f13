package topology_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/certs"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/topology"
)

// TestDatabaseTLS starts MariaDB and PostgreSQL that accept TCP clients
// over TLS only, with certificates of a CA of the test's own: a URL without
// TLS is refused, one that trusts another CA fails the handshake, and with
// TLS, the custom CA and a client certificate in the URL the whole
// scenario runs (the SQL connections, MariaDB's binlog stream and
// PostgreSQL's logical replication), each database confirming from its
// side that our connection is encrypted.
func TestDatabaseTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	dir := t.TempDir()
	hosts := map[string][]string{"db": {"127.0.0.1"}, "client": nil}
	if _, err := certs.Init(dir, hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := certs.Init(other, hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, certs.CACert)
	server := peers.TLSFiles{Cert: certs.CertFile(dir, "db"), Key: certs.KeyFile(dir, "db"), CA: ca}
	my := peers.StartMariaDBTLS(t, server)
	pg := peers.StartPostgresTLS(t, server)
	client := "tls-cert=" + certs.CertFile(dir, "client") + "&tls-key=" + certs.KeyFile(dir, "client")
	myTLS := my.URL("app") + "?tls=true&tls-ca=" + ca + "&" + client
	pgBase := strings.TrimSuffix(pg.URL("app"), "?sslmode=disable")
	pgTLS := pgBase + "?sslmode=verify-full&sslrootcert=" + ca + "&sslcert=" + certs.CertFile(dir, "client") + "&sslkey=" + certs.KeyFile(dir, "client")

	ctx := context.Background()
	for _, bad := range []struct{ name, url, want string }{
		// require_secure_transport: MariaDB 10.11 answers access denied.
		{"mariadb without tls", my.URL("app"), "Access denied"},
		{"mariadb trusting another ca", my.URL("app") + "?tls=true&tls-ca=" + filepath.Join(other, certs.CACert), "certificate"},
		{"postgres without tls", pgBase + "?sslmode=disable", "pg_hba.conf"},
		{"postgres trusting another ca", pgBase + "?sslmode=verify-full&sslrootcert=" + filepath.Join(other, certs.CACert), "certificate"},
	} {
		db, err := sqldb.Open(ctx, bad.url, nil)
		if err == nil {
			err = db.PingContext(ctx)
			db.Close()
		}
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error about %q", bad.name, err, bad.want)
		}
	}

	// The databases confirm the encryption from their side.
	for _, c := range []struct{ url, query string }{
		{myTLS, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'"},
		{pgTLS, "SELECT CASE WHEN ssl THEN cipher ELSE '' END FROM pg_stat_ssl WHERE pid = pg_backend_pid()"},
	} {
		db, err := sqldb.Open(ctx, c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		var cipher string
		if err := db.QueryRowContext(ctx, c.query).Scan(&cipher); err != nil || cipher == "" {
			t.Errorf("%s: cipher %q (%v): the connection is not encrypted", db.Dialect.Name(), cipher, err)
		}
		db.Close()
	}

	cfg := testConfig(t, t.TempDir())
	cfg.Clouds["aws"].SQL = myTLS
	cfg.Clouds["azure"].SQL = pgTLS
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sum, err := demo.Run(ctx, cfg, demo.Options{
		Records: 500, BatchSize: 50, Concurrency: 4, Timeout: 2 * time.Minute,
		Topology: topology.Options{APIKey: testKey, LogWriter: testLog(t)},
	})
	if err != nil {
		t.Fatalf("%v (summary %v)", err, sum)
	}
	if sum.Lost != 0 || sum.AWSRows != 500 || sum.AzureRows != 500 || sum.ResultsRecords != 500 {
		t.Fatalf("summary %v", sum)
	}
	// Counted with the databases' own clients (over their local sockets).
	if got := my.Query(t, "app", "SELECT COUNT(*) FROM records"); len(got) != 1 || got[0] != "500" {
		t.Errorf("mariadb holds %v records", got)
	}
	if got := pg.Query(t, "app", "SELECT COUNT(*) FROM records"); len(got) != 1 || got[0] != "500" {
		t.Errorf("postgres holds %v records", got)
	}
}
