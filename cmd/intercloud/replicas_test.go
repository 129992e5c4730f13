package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/outagetest"
	"github.com/intercloud/intercloud/internal/peers"
)

// replicaStatus is the part of GET /v1/status this test reads.
type replicaStatus struct {
	Ingest struct{ Requests int64 }
	Leases []struct {
		Name   string `json:"name"`
		Held   bool   `json:"held"`
		Holder string `json:"holder"`
	} `json:"leases"`
}

func statusOfReplica(t *testing.T, client *http.Client, api string) (replicaStatus, bool) {
	t.Helper()
	code, body := outagetest.Get(client, api+"/v1/status", "replica-key")
	var st replicaStatus
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		return st, false
	}
	return st, true
}

// held returns the leases a replica holds.
func (st replicaStatus) held() []string {
	var out []string
	for _, l := range st.Leases {
		if l.Held {
			out = append(out, l.Name)
		}
	}
	return out
}

// TestReplicasPerCloud runs two `intercloud up --cloud aws` processes on
// one MariaDB database and one S3 bucket (versitygw), beside `--cloud
// azure` on PostgreSQL and `--cloud global`, with the front door given
// both AWS replicas. Both replicas take writes; each singleton role (the
// reverse replication stream, the reconciler, trimming) runs in exactly
// one of them; after the holder of the stream's lease is killed with
// SIGKILL the other takes over within seconds, the records written on
// Azure meanwhile reach AWS, and every acknowledged id is in both
// databases exactly once.
func TestReplicasPerCloud(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB, PostgreSQL, versitygw and four processes")
	}
	my := peers.StartMariaDB(t)
	pg := peers.StartPostgres(t)
	s3 := peers.StartS3(t)
	s3.CreateBucket(t, "ingest")
	dir := t.TempDir()
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t)) }
	objectsURL := s3.BucketURL("ingest")
	aws1, aws2 := port(), port()
	azureAPI, origin, edge, front, logs, console := port(), port(), port(), port(), port(), port()
	const ttl = 2 * time.Second
	write := func(name, awsAPI string) string {
		path := filepath.Join(dir, name+".yaml")
		yaml := fmt.Sprintf(`data_dir: %s
api_key: replica-key
clouds:
  aws: {sql: "%s", objects: "%s", api: "%s"}
  azure: {sql: "%s", api: "%s", origin: "%s"}
edge: {listen: "%s"}
frontdoor: {listen: "%s", health_interval: 200ms, backends: {aws: ["https://%s", "https://%s"]}}
logs: {listen: "%s"}
console: {listen: "%s"}
leases: {ttl: %s}
functions: {backoff: 50ms, max_backoff: 1s, reconcile: 2s}
`, dir, my.URL("app"), objectsURL, awsAPI, pg.URL("app"), azureAPI, origin, edge, front, aws1, aws2, logs, console, ttl)
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg1, cfg2 := write("aws-1", aws1), write("aws-2", aws2)
	t.Setenv("INTERCLOUD_API_KEY", "")
	// The first process makes the TLS material of the shared data dir;
	// every other one uses it.
	azure := startChild(t, dir, cfg1, "azure")
	replicas := []*child{startReplica(t, dir, cfg1, "aws", "aws-1"), startReplica(t, dir, cfg2, "aws", "aws-2")}
	global := startChild(t, dir, cfg1, "global")
	apis := []string{replicas[0].urls["aws-api"], replicas[1].urls["aws-api"]}
	client := testClient(t, cfg1, dir)

	s := outagetest.Send(client, global.urls["frontdoor"], "replica-key", 20, 4)
	s.WaitFor(t, 400)

	// Every lease has exactly one holder among the replicas.
	var leases []string
	holderOf := map[string]int{}
	deadline := time.Now().Add(time.Minute)
	for {
		clear(holderOf)
		leases = leases[:0]
		count := map[string]int{}
		for i, api := range apis {
			st, ok := statusOfReplica(t, client, api)
			if !ok {
				t.Fatalf("no status from aws-%d", i+1)
			}
			for _, l := range st.Leases {
				if !slices.Contains(leases, l.Name) {
					leases = append(leases, l.Name)
				}
				if l.Held {
					count[l.Name]++
					holderOf[l.Name] = i
				}
			}
		}
		ok := len(leases) > 0
		for _, l := range leases {
			ok = ok && count[l] == 1
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases %v held %v times, want once each", leases, count)
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(leases)
	const stream = "azure-to-aws@aws"
	if !slices.Contains(leases, stream) {
		t.Fatalf("leases %v, want %s among them", leases, stream)
	}
	t.Logf("leases of the aws replicas: %v (held by replica %v)", leases, holderOf)
	// Both replicas take writes through the front door.
	for i, api := range apis {
		st, _ := statusOfReplica(t, client, api)
		if st.Ingest.Requests == 0 {
			t.Errorf("aws-%d took no request through the front door", i+1)
		}
	}

	// SIGKILL the replica that runs the reverse stream.
	victim := holderOf[stream]
	survivor := 1 - victim
	var lost []string
	for l, i := range holderOf {
		if i == victim {
			lost = append(lost, l)
		}
	}
	t.Logf("killing aws-%d, which holds %v", victim+1, lost)
	killed := time.Now()
	if err := replicas[victim].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = replicas[victim].cmd.Wait()
	var took time.Duration
	for {
		st, _ := statusOfReplica(t, client, apis[survivor])
		if h := st.held(); len(h) == len(leases) {
			took = time.Since(killed)
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("aws-%d holds %v 30 s after aws-%d was killed, want %v", survivor+1, st.held(), victim+1, leases)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("aws-%d took over %v %v after the SIGKILL (lease TTL %v)", survivor+1, lost, took.Round(time.Millisecond), ttl)
	if took > 3*ttl {
		t.Errorf("takeover took %v, want within 3 TTLs (%v)", took, 3*ttl)
	}

	// Records written on Azure now reach AWS through the stream the
	// survivor took over; the front door keeps taking writes on aws.
	onAzure, err := demo.Send(context.Background(), azure.urls["azure-api"], "replica-key", demo.Options{Records: 200, BatchSize: 20, Concurrency: 2, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	s.WaitFor(t, 200)
	acked := s.Stop(t)
	maps.Copy(acked, onAzure)
	t.Logf("%d records acknowledged (%d on Azure directly)", len(acked), len(onAzure))
	outagetest.ExactlyOnce(t, acked, 2*time.Minute, outagetest.MariaDB(my, "app", "records"), outagetest.Postgres(pg, "app", "records"))

	// The fencing tokens grew with the takeover.
	rows := my.Query(t, "app", "SELECT token FROM _ic_leases WHERE name = '"+stream+"'")
	if len(rows) != 1 || rows[0] == "1" {
		t.Errorf("lease token %v after a takeover, want one above 1", rows)
	}
	for _, c := range []*child{global, azure, replicas[survivor]} {
		c.stop(t)
	}
	if b, err := os.ReadFile(replicas[survivor].stderr); err == nil && !strings.Contains(string(b), "lease gained") {
		t.Errorf("aws-%d never logged a lease gained", survivor+1)
	}
}
