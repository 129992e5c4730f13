package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/replicate"
	_ "github.com/intercloud/intercloud/replicate/mysqlsrc"
	"github.com/intercloud/intercloud/replicate/pgsrc"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	"github.com/intercloud/intercloud/topology"
)

// TestScenarioOnRealDatabases runs the demo with AWS on MariaDB (binlog
// CDC) and Azure on PostgreSQL (logical replication for publish and the
// reverse stream), then validates the two databases against each other.
func TestScenarioOnRealDatabases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	cfg, _, _ := realDBConfig(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sum, err := demo.Run(context.Background(), cfg, demo.Options{
		KeepRecords: true,
		Records:     2000, BatchSize: 50, Concurrency: 4, Timeout: 2 * time.Minute,
		Topology: topology.Options{APIKey: testKey, LogWriter: testLog(t)},
	})
	if err != nil {
		t.Fatalf("%v (summary %v)", err, sum)
	}
	if sum.Lost != 0 || sum.AWSRows != 2000 || sum.AzureRows != 2000 || sum.ResultsRecords != 2000 {
		t.Fatalf("summary %v", sum)
	}
	topo := start(t, cfg)
	checkResults(t, topo.Client(), topo.URL("edge"), sum.Records)
	rep, err := replicate.Validate(context.Background(), topo.Cloud("aws").DB, topo.Cloud("azure").DB, cfg.Replication.Tables, 500)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("the databases differ:\n%s", rep.String())
	}
}

// TestFailoverOnRealDatabases stops the AWS API: the records go through
// Azure (PostgreSQL) and flow back to AWS (MariaDB) by reverse
// replication, and the two databases validate equal.
func TestFailoverOnRealDatabases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	cfg, _, _ := realDBConfig(t)
	sum, err := demo.Run(context.Background(), cfg, demo.Options{
		KeepRecords: true,
		Records:     500, BatchSize: 50, Concurrency: 4, Timeout: 2 * time.Minute,
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
	topo := start(t, cfg)
	var fromAzure int
	if err := topo.Cloud("aws").DB.QueryRow("SELECT COUNT(*) FROM records WHERE `_origin` = 'azure'").Scan(&fromAzure); err != nil {
		t.Fatal(err)
	}
	if fromAzure != 500 {
		t.Fatalf("%d records reached MariaDB from Azure, want 500", fromAzure)
	}
	// The reverse stream read a publication whose row filter leaves out
	// the records that came from AWS.
	ins, _ := pgsrc.PubNames("azure-to-aws")
	var filter string
	if err := topo.Cloud("azure").DB.QueryRow(`SELECT rowfilter FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'records'`, ins).Scan(&filter); err != nil {
		t.Fatalf("the reverse stream's publication %s: %v", ins, err)
	}
	if filter != "((_origin)::text IS DISTINCT FROM 'aws'::text)" {
		t.Fatalf("the reverse stream's row filter is %s", filter)
	}
	rep, err := replicate.Validate(context.Background(), topo.Cloud("aws").DB, topo.Cloud("azure").DB, cfg.Replication.Tables, 500)
	if err != nil || !rep.OK() {
		t.Fatalf("validate: %v\n%s", err, rep.String())
	}
}
