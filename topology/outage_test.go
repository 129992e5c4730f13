package topology_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/outagetest"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/topology"
)

// LongOutagesEnv, set to 1, adds the long (60 s) outages of every kind to
// TestDatabaseOutages; by default they are short (5 s). One long outage
// runs by default, split across processes, in cmd/intercloud.
const LongOutagesEnv = "INTERCLOUD_LONG_OUTAGES"

// outage is one way a database goes away and comes back.
type outage struct {
	name     string
	cloud    string // whose database it is
	down, up func(testing.TB)
	length   time.Duration
}

// TestDatabaseOutages runs the topology in one process on MariaDB (AWS)
// and PostgreSQL (Azure) while records keep coming through the front door,
// and takes each database away mid-load: stopped cleanly and killed with
// SIGKILL. Nothing is dead-lettered; while a database is down its cloud is
// degraded, the front door prefers the other cloud, and the streams say
// they are reconnecting with growing lag. In the end every acknowledged id
// is in both databases exactly once (read with their own clients) and
// counted once at the edge.
func TestDatabaseOutages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL and takes them down")
	}
	cfg, my, pg := realDBConfig(t)
	cfg.Functions.MaxBackoff = config.Duration(300 * time.Millisecond)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	topo := start(t, cfg)

	short := 5 * time.Second
	outages := []outage{
		{"mariadb stopped", "aws", my.Stop, my.Start, short},
		{"mariadb killed", "aws", my.Kill, my.Start, short},
		{"postgres stopped", "azure", pg.Stop, pg.Start, short},
		{"postgres killed", "azure", pg.Kill, pg.Start, short},
	}
	if os.Getenv(LongOutagesEnv) == "1" {
		long := time.Minute
		outages = append(outages,
			outage{"mariadb stopped long", "aws", my.Stop, my.Start, long},
			outage{"mariadb killed long", "aws", my.Kill, my.Start, long},
			outage{"postgres stopped long", "azure", pg.Stop, pg.Start, long},
			outage{"postgres killed long", "azure", pg.Kill, pg.Start, long},
		)
	}

	s := outagetest.Send(topo.Client(), topo.URL("frontdoor"), testKey, 20, 4)
	s.WaitFor(t, 200)
	for _, o := range outages {
		t.Logf("%s for %s, %d records acknowledged so far", o.name, o.length, s.Acked())
		began := time.Now()
		o.down(t)
		during(t, topo, o)
		s.WaitFor(t, 100) // the clouds keep taking records
		time.Sleep(time.Until(began.Add(o.length)))
		o.up(t)
		recovered(t, topo)
		s.WaitFor(t, 200)
	}
	acked := s.Stop(t)
	t.Logf("%d records acknowledged", len(acked))

	outagetest.ExactlyOnce(t, acked, 2*time.Minute,
		outagetest.MariaDB(my, "app", cfg.Schema.Table), outagetest.Postgres(pg, "app", cfg.Schema.Table))
	rows := len(pg.Query(t, "app", "SELECT id FROM "+cfg.Schema.Table))
	outagetest.CountedOnce(t, topo.Client(), topo.URL("edge"), rows, time.Minute)
	t.Logf("records by the cloud that took them: %v", outagetest.Origins(t, my, "app", cfg.Schema.Table))
	for _, name := range []string{"aws", "azure"} {
		c := topo.Cloud(name)
		n, err := c.Loader.CountDead(context.Background())
		if err != nil || n != 0 || c.Load.Stats().DeadLettered != 0 {
			t.Errorf("%s: %d dead letters (%v), %d dead-lettered: an outage must not dead-letter", name, n, err, c.Load.Stats().DeadLettered)
		}
	}
	rep, err := replicate.Validate(context.Background(), topo.Cloud("aws").DB, topo.Cloud("azure").DB, cfg.Replication.Tables, 1000)
	if err != nil || !rep.OK() {
		t.Fatalf("validate: %v\n%s", err, rep)
	}
}

// during checks what an operator sees while a cloud's database is down:
// the cloud degraded (database unreachable), the front door preferring the
// other cloud, and a stream of that database reconnecting, its lag growing.
func during(t *testing.T, topo *topology.Topology, o outage) {
	t.Helper()
	other := map[string]string{"aws": "azure", "azure": "aws"}[o.cloud]
	// A stream notices a lost source when its read fails, which can take
	// a few seconds: the outage lasts until the checks pass.
	start := time.Now()
	deadline := start.Add(o.length + 20*time.Second)
	var last string
	for {
		ok, why := degradedAndAvoided(t, topo, o.cloud, other)
		if ok {
			ok, why = reconnecting(t, topo, o.cloud)
		}
		if ok {
			t.Logf("%s: seen degraded, avoided and reconnecting after %s", o.name, time.Since(start).Round(time.Millisecond))
			return
		}
		last = why
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", o.name, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getBody(t *testing.T, topo *topology.Topology, url string) (int, string) {
	t.Helper()
	return outagetest.Get(topo.Client(), url, testKey)
}

// cloudStatus is a cloud's GET /v1/status.
func cloudStatus(t *testing.T, topo *topology.Topology, cloud string) topology.CloudStatus {
	t.Helper()
	_, body := getBody(t, topo, topo.URL(cloud+"-api")+"/v1/status")
	var st topology.CloudStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("%s status: %v: %s", cloud, err, body)
	}
	return st
}

func degradedAndAvoided(t *testing.T, topo *topology.Topology, cloud, other string) (bool, string) {
	code, body := getBody(t, topo, topo.URL(cloud+"-api")+"/healthz")
	if code != http.StatusOK || !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, "database unreachable") {
		return false, "healthz of " + cloud + ": " + body
	}
	for _, b := range topo.FrontDoor().Status() {
		if b.Name == cloud && !b.Degraded {
			return false, "the front door does not see " + cloud + " degraded"
		}
	}
	return true, ""
}

// reconnecting checks the stream whose source is the cloud's database,
// through GET /v1/status and /metrics of the other cloud.
func reconnecting(t *testing.T, topo *topology.Topology, cloud string) (bool, string) {
	other := map[string]string{"aws": "azure", "azure": "aws"}[cloud]
	_, body := getBody(t, topo, topo.URL(other+"-api")+"/v1/status")
	var st topology.CloudStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return false, "status: " + err.Error()
	}
	for _, r := range st.Replication {
		if r.Name != cloud+"-to-"+other {
			continue
		}
		if r.ReconnectingSince.IsZero() || !strings.Contains(r.Unreachable, "source") || !strings.HasPrefix(r.State, "reconnecting since ") {
			return false, "stream " + r.Name + ": " + r.State
		}
		// The lags are taken when the status is: a little before now.
		if out := (time.Since(r.ReconnectingSince) - 100*time.Millisecond).Seconds(); out < 1 || r.SourceLagSeconds < out || r.TargetLagSeconds < out {
			return false, fmt.Sprintf("lag not growing yet after %.1fs: source %.1fs, target %.1fs: %s", out, r.SourceLagSeconds, r.TargetLagSeconds, r.State)
		}
		_, metrics := getBody(t, topo, topo.URL(other+"-api")+"/metrics")
		if !strings.Contains(metrics, `intercloud_replication_reconnecting{cloud="`+other+`",stream="`+r.Name+`"} 1`) {
			return false, "metrics do not say the stream is reconnecting"
		}
		return true, ""
	}
	return false, "no stream " + cloud + "-to-" + other + " in " + body
}

// recovered waits until both clouds are healthy again and every stream
// runs.
func recovered(t *testing.T, topo *topology.Topology) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(time.Minute)
	for {
		why := ""
		for _, name := range []string{"aws", "azure"} {
			if code, body := getBody(t, topo, topo.URL(name+"-api")+"/healthz"); code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
				why = name + ": " + body
			}
			for _, r := range topo.Cloud(name).Status().Replication {
				if !r.ReconnectingSince.IsZero() || r.Phase != replicate.PhaseCDC {
					why = r.Name + ": " + r.State
				}
			}
		}
		if why == "" {
			t.Logf("recovered after %s", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered after a minute: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestObjectStoreOutage kills the AWS object store (versitygw) mid-load
// for a few seconds: AWS answers /healthz 503 (unhealthy: no write can be
// acknowledged), the front door sends the writes to Azure, the load
// function retries what it could not read, nothing is dead-lettered, and
// every acknowledged record arrives once everywhere.
func TestObjectStoreOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw and takes it down")
	}
	s3 := peers.StartS3(t)
	s3.CreateBucket(t, "ingest")
	cfg := testConfig(t, t.TempDir())
	cfg.Clouds["aws"].Objects = s3.BucketURL("ingest")
	cfg.Functions.MaxBackoff = config.Duration(300 * time.Millisecond)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	topo := start(t, cfg)
	s := outagetest.Send(topo.Client(), topo.URL("frontdoor"), testKey, 20, 2)
	s.WaitFor(t, 200)
	s3.Kill(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := getBody(t, topo, topo.URL("aws-api")+"/healthz")
		fd := topo.FrontDoor().Status()[0]
		if code == http.StatusServiceUnavailable && strings.Contains(body, `"status":"unhealthy"`) &&
			strings.Contains(body, "object store unreachable") && fd.Name == "aws" && !fd.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("aws while its store is down: %d %s; front door %+v", code, body, fd)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.WaitFor(t, 200) // taken by Azure
	time.Sleep(3 * time.Second)
	s3.Start(t)
	recovered(t, topo)
	s.WaitFor(t, 200)
	acked := s.Stop(t)
	if _, err := demo.Verify(context.Background(), topo, cfg, acked, 2*time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"aws", "azure"} {
		if n := topo.Cloud(name).Load.Stats().DeadLettered; n != 0 {
			t.Errorf("%s dead-lettered %d objects during a store outage", name, n)
		}
	}
}
