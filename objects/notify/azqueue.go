package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/queueerror"
)

// AzureQueueConfig configures an AzureQueue. Authentication is the first
// of ConnectionString, AccountKey (with Account), SASToken, else
// azidentity's default credential chain.
type AzureQueueConfig struct {
	// Queue is the Storage Queue that Event Grid delivers to.
	Queue string
	// ServiceURL is the queue service endpoint
	// (https://ACCOUNT.queue.core.windows.net); unused with a connection string.
	ServiceURL string
	// Container is the blob container whose blobs the events name; the
	// event's data.url is mapped to a key inside it.
	Container string

	ConnectionString string
	Account          string
	AccountKey       string
	SASToken         string

	// VisibilityTimeout hides a received message from other consumers
	// while it is processed; a consumer that crashes lets it reappear
	// after this long (default 5m).
	VisibilityTimeout time.Duration
	// MaxDequeue is how many deliveries a message gets before it is moved
	// to PoisonQueue (default 5).
	MaxDequeue int
	// PoisonQueue receives messages that failed MaxDequeue times (default
	// Queue + "-poison", as the Azure Functions host names it).
	PoisonQueue string
	// Batch is how many messages one receive asks for, 1..32 (default 16).
	Batch int
	// Poll is the wait after an empty receive (default 1s).
	Poll time.Duration

	Callback Callback
	Logger   *slog.Logger
}

// AzureQueue reads Event Grid BlobCreated events from an Azure Storage
// Queue and calls the callback for each; a message is deleted only after
// every callback of its events returned nil.
type AzureQueue struct {
	cfg        AzureQueueConfig
	q          *azqueue.QueueClient
	poison     *azqueue.QueueClient
	log        *slog.Logger
	poisonOnce sync.Once
	poisonErr  error
}

var _ Listener = (*AzureQueue)(nil)

// NewAzureQueue returns a poller; it does no I/O.
func NewAzureQueue(cfg AzureQueueConfig) (*AzureQueue, error) {
	if cfg.Queue == "" || cfg.Container == "" {
		return nil, errors.New("notify: azqueue: a queue and a container are required")
	}
	if cfg.Callback == nil {
		return nil, errors.New("notify: azqueue: a callback is required")
	}
	if cfg.VisibilityTimeout <= 0 {
		cfg.VisibilityTimeout = 5 * time.Minute
	}
	if cfg.VisibilityTimeout < time.Second {
		cfg.VisibilityTimeout = time.Second
	}
	if cfg.MaxDequeue <= 0 {
		cfg.MaxDequeue = 5
	}
	if cfg.PoisonQueue == "" {
		cfg.PoisonQueue = cfg.Queue + "-poison"
	}
	if cfg.Batch <= 0 || cfg.Batch > 32 {
		cfg.Batch = 16
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	q, p, err := queueClients(cfg)
	if err != nil {
		return nil, err
	}
	return &AzureQueue{cfg: cfg, q: q, poison: p, log: cfg.Logger.With("component", "notify", "queue", cfg.Queue)}, nil
}

func queueClients(cfg AzureQueueConfig) (q, p *azqueue.QueueClient, err error) {
	base := strings.TrimSuffix(cfg.ServiceURL, "/")
	switch {
	case cfg.ConnectionString != "":
		svc, err := azqueue.NewServiceClientFromConnectionString(cfg.ConnectionString, nil)
		if err != nil {
			return nil, nil, errors.New("notify: azqueue: malformed connection string")
		}
		return svc.NewQueueClient(cfg.Queue), svc.NewQueueClient(cfg.PoisonQueue), nil
	case base == "":
		return nil, nil, errors.New("notify: azqueue: service_url or a connection string is required")
	case cfg.AccountKey != "":
		cred, err := azqueue.NewSharedKeyCredential(cfg.Account, cfg.AccountKey)
		if err != nil {
			return nil, nil, errors.New("notify: azqueue: account_key is not a valid shared key")
		}
		svc, err := azqueue.NewServiceClientWithSharedKeyCredential(base, cred, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("notify: azqueue: %w", err)
		}
		return svc.NewQueueClient(cfg.Queue), svc.NewQueueClient(cfg.PoisonQueue), nil
	case cfg.SASToken != "":
		sas := "?" + strings.TrimPrefix(cfg.SASToken, "?")
		q, err := azqueue.NewQueueClientWithNoCredential(base+"/"+cfg.Queue+sas, nil)
		if err != nil {
			return nil, nil, errors.New("notify: azqueue: bad service_url or sas_token")
		}
		p, err := azqueue.NewQueueClientWithNoCredential(base+"/"+cfg.PoisonQueue+sas, nil)
		return q, p, err
	default:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, nil, fmt.Errorf("notify: azqueue: default Azure credential: %w", err)
		}
		svc, err := azqueue.NewServiceClient(base, cred, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("notify: azqueue: %w", err)
		}
		return svc.NewQueueClient(cfg.Queue), svc.NewQueueClient(cfg.PoisonQueue), nil
	}
}

// ParseAzureQueueURL reads azqueue://QUEUE?container=NAME&service_url=URL
// with optional connection_string, storage_account + account_key,
// sas_token, visibility_timeout, max_dequeue, poison_queue, batch, poll.
// Without credentials in the URL, AZURE_STORAGE_CONNECTION_STRING is not
// read here; the caller may set ConnectionString itself.
func ParseAzureQueueURL(u *url.URL) (AzureQueueConfig, error) {
	var c AzureQueueConfig
	if u.Scheme != "azqueue" {
		return c, errors.New("notify: URL scheme must be azqueue")
	}
	c.Queue = u.Host
	if c.Queue == "" || (u.Path != "" && u.Path != "/") {
		return c, errors.New("notify: azqueue URL names one queue: azqueue://QUEUE?container=NAME&service_url=URL")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return c, errors.New("notify: azqueue: malformed query string")
	}
	for k, vs := range q {
		v := vs[0]
		var perr error
		switch k {
		case "container":
			c.Container = v
		case "service_url":
			c.ServiceURL = v
		case "connection_string":
			c.ConnectionString = v
		case "storage_account":
			c.Account = v
		case "account_key":
			c.AccountKey = v
		case "sas_token":
			c.SASToken = v
		case "poison_queue":
			c.PoisonQueue = v
		case "visibility_timeout":
			c.VisibilityTimeout, perr = time.ParseDuration(v)
		case "poll":
			c.Poll, perr = time.ParseDuration(v)
		case "max_dequeue":
			c.MaxDequeue, perr = strconv.Atoi(v)
		case "batch":
			c.Batch, perr = strconv.Atoi(v)
		default:
			return c, fmt.Errorf("notify: azqueue: unknown URL parameter %q", k)
		}
		if perr != nil {
			return c, fmt.Errorf("notify: azqueue: bad %s %q", k, v)
		}
	}
	if c.Container == "" {
		return c, errors.New("notify: azqueue: container= is required (the blob container the events are about)")
	}
	return c, nil
}

// Run polls until ctx is cancelled.
func (a *AzureQueue) Run(ctx context.Context) error {
	for {
		n, err := a.Poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			a.log.WarnContext(ctx, "queue receive failed", "err", err)
		}
		if n == 0 || err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(a.cfg.Poll):
			}
		}
	}
}

// Poll receives one batch of messages and handles them; it returns how
// many messages it received.
func (a *AzureQueue) Poll(ctx context.Context) (int, error) {
	n := int32(a.cfg.Batch)
	vis := int32(a.cfg.VisibilityTimeout / time.Second)
	resp, err := a.q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &vis})
	if err != nil {
		return 0, fmt.Errorf("notify: azqueue: receive: %w", err)
	}
	for _, m := range resp.Messages {
		if m == nil || m.MessageID == nil || m.PopReceipt == nil {
			continue
		}
		a.handle(ctx, m)
	}
	return len(resp.Messages), nil
}

func (a *AzureQueue) handle(ctx context.Context, m *azqueue.DequeuedMessage) {
	text := ""
	if m.MessageText != nil {
		text = *m.MessageText
	}
	count := int64(1)
	if m.DequeueCount != nil {
		count = *m.DequeueCount
	}
	log := a.log.With("message_id", *m.MessageID, "dequeue_count", count)
	evs, err := ParseEventGrid(DecodeQueueMessage(text), a.cfg.Container)
	if err == nil {
		err = DeliverAll(ctx, a.cfg.Callback, evs)
	}
	if err == nil {
		if _, derr := a.q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); derr != nil && !queueerror.HasCode(derr, queueerror.MessageNotFound) {
			log.WarnContext(ctx, "delete failed; the message will be delivered again", "err", derr)
		}
		return
	}
	if count < int64(a.cfg.MaxDequeue) {
		log.WarnContext(ctx, "message failed; it will be delivered again", "err", err)
		return
	}
	if perr := a.toPoison(ctx, text); perr != nil {
		log.ErrorContext(ctx, "moving a poison message failed", "err", perr)
		return
	}
	if _, derr := a.q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); derr != nil && !queueerror.HasCode(derr, queueerror.MessageNotFound) {
		log.WarnContext(ctx, "delete of a poison message failed", "err", derr)
	}
	log.ErrorContext(ctx, "message moved to the poison queue", "poison_queue", a.cfg.PoisonQueue, "err", err)
}

func (a *AzureQueue) toPoison(ctx context.Context, text string) error {
	a.poisonOnce.Do(func() {
		if _, err := a.poison.Create(ctx, nil); err != nil && !queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
			a.poisonErr = err
		}
	})
	if a.poisonErr != nil {
		err := a.poisonErr
		a.poisonOnce = sync.Once{}
		return fmt.Errorf("notify: azqueue: create poison queue: %w", err)
	}
	ttl := int32(-1)
	if _, err := a.poison.EnqueueMessage(ctx, text, &azqueue.EnqueueMessageOptions{TimeToLive: &ttl}); err != nil {
		return fmt.Errorf("notify: azqueue: enqueue poison: %w", err)
	}
	return nil
}

// Close implements Listener; the poller holds nothing to release.
func (a *AzureQueue) Close() error { return nil }

// Queue returns the SDK client of the queue (tests, administration).
func (a *AzureQueue) Queue() *azqueue.QueueClient { return a.q }
