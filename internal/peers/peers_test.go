package peers

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// timed runs start and logs how long it took.
func timed[T any](t *testing.T, what string, start func(testing.TB) T) T {
	t.Helper()
	t0 := time.Now()
	v := start(t)
	t.Logf("%s ready in %s", what, time.Since(t0).Round(time.Millisecond))
	return v
}

func TestDeclaresModule(t *testing.T) {
	tests := []struct {
		name, gomod string
		want        bool
	}{
		{"plain", "module github.com/intercloud/intercloud\n\ngo 1.26\n", true},
		{"quoted", "module \"github.com/intercloud/intercloud\"\n", true},
		{"other", "module example.com/peers/handler\n", false},
		{"prefix", "module github.com/intercloud/intercloud/x\n", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := declaresModule([]byte(tt.gomod), modulePath); got != tt.want {
				t.Errorf("declaresModule = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRootAndCacheDir(t *testing.T) {
	root := Root()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !declaresModule(b, modulePath) {
		t.Fatalf("Root() = %s: not the project's module root (%v)", root, err)
	}
	if got, want := CacheDir(), filepath.Join(root, ".cache", "peers"); os.Getenv("INTERCLOUD_PEERS_CACHE") == "" && got != want {
		t.Errorf("CacheDir() = %s, want %s", got, want)
	}
}

func TestInstallUnknown(t *testing.T) {
	err := Install(context.Background(), "nosuchpeer")
	if err == nil || !strings.Contains(err.Error(), "unknown peer") {
		t.Fatalf("Install(nosuchpeer) = %v, want unknown peer error", err)
	}
}

// recTB records Skip and Fatal instead of ending the test.
type recTB struct {
	testing.TB
	skipped, fatal string
}

func (r *recTB) Skip(args ...any)  { r.skipped = fmt.Sprint(args...) }
func (r *recTB) Fatal(args ...any) { r.fatal = fmt.Sprint(args...) }

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name, ci, require string
		wantFatal         bool
	}{
		{"developer", "", "", false},
		{"ci", "true", "", true},
		{"required", "", "1", true},
		{"required other value", "", "0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			if tt.ci == "" {
				os.Unsetenv("CI")
			}
			t.Setenv("INTERCLOUD_REQUIRE_PEERS", tt.require)
			r := &recTB{TB: t}
			unavailable(r, "peers: x: %s", "gone")
			if tt.wantFatal {
				if r.fatal != "peers: x: gone" || r.skipped != "" {
					t.Errorf("fatal=%q skipped=%q, want fatal", r.fatal, r.skipped)
				}
			} else if !strings.HasPrefix(r.skipped, "peers: x: gone") || r.fatal != "" {
				t.Errorf("fatal=%q skipped=%q, want skip", r.fatal, r.skipped)
			}
		})
	}
}

// TestFreePortBelowEphemeralRange: FreePort reads the kernel's ephemeral
// range and picks ports from portsFrom up to just below it, never from
// it (where a concurrent ":0" listener or outgoing connection may take
// the port before the server binds it).
func TestFreePortBelowEphemeralRange(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ephemeral range to read: %v", err)
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil {
		t.Fatalf("ip_local_port_range %q: %v", b, err)
	}
	if low-portsFrom < 1000 {
		t.Skipf("ephemeral range %d-%d leaves no room below it", low, high)
	}
	seen := map[int]bool{}
	for range 300 {
		p := FreePort(t)
		if p < portsFrom || p >= low {
			t.Fatalf("FreePort = %d, want in [%d, %d) below the ephemeral range %d-%d", p, portsFrom, low, low, high)
		}
		seen[p] = true
	}
	if len(seen) < 250 {
		t.Errorf("300 calls gave %d distinct ports: not picked at random", len(seen))
	}
}

func TestParseEphemeralLow(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"32768\t60999\n", 32768},
		{"20000 40000", 20000},
		{"1024\t65535\n", 1024},
		{"", 32768},
		{"\n", 32768},
		{"x 60999", 32768},
		{"-5 60999", 32768},
		{"70000 80000", 32768},
	} {
		if got := parseEphemeralLow(tt.in); got != tt.want {
			t.Errorf("parseEphemeralLow(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestProcStopAndEarlyExit(t *testing.T) {
	dir := t.TempDir()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// A server whose child ignores SIGTERM: stop must still leave nothing.
	p, err := startProc(procSpec{
		name: "sleeper", path: sh, dir: dir, logPath: filepath.Join(dir, "sleeper.log"),
		args: []string{"-c", "trap '' TERM; sleep 60 & echo started; wait"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sleeper.pid")); err != nil || len(b) == 0 {
		t.Errorf("pid file: %v", err)
	}
	if err := waitReady(p, 5*time.Second, func() error {
		if b, _ := os.ReadFile(filepath.Join(dir, "sleeper.log")); !bytes.Contains(b, []byte("started")) {
			return errors.New("not started")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := p.stop(syscall.SIGTERM, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !p.exited() {
		t.Fatal("process still running after stop")
	}
	if err := syscall.Kill(-p.pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still has members: %v", p.pid, err)
	}
	if took := time.Since(t0); took < 500*time.Millisecond {
		t.Errorf("stop took %s: SIGTERM should have been ignored until the timeout", took)
	}
	if err := p.stop(syscall.SIGTERM, time.Second); err != nil {
		t.Errorf("second stop: %v", err)
	}

	q, err := startProc(procSpec{
		name: "crasher", path: sh, dir: dir, logPath: filepath.Join(dir, "crasher.log"),
		args: []string{"-c", "echo cannot bind port; exit 3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = waitReady(q, 5*time.Second, func() error { return errors.New("not yet") })
	if err == nil || !strings.Contains(err.Error(), "cannot bind port") || !strings.Contains(err.Error(), "exited early") {
		t.Fatalf("waitReady = %v, want early exit with log tail", err)
	}
}

func TestS3(t *testing.T) {
	t.Parallel()
	srv := timed(t, "versitygw", StartS3)
	srv.CreateBucket(t, "peers-test")
	if err := srv.createBucket(t.Context(), "Bad_Name"); err == nil {
		t.Error("CreateBucket(Bad_Name) succeeded, want invalid name error")
	}
	client := s3Client(srv)
	ctx := t.Context()
	body := []byte("hello from peers")
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("peers-test"), Key: aws.String("raw/a.ndjson"), Body: bytes.NewReader(body),
	}); err != nil {
		t.Fatalf("put: %v", err)
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("peers-test"), Key: aws.String("raw/a.ndjson")})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("get = %q, want %q", got, body)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "peers-test", "raw", "a.ndjson")); err != nil {
		t.Errorf("object not in the posix backend: %v", err)
	}
}

func s3Client(srv *S3) *s3.Client {
	return s3.New(s3.Options{
		Region:       srv.Region,
		BaseEndpoint: aws.String(srv.Endpoint),
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}, nil
		}),
	})
}

func TestS3Webhook(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []string
	got := make(chan struct{}, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		events = append(events, string(b))
		mu.Unlock()
		got <- struct{}{}
	}))
	defer hook.Close()
	srv := StartS3WithWebhook(t, hook.URL+"/events")
	srv.CreateBucket(t, "hooked")
	if _, err := s3Client(srv).PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String("hooked"), Key: aws.String("raw/x.ndjson"), Body: strings.NewReader("{}\n"),
	}); err != nil {
		t.Fatalf("put: %v", err)
	}
	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		all := strings.Join(events, "\n")
		mu.Unlock()
		if strings.Contains(all, "ObjectCreated") && strings.Contains(all, "raw/x.ndjson") {
			return
		}
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("no ObjectCreated event for raw/x.ndjson; got %q", all)
		}
	}
}

func TestAzurite(t *testing.T) {
	t.Parallel()
	az := timed(t, "azurite", StartAzurite)
	if !strings.Contains(az.ConnectionString, "BlobEndpoint="+az.BlobEndpoint+";") {
		t.Errorf("connection string lacks the blob endpoint")
	}
	client, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := client.CreateContainer(ctx, "peers", nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	body := []byte(`{"hello":"azure"}`)
	if _, err := client.UploadBuffer(ctx, "peers", "results/a.json", body, nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	resp, err := client.DownloadStream(ctx, "peers", "results/a.json", nil)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("download = %q, want %q", got, body)
	}
	// The queue service answers too (without credentials: an auth error).
	qresp, err := http.Get(az.QueueEndpoint + "?comp=list")
	if err != nil {
		t.Fatalf("queue: %v", err)
	}
	qresp.Body.Close()
	if qresp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous queue list: %s, want 403", qresp.Status)
	}
}

func TestMariaDB(t *testing.T) {
	t.Parallel()
	m := timed(t, "mariadb", StartMariaDB)
	ctx := t.Context()
	db, err := sql.Open("mysql", m.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, want := range map[string]string{
		"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL",
		"server_id": "1", "log_bin": "ON", "bind_address": "127.0.0.1",
	} {
		var n, v string
		if err := db.QueryRowContext(ctx, "SHOW VARIABLES LIKE '"+name+"'").Scan(&n, &v); err != nil {
			t.Fatalf("show %s: %v", name, err)
		}
		if v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	grants := queryStrings(t, db, "SHOW GRANTS")
	for _, want := range []string{"RELOAD", "REPLICATION SLAVE", "BINLOG MONITOR", "ALL PRIVILEGES ON `app`.*"} {
		if !strings.Contains(strings.Join(grants, "\n"), want) {
			t.Errorf("grants lack %q: %q", want, grants)
		}
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1, 'kept')"); err != nil {
		t.Fatal(err)
	}
	// The CDC grants let app read the binary log position.
	if rows := queryStrings(t, db, "SHOW MASTER STATUS"); len(rows) == 0 {
		t.Error("SHOW MASTER STATUS returned nothing")
	}

	t0 := time.Now()
	m.Kill(t)
	m.Start(t)
	t.Logf("mariadb kill and restart took %s", time.Since(t0).Round(time.Millisecond))
	var v string
	if err := db.QueryRowContext(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "kept" {
		t.Fatalf("after kill+start: v=%q err=%v, want kept", v, err)
	}
	m.Stop(t)
	m.Start(t)

	root, err := sql.Open("mysql", m.RootDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.ExecContext(ctx, "CREATE DATABASE other"); err != nil {
		t.Fatalf("root: %v", err)
	}
	if !strings.HasPrefix(m.URL("app"), "mysql://app:secret@127.0.0.1:") {
		t.Errorf("URL = %s", m.URL("app"))
	}
	// The server's own client reads what the server holds.
	if got := m.Query(t, "app", "SELECT id, v FROM t"); len(got) != 1 || got[0] != "1\tkept" {
		t.Errorf("Query = %q", got)
	}
	cpu0 := m.CPU(t)
	m.Query(t, "app", "SELECT BENCHMARK(1000000, MD5('x'))")
	if d := m.CPU(t) - cpu0; d < 20*time.Millisecond {
		t.Errorf("CPU grew by %v over a million MD5s, want at least 20ms", d)
	}
}

// queryStrings returns the first column of every row.
func queryStrings(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(vals[0]))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	p := timed(t, "postgres", StartPostgres)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, p.URL("app"))
	if err != nil {
		t.Fatal(err)
	}
	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil || walLevel != "logical" {
		t.Fatalf("wal_level = %q (%v), want logical", walLevel, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (1, 'kept')"); err != nil {
		t.Fatal(err)
	}
	// Logical replication as app: a replication connection and a pgoutput slot.
	if _, err := conn.Exec(ctx, "CREATE PUBLICATION pub FOR TABLE t"); err != nil {
		t.Fatal(err)
	}
	rc, err := pgconn.Connect(ctx, p.URL("app")+"&replication=database")
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	if _, err := rc.Exec(ctx, "CREATE_REPLICATION_SLOT s1 LOGICAL pgoutput").ReadAll(); err != nil {
		t.Fatalf("create slot: %v", err)
	}
	rc.Close(ctx)
	conn.Close(ctx)

	t0 := time.Now()
	p.Kill(t)
	p.Start(t)
	t.Logf("postgres kill and restart took %s", time.Since(t0).Round(time.Millisecond))
	conn, err = pgx.Connect(ctx, p.URL("app"))
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "kept" {
		t.Fatalf("after kill+start: v=%q err=%v, want kept", v, err)
	}
	// Stop is a fast shutdown: an open connection does not hold it up.
	p.Stop(t)
	conn.Close(context.Background())
	p.Start(t)
	root, err := pgx.Connect(ctx, p.RootURL("postgres"))
	if err != nil {
		t.Fatalf("superuser: %v", err)
	}
	root.Close(ctx)
	// The server's own client reads what the server holds.
	if got := p.Query(t, "app", "SELECT id, v FROM t"); len(got) != 1 || got[0] != "1|kept" {
		t.Errorf("Query = %q", got)
	}
	// PostGIS, which Install puts in for the cluster's version.
	p.CreatePostGIS(t, "app")
	if got := p.Query(t, "app", "SELECT ST_AsText(ST_GeomFromText('POINT(1 2)', 4326))"); len(got) != 1 || got[0] != "POINT(1 2)" {
		t.Errorf("PostGIS: %q", got)
	}
	// CPU counts a backend that worked and has ended (psql's session).
	cpu0 := p.CPU(t)
	p.Query(t, "app", "SELECT count(*) FROM generate_series(1, 2000000)")
	if d := p.CPU(t) - cpu0; d < 20*time.Millisecond {
		t.Errorf("CPU grew by %v over a query of 2 million rows, want at least 20ms", d)
	}
}

func TestLambdaRIE(t *testing.T) {
	t.Parallel()
	handler := filepath.Join(t.TempDir(), "bootstrap")
	gobin, err := goTool()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.CommandContext(t.Context(), gobin, "build", "-tags", "lambda.norpc", "-o", handler, ".")
	build.Dir = filepath.Join("testdata", "handler")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build handler: %v\n%s", err, out)
	}
	rie := timed(t, "aws-lambda-rie", func(tb testing.TB) *RIE {
		return StartLambdaRIE(tb, handler, []string{"GREETING=hi"})
	})
	resp, err := http.Post(rie.InvokeURL, "application/json", strings.NewReader(`{"name":"peers"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var got struct{ Hello, Greeting string }
	if err := json.Unmarshal(b, &got); err != nil || got.Hello != "peers" || got.Greeting != "hi" {
		t.Fatalf("invoke: %s %s (%v), want hello=peers greeting=hi", resp.Status, b, err)
	}
}

func TestVictoriaLogs(t *testing.T) {
	t.Parallel()
	vl := timed(t, "victoria-logs", StartVictoriaLogs)
	bulk := `{"create":{"_index":"logs"}}` + "\n" +
		fmt.Sprintf(`{"@timestamp":%q,"message":"hello from peers","component":"peerstest"}`, time.Now().UTC().Format(time.RFC3339Nano)) + "\n"
	resp, err := http.Post(vl.URL+"/insert/elasticsearch/_bulk?_msg_field=message&_time_field=@timestamp&_stream_fields=component",
		"application/x-ndjson", strings.NewReader(bulk))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"errors":false`) {
		t.Fatalf("bulk: %s %s", resp.Status, b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.PostForm(vl.URL+"/select/logsql/query", url.Values{"query": {`component:peerstest`}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.Contains(string(b), "hello from peers") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("query: %s %s, want the ingested line", resp.Status, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestParseConfSetting(t *testing.T) {
	tests := []struct {
		name, conf, key, want string
	}{
		{"quoted", "data_directory = '/tmp/peers-pg-1/data'\t\t# use data in another directory\n", "data_directory", "/tmp/peers-pg-1/data"},
		{"last wins", "port = 5432\nport = 6000\n", "port", "6000"},
		{"commented", "#data_directory = '/x'\n", "data_directory", ""},
		{"missing", "port = 1\n", "data_directory", ""},
		{"no spaces", "data_directory='/y'", "data_directory", "/y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseConfSetting(tt.conf, tt.key); got != tt.want {
				t.Errorf("parseConfSetting = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseConfSetting(f *testing.F) {
	f.Add("data_directory = '/var/lib/postgresql/15/main'\n# comment\nport = 5432\n", "data_directory")
	f.Add("x=\n=y\n'''\n", "x")
	f.Fuzz(func(t *testing.T, conf, key string) {
		v := parseConfSetting(conf, key)
		if len(v) > len(conf) {
			t.Fatalf("value %q longer than the input", v)
		}
	})
}

func FuzzDeclaresModule(f *testing.F) {
	f.Add([]byte("module github.com/intercloud/intercloud\n\ngo 1.26\n"))
	f.Add([]byte("module \"x\"\nrequire (\n)\n"))
	f.Fuzz(func(t *testing.T, gomod []byte) {
		if declaresModule(gomod, modulePath) && !bytes.Contains(gomod, []byte(modulePath)) {
			t.Fatal("declared a module that is not in the input")
		}
	})
}

// TestObjectURLs: the objects URLs of a bucket and a container carry the
// server's endpoint and credentials, escaped (the store's own tests open
// them against the servers).
func TestObjectURLs(t *testing.T) {
	s := &S3{Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", AccessKey: "ak", SecretKey: "s+e/c=r&t"}
	a := &Azurite{BlobEndpoint: "http://127.0.0.1:10000/devstoreaccount1", Account: "devstoreaccount1", Key: "k+e/y=="}
	for _, tt := range []struct {
		raw, scheme, host string
		want              url.Values
	}{
		{s.BucketURL("ingest"), "s3", "ingest", url.Values{"region": {"us-east-1"}, "endpoint": {s.Endpoint}, "use_path_style": {"true"},
			"access_key_id": {"ak"}, "secret_access_key": {"s+e/c=r&t"}}},
		{a.ContainerURL("results"), "azblob", "results", url.Values{"service_url": {a.BlobEndpoint}, "storage_account": {a.Account},
			"account_key": {"k+e/y=="}}},
	} {
		u, err := url.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != tt.scheme || u.Host != tt.host || u.Path != "" || !reflect.DeepEqual(u.Query(), tt.want) {
			t.Errorf("%s: %s://%s%s with %v, want %s://%s with %v", tt.raw, u.Scheme, u.Host, u.Path, u.Query(), tt.scheme, tt.host, tt.want)
		}
	}
}

func TestServerSettingsParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     [][2]string
		err      bool
	}{
		{"empty", "", nil, false},
		{"one", "shared_buffers=1GB", [][2]string{{"shared_buffers", "1GB"}}, false},
		{"several, spaces, a trailing ;", " work_mem = 5MB ;innodb_buffer_pool_size=1G;", [][2]string{{"work_mem", "5MB"}, {"innodb_buffer_pool_size", "1G"}}, false},
		{"quoted value with =", "shared_preload_libraries='a=b'", [][2]string{{"shared_preload_libraries", "'a=b'"}}, false},
		{"dotted and dashed names", "auto_explain.log_min_duration=0;skip-log-bin=1", [][2]string{{"auto_explain.log_min_duration", "0"}, {"skip-log-bin", "1"}}, false},
		{"no =", "shared_buffers", nil, true},
		{"no name", "=1", nil, true},
		{"no value", "x=", nil, true},
		{"a line break", "x=1\nport=1", nil, true},
		{"a comment", "x=1 # y", nil, true},
		{"a space in the name", "a b=1", nil, true},
		{"a section", "[client]=1", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := serverSettings("ENV", tt.in)
			if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("serverSettings(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "ENV: ") {
				t.Errorf("error %q does not name the variable", err)
			}
		})
	}
}

// FuzzServerSettings: whatever the variable holds, the pairs it gives
// are one line of name = value each, which cannot add a line or a section
// of its own to a server's file.
func FuzzServerSettings(f *testing.F) {
	f.Add("shared_buffers=1GB;work_mem = 5MB")
	f.Add("x=1\n[client]\ny=2")
	f.Fuzz(func(t *testing.T, s string) {
		pairs, err := serverSettings("ENV", s)
		if err != nil {
			return
		}
		for _, p := range pairs {
			if p[0] == "" || p[1] == "" || strings.ContainsAny(p[0], "\r\n#[]= ") || strings.ContainsAny(p[1], "\r\n#") {
				t.Fatalf("pair %q from %q", p, s)
			}
		}
	})
}

// TestServerSettings: the servers a test starts take the settings of
// their variables (read back with each server's own client).
func TestServerSettings(t *testing.T) {
	t.Setenv(PostgresSettingsEnv, "work_mem=5MB;shared_preload_libraries='pg_stat_statements'")
	t.Setenv(MariaDBSettingsEnv, "max_connections=77")
	p := StartPostgres(t)
	if got := p.Query(t, "app", "SHOW work_mem"); !reflect.DeepEqual(got, []string{"5MB"}) {
		t.Errorf("postgres work_mem = %q, want 5MB", got)
	}
	// The statistics view reads only with the library preloaded.
	p.Query(t, "app", "CREATE EXTENSION pg_stat_statements")
	if got := p.Query(t, "app", "SELECT count(*) >= 0 FROM pg_stat_statements"); !reflect.DeepEqual(got, []string{"t"}) {
		t.Errorf("pg_stat_statements: %q", got)
	}
	m := StartMariaDB(t)
	if got := m.Query(t, "app", "SELECT @@max_connections"); !reflect.DeepEqual(got, []string{"77"}) {
		t.Errorf("mariadb max_connections = %q, want 77", got)
	}
}
