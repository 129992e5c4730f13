package topology_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/topology"
)

// TestStartChecksEveryStore starts topologies whose stores are wrong in one
// way each, on real servers: Start fails before anything runs with one
// line naming the key, the URL without its secret, what is wrong and the
// fix.
func TestStartChecksEveryStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw, Azurite, MariaDB and PostgreSQL")
	}
	s3 := peers.StartS3(t)
	s3.CreateBucket(t, "ingest")
	az := peers.StartAzurite(t)
	my := peers.StartMariaDB(t)
	pg := peers.StartPostgres(t)
	closed := peers.FreePort(t)

	s3URL := func(bucket, secret string) string {
		q := url.Values{"region": {s3.Region}, "endpoint": {s3.Endpoint}, "use_path_style": {"true"},
			"access_key_id": {s3.AccessKey}, "secret_access_key": {secret}}
		return "s3://" + bucket + "?" + q.Encode()
	}
	azURL := func(container string) string {
		q := url.Values{"service_url": {az.BlobEndpoint}, "storage_account": {az.Account}, "account_key": {az.Key}}
		return "azblob://" + container + "?" + q.Encode()
	}
	myBadPass := strings.Replace(my.URL("app"), ":secret@", ":wrong-pass@", 1)
	tests := []struct {
		name   string
		set    func(c *config.Config)
		key    string
		want   string
		secret string // must not appear
	}{
		{"no bucket", func(c *config.Config) { c.Clouds["aws"].Objects = s3URL("nope", s3.SecretKey) },
			"clouds.aws.objects", "bucket or container does not exist", s3.SecretKey},
		{"bad S3 secret", func(c *config.Config) { c.Clouds["aws"].Objects = s3URL("ingest", "not-the-secret") },
			"clouds.aws.objects", "refused the credentials", "not-the-secret"},
		{"no container", func(c *config.Config) { c.Clouds["azure"].Objects = azURL("missing") },
			"clouds.azure.objects", "bucket or container does not exist", az.Key},
		{"S3 not there", func(c *config.Config) {
			c.Clouds["aws"].Objects = strings.Replace(s3URL("ingest", s3.SecretKey), url.QueryEscape(s3.Endpoint), url.QueryEscape(fmt.Sprintf("http://127.0.0.1:%d", closed)), 1)
		}, "clouds.aws.objects", "does not answer", s3.SecretKey},
		{"database not there", func(c *config.Config) {
			c.Clouds["aws"].SQL = fmt.Sprintf("mysql://app:secret@127.0.0.1:%d/app", closed)
		},
			"clouds.aws.sql", "does not answer", ":secret@"},
		{"bad password", func(c *config.Config) { c.Clouds["aws"].SQL = myBadPass },
			"clouds.aws.sql", "refused the credentials", "wrong-pass"},
		{"no database", func(c *config.Config) { c.Clouds["azure"].SQL = pg.URL("nodb") },
			"clouds.azure.sql", "database does not exist", ""},
		{"no source table", func(c *config.Config) { c.Replication.Tables = append(c.Replication.Tables, "orders") },
			"clouds.aws.sql", `replication.tables names "orders", which this database does not have`, ":secret@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Clouds["aws"].SQL, cfg.Clouds["azure"].SQL = my.URL("app"), pg.URL("app")
			tt.set(cfg)
			checkStartError(t, cfg, tt.key, tt.want, tt.secret)
		})
	}

	// A MariaDB whose binary log is not in ROW format (a replication
	// source).
	t.Run("binlog format", func(t *testing.T) {
		root, err := sql.Open("mysql", my.RootDSN())
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		if _, err := root.Exec("SET GLOBAL binlog_format = 'STATEMENT'"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := root.Exec("SET GLOBAL binlog_format = 'ROW'"); err != nil {
				t.Error(err)
			}
		}()
		cfg := testConfig(t, t.TempDir())
		cfg.Clouds["aws"].SQL = my.URL("app")
		checkStartError(t, cfg, "clouds.aws.sql", "binlog_format is STATEMENT, need ROW", ":secret@")
	})

	// A PostgreSQL replication source with wal_level=replica (the server's
	// default), restarted so that the setting is live: last, since it
	// leaves the server without logical decoding.
	t.Run("wal level", func(t *testing.T) {
		pg.Query(t, "app", "ALTER SYSTEM SET wal_level = replica")
		pg.Stop(t)
		pg.Start(t)
		if got := pg.Query(t, "app", "SHOW wal_level"); len(got) != 1 || got[0] != "replica" {
			t.Fatalf("wal_level %v after the restart, want replica", got)
		}
		cfg := testConfig(t, t.TempDir())
		cfg.Clouds["aws"].SQL = pg.URL("app") // the source of aws-to-azure
		checkStartError(t, cfg, "clouds.aws.sql", "wal_level is not logical: it is replica", ":secret@")
	})
}

// checkStartError starts cfg and wants it to fail with one StartError line.
func checkStartError(t *testing.T, cfg *config.Config, key, want, secret string) {
	t.Helper()
	topo, err := topology.Start(context.Background(), cfg, topology.Options{APIKey: testKey, LogWriter: testLog(t)})
	if err == nil {
		_ = topo.Stop(context.Background())
		t.Fatal("started")
	}
	var se *topology.StartError
	if !errors.As(err, &se) || se.Key != key {
		t.Fatalf("error %T %v, want a StartError for %s", err, err, key)
	}
	msg := err.Error()
	t.Logf("%s", msg)
	if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, key+" ") || !strings.Contains(msg, want) || !strings.Contains(msg, "fix: ") {
		t.Fatalf("message %q: want one line starting %q with %q and a fix", msg, key, want)
	}
	if secret != "" && strings.Contains(msg, secret) {
		t.Fatalf("message shows a secret: %q", msg)
	}
}
