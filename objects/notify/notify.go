// Package notify turns an object store's own "object created"
// notifications into objects.Event callbacks: S3 event notifications posted
// to a webhook (versitygw, S3-compatible stores) or read from an SQS queue
// (S3 → SQS, or S3 → SNS → SQS), and Azure Event Grid BlobCreated events
// read from a Storage Queue.
//
// Delivery is at least once: a queue message is deleted only after the
// callback returned nil, so a callback must be idempotent (the load
// function is). Notifications can still be lost (a webhook is fire and
// forget), so a reconciler listing the store stays in place beside them.
//
// A source is opened from a URL:
//
//	webhook://127.0.0.1:9000/s3-events                 listen for S3 event POSTs (keys=raw for versitygw)
//	sqs://QUEUE-NAME?region=eu-west-1                  poll SQS (or sqs://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)
//	azqueue://QUEUE?service_url=...&container=NAME     poll an Azure Storage Queue fed by Event Grid
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/intercloud/intercloud/internal/registry"
	"github.com/intercloud/intercloud/objects"
)

// Source is the value of objects.Event.Source for events from this package.
const Source = "notification"

// Callback receives one object-created event. A nil error acknowledges it;
// an error leaves a queued message to be delivered again.
type Callback func(ctx context.Context, e objects.Event) error

// Listener delivers notifications until its Run returns.
type Listener interface {
	// Run delivers events until ctx is cancelled; it returns nil then.
	Run(ctx context.Context) error
	// Close releases what Open acquired (a listening socket); it is safe
	// to call after Run returned, and more than once.
	Close() error
}

// Opener starts a listener for a URL of its scheme. It must not log or
// return the URL's credentials.
type Opener func(ctx context.Context, u *url.URL, cb Callback, log *slog.Logger) (Listener, error)

// DriverKind is the registry kind of notification drivers (see package
// internal/registry).
const DriverKind = "notify"

var drivers = registry.New[Opener](DriverKind, "scheme")

// Register makes a notification driver available under a URL scheme; it
// panics when the scheme is taken.
func Register(scheme string, o Opener) { drivers.Register(scheme, o) }

// Schemes lists the registered schemes, sorted.
func Schemes() []string { return drivers.Names() }

func init() {
	Register("webhook", func(_ context.Context, u *url.URL, cb Callback, log *slog.Logger) (Listener, error) {
		return ListenWebhook(u, cb, log)
	})
	Register("sqs", func(ctx context.Context, u *url.URL, cb Callback, log *slog.Logger) (Listener, error) {
		cfg, err := ParseSQSURL(u)
		if err != nil {
			return nil, err
		}
		cfg.Callback, cfg.Logger = cb, log
		return NewSQS(ctx, cfg)
	})
	Register("azqueue", func(_ context.Context, u *url.URL, cb Callback, log *slog.Logger) (Listener, error) {
		cfg, err := ParseAzureQueueURL(u)
		if err != nil {
			return nil, err
		}
		cfg.Callback, cfg.Logger = cb, log
		return NewAzureQueue(cfg)
	})
}

// Open returns the listener a URL names, through the driver registered for
// its scheme. A webhook listens at once, so the store can be started after
// Open returns.
func Open(ctx context.Context, rawURL string, cb Callback, log *slog.Logger) (Listener, error) {
	if cb == nil {
		return nil, fmt.Errorf("notify: a callback is required")
	}
	if log == nil {
		log = slog.Default()
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("notify: malformed URL")
	}
	o, err := drivers.Lookup(u.Scheme)
	if err != nil {
		return nil, err
	}
	return o(ctx, u, cb, log)
}
