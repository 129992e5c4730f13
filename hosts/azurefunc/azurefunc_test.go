package azurefunc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/hosts"
	"github.com/intercloud/intercloud/hosts/azurefunc"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/azblob"
	_ "github.com/intercloud/intercloud/objects/file" // the default topology, read for the schema, names it
	"github.com/intercloud/intercloud/objects/notify"
	"github.com/intercloud/intercloud/publish"
	"github.com/intercloud/intercloud/record"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestAppFilesGolden(t *testing.T) {
	dir := t.TempDir()
	if err := azurefunc.WriteApp(dir, azurefunc.AppOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"host.json", "load/function.json", "publish/function.json"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", "app", filepath.FromSlash(name))
		if *update {
			os.MkdirAll(filepath.Dir(golden), 0o755)
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s:\n%s", name, golden, got)
		}
	}
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
			EnableForwardingHTTPRequest *bool `json:"enableForwardingHttpRequest"`
		} `json:"customHandler"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "host.json"))
	if err := json.Unmarshal(b, &host); err != nil || host.CustomHandler.Description.DefaultExecutablePath != "intercloud" ||
		host.CustomHandler.EnableForwardingHTTPRequest == nil || *host.CustomHandler.EnableForwardingHTTPRequest {
		t.Fatalf("host.json: %+v %v", host, err)
	}
}

func rawObject(t *testing.T, prefix string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	for i := range n {
		r := record.Record{ID: fmt.Sprintf("%s-%03d", prefix, i), Origin: "azure", TraceID: "trace-" + prefix, IngestedAt: time.Now(),
			Fields: map[string]any{"device": "d1", "metric": "cpu", "value": float64(i), "ts": time.Date(2026, 11, 24, 10, i%60, 0, 0, time.UTC)}}
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// blobCreated is the Event Grid event for a blob, as Event Grid writes it
// into a Storage Queue.
func blobCreated(blobEndpoint, container, key string, size int) string {
	u := blobEndpoint + "/" + container + "/" + (&url.URL{Path: key}).EscapedPath()
	return `{"topic":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",` +
		`"subject":"/blobServices/default/containers/` + container + `/blobs/` + key + `","eventType":"Microsoft.Storage.BlobCreated",` +
		`"id":"` + strconv.FormatInt(time.Now().UnixNano(), 10) + `","data":{"api":"PutBlob","clientRequestId":"c1","requestId":"r1","eTag":"0x8DCAFE",` +
		`"contentType":"application/x-ndjson","contentLength":` + strconv.Itoa(size) + `,"blobType":"BlockBlob","url":"` + u + `",` +
		`"sequencer":"00000000000000000000000000000001","storageDiagnostics":{"batchId":"b1"}},"dataVersion":"","metadataVersion":"1",` +
		`"eventTime":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`
}

// queuePayload is the host's invocation payload for a queue trigger: the
// message text (the host decodes the base64) as a JSON string.
func queuePayload(msg string, dequeue int) []byte {
	now := time.Now().UTC()
	b, _ := json.Marshal(map[string]any{
		"Data": map[string]any{azurefunc.QueueBinding: msg},
		"Metadata": map[string]any{
			"DequeueCount": dequeue, "ExpirationTime": now.Add(7 * 24 * time.Hour).Format(time.RFC3339),
			"Id": "4a1e0d3c-5b8b-4f5e-9c1a-0d2b3c4d5e6f", "InsertionTime": now.Format(time.RFC3339),
			"NextVisibleTime": now.Add(10 * time.Minute).Format(time.RFC3339), "PopReceipt": "AgAAAAMAAAAAAAAA",
			"sys": map[string]any{"MethodName": azurefunc.LoadFunction, "UtcNow": now.Format(time.RFC3339Nano), "RandGuid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},
		},
	})
	return b
}

func timerPayload() []byte {
	now := time.Now().UTC()
	b, _ := json.Marshal(map[string]any{
		"Data": map[string]any{azurefunc.TimerBinding: map[string]any{
			"Schedule":       map[string]any{"AdjustForDST": true},
			"ScheduleStatus": map[string]any{"Last": now.Add(-time.Minute).Format(time.RFC3339), "Next": now.Add(time.Minute).Format(time.RFC3339), "LastUpdated": now.Format(time.RFC3339)},
			"IsPastDue":      false,
		}},
		"Metadata": map[string]any{"sys": map[string]any{"MethodName": azurefunc.PublishFunction, "UtcNow": now.Format(time.RFC3339Nano), "RandGuid": "1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}},
	})
	return b
}

func post(t *testing.T, base, fn string, body []byte) (int, azurefunc.Response) {
	t.Helper()
	resp, err := http.Post(base+"/"+fn, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out azurefunc.Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer is not a custom handler response: %s", raw)
	}
	if out.Outputs == nil || out.Logs == nil {
		t.Fatalf("answer lacks Outputs or Logs: %s", raw)
	}
	return resp.StatusCode, out
}

func count(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM records").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCustomHandlerAzurite serves the custom handler as the Functions host
// would start it and posts the host's invocation payloads, against Azurite
// blob storage and SQLite.
func TestCustomHandlerAzurite(t *testing.T) {
	a := peers.StartAzurite(t)
	objURL := a.ContainerURL("ingest") + "&create=true"
	sqlURL := "sqlite://" + filepath.Join(t.TempDir(), "sql.db")
	port := strconv.Itoa(peers.FreePort(t))
	env := map[string]string{
		hosts.EnvObjectsURL: objURL, hosts.EnvSQLURL: sqlURL, azurefunc.EnvPort: port,
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(t.Context())
	h, closeAll, err := azurefunc.Open(ctx, getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", azurefunc.Addr(getenv))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- azurefunc.Serve(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		closeAll()
	})
	base := "http://127.0.0.1:" + port

	b, err := objects.Open(t.Context(), objURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	db, err := sqldb.Open(t.Context(), sqlURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	key := load.PartitionOf(time.Now()) + "a b.ndjson"
	body := rawObject(t, "q", 12)
	if err := b.Put(t.Context(), key, body, nil); err != nil {
		t.Fatal(err)
	}
	msg := blobCreated(a.BlobEndpoint, "ingest", key, len(body))
	for i := 1; i <= 2; i++ { // a redelivery changes nothing
		status, resp := post(t, base, azurefunc.LoadFunction, queuePayload(msg, i))
		if status != http.StatusOK {
			t.Fatalf("load: %d %v", status, resp.Logs)
		}
		if n := count(t, db); n != 12 {
			t.Fatalf("rows = %d, want 12", n)
		}
	}
	// An event for another container is acknowledged and ignored.
	if status, _ := post(t, base, azurefunc.LoadFunction, queuePayload(blobCreated(a.BlobEndpoint, "other", key, 1), 1)); status != http.StatusOK {
		t.Fatalf("other container: %d", status)
	}
	// A malformed blob is dead-lettered; the invocation succeeds.
	bad := load.PartitionOf(time.Now()) + "bad.ndjson"
	if err := b.Put(t.Context(), bad, []byte("not json\n"), nil); err != nil {
		t.Fatal(err)
	}
	if status, resp := post(t, base, azurefunc.LoadFunction, queuePayload(blobCreated(a.BlobEndpoint, "ingest", bad, 9), 1)); status != http.StatusOK {
		t.Fatalf("malformed blob: %d %v", status, resp.Logs)
	}
	if _, err := b.Attributes(t.Context(), load.DeadPrefix+bad); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	// A malformed message fails the invocation (the host retries it, then
	// moves it to the poison queue).
	for _, p := range [][]byte{queuePayload("{not json", 1), []byte(`{"Data":{}}`), []byte(`{"Data":`)} {
		if status, _ := post(t, base, azurefunc.LoadFunction, p); status < 400 {
			t.Fatalf("malformed payload %s answered %d", p, status)
		}
	}
	if status, _ := post(t, base, "nope", timerPayload()); status != http.StatusNotFound {
		t.Fatalf("unknown function answered %d", status)
	}

	// The timer: a raw object whose event was lost is loaded by the
	// reconciler, and the publish pass writes the results.
	lost := load.PartitionOf(time.Now()) + "lost.ndjson"
	if err := b.Put(t.Context(), lost, rawObject(t, "lost", 8), nil); err != nil {
		t.Fatal(err)
	}
	status, resp := post(t, base, azurefunc.PublishFunction, timerPayload())
	if status != http.StatusOK {
		t.Fatalf("publish: %d %v", status, resp.Logs)
	}
	if n := count(t, db); n != 20 {
		t.Fatalf("rows after the timer = %d, want 20", n)
	}
	sum := summary(t, b)
	if sum.Records != 20 {
		t.Fatalf("summary counts %d records, want 20", sum.Records)
	}
	// A later change is published by the next pass.
	more := load.PartitionOf(time.Now()) + "more.ndjson"
	mb := rawObject(t, "more", 5)
	if err := b.Put(t.Context(), more, mb, nil); err != nil {
		t.Fatal(err)
	}
	if status, resp := post(t, base, azurefunc.LoadFunction, queuePayload(blobCreated(a.BlobEndpoint, "ingest", more, len(mb)), 1)); status != http.StatusOK {
		t.Fatalf("load: %d %v", status, resp.Logs)
	}
	if status, resp := post(t, base, azurefunc.PublishFunction, timerPayload()); status != http.StatusOK {
		t.Fatalf("publish: %d %v", status, resp.Logs)
	}
	if sum := summary(t, b); sum.Records != 25 {
		t.Fatalf("summary counts %d records, want 25", sum.Records)
	}
	if _, err := b.Attributes(t.Context(), publish.Key("cpu", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), "json")); err != nil {
		t.Fatalf("hourly result: %v", err)
	}
}

func summary(t *testing.T, b *objects.Bucket) publish.Summary {
	t.Helper()
	data, _, err := b.Get(t.Context(), publish.SummaryKey)
	if err != nil {
		t.Fatal(err)
	}
	var s publish.Summary
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestQueueMessage(t *testing.T) {
	ev := `{"eventType":"Microsoft.Storage.BlobCreated"}`
	for _, raw := range []string{strconv.Quote(ev), ev} {
		got, err := azurefunc.QueueMessage(json.RawMessage(raw))
		if err != nil || string(got) != ev {
			t.Errorf("QueueMessage(%s) = %s, %v", raw, got, err)
		}
	}
	if _, err := azurefunc.QueueMessage(nil); err == nil {
		t.Error("an empty message was accepted")
	}
	if !strings.Contains(string(queuePayload("x", 1)), `"DequeueCount":1`) {
		t.Error("payload shape")
	}
}

func FuzzQueueMessage(f *testing.F) {
	f.Add([]byte(queuePayload(blobCreated("http://127.0.0.1:1/devstoreaccount1", "ingest", "raw/a.ndjson", 3), 1)))
	f.Add([]byte(`{"Data":{"message":{"eventType":"Microsoft.Storage.BlobCreated","data":{"url":"https://a/ingest/raw/b"}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req azurefunc.Request
		if json.Unmarshal(b, &req) != nil {
			return
		}
		msg, err := azurefunc.QueueMessage(req.Data[azurefunc.QueueBinding])
		if err != nil {
			return
		}
		evs, err := notify.ParseEventGrid(msg, "ingest")
		for _, e := range evs {
			if err != nil || objects.ValidateKey(e.Key) != nil {
				t.Fatalf("bad event %+v %v", e, err)
			}
		}
	})
}
