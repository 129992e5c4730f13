package topology_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/topology"
)

// TestStreamLeaseInStatus: a stream runs only in the process that holds
// its lease. When another process takes the lease over, the status says
// standby, naming the holder, and the cloud stays healthy; when this
// process cannot renew the lease in time (its database row locked) and
// nobody holds it, the status says the lease was lost and is being
// reacquired, /metrics says so, and once that lasts past the TTL /healthz
// says degraded because the stream runs nowhere; then the stream runs
// again and the problem is gone. Never "stopped: no error recorded".
func TestStreamLeaseInStatus(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Leases.TTL = config.Duration(time.Second)
	topo := start(t, cfg)
	const stream = "aws-to-azure"
	azure := topo.Cloud("azure")
	status := func() topology.StreamStatus {
		for _, s := range azure.Status().Replication {
			if s.Name == stream {
				return s
			}
		}
		t.Fatalf("no stream %s in the status", stream)
		return topology.StreamStatus{}
	}
	problems := func() string { return strings.Join(azure.Status().Health.Problems, "; ") }
	running := func() (bool, string) {
		s := status()
		return s.Phase == "cdc" && s.LeaseLostSince.IsZero(), fmt.Sprintf("%+v", s)
	}
	waitFor(t, time.Minute, "the stream never ran", running)

	ctx := context.Background()
	db, err := sqldb.Open(ctx, cfg.Clouds["azure"].SQL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lease := func(query string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, query+" WHERE name = ?", stream+"@azure"); err != nil {
			t.Fatal(err)
		}
	}

	// Another process takes the lease over (and then dies: it never renews).
	lease("UPDATE _ic_leases SET holder = 'other-host/1/feed', token = token + 1, version = version + 1")
	waitFor(t, 10*time.Second, "no standby", func() (bool, string) {
		s := status()
		return s.Phase == topology.PhaseStandby && strings.Contains(s.State, "other-host/1/feed holds the stream's lease") &&
			s.LeaseLostSince.IsZero(), fmt.Sprintf("%+v", s)
	})
	if p := problems(); strings.Contains(p, "replication") {
		t.Fatalf("a standby stream is a problem: %s", p)
	}
	waitFor(t, 30*time.Second, "the stream never ran again after the holder died", running)

	// This process cannot renew: a transaction holds the database's write
	// lock (the row's, on a server).
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE _ic_leases SET fences = fences WHERE name = ?", stream+"@azure"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the lost lease is not in the status", func() (bool, string) {
		s := status()
		return s.Phase == topology.PhaseWaiting && strings.Contains(s.State, "lease lost at") &&
			strings.Contains(s.State, "not renewed in time") && !s.LeaseLostSince.IsZero(), fmt.Sprintf("%+v", s)
	})
	_, page := getPage(t, topo.Client(), topo.URL("azure-api")+"/metrics")
	if want := `intercloud_replication_lease_lost{cloud="azure",stream="` + stream + `"} 1`; !strings.Contains(page, want) {
		t.Errorf("metrics lack %s", want)
	}
	waitFor(t, 20*time.Second, "healthz does not say the stream runs nowhere", func() (bool, string) {
		code, body := getBody(t, topo, topo.URL("azure-api")+"/healthz")
		return code == 200 && strings.Contains(body, `"status":"degraded"`) &&
			strings.Contains(body, "replication "+stream+" runs in no process since"), body
	})
	if p := problems(); strings.Contains(p, "no error recorded") {
		t.Fatalf("problems: %s", p)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the stream never ran again after the lock", running)
	waitFor(t, 30*time.Second, "the problem stayed", func() (bool, string) {
		p := problems()
		return !strings.Contains(p, "replication"), p
	})
	_, page = getPage(t, topo.Client(), topo.URL("azure-api")+"/metrics")
	if want := `intercloud_replication_lease_lost{cloud="azure",stream="` + stream + `"} 0`; !strings.Contains(page, want) {
		t.Errorf("metrics lack %s", want)
	}
}
