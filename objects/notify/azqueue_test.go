package notify_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/azblob"
	"github.com/intercloud/intercloud/objects/notify"
)

// TestAzureQueueAzurite reads Event Grid BlobCreated events (as Event Grid
// writes them: base64 JSON) from Azurite's queue service, for blobs the
// azblob driver wrote.
func TestAzureQueueAzurite(t *testing.T) {
	a := peers.StartAzurite(t)
	ctx := t.Context()
	svc, err := azqueue.NewServiceClientFromConnectionString(a.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateQueue(ctx, "blob-created", nil); err != nil {
		t.Fatal(err)
	}
	q := svc.NewQueueClient("blob-created")
	bq := url.Values{"service_url": {a.BlobEndpoint}, "storage_account": {a.Account}, "account_key": {a.Key}, "create": {"true"}}
	b, err := objects.Open(ctx, "azblob://ingest?"+bq.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var c collector
	var failOnce atomic.Bool
	failOnce.Store(true)
	cb := func(ctx context.Context, e objects.Event) error {
		if e.Key == "raw/2026/11/24/10/flaky.ndjson" && failOnce.CompareAndSwap(true, false) {
			return errors.New("database down")
		}
		return c.cb(ctx, e)
	}
	u := "azqueue://blob-created?" + url.Values{
		"container": {"ingest"}, "service_url": {a.QueueEndpoint}, "storage_account": {a.Account}, "account_key": {a.Key},
		"visibility_timeout": {"1s"}, "max_dequeue": {"3"}, "poll": {"50ms"},
	}.Encode()
	l, err := notify.Open(ctx, u, cb, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	enqueue := func(text string) {
		t.Helper()
		if _, err := q.EnqueueMessage(ctx, text, nil); err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{"raw/2026/11/24/10/a b.ndjson", "raw/2026/11/24/10/flaky.ndjson"}
	for _, k := range keys {
		data := []byte(`{"id":"1"}` + "\n")
		if err := b.Put(ctx, k, data, nil); err != nil {
			t.Fatal(err)
		}
		blobURL := a.BlobEndpoint + "/ingest/" + (&url.URL{Path: k}).EscapedPath()
		enqueue(base64.StdEncoding.EncodeToString([]byte(gridEvent(blobURL, len(data)))))
	}
	poison := base64.StdEncoding.EncodeToString([]byte(`{"eventType":"Microsoft.Storage.BlobCreated","data":{"url":`))
	enqueue(poison)

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The flaky callback fails once: its message comes back after the
	// visibility timeout and succeeds.
	waitFor(t, 15*time.Second, "both events", func() bool { return len(c.keys()) == 2 })
	if got := c.keys(); got[0] != keys[0] || got[1] != keys[1] {
		t.Fatalf("keys = %q", got)
	}
	// The poison message is moved aside after 3 dequeues, and the queue
	// ends empty.
	pq := svc.NewQueueClient("blob-created-poison")
	waitFor(t, 15*time.Second, "the poison message", func() bool {
		resp, err := pq.PeekMessages(ctx, nil)
		return err == nil && len(resp.Messages) == 1 && *resp.Messages[0].MessageText == poison
	})
	waitFor(t, 5*time.Second, "an empty queue", func() bool {
		props, err := q.GetProperties(ctx, nil)
		return err == nil && props.ApproximateMessagesCount != nil && *props.ApproximateMessagesCount == 0
	})
	if n := len(c.keys()); n != 2 {
		t.Fatalf("%d callbacks, want 2 (no duplicates after deletion)", n)
	}
}
