package topology_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/replicate"
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
	if _, err := demo.Send(ctx, topo.URL("frontdoor"), testKey, demo.Options{Records: 20, BatchSize: 10}); err != nil {
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
	resp, err := http.Get(topo.URL("azure-api") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`intercloud_replication_table_stopped{cloud="azure",stream="aws-to-azure",table="records"} 1`,
		`intercloud_replication_stopped_tables{cloud="azure",stream="aws-to-azure"} 1`,
		`intercloud_replication_differing_rows{cloud="azure",stream="aws-to-azure",table="records"} 20`,
	} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
}
