package topology_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/azblob"
	_ "github.com/intercloud/intercloud/objects/s3"
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
	q := url.Values{"region": {s3.Region}, "endpoint": {s3.Endpoint}, "use_path_style": {"true"},
		"access_key_id": {s3.AccessKey}, "secret_access_key": {s3.SecretKey}}
	cfg.Clouds["aws"].Objects = "s3://ingest?" + q.Encode()
	q = url.Values{"service_url": {az.BlobEndpoint}, "storage_account": {az.Account}, "account_key": {az.Key}, "create": {"true"}}
	cfg.Clouds["azure"].Objects = "azblob://results?" + q.Encode()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	var edgeURL string
	sum, err := demo.Run(context.Background(), cfg, demo.Options{
		Records: 600, BatchSize: 50, Concurrency: 4, Timeout: 2 * time.Minute,
		Topology:  topology.Options{APIKey: testKey, LogWriter: testLog(t)},
		OnStarted: func(topo *topology.Topology) { edgeURL = topo.URL("edge") },
	})
	if err != nil {
		t.Fatalf("%v (summary %+v)", err, sum)
	}
	if sum.Lost != 0 || sum.AWSRows != 600 || sum.AzureRows != 600 || sum.ResultsRecords != 600 || edgeURL == "" {
		t.Fatalf("summary %+v", sum)
	}
	topo := start(t, cfg)
	checkResults(t, topo.URL("edge"), sum.Records)
	// The raw objects are in the S3 bucket, the results in the container.
	n := 0
	if err := topo.Cloud("aws").Bucket.List(context.Background(), "raw/", func(objects.Object) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no raw objects in the S3 bucket")
	}
}
