package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/internal/redact"
)

// maxRequestBody bounds one request's body; the central store takes 8 MiB.
const maxRequestBody = 4 << 20

func defaultClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// endpoint parses base and makes sure its path ends with suffix, keeping the
// query. The error never shows the URL's password.
func endpoint(base, suffix string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("telemetry: bad sink URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("telemetry: bad sink URL %s: scheme must be http or https", redact.Text(u.Redacted()))
	}
	if !strings.HasSuffix(u.Path, suffix) {
		u.Path = strings.TrimRight(u.Path, "/") + suffix
		u.RawPath = ""
	}
	return u, nil
}

// post sends one request and classifies the answer: nil for 2xx, an error
// wrapping ErrRejected for a 4xx other than 408 and 429, another error
// otherwise. Neither the URL's password nor the API key appear in errors.
func post(ctx context.Context, client *http.Client, u *url.URL, name string, header http.Header, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: %s: %w", name, err)
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("telemetry: %s %s: %w", name, redact.Text(u.Redacted()), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		e := apierr.Read(resp)
		err := fmt.Errorf("telemetry: %s %s: %d %s", name, redact.Text(u.Redacted()), resp.StatusCode, truncate(e.Message, 300))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			err = fmt.Errorf("%w: %w", err, ErrRejected)
		}
		return resp, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp, nil, fmt.Errorf("telemetry: %s %s: read answer: %w", name, redact.Text(u.Redacted()), err)
	}
	return resp, b, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// chunks splits entries into groups whose encoded size stays under limit
// (a single larger entry forms its own group).
func chunks(entries [][]byte, limit int, size func([]byte) int) [][][]byte {
	var out [][][]byte
	start, total := 0, 0
	for i, e := range entries {
		n := size(e)
		if i > start && total+n > limit {
			out = append(out, entries[start:i])
			start, total = i, 0
		}
		total += n
	}
	if start < len(entries) {
		out = append(out, entries[start:])
	}
	return out
}

// httpSink posts NDJSON to the central log store.
type httpSink struct {
	u      *url.URL
	err    error
	apiKey string
	client *http.Client
}

var _ ContextSink = (*httpSink)(nil)

// NewHTTPSink returns a Sink that POSTs batches as NDJSON to the central
// log store's /v1/logs (appended to baseURL unless already there) with
// "Authorization: Bearer apiKey". A nil client uses one with a 30 s
// timeout. A batch is split into requests of at most 4 MiB; a failed
// request fails the whole batch (at-least-once: a retried batch may repeat
// lines an earlier request delivered).
//
// A batch written with a context that carries a key (WithBatchKey) sends
// it as the Idempotency-Key header, which the log store uses to store a
// batch sent twice once.
func NewHTTPSink(baseURL, apiKey string, client *http.Client) Sink {
	u, err := endpoint(baseURL, "/v1/logs")
	return &httpSink{u: u, err: err, apiKey: apiKey, client: defaultClient(client)}
}

func (s *httpSink) Write(entries [][]byte) error {
	return s.WriteContext(context.Background(), entries)
}

func (s *httpSink) WriteContext(ctx context.Context, entries [][]byte) error {
	if s.err != nil {
		return fmt.Errorf("%w: %w", s.err, ErrRejected)
	}
	for i, c := range chunks(entries, maxRequestBody, func(e []byte) int { return len(e) + 1 }) {
		var body bytes.Buffer
		for _, e := range c {
			body.Write(e)
			body.WriteByte('\n')
		}
		h := http.Header{}
		h.Set("Content-Type", "application/x-ndjson")
		if s.apiKey != "" {
			h.Set("Authorization", "Bearer "+s.apiKey)
		}
		if k := BatchKey(ctx); k != "" {
			h.Set("Idempotency-Key", fmt.Sprintf("%s/%d", k, i))
		}
		if _, _, err := post(ctx, s.client, s.u, "ship logs to", h, body.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// esBulkSink sends batches to an Elasticsearch-compatible _bulk endpoint.
type esBulkSink struct {
	u      *url.URL
	err    error
	action []byte
	client *http.Client
}

var _ ContextSink = (*esBulkSink)(nil)

type batchKey struct{}

// WithBatchKey returns a context that names the batch written with it, so
// that a sink can have it stored once however often it is sent.
func WithBatchKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, batchKey{}, key)
}

// BatchKey returns the key WithBatchKey put in ctx, or "".
func BatchKey(ctx context.Context) string {
	k, _ := ctx.Value(batchKey{}).(string)
	return k
}

// DefaultIndex is the Elasticsearch index logs go to when none is named.
const DefaultIndex = "intercloud-logs"

// NewESBulkSink returns a Sink that sends batches to the Elasticsearch bulk
// API at baseURL (/_bulk is appended to the path unless already there; the
// query is kept, e.g. VictoriaLogs' ?_msg_field=message&_time_field=@timestamp).
// Each line becomes a {"create":{"_index":index}} action and a document with
// the line's fields, "time" renamed "@timestamp" and "msg" renamed
// "message"; a line that is not a JSON object is sent as {"message": line}.
// A response with "errors":true has its retryable items (429, 5xx) resent
// up to three times; items still failing fail the batch with ErrRejected,
// so the items already indexed are not sent again. A nil client uses one
// with a 30 s timeout; an empty index is DefaultIndex.
func NewESBulkSink(baseURL, index string, client *http.Client) Sink {
	if index == "" {
		index = DefaultIndex
	}
	u, err := endpoint(baseURL, "/_bulk")
	action, _ := json.Marshal(map[string]map[string]string{"create": {"_index": index}})
	return &esBulkSink{u: u, err: err, action: action, client: defaultClient(client)}
}

func (s *esBulkSink) Write(entries [][]byte) error {
	return s.WriteContext(context.Background(), entries)
}

// ECSVersion is the version of the Elastic Common Schema the documents of
// the bulk sink follow.
const ECSVersion = "8.11.0"

// ESDocument converts one JSON log line to the Elastic Common Schema
// document the bulk sink sends: "time" becomes "@timestamp", "level"
// "log.level" (lower case, top level with a dot, as the ECS logging
// specification asks), "msg" "message", "trace_id" "trace.id", "cloud"
// "cloud.provider", "component" "service.name" (intercloud-COMPONENT),
// "err" "error.message", "library" "log.logger"; every other field goes
// under the custom "intercloud" namespace, so none collides with an ECS
// field of another type. A line that is not a JSON object is sent as
// {"message": line}.
func ESDocument(line []byte) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil || m == nil {
		b, _ := json.Marshal(map[string]any{"message": string(line), "ecs.version": ECSVersion, "service": map[string]string{"name": "intercloud"}})
		return b
	}
	doc := map[string]any{"ecs.version": ECSVersion}
	nested := func(path ...string) map[string]any {
		cur := doc
		for _, p := range path {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		return cur
	}
	str := func(v json.RawMessage) (string, bool) {
		var s string
		return s, json.Unmarshal(v, &s) == nil
	}
	custom := map[string]json.RawMessage{}
	for k, v := range m {
		s, isStr := str(v)
		switch {
		case k == "time" && isStr:
			doc["@timestamp"] = s
		case k == "level" && isStr:
			doc["log.level"] = strings.ToLower(s)
		case k == "msg" && isStr:
			doc["message"] = s
		case k == "trace_id" && isStr && s != "":
			nested("trace")["id"] = s
		case k == "cloud" && isStr:
			nested("cloud")["provider"] = s
		case k == "component" && isStr:
			nested("service")["name"] = "intercloud-" + s
		case k == "err" && isStr:
			nested("error")["message"] = s
		case k == "library" && isStr:
			nested("log")["logger"] = s
		default:
			custom[k] = v
		}
	}
	if _, ok := doc["service"]; !ok {
		nested("service")["name"] = "intercloud"
	}
	if len(custom) > 0 {
		doc["intercloud"] = custom
	}
	b, err := json.Marshal(doc)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"message": string(line), "ecs.version": ECSVersion, "service": map[string]string{"name": "intercloud"}})
	}
	return b
}

type bulkAnswer struct {
	Errors bool                         `json:"errors"`
	Items  []map[string]bulkItemOutcome `json:"items"`
}

type bulkItemOutcome struct {
	Status int             `json:"status"`
	Error  json.RawMessage `json:"error"`
}

func (s *esBulkSink) WriteContext(ctx context.Context, entries [][]byte) error {
	if s.err != nil {
		return fmt.Errorf("%w: %w", s.err, ErrRejected)
	}
	docs := make([][]byte, len(entries))
	for i, e := range entries {
		docs[i] = ESDocument(e)
	}
	size := func(d []byte) int { return len(s.action) + len(d) + 2 }
	for _, c := range chunks(docs, maxRequestBody, size) {
		if err := s.send(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// send posts one bulk request and resends its retryable failed items.
func (s *esBulkSink) send(ctx context.Context, docs [][]byte) error {
	const attempts = 3
	var (
		lastErr   string
		permanent int // failed items that are not worth resending
		total     = len(docs)
	)
	for attempt := 0; ; attempt++ {
		var body bytes.Buffer
		for _, d := range docs {
			body.Write(s.action)
			body.WriteByte('\n')
			body.Write(d)
			body.WriteByte('\n')
		}
		h := http.Header{}
		h.Set("Content-Type", "application/x-ndjson")
		_, b, err := post(ctx, s.client, s.u, "bulk index to", h, body.Bytes())
		if err != nil {
			return err
		}
		var ans bulkAnswer
		if err := json.Unmarshal(b, &ans); err != nil {
			return fmt.Errorf("telemetry: bulk index to %s: bad answer: %w", redact.Text(s.u.Redacted()), err)
		}
		var retry [][]byte
		failed := 0
		if !ans.Errors {
			ans.Items = nil
		}
		for i, item := range ans.Items {
			for _, o := range item {
				if o.Status < 300 && len(o.Error) == 0 {
					continue
				}
				failed++
				lastErr = truncate(string(o.Error), 300)
				if (o.Status == http.StatusTooManyRequests || o.Status >= 500) && i < len(docs) {
					retry = append(retry, docs[i])
				} else {
					permanent++
				}
			}
		}
		if ans.Errors && failed == 0 {
			return fmt.Errorf("telemetry: bulk index to %s: errors without failed items: %w", redact.Text(s.u.Redacted()), ErrRejected)
		}
		if len(retry) == 0 || attempt+1 >= attempts {
			if n := permanent + len(retry); n > 0 {
				return fmt.Errorf("telemetry: bulk index to %s: %d of %d documents failed: %s: %w",
					redact.Text(s.u.Redacted()), n, total, lastErr, ErrRejected)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("telemetry: bulk index to %s: %w", redact.Text(s.u.Redacted()), ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
		docs = retry
	}
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(entries [][]byte) error

// Write calls f.
func (f SinkFunc) Write(entries [][]byte) error { return f(entries) }

var _ Sink = SinkFunc(nil)
