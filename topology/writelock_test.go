package topology_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/topology"
)

// TestWriteLockStatus: a writer that holds the embedded database's write
// lock shows in the cloud's status (the lock busy, the writer named with
// its share, another writer waiting behind it) and in /metrics, by
// writer.
func TestWriteLockStatus(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	topo := start(t, cfg)
	ctx := sqldb.WithWriter(context.Background(), "holder")
	db := topo.Cloud("azure").DB
	status := func() topology.CloudStatus { return cloudStatus(t, topo, "azure") }
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// The health loop samples the lock every second: within a few, the
	// lock shows busy, by the holder, with writers waiting behind it.
	holder := func(wl *topology.WriteLockStatus) (w topology.WriteLockWriter) {
		for _, x := range wl.Writers {
			if x.Writer == "holder" {
				w = x
			}
		}
		return w
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		wl := status().WriteLock
		if wl != nil && wl.Busy >= 0.5 && wl.Waiting >= 1 && holder(wl).Busy >= 0.5 && wl.Writers[0].Writer == "holder" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write lock never showed busy by its holder with a writer waiting: %+v", wl)
		}
	}
	start := time.Now()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wl := status().WriteLock
	if h := holder(wl); h.Writes != 1 || h.HeldSeconds < 1 {
		t.Errorf("holder %+v, want its one write, held for more than a second", h)
	}
	if wl.LogSyncs < 1 {
		t.Errorf("log syncs %d after a commit, want at least 1", wl.LogSyncs)
	}
	// Released, the lock goes back to the pipeline's writers.
	for deadline := start.Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		wl := status().WriteLock
		if holder(wl).Busy == 0 && wl.Waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the holder's share never went back to 0: %+v", wl)
		}
	}
	_, body := getBody(t, topo, topo.URL("azure-api")+"/metrics")
	for _, want := range []string{
		`intercloud_db_write_lock_held_seconds_total{cloud="azure",writer="holder"} `,
		`intercloud_db_write_lock_writes_total{cloud="azure",writer="holder"} 1`,
		`intercloud_db_write_lock_wait_seconds_total{cloud="azure",writer="publish"} `,
		`intercloud_db_write_lock_busy_ratio{cloud="azure"} `,
		`intercloud_db_write_lock_waiting{cloud="azure"} `,
		`intercloud_db_log_syncs_total{cloud="azure"} `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
