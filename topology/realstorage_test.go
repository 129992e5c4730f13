package topology_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/azblob"
	_ "github.com/intercloud/intercloud/objects/s3"
	"github.com/intercloud/intercloud/telemetry"
	"github.com/intercloud/intercloud/topology"
)

// TestScenarioOnRealStorage runs the demo with AWS on S3 (versitygw) and
// Azure on Blob Storage (Azurite): every record reaches both databases and
// the results, and the edge serves them from Azurite.
func TestScenarioOnRealStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw and Azurite")
	}
	s3 := peers.StartS3(t)
	s3.CreateBucket(t, "ingest")
	az := peers.StartAzurite(t)

	cfg := testConfig(t, t.TempDir())
	cfg.Clouds["aws"].Objects = s3.BucketURL("ingest")
	cfg.Clouds["azure"].Objects = az.ContainerURL("results") + "&create=true"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	var edgeURL string
	sum, err := demo.Run(context.Background(), cfg, demo.Options{
		KeepRecords: true,
		Records:     600, BatchSize: 50, Concurrency: 4, Timeout: 2 * time.Minute,
		Topology:  topology.Options{APIKey: testKey, LogWriter: testLog(t)},
		OnStarted: func(topo *topology.Topology) { edgeURL = topo.URL("edge") },
	})
	if err != nil {
		t.Fatalf("%v (summary %v)", err, sum)
	}
	if sum.Lost != 0 || sum.AWSRows != 600 || sum.AzureRows != 600 || sum.ResultsRecords != 600 || edgeURL == "" {
		t.Fatalf("summary %v", sum)
	}
	topo := start(t, cfg)
	checkResults(t, topo.Client(), topo.URL("edge"), sum.Records)
	// The raw objects are in the S3 bucket, the results in the container.
	n := 0
	if err := topo.Cloud("aws").Bucket.List(context.Background(), "raw/", func(objects.Object) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no raw objects in the S3 bucket")
	}
}

// TestS3NotificationsTriggerLoad writes a raw object into the S3 bucket
// behind the topology's back (as another writer would): versitygw's event
// webhook makes the load function pick it up long before the reconciler
// would.
func TestS3NotificationsTriggerLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw")
	}
	s3Port, hookPort := peers.FreePort(t), peers.FreePort(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Functions.Reconcile = config.Duration(time.Hour)
	q := url.Values{"region": {"us-east-1"}, "endpoint": {fmt.Sprintf("http://127.0.0.1:%d", s3Port)}, "use_path_style": {"true"},
		"access_key_id": {"intercloudtest"}, "secret_access_key": {"intercloudtest-secret"}}
	cfg.Clouds["aws"].Objects = "s3://ingest?" + q.Encode()
	cfg.Clouds["aws"].Notifications = fmt.Sprintf("webhook://127.0.0.1:%d/s3-events?keys=raw", hookPort)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// The store and its bucket exist before the topology starts (which
	// checks them); its events go to the webhook the topology listens on.
	s3 := peers.StartS3At(t, s3Port, fmt.Sprintf("http://127.0.0.1:%d/s3-events?keys=raw", hookPort))
	if s3.AccessKey != "intercloudtest" {
		t.Fatalf("the peer's credentials changed: %s", s3.AccessKey)
	}
	s3.CreateBucket(t, "ingest")
	topo := start(t, cfg)

	// Another writer: a second bucket handle on the same store, so no
	// in-process event reaches the function host.
	other, err := objects.Open(context.Background(), cfg.Clouds["aws"].Objects, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	line := `{"id":"from-elsewhere","device":"d","metric":"cpu","value":1,"ts":"2026-11-24T10:00:00Z","_origin":"aws","_trace_id":"t","_ingested_at":"2026-11-24T10:00:00Z"}` + "\n"
	if err := other.Put(context.Background(), "raw/2026/11/24/10/elsewhere.ndjson", []byte(line), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := topo.Cloud("aws").DB.QueryRow(`SELECT COUNT(*) FROM records WHERE id = 'from-elsewhere'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notified object was not loaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLogsExportToElasticsearch ships every log line also to an
// Elasticsearch bulk API (VictoriaLogs here) and finds a record's trace there.
func TestLogsExportToElasticsearch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts VictoriaLogs")
	}
	vl := peers.StartVictoriaLogs(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Logs.Elasticsearch = vl.URL + "/insert/elasticsearch?_msg_field=message&_time_field=@timestamp&_stream_fields=cloud.provider,service.name"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	topo := start(t, cfg)
	acked, err := demo.Send(context.Background(), topo.URL("frontdoor"), testKey, demo.Options{Records: 50, BatchSize: 50, Client: topo.Client()})
	if err != nil || len(acked) != 50 {
		t.Fatalf("send: %d %v", len(acked), err)
	}
	var trace string
	deadline := time.Now().Add(20 * time.Second)
	for trace == "" {
		_ = topo.Cloud("aws").DB.QueryRow(`SELECT "_trace_id" FROM records LIMIT 1`).Scan(&trace)
		if time.Now().After(deadline) {
			t.Fatal("no record loaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		resp, err := http.PostForm(vl.URL+"/select/logsql/query", url.Values{"query": {`trace.id:"` + trace + `"`}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// ECS fields, flattened by VictoriaLogs.
		if strings.Contains(string(body), `"service.name":"intercloud-ingest"`) && strings.Contains(string(body), `"cloud.provider":"aws"`) &&
			strings.Contains(string(body), `"log.level":"info"`) && strings.Contains(string(body), `"ecs.version":"`+telemetry.ECSVersion+`"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s not found in VictoriaLogs: %s", trace, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
