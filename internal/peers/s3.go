package peers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// S3 is a running versitygw S3 gateway with a posix backend. Use it with
// path-style addressing and static credentials.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string // us-east-1
	AccessKey string
	SecretKey string
	Dir       string // root of the posix backend: one directory per bucket

	spec procSpec
	mu   sync.Mutex
	proc *proc // nil while stopped
}

// StartS3 starts versitygw on a free loopback port with a posix backend in
// a fresh temporary directory, and stops it when the test ends.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	return startS3(t, "", 0)
}

// StartS3WithWebhook is StartS3 with S3 event notifications posted to url
// (--event-webhook-url). The receiver must already be listening: versitygw
// posts an s3:TestEvent at start and exits if it is refused. Delivery is
// one try, fire and forget.
func StartS3WithWebhook(t testing.TB, url string) *S3 {
	t.Helper()
	return startS3(t, url, 0)
}

// StartS3At is StartS3WithWebhook on a given port (from FreePort), for a
// receiver that must know the server's address before the server starts
// and listens only after it: until the server answers, a stand-in on the
// webhook's address acknowledges the start-up test event, and it is gone
// when StartS3At returns.
func StartS3At(t testing.TB, port int, webhook string) *S3 {
	t.Helper()
	u, err := url.Parse(webhook)
	if err != nil {
		t.Fatalf("peers: s3: webhook %q: %v", webhook, err)
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatalf("peers: s3: stand-in for the webhook at %s: %v", u.Host, err)
	}
	standIn := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = standIn.Serve(ln) }()
	defer standIn.Close()
	return startS3(t, webhook, port)
}

func startS3(t testing.TB, webhook string, port int) *S3 {
	t.Helper()
	if err := Install(t.Context(), "versitygw"); err != nil {
		unavailable(t, "peers: s3: %v", err)
	}
	base := t.TempDir()
	s := &S3{
		Region:    "us-east-1",
		AccessKey: "intercloudtest",
		SecretKey: "intercloudtest-secret",
		Dir:       filepath.Join(base, "data"),
	}
	if err := mkdirs(s.Dir); err != nil {
		t.Fatalf("peers: s3: %v", err)
	}
	if port == 0 {
		port = FreePort(t)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s.Endpoint = "http://" + addr
	args := []string{
		"--port", addr,
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.Region,
		"--quiet",
	}
	if webhook != "" {
		args = append(args, "--event-webhook-url", webhook)
	}
	args = append(args, "posix", s.Dir)
	s.spec = procSpec{
		name:    "versitygw",
		path:    filepath.Join(binDir(), "versitygw"),
		args:    args,
		env:     []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base},
		dir:     base,
		logPath: filepath.Join(base, "versitygw.log"),
	}
	t.Cleanup(func() {
		if err := s.stop(syscall.SIGTERM); err != nil {
			t.Errorf("%v", err)
		}
	})
	if err := s.start(); err != nil {
		unavailable(t, "%v", err)
	}
	return s
}

// start runs versitygw and waits until it answers.
func (s *S3) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		return fmt.Errorf("peers: s3: already running (pid %d)", s.proc.pid)
	}
	p, err := startProc(s.spec)
	if err != nil {
		return err
	}
	s.proc = p
	client := &http.Client{Timeout: 2 * time.Second}
	return waitReady(p, readyTimeout, func() error {
		resp, err := client.Get(s.Endpoint + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// stop signals versitygw and waits until it is gone.
func (s *S3) stop(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop(sig, stopTimeout)
	s.proc = nil
	return err
}

// Kill kills the gateway with SIGKILL, as a crash would, and waits until
// it has exited: the store is unreachable.
func (s *S3) Kill(t testing.TB) {
	t.Helper()
	if err := s.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// Start starts the gateway again on the same port and data (after Kill).
func (s *S3) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// bucketName is what CreateBucket accepts: S3's DNS-compatible names.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// BucketURL returns the objects URL (s3://) of bucket on this gateway:
// its region, its endpoint with path-style addressing, and its static
// credentials.
func (s *S3) BucketURL(bucket string) string {
	q := url.Values{"region": {s.Region}, "endpoint": {s.Endpoint}, "use_path_style": {"true"},
		"access_key_id": {s.AccessKey}, "secret_access_key": {s.SecretKey}}
	return "s3://" + bucket + "?" + q.Encode()
}

// CreateBucket creates a bucket with a SigV4-signed PUT and fails the test
// if the server does not answer 200.
func (s *S3) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if err := s.createBucket(t.Context(), name); err != nil {
		t.Fatal(err)
	}
}

func (s *S3) createBucket(ctx context.Context, name string) error {
	if !bucketName.MatchString(name) {
		return fmt.Errorf("peers: s3: create bucket %q: invalid bucket name", name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.Endpoint+"/"+name, http.NoBody)
	if err != nil {
		return fmt.Errorf("peers: s3: create bucket %s: %w", name, err)
	}
	s.sign(req, time.Now().UTC())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("peers: s3: create bucket %s: %w", name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("peers: s3: create bucket %s: %s: %s", name, resp.Status, body)
	}
	return nil
}

// emptySHA256 is the hex SHA-256 of an empty payload.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// sign adds AWS Signature Version 4 headers to a request with an empty
// body, no query string and a path that needs no escaping.
func (s *S3) sign(req *http.Request, now time.Time) {
	amzDate := now.Format("20060102T150405Z")
	day := now.Format("20060102")
	host := req.URL.Host
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	const signed = "host;x-amz-content-sha256;x-amz-date"
	canonical := req.Method + "\n" +
		req.URL.EscapedPath() + "\n" +
		"\n" +
		"host:" + host + "\n" +
		"x-amz-content-sha256:" + emptySHA256 + "\n" +
		"x-amz-date:" + amzDate + "\n" +
		"\n" +
		signed + "\n" +
		emptySHA256
	scope := day + "/" + s.Region + "/s3/aws4_request"
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+s.SecretKey), day)
	key = hmacSHA256(key, s.Region)
	key = hmacSHA256(key, "s3")
	key = hmacSHA256(key, "aws4_request")
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+s.AccessKey+"/"+scope+
		", SignedHeaders="+signed+", Signature="+sig)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
