package topology_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/deadend"
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
		{"no container", func(c *config.Config) { c.Clouds["azure"].Objects = az.ContainerURL("missing") },
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
			// Start waits for a store that does not answer until its
			// context ends; a wrong store fails it at once, however
			// long a loaded machine takes to get there.
			wait := time.Minute
			if strings.Contains(tt.want, "does not answer") {
				wait = 8 * time.Second
			}
			checkStartError(t, cfg, wait, tt.key, tt.want, tt.secret)
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
		checkStartError(t, cfg, time.Minute, "clouds.aws.sql", "binlog_format is STATEMENT, need ROW", ":secret@")
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
		checkStartError(t, cfg, time.Minute, "clouds.aws.sql", "wal_level is not logical: it is replica", ":secret@")
	})
}

// checkStartError starts cfg and wants it to fail with one StartError line.
// A store that does not answer is waited for (TestStartWaitsForTheDatabase)
// until Start's context ends, here after wait.
func checkStartError(t *testing.T, cfg *config.Config, wait time.Duration, key, want, secret string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	began := time.Now()
	topo, err := topology.Start(ctx, cfg, topology.Options{APIKey: testKey, LogWriter: testLog(t)})
	if took := time.Since(began); !strings.Contains(want, "does not answer") && took > wait/2 {
		t.Errorf("Start took %s: it waited for a store that answered wrong", took.Round(time.Millisecond))
	}
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

// TestCheckStoresCutShort: a check that the caller's context cuts short
// (start's deadline, spent on a loaded machine or on a store that hangs)
// does not blame its store; a store that answered wrong is the error, and
// with none the error says that start ended before the checks finished.
func TestCheckStoresCutShort(t *testing.T) {
	// A database that accepts connections and never answers.
	hanging := deadend.Silent(t)
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		set  func(c *config.Config)
		want []string // one line each, in order
	}{
		{"wrong store and hanging database", func(c *config.Config) {
			c.Clouds["azure"].Objects = "file://" + filepath.ToSlash(notADir)
			c.Clouds["aws"].SQL = "mysql://app:secret@" + hanging + "/app"
		}, []string{"clouds.azure.objects file://" + filepath.ToSlash(notADir) + ": cannot open the store"}},
		{"hanging database only", func(c *config.Config) {
			c.Clouds["aws"].SQL = "mysql://app:secret@" + hanging + "/app"
		}, []string{"clouds.aws.sql mysql://app:xxxxx@" + hanging + "/app: start ended (context deadline exceeded) before the check of this store finished"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			tt.set(cfg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err := topology.CheckStores(ctx, cfg, cfg.CloudNames(), nil)
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("error:\n%v\nwant %d lines", err, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d: %q, want it to start %q", i, lines[i], w)
				}
			}
		})
	}
}
