package notify_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/notify"
	_ "github.com/intercloud/intercloud/objects/s3"
)

// collector records callback events.
type collector struct {
	mu  sync.Mutex
	evs []objects.Event
}

func (c *collector) cb(_ context.Context, e objects.Event) error {
	c.mu.Lock()
	c.evs = append(c.evs, e)
	c.mu.Unlock()
	return nil
}

func (c *collector) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var k []string
	for _, e := range c.evs {
		k = append(k, e.Key)
	}
	slices.Sort(k)
	return k
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhookVersityGW receives the notifications real versitygw posts for
// objects written through the S3 driver.
func TestWebhookVersityGW(t *testing.T) {
	var c collector
	l, err := notify.Open(t.Context(), "webhook://127.0.0.1:0/s3-events?keys=raw", c.cb, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	w := l.(*notify.WebhookServer)
	s := peers.StartS3WithWebhook(t, w.URL())
	s.CreateBucket(t, "ingest")
	b, err := objects.Open(t.Context(), "s3://ingest?region=us-east-1&use_path_style=true&endpoint="+url.QueryEscape(s.Endpoint)+
		"&access_key_id="+s.AccessKey+"&secret_access_key="+s.SecretKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := []string{"raw/2026/11/24/10/a b+c%d.ndjson", "raw/2026/11/24/10/plain.ndjson", "raw/2026/11/24/10/é.ndjson"}
	for _, k := range want {
		if err := b.Put(t.Context(), k, []byte(`{"id":"1"}`+"\n"), nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "3 notifications", func() bool { return len(c.keys()) >= 3 })
	if got := c.keys(); !slices.Equal(got, want) {
		t.Fatalf("keys = %q, want %q", got, want)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.evs {
		if e.Source != notify.Source || e.Size != 11 {
			t.Errorf("event %+v: want source %q size 11", e, notify.Source)
		}
	}
}

func TestWebhookHTTP(t *testing.T) {
	var c collector
	failing := func(context.Context, objects.Event) error { return fmt.Errorf("database down") }
	srv := httptest.NewServer(notify.NewS3Webhook(c.cb, notify.WebhookOptions{MaxBody: 4096}, nil))
	defer srv.Close()
	bad := httptest.NewServer(notify.NewS3Webhook(failing, notify.WebhookOptions{}, nil))
	defer bad.Close()
	for _, tc := range []struct {
		name, url, method, body string
		status                  int
	}{
		{"created", srv.URL, "POST", awsS3Event, http.StatusNoContent},
		{"test event", srv.URL, "POST", `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-24T10:00:00.000Z","Bucket":"ingest"}`, http.StatusNoContent},
		{"bad json", srv.URL, "POST", `{"Records":[`, http.StatusBadRequest},
		{"too large", srv.URL, "POST", `{"Records":[],"pad":"` + strings.Repeat("x", 5000) + `"}`, http.StatusRequestEntityTooLarge},
		{"get", srv.URL, "GET", "", http.StatusMethodNotAllowed},
		{"callback fails", bad.URL, "POST", awsS3Event, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status >= 400 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("error answer is %q, not JSON", resp.Header.Get("Content-Type"))
			}
		})
	}
	if got := c.keys(); !slices.Equal(got, []string{"raw/2026/11/24/10/a b.ndjson"}) {
		t.Fatalf("keys = %q", got)
	}
}

func TestOpenErrors(t *testing.T) {
	cb := func(context.Context, objects.Event) error { return nil }
	for _, u := range []string{
		"ftp://x", "webhook://", "webhook://127.0.0.1:0/?nope=1", "webhook://127.0.0.1:0/?max_body=-1", "webhook://127.0.0.1:0/?keys=base64",
		"sqs://", "sqs://q?wait=forever", "sqs://q?bogus=1", "sqs://q?endpoint=ftp://x",
		"azqueue://q", "azqueue://q?container=c&bogus=1", "azqueue://q?container=c&max_dequeue=x",
		"azqueue://q?container=c", // no endpoint nor connection string
		"azqueue://q?container=c&connection_string=garbage",
	} {
		if l, err := notify.Open(t.Context(), u, cb, nil); err == nil {
			l.Close()
			t.Errorf("Open(%q) succeeded", u)
		} else if strings.Contains(err.Error(), "garbage") {
			t.Errorf("Open(%q) error quotes the secret: %v", u, err)
		}
	}
	if _, err := notify.Open(t.Context(), "webhook://127.0.0.1:0/", nil, nil); err == nil {
		t.Error("Open without a callback succeeded")
	}
}
