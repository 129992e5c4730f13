package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/s3"
)

// SQSConfig configures an SQS poller. Credentials come from
// aws-sdk-go-v2's default chain (environment, shared files with Profile,
// web identity, instance roles).
type SQSConfig struct {
	// QueueURL is the queue's URL; when empty, QueueName is looked up.
	QueueURL  string
	QueueName string
	Region    string
	Profile   string
	// Endpoint overrides the SQS endpoint (an SQS-compatible server).
	Endpoint string
	// Wait is the long-poll wait of one receive, up to 20s (default 20s).
	Wait time.Duration
	// VisibilityTimeout hides a received message while it is processed
	// (default: the queue's own setting).
	VisibilityTimeout time.Duration
	// Batch is how many messages one receive asks for, 1..10 (default 10).
	Batch int

	Callback Callback
	Logger   *slog.Logger
}

// SQS long-polls an SQS queue that S3 (directly or through SNS) sends
// event notifications to, calls the callback for every created object,
// and deletes a message only after its callbacks returned nil. A message
// that is not a notification is logged and deleted; one whose callback
// keeps failing is left to the queue's redrive policy (dead-letter queue).
type SQS struct {
	cfg    SQSConfig
	client *sqs.Client
	log    *slog.Logger
}

var _ Listener = (*SQS)(nil)

// NewSQS builds the client; it resolves the queue URL on the first Run.
func NewSQS(ctx context.Context, cfg SQSConfig) (*SQS, error) {
	if cfg.QueueURL == "" && cfg.QueueName == "" {
		return nil, errors.New("notify: sqs: a queue URL or name is required")
	}
	if cfg.Callback == nil {
		return nil, errors.New("notify: sqs: a callback is required")
	}
	if cfg.Wait <= 0 || cfg.Wait > 20*time.Second {
		cfg.Wait = 20 * time.Second
	}
	if cfg.Batch <= 0 || cfg.Batch > 10 {
		cfg.Batch = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// The SDK's default logger writes to stderr.
	lo := []func(*config.LoadOptions) error{config.WithLogger(s3.SDKLogger(cfg.Logger.With("component", "notify")))}
	if cfg.Region != "" {
		lo = append(lo, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		lo = append(lo, config.WithSharedConfigProfile(cfg.Profile))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("notify: sqs: load AWS configuration: %w", err)
	}
	client := sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &SQS{cfg: cfg, client: client, log: cfg.Logger.With("component", "notify")}, nil
}

// ParseSQSURL reads sqs://QUEUE-NAME?region=R or
// sqs://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE?..., with optional profile,
// endpoint, wait, visibility_timeout and batch parameters.
func ParseSQSURL(u *url.URL) (SQSConfig, error) {
	var c SQSConfig
	if u.Scheme != "sqs" {
		return c, errors.New("notify: URL scheme must be sqs")
	}
	if u.User != nil {
		return c, errors.New("notify: sqs: credentials in the URL are not supported (use the default chain)")
	}
	if u.Host == "" {
		return c, errors.New("notify: sqs: a queue is required: sqs://NAME or sqs://HOST/ACCOUNT/NAME")
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		c.QueueURL = "https://" + u.Host + "/" + p
	} else {
		c.QueueName = u.Host
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return c, errors.New("notify: sqs: malformed query string")
	}
	for k, vs := range q {
		v := vs[0]
		var perr error
		switch k {
		case "region":
			c.Region = v
		case "profile":
			c.Profile = v
		case "endpoint":
			eu, err := url.Parse(v)
			if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
				return c, errors.New("notify: sqs: endpoint must be an http or https URL")
			}
			c.Endpoint = v
			if c.QueueURL != "" {
				c.QueueURL = strings.TrimSuffix(v, "/") + "/" + strings.Trim(u.Path, "/")
			}
		case "wait":
			c.Wait, perr = time.ParseDuration(v)
		case "visibility_timeout":
			c.VisibilityTimeout, perr = time.ParseDuration(v)
		case "batch":
			c.Batch, perr = strconv.Atoi(v)
		default:
			return c, fmt.Errorf("notify: sqs: unknown URL parameter %q", k)
		}
		if perr != nil {
			return c, fmt.Errorf("notify: sqs: bad %s %q", k, v)
		}
	}
	return c, nil
}

// Run polls until ctx is cancelled.
func (s *SQS) Run(ctx context.Context) error {
	for s.cfg.QueueURL == "" {
		out, err := s.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(s.cfg.QueueName)})
		if err == nil {
			s.cfg.QueueURL = aws.ToString(out.QueueUrl)
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.WarnContext(ctx, "queue lookup failed", "queue", s.cfg.QueueName, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
	for {
		_, err := s.Poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.WarnContext(ctx, "queue receive failed", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// Poll makes one long-poll receive and handles its messages.
func (s *SQS) Poll(ctx context.Context) (int, error) {
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(s.cfg.QueueURL),
		MaxNumberOfMessages:         int32(s.cfg.Batch),
		WaitTimeSeconds:             int32(s.cfg.Wait / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
	}
	if s.cfg.VisibilityTimeout > 0 {
		in.VisibilityTimeout = int32(s.cfg.VisibilityTimeout / time.Second)
	}
	out, err := s.client.ReceiveMessage(ctx, in)
	if err != nil {
		return 0, fmt.Errorf("notify: sqs: receive: %w", err)
	}
	for _, m := range out.Messages {
		s.handle(ctx, m)
	}
	return len(out.Messages), nil
}

func (s *SQS) handle(ctx context.Context, m types.Message) {
	log := s.log.With("message_id", aws.ToString(m.MessageId), "receive_count", m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	evs, err := ParseS3Event([]byte(aws.ToString(m.Body)))
	if err != nil {
		// It can never succeed: drop it, loudly.
		log.ErrorContext(ctx, "not an S3 notification; deleted", "err", err)
		s.delete(ctx, log, m)
		return
	}
	if err := DeliverAll(ctx, s.cfg.Callback, evs); err != nil {
		log.WarnContext(ctx, "callback failed; the message will be delivered again", "err", err)
		return
	}
	s.delete(ctx, log, m)
}

func (s *SQS) delete(ctx context.Context, log *slog.Logger, m types.Message) {
	if _, err := s.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(s.cfg.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
		log.WarnContext(ctx, "delete failed; the message will be delivered again", "err", err)
	}
}

// Close implements Listener; the poller holds nothing to release.
func (s *SQS) Close() error { return nil }

// DeliverAll calls cb for every event and joins the errors.
func DeliverAll(ctx context.Context, cb Callback, evs []objects.Event) error {
	var errs []error
	for _, e := range evs {
		if err := cb(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
