package topology_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
	_ "github.com/intercloud/intercloud/replicate/pollsrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlserver"
	"github.com/intercloud/intercloud/topology"
)

// trustFunctionCreators lets MariaDB's app user (no SUPER) create the
// poll source's triggers while the binary log is on, as the server
// parameter does on a managed MySQL (the check before start names it;
// see pollsrc.Driver.Check).
func trustFunctionCreators(t *testing.T, my *peers.MariaDB) {
	t.Helper()
	root, err := sqldb.Open(context.Background(), fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.Exec("SET GLOBAL log_bin_trust_function_creators = 1"); err != nil {
		t.Fatal(err)
	}
}

// The whole scenario with replication.source: poll, on SQLite and on
// MariaDB ⇄ PostgreSQL: replication both ways and publish read the
// query-based source. Half the records go through Azure while the AWS API
// is down, so they flow back by the reverse stream; every record is in
// both databases once and in the published results, nothing echoed (the
// databases validate equal and the records ingested on Azure reached AWS
// as Azure's), and the capture installed is the poll source's.
func TestScenarioPollSource(t *testing.T) {
	cases := map[string]func(t *testing.T) *config.Config{
		"sqlite": func(t *testing.T) *config.Config {
			cfg := testConfig(t, t.TempDir())
			cfg.Replication.Source = config.SourcePoll
			return cfg
		},
		"mariadb-postgres": func(t *testing.T) *config.Config {
			if testing.Short() {
				t.Skip("starts MariaDB and PostgreSQL")
			}
			cfg, my, _ := realDBConfig(t)
			trustFunctionCreators(t, my)
			cfg.Replication.Source = config.SourcePoll
			return cfg
		},
		// Azure on SQL Server without replication.source: AWS (SQLite)
		// is read through its log, SQL Server (no log source) through
		// the poll source, by default.
		"sqlite-sqlserver": func(t *testing.T) *config.Config {
			u := os.Getenv(sqlServerEnv)
			if u == "" {
				t.Skip("SKIPPED: no SQL Server: set " + sqlServerEnv + " (see README, SQL Server) to run the scenario with Azure on SQL Server")
			}
			cfg := testConfig(t, t.TempDir())
			cfg.Clouds["azure"].SQL = freshSQLServerDB(t, u)
			return cfg
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := setup(t)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			const n = 600
			sum, err := demo.Run(context.Background(), cfg, demo.Options{
				KeepRecords: true,
				Records:     n, BatchSize: 50, Concurrency: 4, Timeout: 3 * time.Minute,
				Topology: topology.Options{APIKey: testKey, LogWriter: testLog(t)},
				OnStarted: func(topo *topology.Topology) {
					if err := topo.StopAPI(context.Background(), "aws"); err != nil {
						t.Error(err)
					}
				},
			})
			if err != nil {
				t.Fatalf("%v (summary %v)", err, sum)
			}
			if sum.Lost != 0 || sum.AWSRows != n || sum.AzureRows != n || sum.ResultsRecords != n {
				t.Fatalf("summary %v", sum)
			}
			topo := start(t, cfg)
			checkResults(t, topo.Client(), topo.URL("edge"), sum.Records)
			aws, azure := topo.Cloud("aws").DB, topo.Cloud("azure").DB
			// status names each stream's mode: the mode its source is read in.
			for _, cloud := range []string{"aws", "azure"} {
				for _, ss := range topo.Cloud(cloud).Status().Replication {
					src := map[string]*sqldb.DB{"aws-to-azure": aws, "azure-to-aws": azure}[ss.Name]
					if want := cfg.Replication.SourceMode(replicate.HasLogSource(src.Dialect.Name())); ss.SourceMode != want {
						t.Errorf("status of %s: source_mode %q, want %q", ss.Name, ss.SourceMode, want)
					}
				}
			}
			var fromAzure int
			if err := aws.QueryRow("SELECT COUNT(*) FROM records WHERE " + aws.Dialect.Quote("_origin") + " = 'azure'").Scan(&fromAzure); err != nil {
				t.Fatal(err)
			}
			if fromAzure != n {
				t.Fatalf("%d records reached AWS from Azure, want %d", fromAzure, n)
			}
			rep, err := replicate.Validate(context.Background(), aws, azure, cfg.Replication.Tables, 500)
			if err != nil || !rep.OK() {
				t.Fatalf("validate: %v\n%s", err, rep.String())
			}
			for _, db := range []*sqldb.DB{aws, azure} {
				if cfg.Replication.SourceMode(replicate.HasLogSource(db.Dialect.Name())) != config.SourcePoll {
					continue
				}
				if _, err := db.Dialect.Describe(context.Background(), db, "_ic_poll_log"); err != nil {
					t.Errorf("%s: the poll change table: %v", db.Name, err)
				}
				if db.Dialect.Name() == "sqlite" {
					if _, err := db.Dialect.Describe(context.Background(), db, "_ic_changes"); err == nil {
						t.Errorf("%s: the log source's change table was installed too", db.Name)
					}
				}
			}
		})
	}
}

// sqlServerEnv names the SQL Server the live scenario runs against
// (make test-sqlserver).
const sqlServerEnv = "INTERCLOUD_SQLSERVER_URL"

// freshSQLServerDB creates a database of its own on the SQL Server at u,
// dropped when the test ends, and returns its URL.
func freshSQLServerDB(t *testing.T, u string) string {
	t.Helper()
	admin, err := sqldb.Open(context.Background(), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("ictopo%d", os.Getpid())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("ALTER DATABASE " + name + " SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
		_, _ = admin.Exec("DROP DATABASE " + name)
		admin.Close()
	})
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Path = "/" + name
	return pu.String()
}
