package topology_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
	_ "github.com/intercloud/intercloud/replicate/pollsrc"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/topology"
)

// The whole scenario with replication.source: poll, one way: replication
// and publish read the query-based source, on SQLite and on MariaDB →
// PostgreSQL; every record reaches the other database and the published
// results, the databases validate equal, and the capture installed is the
// poll source's (its change table), not the log source's.
func TestScenarioPollSource(t *testing.T) {
	cases := map[string]func(t *testing.T, cfg *config.Config){
		"sqlite": func(*testing.T, *config.Config) {},
		"mariadb-postgres": func(t *testing.T, cfg *config.Config) {
			if testing.Short() {
				t.Skip("starts MariaDB and PostgreSQL")
			}
			my := peers.StartMariaDB(t)
			// The app user has no SUPER: with the binary log on, it
			// creates the capture triggers under this server setting
			// (the check before start names it; see pollsrc.Check).
			root, err := sqldb.Open(context.Background(), fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			if _, err := root.Exec("SET GLOBAL log_bin_trust_function_creators = 1"); err != nil {
				t.Fatal(err)
			}
			cfg.Clouds["aws"].SQL = my.URL("app")
			cfg.Clouds["azure"].SQL = peers.StartPostgres(t).URL("app")
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			setup(t, cfg)
			no := false
			cfg.Replication.Source, cfg.Replication.Reverse = config.SourcePoll, &no
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			sum, err := demo.Run(context.Background(), cfg, demo.Options{
				KeepRecords: true,
				Records:     1000, BatchSize: 50, Concurrency: 4, Timeout: 3 * time.Minute,
				Topology: topology.Options{APIKey: testKey, LogWriter: testLog(t)},
			})
			if err != nil {
				t.Fatalf("%v (summary %v)", err, sum)
			}
			if sum.Lost != 0 || sum.AWSRows != 1000 || sum.AzureRows != 1000 || sum.ResultsRecords != 1000 {
				t.Fatalf("summary %v", sum)
			}
			topo := start(t, cfg)
			checkResults(t, topo.Client(), topo.URL("edge"), sum.Records)
			aws, azure := topo.Cloud("aws").DB, topo.Cloud("azure").DB
			rep, err := replicate.Validate(context.Background(), aws, azure, cfg.Replication.Tables, 500)
			if err != nil || !rep.OK() {
				t.Fatalf("validate: %v\n%s", err, rep.String())
			}
			// The forward stream read AWS, publish read Azure: both
			// through the poll source's change table.
			for _, db := range []*sqldb.DB{aws, azure} {
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
