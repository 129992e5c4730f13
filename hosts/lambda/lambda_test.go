package lambda_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/hosts"
	"github.com/intercloud/intercloud/hosts/lambda"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	_ "github.com/intercloud/intercloud/objects/s3"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

// rawObject returns the stored NDJSON form of n records, as ingest writes it.
func rawObject(t *testing.T, prefix string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	for i := range n {
		r := record.Record{ID: fmt.Sprintf("%s-%03d", prefix, i), Origin: "aws", TraceID: "trace-" + prefix, IngestedAt: time.Now(),
			Fields: map[string]any{"device": "d1", "metric": "cpu", "value": float64(i) + 0.5, "ts": time.Date(2026, 11, 24, 10, i%60, 0, 0, time.UTC)}}
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// s3Event is the JSON S3 sends for one created object; key is URL-encoded
// the way S3 encodes it.
func s3Event(bucket, key string, size int) []byte {
	enc := url.QueryEscape(key)
	enc = strings.ReplaceAll(enc, "%2F", "/")
	return fmt.Appendf(nil, `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
"eventTime":"2026-11-24T10:00:00.000Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:EXAMPLE"},
"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"R1","x-amz-id-2":"I2"},
"s3":{"s3SchemaVersion":"1.0","configurationId":"load","bucket":{"name":%q,"ownerIdentity":{"principalId":"EXAMPLE"},"arn":"arn:aws:s3:::%s"},
"object":{"key":%q,"size":%d,"eTag":"0123456789abcdef0123456789abcdef","sequencer":"0A1B2C3D4E5F678901"}}}]}`, bucket, bucket, enc, size)
}

func countRows(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM records").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDecodeKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"raw/2026/11/24/10/a.ndjson", "raw/2026/11/24/10/a.ndjson"},
		{"raw/a+b.ndjson", "raw/a b.ndjson"},
		{"raw/a%2Bb.ndjson", "raw/a+b.ndjson"},
		{"raw/%C3%A9.ndjson", "raw/é.ndjson"},
	} {
		got, err := lambda.DecodeKey(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("DecodeKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := lambda.DecodeKey("raw/%zz"); err == nil {
		t.Error("DecodeKey accepted a malformed escape")
	}
}

// TestHandleInProcess runs the handler on a file store: the same code the
// Lambda runs, without the runtime.
func TestHandleInProcess(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	h, closeAll, err := lambda.Open(ctx, hosts.Env{
		ObjectsURL: "file://" + filepath.Join(dir, "objects"), SQLURL: "sqlite://" + filepath.Join(dir, "sql.db"),
		Config: config.Default(dir),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	b, err := objects.Open(ctx, "file://"+filepath.Join(dir, "objects"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(dir, "sql.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	key := "raw/2026/11/24/10/a b+c.ndjson"
	body := rawObject(t, "inproc", 5)
	if err := b.Put(ctx, key, body, nil); err != nil {
		t.Fatal(err)
	}
	var ev events.S3Event
	if err := json.Unmarshal(s3Event("ingest", key, len(body)), &ev); err != nil {
		t.Fatal(err)
	}
	// Not an object creation, and a key outside raw/: skipped.
	other := ev
	other.Records = append([]events.S3EventRecord{}, ev.Records...)
	other.Records[0].EventName = "ObjectRemoved:Delete"
	if err := h.Handle(ctx, other); err != nil || countRows(t, db) != 0 {
		t.Fatalf("removal event: %v", err)
	}
	for range 2 {
		if err := h.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db); n != 5 {
			t.Fatalf("rows = %d, want 5", n)
		}
	}
	// A malformed object is dead-lettered, and the invocation succeeds; a
	// redelivery finds it gone and succeeds too.
	bad := "raw/2026/11/24/10/bad.ndjson"
	if err := b.Put(ctx, bad, []byte("{not json\n"), nil); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(s3Event("ingest", bad, 10), &ev)
	for range 2 {
		if err := h.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Attributes(ctx, load.DeadPrefix+bad); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	if _, err := b.Attributes(ctx, bad); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("malformed object still in raw/: %v", err)
	}
	// A transient failure fails the invocation, so Lambda retries it, and
	// dead-letters nothing.
	later := "raw/2026/11/24/10/later.ndjson"
	if err := b.Put(ctx, later, rawObject(t, "later", 2), nil); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(s3Event("ingest", later, 10), &ev)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.Handle(cctx, ev); err == nil {
		t.Fatal("a failed load did not fail the invocation")
	}
	if _, err := b.Attributes(ctx, later); err != nil {
		t.Fatalf("transiently failed object moved: %v", err)
	}
	if err := h.Handle(ctx, ev); err != nil || countRows(t, db) != 7 {
		t.Fatalf("retry: %v, rows %d", err, countRows(t, db))
	}
}

// handlerBin is the Lambda binary, built once per test run.
var (
	buildOnce  sync.Once
	handlerBin string
	buildErr   error
	buildDir   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildHandler builds cmd/intercloud-lambda as the Lambda runtime wants it.
func buildHandler(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "intercloud-lambda-")
		if buildErr != nil {
			return
		}
		handlerBin = filepath.Join(buildDir, "bootstrap")
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", handlerBin, "./cmd/intercloud-lambda")
		cmd.Dir = peers.Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return handlerBin
}

func invoke(t *testing.T, rie *peers.RIE, body []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, rie.InvokeURL, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke: %s: %s", resp.Status, out)
	}
	return string(out)
}

// TestLambdaRIE runs the real Lambda binary under the Runtime Interface
// Emulator against versitygw and SQLite.
func TestLambdaRIE(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Lambda binary")
	}
	testLambdaRIE(t, "sqlite://"+filepath.Join(t.TempDir(), "sql.db"))
}

// TestLambdaRIEMariaDB is TestLambdaRIE with MariaDB as the database.
func TestLambdaRIEMariaDB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Lambda binary")
	}
	m := peers.StartMariaDB(t)
	testLambdaRIE(t, m.URL("app"))
}

func testLambdaRIE(t *testing.T, sqlURL string) {
	s3 := peers.StartS3(t)
	s3.CreateBucket(t, "ingest")
	handler := buildHandler(t)
	objURL := "s3://ingest?endpoint=" + url.QueryEscape(s3.Endpoint) + "&use_path_style=true"
	rie := peers.StartLambdaRIE(t, handler, []string{
		hosts.EnvObjectsURL + "=" + objURL,
		hosts.EnvSQLURL + "=" + sqlURL,
		"AWS_REGION=" + s3.Region,
		"AWS_ACCESS_KEY_ID=" + s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3.SecretKey,
	})

	ctx := t.Context()
	b, err := objects.Open(ctx, s3.BucketURL("ingest"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := load.PartitionOf(time.Now()) + "obj 1+x.ndjson"
	body := rawObject(t, "rie", 20)
	if err := b.Put(ctx, key, body, &objects.PutOptions{ContentType: "application/x-ndjson"}); err != nil {
		t.Fatal(err)
	}
	ev := s3Event("ingest", key, len(body))
	if out := invoke(t, rie, ev); strings.Contains(out, "errorMessage") {
		t.Fatalf("invocation failed: %s", out)
	}
	db, err := sqldb.Open(ctx, sqlURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := countRows(t, db); n != 20 {
		t.Fatalf("rows = %d, want 20", n)
	}
	// Redelivered: nothing changes.
	if out := invoke(t, rie, ev); strings.Contains(out, "errorMessage") {
		t.Fatalf("second invocation failed: %s", out)
	}
	if n := countRows(t, db); n != 20 {
		t.Fatalf("rows after redelivery = %d, want 20", n)
	}
	// A malformed object ends under dead/.
	bad := load.PartitionOf(time.Now()) + "bad.ndjson"
	if err := b.Put(ctx, bad, []byte("{\"id\":\"x\",\"device\":\n"), nil); err != nil {
		t.Fatal(err)
	}
	if out := invoke(t, rie, s3Event("ingest", bad, 20)); strings.Contains(out, "errorMessage") {
		t.Fatalf("malformed object failed the invocation: %s", out)
	}
	if _, err := b.Attributes(ctx, load.DeadPrefix+bad); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	if n := countRows(t, db); n != 20 {
		t.Fatalf("rows = %d, want 20", n)
	}
}
