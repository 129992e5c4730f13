package topology_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// TestRejectedTableInStatusAndMetrics: a table whose changes the target
// rejects is named in the target cloud's status and /metrics, and the
// continuous validation counts the rows it lacks.
func TestRejectedTableInStatusAndMetrics(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Replication.ValidateEvery = config.Duration(200 * time.Millisecond)
	topo := start(t, cfg)
	ctx := context.Background()
	if _, err := topo.Cloud("azure").DB.ExecContext(ctx,
		`CREATE TRIGGER frozen BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'records are frozen'); END`); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Send(ctx, topo.URL("frontdoor"), testKey, demo.Options{Records: 20, BatchSize: 10, Client: topo.Client()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := topo.Cloud("azure").Status()
		var stopped []replicate.TableError
		for _, r := range st.Replication {
			if r.Name == "aws-to-azure" {
				stopped = r.StoppedTables
			}
		}
		var differing int64
		for _, v := range st.Validation {
			differing += v.DifferingRows["records"]
		}
		if len(stopped) == 1 && differing == 20 {
			if te := stopped[0]; te.Table != "records" || te.Key == "" || te.Op != "upsert" || !strings.Contains(te.Error, "records are frozen") {
				t.Fatalf("stopped table = %+v", te)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: stopped %+v, differing %d, validation %+v", stopped, differing, st.Validation)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, body := getBody(t, topo, topo.URL("azure-api")+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d %s", code, body)
	}
	for _, want := range []string{
		`intercloud_replication_table_stopped{cloud="azure",stream="aws-to-azure",table="records"} 1`,
		`intercloud_replication_stopped_tables{cloud="azure",stream="aws-to-azure"} 1`,
		`intercloud_replication_differing_rows{cloud="azure",stream="aws-to-azure",table="records"} 20`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
}

// TestOneWayStream: with reverse off,
// a plain table name that only the source has starts fine (the full load
// creates it on the target), a glob does not pick the records table, no
// capture is installed on the target and no checkpoint table is made on
// the source.
func TestOneWayStream(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	off := false
	cfg.Replication.Reverse = &off
	cfg.Replication.Tables = []string{"t", "u*"}
	ctx := context.Background()
	src, err := sqldb.Open(ctx, cfg.Clouds["aws"].SQL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, q := range []string{
		`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`, `CREATE TABLE u1 (id INTEGER PRIMARY KEY, v TEXT)`,
		`INSERT INTO t VALUES (1, 'a'), (2, 'b')`, `INSERT INTO u1 VALUES (1, 'x')`,
	} {
		if _, err := src.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	topo := start(t, cfg)
	dst := topo.Cloud("azure").DB
	waitRows := func(table string, want int64) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			var n int64
			if err := dst.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err == nil && n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never had %d rows on the target", table, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitRows("t", 2)
	waitRows("u1", 1)
	if _, err := src.ExecContext(ctx, `INSERT INTO t VALUES (3, 'c')`); err != nil {
		t.Fatal(err)
	}
	waitRows("t", 3)
	states, err := replicate.LoadTableStates(ctx, dst, "aws-to-azure")
	if err != nil || len(states) != 2 || states["t"].State != "loaded" || states["u1"].State != "loaded" {
		t.Fatalf("replicated tables = %+v, %v (records must not be among them)", states, err)
	}
	var n int64
	if err := src.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '\_ic\_checkpoints' ESCAPE '\'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("checkpoint tables on the source: %d, %v", n, err)
	}
	if err := dst.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('t', 'u1')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("capture triggers on the target: %d, %v", n, err)
	}
	if len(topo.Cloud("aws").Streams) != 0 {
		t.Fatal("a reverse stream runs")
	}
}
