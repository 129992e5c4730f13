package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/syncbuf"

	"github.com/google/uuid"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/record"
)

const testKey = "s3cr3t-key-value"

// env is an API over a real file bucket behind a real HTTP server.
type env struct {
	api    *API
	bucket *objects.Bucket
	dir    string
	srv    *httptest.Server
	logs   *syncbuf.Buffer
}

func newEnv(t testing.TB, cloud string, mod func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	b, err := objects.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	cfg := Config{
		Cloud:  cloud,
		Bucket: b,
		Schema: testSchema,
		Limits: config.Ingest{MaxBodyBytes: 1 << 20, MaxRecords: 1000, BatchBytes: 1 << 20, BatchWait: config.Duration(2 * time.Millisecond)},
		APIKey: testKey,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)).With("component", "ingest", "cloud", cloud),
	}
	if mod != nil {
		mod(&cfg)
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := api.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		srv.Close()
		_ = b.Close()
	})
	return &env{api: api, bucket: b, dir: dir, srv: srv, logs: logs}
}

type answer struct {
	status int
	header http.Header
	ids    []string
	err    *apierr.Error
}

// post sends a request; hdr entries override the defaults (JSON, bearer key).
func (e *env) post(t testing.TB, body string, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+PathRecords, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return do(t, req)
}

// stall starts a request whose body stops halfway, and waits until the
// API is reading it (nothing else may be in flight then). finish sends the
// rest and returns the answer.
func (e *env) stall(t testing.TB, body string) (finish func() answer) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+PathRecords, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	got := make(chan answer, 1)
	go func() { got <- do(t, req) }()
	half := len(body) / 2
	if _, err := pw.Write([]byte(body[:half])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled request being read", func() bool { return e.api.preparing.Load() == 1 })
	return func() answer {
		if _, err := pw.Write([]byte(body[half:])); err != nil {
			t.Error(err)
		}
		_ = pw.Close()
		return <-got
	}
}

// waitFor polls cond for up to 20 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func do(t testing.TB, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == http.StatusAccepted {
		var out struct {
			IDs []string `json:"ids"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Errorf("202 body: %v", err)
		}
		a.ids = out.IDs
		return a
	}
	a.err = apierr.Read(resp)
	return a
}

// stored lists every raw object and parses its lines.
func (e *env) stored(t testing.TB) map[string][]record.Record {
	t.Helper()
	ctx := context.Background()
	out := map[string][]record.Record{}
	err := e.bucket.List(ctx, RawPrefix, func(o objects.Object) error {
		data, _, err := e.bucket.Get(ctx, o.Key)
		if err != nil {
			return err
		}
		if len(data) == 0 || data[len(data)-1] != '\n' {
			return fmt.Errorf("%s does not end in a newline", o.Key)
		}
		err = record.ReadStored(testSchema, data, func(_ int, r record.Record) error {
			out[o.Key] = append(out[o.Key], r)
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", o.Key, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func recBody(n int, prefix string) string {
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, fmt.Sprintf(`{"device":"%s%d","metric":"temp","value":%d.25,"count":%d,"ok":true,"ts":"2025-01-02T03:04:05.123+02:00"}`, prefix, i, i, i))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestPostRoundTrip(t *testing.T) {
	now := time.Date(2024, 3, 5, 7, 30, 0, 123, time.FixedZone("CET", 3600))
	e := newEnv(t, "aws", func(c *Config) { c.Now = func() time.Time { return now } })
	body := `[{"id":"client-1","device":"a","metric":"m","value":1.5,"ts":"2025-01-02T03:04:05Z"},` +
		`{"device":"b","metric":"m","value":-2,"count":9007199254740993,"ok":false,"ts":"2025-01-02T04:04:05.000000001+01:00"}]`
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	a := e.post(t, body, map[string]string{"Traceparent": tp})
	if a.status != http.StatusAccepted {
		t.Fatalf("status %d: %v", a.status, a.err)
	}
	if got := a.header.Get(HeaderTraceID); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("X-Trace-Id = %q", got)
	}
	if len(a.ids) != 2 || a.ids[0] != "client-1" {
		t.Fatalf("ids = %v", a.ids)
	}
	if u, err := uuid.Parse(a.ids[1]); err != nil || u.Version() != 7 {
		t.Errorf("generated id %q is not a UUIDv7", a.ids[1])
	}
	objs := e.stored(t)
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1", len(objs))
	}
	for key, recs := range objs {
		if !strings.HasPrefix(key, "raw/2024/03/05/06/") || !strings.HasSuffix(key, ".ndjson") {
			t.Errorf("key %q is not in the UTC hour of the write", key)
		}
		attrs, err := e.bucket.Attributes(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if attrs.ContentType != MediaNDJSON || attrs.Metadata["origin"] != "aws" || attrs.Metadata["records"] != "2" ||
			attrs.Metadata["trace-ids"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("attributes %+v", attrs)
		}
		if len(recs) != 2 {
			t.Fatalf("%d lines", len(recs))
		}
		for i, r := range recs {
			if r.ID != a.ids[i] || r.Origin != "aws" || r.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || !r.IngestedAt.Equal(now.Truncate(time.Microsecond)) {
				t.Errorf("line %d: %+v", i, r)
			}
		}
		if recs[1].Fields["count"] != int64(9007199254740993) || recs[1].Fields["ok"] != false || recs[1].Fields["value"] != -2.0 {
			t.Errorf("fields %v", recs[1].Fields)
		}
		if ts := recs[1].Fields["ts"].(time.Time); !ts.Equal(time.Date(2025, 1, 2, 3, 4, 5, 1, time.UTC)) {
			t.Errorf("ts %v", ts)
		}
		if _, ok := recs[0].Fields["count"]; ok {
			t.Errorf("absent optional field stored: %v", recs[0].Fields)
		}
	}
	s := e.api.Stats()
	if s.Requests != 1 || s.RecordsAcked != 2 || s.ObjectsWritten != 1 || s.BytesWritten == 0 || s.Pending != 0 {
		t.Errorf("stats %+v", s)
	}
	logs := e.logs.String()
	if strings.Contains(logs, testKey) {
		t.Error("the API key appears in the logs")
	}
	var sawObject bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["component"] != "ingest" || m["cloud"] != "aws" || m["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("log line lacks component/cloud/trace_id: %s", line)
		}
		if m["msg"] == "object written" {
			sawObject = m["key"] != nil && m["records"] == 2.0 && m["bytes"] != nil && m["duration"] != nil
		}
	}
	if !sawObject {
		t.Errorf("no complete object log line in:\n%s", logs)
	}
}

func TestNDJSONAndTrace(t *testing.T) {
	e := newEnv(t, "azure", nil)
	body := `{"device":"a","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"}` + "\n\n" +
		`{"device":"b","metric":"m","value":2,"ts":"2025-01-02T03:04:05Z"}` + "\n"
	a := e.post(t, body, map[string]string{"Content-Type": "application/x-ndjson; charset=utf-8", "Traceparent": "garbage"})
	if a.status != http.StatusAccepted || len(a.ids) != 2 {
		t.Fatalf("status %d ids %v err %v", a.status, a.ids, a.err)
	}
	trace := a.header.Get(HeaderTraceID)
	if len(trace) != 32 || !lowerHex(trace) {
		t.Fatalf("generated trace id %q", trace)
	}
	for _, recs := range e.stored(t) {
		for _, r := range recs {
			if r.TraceID != trace || r.Origin != "azure" {
				t.Errorf("record %+v", r)
			}
		}
	}
}

func TestRejectedRequestsWriteNothing(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) {
		c.Limits.MaxBodyBytes = 4096
		c.Limits.MaxRecords = 5
	})
	goodRec := `{"device":"a","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"}`
	tests := []struct {
		name   string
		body   string
		hdr    map[string]string
		status int
		code   string
		want   string
	}{
		{"one bad record among good", "[" + goodRec + "," + goodRec + `,{"device":"a","metric":"m","value":"x","ts":"2025-01-02T03:04:05Z"}]`, nil, 422, apierr.CodeInvalid, `record 2: field "value"`},
		{"unknown field", `{"device":"a","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z","x":1}`, nil, 422, apierr.CodeInvalid, `unknown field "x"`},
		{"malformed", "[" + goodRec + ",{]", nil, 400, apierr.CodeMalformed, "record 1"},
		{"duplicate key", `{"device":"a","device":"a","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"}`, nil, 400, apierr.CodeMalformed, "duplicate key"},
		{"empty", "", nil, 400, apierr.CodeMalformed, "empty"},
		{"no auth", goodRec, map[string]string{"Authorization": ""}, 401, apierr.CodeUnauthenticated, "bearer"},
		{"wrong key", goodRec, map[string]string{"Authorization": "Bearer nope"}, 401, apierr.CodeUnauthenticated, ""},
		{"key prefix", goodRec, map[string]string{"Authorization": "Bearer " + testKey[:5]}, 401, apierr.CodeUnauthenticated, ""},
		{"basic auth", goodRec, map[string]string{"Authorization": "Basic " + testKey}, 401, apierr.CodeUnauthenticated, ""},
		{"no content type", goodRec, map[string]string{"Content-Type": ""}, 415, apierr.CodeUnsupportedType, ""},
		{"form", goodRec, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, apierr.CodeUnsupportedType, ""},
		{"gzip", goodRec, map[string]string{"Content-Encoding": "gzip"}, 415, apierr.CodeUnsupportedType, "Content-Encoding"},
		{"too many records", recBody(6, "d"), nil, 413, apierr.CodeTooLarge, "more than 5 records"},
		{"body too large", recBody(5, strings.Repeat("d", 1000)), nil, 413, apierr.CodeTooLarge, "larger than 4096 bytes"},
		{"bad idempotency key", goodRec, map[string]string{HeaderIdempotencyKey: strings.Repeat("k", 201)}, 400, apierr.CodeMalformed, HeaderIdempotencyKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.post(t, tt.body, tt.hdr)
			if a.status != tt.status || a.err == nil || a.err.Code != tt.code {
				t.Fatalf("got %d %+v, want %d %s", a.status, a.err, tt.status, tt.code)
			}
			if !strings.Contains(a.err.Message, tt.want) {
				t.Errorf("message %q lacks %q", a.err.Message, tt.want)
			}
			if tt.status == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if a.header.Get(HeaderTraceID) == "" {
				t.Error("no X-Trace-Id on an error")
			}
		})
	}
	if objs := e.stored(t); len(objs) != 0 {
		t.Fatalf("rejected requests wrote %d objects", len(objs))
	}
	s := e.api.Stats()
	if s.RecordsAcked != 0 || s.ObjectsWritten != 0 || s.Rejected[apierr.CodeUnauthenticated] != 4 || s.Rejected[apierr.CodeInvalid] != 2 {
		t.Errorf("stats %+v", s)
	}
	if strings.Contains(e.logs.String(), testKey) {
		t.Error("the API key appears in the logs")
	}
	// A lowercase scheme is fine.
	if a := e.post(t, goodRec, map[string]string{"Authorization": "bearer " + testKey}); a.status != http.StatusAccepted {
		t.Fatalf("lowercase bearer: %d %v", a.status, a.err)
	}
}

func TestBodyLimitWithoutLength(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) { c.Limits.MaxBodyBytes = 1000 })
	body := recBody(20, "d")
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+PathRecords, struct{ io.Reader }{strings.NewReader(body)})
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	if req.ContentLength != 0 {
		t.Fatal("request has a length")
	}
	if a := do(t, req); a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d %v", a.status, a.err)
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, "aws", nil)
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/healthz", 200, "", ""},
		{"HEAD", "/healthz", 200, "", ""},
		{"POST", "/healthz", 405, apierr.CodeMethod, "GET, HEAD"},
		{"GET", "/v1/records", 405, apierr.CodeMethod, "POST"},
		{"PUT", "/v1/records", 405, apierr.CodeMethod, "POST"},
		{"GET", "/nope", 404, apierr.CodeNotFound, ""},
		{"POST", "/v1/records/x", 404, apierr.CodeNotFound, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, e.srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d Allow %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Allow"))
		}
		if tt.code != "" && !strings.Contains(string(body), `"code":"`+tt.code+`"`) {
			t.Errorf("%s %s: body %s", tt.method, tt.path, body)
		}
		if tt.method == "GET" && tt.status == 200 && strings.TrimSpace(string(body)) != `{"cloud":"aws","status":"ok"}` {
			t.Errorf("health body %s", body)
		}
	}
}

// TestGroupCommit: requests queued while another is still being read wait
// for it (up to BatchWait, here a minute) and share one object with it;
// the group closes as soon as that request is queued.
func TestGroupCommit(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) { c.Limits.BatchWait = config.Duration(time.Minute) })
	const n = 50
	answers := make([]answer, n)
	finish := e.stall(t, recBody(2, "r0-"))
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { answers[i] = e.post(t, recBody(2, fmt.Sprintf("r%d-", i)), nil) })
	}
	waitFor(t, "the requests to queue", func() bool { return e.api.Stats().Pending == n-1 })
	if s := e.api.Stats(); s.ObjectsWritten != 0 {
		t.Fatalf("%d objects written while a request was still being read", s.ObjectsWritten)
	}
	start := time.Now()
	answers[0] = finish()
	wg.Wait()
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the group closed %v after its last request: it waited out BatchWait", d)
	}
	acked := map[string]int{}
	for i, a := range answers {
		if a.status != http.StatusAccepted || len(a.ids) != 2 {
			t.Fatalf("request %d: %d %v", i, a.status, a.err)
		}
		for _, id := range a.ids {
			acked[id]++
		}
	}
	objs := e.stored(t)
	stored := map[string]int{}
	total := 0
	for _, recs := range objs {
		for _, r := range recs {
			stored[r.ID]++
			total++
		}
	}
	if len(objs) != 1 {
		t.Errorf("%d objects for %d requests queued together, want 1", len(objs), n)
	}
	if total != 2*n || len(acked) != 2*n {
		t.Fatalf("stored %d lines, acked %d ids, want %d", total, len(acked), 2*n)
	}
	for id, c := range acked {
		if c != 1 || stored[id] != 1 {
			t.Errorf("id %s acked %d times, stored %d times", id, c, stored[id])
		}
	}
	// Each request is its shared line (origin, its trace, its time)
	// and its records' compact lines, which carry its trace through it.
	traces := map[string]string{}
	for _, a := range answers {
		for _, id := range a.ids {
			traces[id] = a.header.Get(HeaderTraceID)
		}
	}
	for key, recs := range objs {
		data, _, err := e.bucket.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if lines, shared := bytes.Count(data, []byte("\n")), bytes.Count(data, []byte(`"_origin"`)); lines != 3*n || shared != n {
			t.Errorf("%d lines, %d with an origin; want %d requests of a shared line and 2 records", lines, shared, n)
		}
		for _, r := range recs {
			if r.TraceID != traces[r.ID] {
				t.Errorf("record %s has trace %s, its request %s", r.ID, r.TraceID, traces[r.ID])
			}
		}
	}
	if s := e.api.Stats(); s.ObjectsWritten != int64(len(objs)) || s.RecordsAcked != 2*n {
		t.Errorf("stats %+v", s)
	}
}

// TestLoneRequestIsNotHeld: with no other request being read, a group
// closes at once instead of waiting out BatchWait (here a minute), so a
// lone client's requests are answered one after another, each in its own
// object.
func TestLoneRequestIsNotHeld(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) { c.Limits.BatchWait = config.Duration(time.Minute) })
	const n = 3
	start := time.Now()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+PathRecords, strings.NewReader(recBody(2, fmt.Sprintf("r%d-", i))))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		a := do(t, req)
		cancel()
		if a.status != http.StatusAccepted {
			t.Fatalf("request %d: %d %v (held for BatchWait?)", i, a.status, a.err)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("%d lone requests took %v", n, d)
	}
	if s := e.api.Stats(); s.ObjectsWritten != n || s.RecordsAcked != 2*n {
		t.Errorf("stats %+v, want %d objects", s, n)
	}
}

// holdFirstWrite makes the first object written through e's bucket stay
// in flight (its Put has not returned) until release is called; entered
// is closed once it is held.
func holdFirstWrite(e *env) (entered chan struct{}, release func()) {
	entered = make(chan struct{})
	gate := make(chan struct{})
	var first atomic.Bool
	var rel sync.Once
	e.bucket.OnCreate(func(objects.Event) {
		if first.CompareAndSwap(false, true) { // later writes pass
			close(entered)
			<-gate
		}
	})
	return entered, func() { rel.Do(func() { close(gate) }) }
}

// TestRequestsQueuedBehindAWriteShareOneObject: requests that queue while
// an object is being written wait for that write (BatchWait, here a
// minute, bounds it) and then share one object, instead of each starting
// a write beside it (Writers is 4 here).
func TestRequestsQueuedBehindAWriteShareOneObject(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) { c.Limits.BatchWait = config.Duration(time.Minute) })
	entered, release := holdFirstWrite(e)
	defer release()
	const n = 6
	answers := make([]answer, n+1)
	var wg sync.WaitGroup
	wg.Go(func() { answers[0] = e.post(t, recBody(2, "first-"), nil) })
	<-entered
	for i := 1; i <= n; i++ {
		wg.Go(func() { answers[i] = e.post(t, recBody(2, fmt.Sprintf("r%d-", i)), nil) })
	}
	// All queued (or, without the wait, written beside the held one).
	waitFor(t, "the requests to queue", func() bool {
		s := e.api.Stats()
		return s.Pending == n+1 || s.ObjectsWritten > 0
	})
	if s := e.api.Stats(); s.ObjectsWritten != 0 {
		t.Fatalf("%d objects written beside the one in flight", s.ObjectsWritten)
	}
	start := time.Now()
	release()
	wg.Wait()
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("answered %v after the write in flight ended: they waited out BatchWait", d)
	}
	for i, a := range answers {
		if a.status != http.StatusAccepted || len(a.ids) != 2 {
			t.Fatalf("request %d: %d %v", i, a.status, a.err)
		}
	}
	objs := e.stored(t)
	if len(objs) != 2 {
		t.Errorf("%d objects, want 2: the held one and one for the %d requests queued behind it", len(objs), n)
	}
	for key, recs := range objs {
		if len(recs) != 2 && len(recs) != 2*n {
			t.Errorf("object %s holds %d records, want 2 or %d", key, len(recs), 2*n)
		}
	}
}

// TestSlowWriteDoesNotHoldOthersPastBatchWait: behind a write that takes
// longer than BatchWait, the next group is written beside it, so a slow
// store still gets writes in parallel.
func TestSlowWriteDoesNotHoldOthersPastBatchWait(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) { c.Limits.BatchWait = config.Duration(50 * time.Millisecond) })
	entered, release := holdFirstWrite(e)
	defer release()
	first := make(chan answer, 1)
	go func() { first <- e.post(t, recBody(2, "first-"), nil) }()
	<-entered
	if a := e.post(t, recBody(2, "second-"), nil); a.status != http.StatusAccepted {
		t.Fatalf("second request: %d %v", a.status, a.err)
	}
	select {
	case a := <-first:
		t.Fatalf("the held write was answered (%d) before it was released", a.status)
	default:
	}
	release()
	if a := <-first; a.status != http.StatusAccepted {
		t.Fatalf("first request: %d %v", a.status, a.err)
	}
	if s := e.api.Stats(); s.ObjectsWritten != 2 {
		t.Errorf("stats %+v, want 2 objects", s)
	}
}

// TestSlowStoreIsNotWaitedFor: when writes have lately taken longer than
// BatchWait (here 30 s) on average, a request does not wait behind a
// write in flight at all: it is written beside it at once.
func TestSlowStoreIsNotWaitedFor(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) { c.Limits.BatchWait = config.Duration(30 * time.Second) })
	entered, release := holdFirstWrite(e)
	defer release()
	first := make(chan answer, 1)
	go func() { first <- e.post(t, recBody(2, "first-"), nil) }()
	<-entered
	for range 20 { // writes of a minute each, lately
		e.api.noteWrite(time.Minute)
	}
	start := time.Now()
	if a := e.post(t, recBody(2, "second-"), nil); a.status != http.StatusAccepted {
		t.Fatalf("second request: %d %v", a.status, a.err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("answered after %v: it waited behind the slow write", d)
	}
	release()
	if a := <-first; a.status != http.StatusAccepted {
		t.Fatalf("first request: %d %v", a.status, a.err)
	}
}

func TestBatchBytesNeverSplitsARequest(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) {
		c.Limits.BatchBytes = 1200
		c.Limits.BatchWait = config.Duration(100 * time.Millisecond)
	})
	const n = 12
	answers := make([]answer, n+1)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = e.post(t, recBody(2, fmt.Sprintf("r%d-", i)), nil) })
	}
	wg.Go(func() { answers[n] = e.post(t, recBody(20, "big"), nil) }) // larger than BatchBytes alone
	wg.Wait()
	objectOf := map[string]string{}
	sizes := map[string]int{}
	for key, recs := range e.stored(t) {
		for _, r := range recs {
			objectOf[r.ID] = key
		}
		data, _, err := e.bucket.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		sizes[key] = len(data)
	}
	for i, a := range answers {
		if a.status != http.StatusAccepted {
			t.Fatalf("request %d: %d %v", i, a.status, a.err)
		}
		key := objectOf[a.ids[0]]
		for _, id := range a.ids {
			if objectOf[id] != key {
				t.Fatalf("request %d is split across %s and %s", i, key, objectOf[id])
			}
		}
	}
	bigKey := objectOf[answers[n].ids[0]]
	for key, size := range sizes {
		if key != bigKey && size > 1200 {
			t.Errorf("object %s has %d bytes, over BatchBytes", key, size)
		}
	}
	var inBig int
	for _, k := range objectOf {
		if k == bigKey {
			inBig++
		}
	}
	if inBig != 20 {
		t.Errorf("the large request's object holds %d records, want its 20 alone", inBig)
	}
	t.Logf("%d objects", len(sizes))
}

func TestIdempotencyKey(t *testing.T) {
	aws := newEnv(t, "aws", nil)
	azure := newEnv(t, "azure", nil)
	body := `[{"device":"a","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"},` +
		`{"id":"mine","device":"b","metric":"m","value":2,"ts":"2025-01-02T03:04:05Z"},` +
		`{"device":"c","metric":"m","value":3,"ts":"2025-01-02T03:04:05Z"}]`
	key := map[string]string{HeaderIdempotencyKey: "order-42 attempt"}
	a1 := aws.post(t, body, key)
	a2 := azure.post(t, body, key)
	a3 := aws.post(t, body, key)
	if a1.status != 202 || a2.status != 202 || a3.status != 202 {
		t.Fatalf("statuses %d %d %d", a1.status, a2.status, a3.status)
	}
	want := []string{DerivedID("order-42 attempt", time.Time{}, 0), "mine", DerivedID("order-42 attempt", time.Time{}, 2)}
	for _, got := range [][]string{a1.ids, a2.ids, a3.ids} {
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("ids %v, want %v", got, want)
		}
	}
	other := aws.post(t, body, map[string]string{HeaderIdempotencyKey: "another"})
	none := aws.post(t, body, nil)
	if other.ids[0] == want[0] || none.ids[0] == want[0] || other.ids[1] != "mine" {
		t.Errorf("other key %v, no key %v", other.ids, none.ids)
	}
	if u, err := uuid.Parse(none.ids[0]); err != nil || u.Version() != 7 {
		t.Errorf("without a key: %q is not a UUIDv7", none.ids[0])
	}
	for _, recs := range azure.stored(t) {
		for i, r := range recs {
			if r.ID != want[i] {
				t.Errorf("azure stored %s, want %s", r.ID, want[i])
			}
		}
	}
}

// TestRequestTimeIDs checks that a request stamped with
// Intercloud-Request-Time gets time-ordered ids, the same on both clouds,
// and that a malformed stamp is refused with nothing written.
func TestRequestTimeIDs(t *testing.T) {
	aws := newEnv(t, "aws", nil)
	azure := newEnv(t, "azure", nil)
	body := `[{"device":"a","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"},` +
		`{"device":"b","metric":"m","value":2,"ts":"2025-01-02T03:04:05Z"}]`
	at := "2026-11-24T10:00:00.123Z"
	hdr := map[string]string{HeaderIdempotencyKey: "order-43", HeaderRequestTime: at}
	a1, a2 := aws.post(t, body, hdr), azure.post(t, body, hdr)
	if a1.status != 202 || a2.status != 202 {
		t.Fatalf("statuses %d %d", a1.status, a2.status)
	}
	stamp, _ := time.Parse(time.RFC3339, at)
	want := []string{DerivedID("order-43", stamp, 0), DerivedID("order-43", stamp, 1)}
	if !slices.Equal(a1.ids, want) || !slices.Equal(a2.ids, want) {
		t.Errorf("ids %v and %v, want %v", a1.ids, a2.ids, want)
	}
	if u, err := uuid.Parse(a1.ids[0]); err != nil || u.Version() != 7 || a1.ids[0] >= a1.ids[1] {
		t.Errorf("ids %v are not ascending UUIDv7s", a1.ids)
	}
	// A UUIDv7 key (what the front door makes when the client sends no
	// key) gives ids in its time, the same on both clouds.
	key := uuid.Must(uuid.NewV7())
	k1, k2 := aws.post(t, body, map[string]string{HeaderIdempotencyKey: key.String()}), azure.post(t, body, map[string]string{HeaderIdempotencyKey: key.String()})
	sec, nsec := key.Time().UnixTime()
	if want := []string{DerivedID(key.String(), time.Unix(sec, nsec), 0), DerivedID(key.String(), time.Unix(sec, nsec), 1)}; !slices.Equal(k1.ids, want) || !slices.Equal(k2.ids, want) {
		t.Errorf("UUIDv7 key: ids %v and %v, want %v", k1.ids, k2.ids, want)
	}
	if u, err := uuid.Parse(k1.ids[0]); err != nil || u.Version() != 7 || !strings.HasPrefix(k1.ids[0], key.String()[:13]) {
		t.Errorf("UUIDv7 key %s: ids %v do not carry its time", key, k1.ids)
	}
	bad := aws.post(t, body, map[string]string{HeaderIdempotencyKey: "order-44", HeaderRequestTime: "now"})
	if bad.status != http.StatusBadRequest || !strings.Contains(bad.err.Message, HeaderRequestTime) {
		t.Errorf("malformed %s: %d %v", HeaderRequestTime, bad.status, bad.err)
	}
	if objs := aws.stored(t); len(objs) != 2 {
		t.Errorf("%d objects, want 2", len(objs))
	}
}

// The same Idempotency-Key with a different request is a 422 that writes
// nothing, as payment APIs answer; the same request again is a 202 with the
// same ids. A request that was not acknowledged does not bind its key, and
// a key is forgotten after the window.
func TestIdempotencyKeyReused(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	e := newEnv(t, "aws", func(c *Config) { c.Now = clock; c.Limits.IdempotencyWindow = config.Duration(time.Hour) })
	key := map[string]string{HeaderIdempotencyKey: "order-7"}
	first := e.post(t, recBody(2, "a"), key)
	if first.status != 202 {
		t.Fatalf("first: %d %v", first.status, first.err)
	}
	objects := e.api.Stats().ObjectsWritten
	for name, tt := range map[string]struct {
		body string
		hdr  map[string]string
	}{
		"other body":         {recBody(2, "b"), key},
		"one more record":    {recBody(3, "a"), key},
		"other content type": {strings.ReplaceAll(strings.Trim(recBody(2, "a"), "[]"), "},{", "}\n{"), map[string]string{HeaderIdempotencyKey: "order-7", "Content-Type": "application/x-ndjson"}},
	} {
		a := e.post(t, tt.body, tt.hdr)
		if a.status != http.StatusUnprocessableEntity || a.err == nil || a.err.Code != CodeIdempotencyKeyReused {
			t.Errorf("%s: %d %v, want 422 %s", name, a.status, a.err, CodeIdempotencyKeyReused)
		}
	}
	again := e.post(t, recBody(2, "a"), key)
	if again.status != 202 || strings.Join(again.ids, ",") != strings.Join(first.ids, ",") {
		t.Fatalf("the same request again: %d %v, want 202 %v", again.status, again.ids, first.ids)
	}
	if n := e.api.Stats().ObjectsWritten; n != objects+1 {
		t.Errorf("%d objects written, want %d (the refused requests wrote nothing)", n, objects+1)
	}
	var n int
	for _, recs := range e.stored(t) {
		for _, r := range recs {
			if r.Fields["device"] != "a0" && r.Fields["device"] != "a1" {
				t.Errorf("stored a record of a refused request: %+v", r)
			}
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d records stored, want 4 (two requests of two)", n)
	}
	// After the window the key is free again.
	advance(time.Hour)
	if a := e.post(t, recBody(1, "c"), key); a.status != 202 {
		t.Fatalf("after the window: %d %v", a.status, a.err)
	}

	// A request the store did not take leaves its key unbound.
	f := newEnv(t, "aws", nil)
	if err := os.WriteFile(filepath.Join(f.dir, "raw"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if a := f.post(t, recBody(1, "x"), key); a.status != http.StatusServiceUnavailable {
		t.Fatalf("store down: %d %v", a.status, a.err)
	}
	if err := os.Remove(filepath.Join(f.dir, "raw")); err != nil {
		t.Fatal(err)
	}
	if a := f.post(t, recBody(1, "y"), key); a.status != 202 {
		t.Fatalf("a key whose request failed: %d %v, want 202", a.status, a.err)
	}
}

func TestIdemStoreBounds(t *testing.T) {
	now := time.Unix(0, 0)
	s := newIdemStore(time.Minute, 2, func() time.Time { return now })
	h := func(s string) [32]byte { return requestHash("application/json", []byte(s)) }
	for _, k := range []string{"a", "b", "c"} {
		ok, done := s.reserve(k, h(k))
		if !ok {
			t.Fatalf("reserve %s", k)
		}
		done(true)
	}
	if s.len() != 2 {
		t.Fatalf("%d keys kept, want the bound of 2", s.len())
	}
	if ok, _ := s.reserve("a", h("other")); !ok {
		t.Error("the oldest key was not forgotten first")
	}
	if ok, _ := s.reserve("c", h("other")); ok {
		t.Error("a kept key took another request")
	}
	// Two requests in flight with the same key and body: the binding
	// stays while either may still be acknowledged.
	ok1, done1 := s.reserve("d", h("d"))
	ok2, done2 := s.reserve("d", h("d"))
	if !ok1 || !ok2 {
		t.Fatal("the same request twice was refused")
	}
	done1(false)
	if ok, _ := s.reserve("d", h("x")); ok {
		t.Error("released while another request held it")
	}
	done2(true)
	now = now.Add(time.Minute)
	if ok, _ := s.reserve("d", h("x")); !ok {
		t.Error("not forgotten after the window")
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) {
		c.Limits.RateLimit = 0.5
		c.Limits.RateBurst = 2
	})
	goodRec := `{"device":"a","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"}`
	for i := 0; i < 2; i++ {
		if a := e.post(t, goodRec, nil); a.status != http.StatusAccepted {
			t.Fatalf("request %d: %d %v", i, a.status, a.err)
		}
	}
	a := e.post(t, goodRec, nil)
	if a.status != http.StatusTooManyRequests || a.err.Code != apierr.CodeRateLimited {
		t.Fatalf("third request: %d %v", a.status, a.err)
	}
	if ra := a.header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}
	// An unauthenticated caller does not spend the key's budget and gets 401.
	if a := e.post(t, goodRec, map[string]string{"Authorization": "Bearer x"}); a.status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: %d", a.status)
	}
	if objs := e.stored(t); len(objs) != 2 {
		t.Errorf("%d objects, want 2", len(objs))
	}
}

func TestCloseDrainsPendingRequests(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) { c.Limits.BatchWait = config.Duration(time.Minute) })
	const n = 10
	answers := make([]answer, n+1)
	// A request still being read holds the group for BatchWait: only
	// Close writes the queued ones before that.
	finish := e.stall(t, recBody(3, "r0-"))
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Go(func() { answers[i] = e.post(t, recBody(3, fmt.Sprintf("r%d-", i)), nil) })
	}
	waitFor(t, "the requests to queue", func() bool { return e.api.Stats().Pending == n })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- e.api.Close(ctx) }()
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close wrote the queued requests after %v: it waited for BatchWait", d)
	}
	// The request being read when Close came is still taken whole.
	answers[0] = finish()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	acked := 0
	stored := map[string]bool{}
	for _, recs := range e.stored(t) {
		for _, r := range recs {
			stored[r.ID] = true
		}
	}
	for i, a := range answers {
		if a.status != http.StatusAccepted {
			t.Fatalf("request %d: %d %v", i, a.status, a.err)
		}
		for _, id := range a.ids {
			acked++
			if !stored[id] {
				t.Errorf("acked id %s is not in the bucket", id)
			}
		}
	}
	if acked != 3*(n+1) || len(stored) != 3*(n+1) {
		t.Errorf("acked %d, stored %d", acked, len(stored))
	}
	// Closed: writes and health answer 503.
	a := e.post(t, recBody(1, "late"), nil)
	if a.status != http.StatusServiceUnavailable || a.err.Code != apierr.CodeUnavailable {
		t.Fatalf("write after Close: %d %v", a.status, a.err)
	}
	resp, err := http.Get(e.srv.URL + PathHealth)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("health after Close: %d", resp.StatusCode)
	}
	if err := e.api.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseBeforeAnyWrite(t *testing.T) {
	e := newEnv(t, "aws", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.api.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t, "aws", nil)
	// A file where the raw/ directory must go makes every write fail.
	if err := os.WriteFile(filepath.Join(e.dir, "raw"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := e.post(t, recBody(3, "d"), nil)
	if a.status != http.StatusServiceUnavailable || a.err.Code != CodeStoreUnavailable {
		t.Fatalf("got %d %v", a.status, a.err)
	}
	if s := e.api.Stats(); s.RecordsAcked != 0 || s.ObjectsWritten != 0 || s.Rejected[CodeStoreUnavailable] != 1 {
		t.Errorf("stats %+v", s)
	}
	if !strings.Contains(e.logs.String(), "object write failed, retrying") {
		t.Error("no retry was logged")
	}
	// The store recovers: the next request is written.
	if err := os.Remove(filepath.Join(e.dir, "raw")); err != nil {
		t.Fatal(err)
	}
	if a := e.post(t, recBody(1, "d"), nil); a.status != http.StatusAccepted {
		t.Fatalf("after recovery: %d %v", a.status, a.err)
	}
}

func TestPutExistingKey(t *testing.T) {
	e := newEnv(t, "aws", nil)
	ctx := context.Background()
	opts := &objects.PutOptions{ContentType: MediaNDJSON, IfNotExist: true}
	ours := []byte("{\"a\":1}\n")
	if err := e.bucket.Put(ctx, "raw/x/ours.ndjson", ours, nil); err != nil {
		t.Fatal(err)
	}
	// An earlier attempt of ours that landed: the same bytes (here in
	// pieces, as a group commit holds them) count as done.
	key, err := e.api.put(ctx, "raw/x/ours.ndjson", [][]byte{ours[:3], {}, ours[3:]}, opts)
	if err != nil || key != "raw/x/ours.ndjson" {
		t.Fatalf("put over our own object: %q %v", key, err)
	}
	// A part of them is another object: the write moves to a new key.
	key, err = e.api.put(ctx, "raw/x/ours.ndjson", [][]byte{ours[:3]}, opts)
	if err != nil || key == "raw/x/ours.ndjson" {
		t.Fatalf("put of a prefix of an existing object: %q %v", key, err)
	}
	// Someone else's object is kept; the write moves to a new key.
	key, err = e.api.put(ctx, "raw/x/ours.ndjson", [][]byte{[]byte("{\"b\":2}\n")}, opts)
	if err != nil || key == "raw/x/ours.ndjson" || !strings.HasPrefix(key, RawPrefix) {
		t.Fatalf("put over another object: %q %v", key, err)
	}
	if got, _, _ := e.bucket.Get(ctx, "raw/x/ours.ndjson"); !bytes.Equal(got, ours) {
		t.Fatal("an existing object was overwritten")
	}
	if got, _, _ := e.bucket.Get(ctx, key); string(got) != "{\"b\":2}\n" {
		t.Fatalf("new key holds %q", got)
	}
}

func TestNewValidates(t *testing.T) {
	b, err := objects.Open(context.Background(), "file://"+t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ok := Config{Cloud: "aws", Bucket: b, Schema: testSchema, APIKey: "k"}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no cloud", func(c *Config) { c.Cloud = "" }, "Cloud"},
		{"no bucket", func(c *Config) { c.Bucket = nil }, "Bucket"},
		{"no key", func(c *Config) { c.APIKey = "" }, "APIKey"},
		{"no fields", func(c *Config) { c.Schema = config.Schema{} }, "no fields"},
		{"bad type", func(c *Config) { c.Schema = config.Schema{Fields: []config.Field{{Name: "a", Type: "blob"}}} }, `type: "blob" is not one of`},
		{"reserved field", func(c *Config) { c.Schema = config.Schema{Fields: []config.Field{{Name: "_a", Type: "string"}}} }, "reserved"},
		{"negative", func(c *Config) { c.Limits.BatchBytes = -1 }, "negative"},
	}
	for _, tt := range tests {
		cfg := ok
		tt.mod(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
	a, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.Limits.MaxBodyBytes != DefaultMaxBodyBytes || a.cfg.Limits.BatchWait.D() != DefaultBatchWait || a.limiter != nil {
		t.Errorf("defaults not filled: %+v", a.cfg.Limits)
	}
}

func BenchmarkIngest(b *testing.B) {
	e := newEnv(b, "aws", func(c *Config) { c.Logger = slog.New(slog.DiscardHandler) })
	const perRequest = 20
	body := recBody(perRequest, "bench")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.SetParallelism(16) // many clients at once, as group commit expects
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, PathRecords, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+testKey)
			w := httptest.NewRecorder()
			e.api.ServeHTTP(w, req)
			if w.Code != http.StatusAccepted {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*perRequest)/b.Elapsed().Seconds(), "records/s")
	s := e.api.Stats()
	if s.ObjectsWritten > 0 {
		b.ReportMetric(float64(s.RecordsAcked)/float64(s.ObjectsWritten), "records/object")
	}
}

func TestClientGoneAfterQueueStillWritesWhole(t *testing.T) {
	e := newEnv(t, "aws", func(c *Config) { c.Limits.BatchWait = config.Duration(time.Minute) })
	// A request still being read holds the group, so the other stays
	// queued while its client goes away.
	finish := e.stall(t, recBody(2, "held"))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+PathRecords, strings.NewReader(recBody(4, "gone")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.api.Stats().Pending < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the request was not queued")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled request got an answer")
	}
	if a := finish(); a.status != http.StatusAccepted {
		t.Fatalf("held request: %d %v", a.status, a.err)
	}
	closeCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := e.api.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, recs := range e.stored(t) {
		for _, r := range recs {
			if d, _ := r.Fields["device"].(string); strings.HasPrefix(d, "gone") {
				n++
			}
		}
	}
	if n != 4 {
		t.Fatalf("stored %d of the request's 4 records", n)
	}
}

// TestHealthReportsDependencies: /healthz says what the Health hook
// reports: degraded is still 200 (writes are taken), unhealthy is 503.
func TestHealthReportsDependencies(t *testing.T) {
	var cur atomic.Value
	cur.Store(Health{Status: HealthOK})
	e := newEnv(t, "aws", func(c *Config) { c.Health = func() Health { return cur.Load().(Health) } })
	for _, tc := range []struct {
		h    Health
		code int
		body string
	}{
		{Health{Status: HealthOK}, 200, `{"cloud":"aws","status":"ok"}`},
		{Health{Status: HealthDegraded, Problems: []string{"database unreachable: connection refused"}}, 200,
			`{"cloud":"aws","status":"degraded","problems":["database unreachable: connection refused"]}`},
		{Health{Status: HealthUnhealthy, Problems: []string{"object store unreachable"}}, 503,
			`{"cloud":"aws","status":"unhealthy","problems":["object store unreachable"]}`},
		{Health{Status: "odd"}, 200, `{"cloud":"aws","status":"ok"}`},
	} {
		cur.Store(tc.h)
		resp, err := http.Get(e.srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || strings.TrimSpace(string(b)) != tc.body {
			t.Errorf("%+v: %d %s, want %d %s", tc.h, resp.StatusCode, b, tc.code, tc.body)
		}
	}
}

// TestAdmissionControl checks ingest.max_backlog: while the results are
// further behind, writes get 503 with Retry-After and nothing is written;
// otherwise (and with the limit off) they are taken, and every ack is
// told to OnAck with the ingest time stamped into its records.
func TestAdmissionControl(t *testing.T) {
	var mu sync.Mutex
	behind, known := 90*time.Second, true
	var acks []time.Time
	var ackedRecords int
	e := newEnv(t, "aws", func(c *Config) {
		c.Limits.MaxBacklog = config.Duration(time.Minute)
		c.Backlog = func() (time.Duration, bool) { mu.Lock(); defer mu.Unlock(); return behind, known }
		c.OnAck = func(at time.Time, n int) { mu.Lock(); acks = append(acks, at); ackedRecords += n; mu.Unlock() }
	})
	goodRec := `{"device":"a","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"}`
	a := e.post(t, goodRec, nil)
	if a.status != http.StatusServiceUnavailable || a.err.Code != CodeBacklog || a.header.Get("Retry-After") != "30" ||
		!strings.Contains(a.err.Message, "max_backlog") {
		t.Fatalf("behind by 90 s: %d %v Retry-After %q", a.status, a.err, a.header.Get("Retry-After"))
	}
	mu.Lock()
	behind = 61500 * time.Millisecond
	mu.Unlock()
	if a := e.post(t, goodRec, nil); a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "2" {
		t.Fatalf("behind by 61.5 s: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	if objs := e.stored(t); len(objs) != 0 {
		t.Fatalf("refused writes stored %d objects", len(objs))
	}
	for _, st := range []struct {
		d     time.Duration
		known bool
	}{{time.Minute, true}, {time.Hour, false}} {
		mu.Lock()
		behind, known = st.d, st.known
		mu.Unlock()
		if a := e.post(t, "["+goodRec+","+goodRec+"]", nil); a.status != http.StatusAccepted {
			t.Fatalf("behind %v (known %v): %d %v", st.d, st.known, a.status, a.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acks) != 2 || ackedRecords != 4 {
		t.Fatalf("OnAck told %d acks of %d records", len(acks), ackedRecords)
	}
	for _, recs := range e.stored(t) {
		for _, r := range recs {
			if !slices.ContainsFunc(acks, r.IngestedAt.Equal) {
				t.Errorf("stored ingest time %v not told to OnAck (%v)", r.IngestedAt, acks)
			}
		}
	}
}

// TestRecycledBuffersKeepEveryRecord: bodies, lines and answers are
// recycled (bufPool) once nothing refers to them. Many clients sending
// requests large enough to take recycled buffers, alone and grouped,
// through both paths (the client id of every third request's first
// record is a number, which the fast path declines), get back exactly
// their ids and find exactly their records stored, each once.
func TestRecycledBuffersKeepEveryRecord(t *testing.T) {
	e := newEnv(t, "aws", nil)
	const clients, requests, size = 8, 12, 150
	type sent struct{ device, request string }
	var mu sync.Mutex
	acked := map[string]sent{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for r := range requests {
				prefix := fmt.Sprintf("c%d-r%d-", c, r)
				body := recBody(size, prefix)
				if r%3 == 0 {
					body = strings.Replace(body, `"ok":true`, `"\u006fk":true`, 1)
				}
				var hdr map[string]string
				if r%2 == 1 {
					body = strings.ReplaceAll(strings.Trim(body, "[]"), "},{", "}\n{")
					hdr = map[string]string{"Content-Type": MediaNDJSON}
				}
				a := e.post(t, body, hdr)
				if a.status != http.StatusAccepted || len(a.ids) != size {
					t.Errorf("client %d request %d: %d %v, %d ids", c, r, a.status, a.err, len(a.ids))
					return
				}
				mu.Lock()
				for i, id := range a.ids {
					if _, dup := acked[id]; dup {
						t.Errorf("id %s answered twice", id)
					}
					acked[id] = sent{device: fmt.Sprintf("%s%d", prefix, i), request: prefix}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	stored := 0
	seen := map[string]bool{}
	for key, recs := range e.stored(t) {
		for _, r := range recs {
			stored++
			want, ok := acked[r.ID]
			if !ok || seen[r.ID] {
				t.Fatalf("%s: record %s not acknowledged, or stored twice", key, r.ID)
			}
			seen[r.ID] = true
			if r.Fields["device"] != want.device {
				t.Errorf("%s: record %s has device %v, was sent %s", key, r.ID, r.Fields["device"], want.device)
			}
		}
	}
	if stored != clients*requests*size || len(acked) != stored {
		t.Errorf("stored %d records, acknowledged %d, sent %d", stored, len(acked), clients*requests*size)
	}
}
