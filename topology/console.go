package topology

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/logstore"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/telemetry"
)

//go:embed console
var consoleFiles embed.FS

// consoleCookie carries the API key of a browser signed in to the console
// (EventSource cannot send an Authorization header).
const consoleCookie = "intercloud_key"

// streamEvery is how often the live page gets a snapshot.
const streamEvery = time.Second

// consoleHandler serves the console: the live page (GET /, its assets
// embedded), the signed-in session (POST /v1/session), a snapshot of both
// clouds and the global parts (GET /v1/snapshot, and every second as
// server-sent events on GET /v1/stream), log search (GET /v1/logs?q=), a
// record's journey (GET /v1/journey?id= or ?trace_id=), and GET /v1/status
// and GET /metrics of the global parts.
func (t *Topology) consoleHandler() http.Handler {
	mux := http.NewServeMux()
	page, _ := fs.Sub(consoleFiles, "console")
	mux.Handle("GET /", http.FileServerFS(page))
	mux.HandleFunc("POST /v1/session", t.sessionHandler)
	mux.HandleFunc("GET /v1/status", t.globalStatusHandler)
	mux.HandleFunc("GET /v1/snapshot", t.authed(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, t.Snapshot(r.Context()))
	}))
	mux.HandleFunc("GET /v1/stream", t.authed(t.streamHandler))
	mux.HandleFunc("GET /v1/logs", t.authed(t.consoleLogs))
	mux.HandleFunc("GET /v1/journey", t.authed(t.journeyHandler))
	mux.HandleFunc("GET /v1/traces", t.authed(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("trace_id")
		if id == "" {
			apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "give a trace id (trace_id=)"))
			return
		}
		writeJSON(w, map[string][]telemetry.Span{"spans": t.Spans(id)})
	}))
	mux.Handle("GET /metrics", t.metricsHandler(t.registry))
	return mux
}

// authed serves h to a request that carries a key of scope read, as a
// bearer key or the console's cookie.
func (t *Topology) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		if c, err := r.Cookie(consoleCookie); err == nil && header == "" {
			header = "Bearer " + c.Value
		}
		if err := t.keys.Check(header, auth.ScopeRead); err != nil {
			auth.Deny(w, err)
			return
		}
		h(w, r)
	}
}

// sessionHandler signs a browser in: a key of scope read (form field or
// JSON "key") becomes an HttpOnly, Secure (under TLS) cookie.
func (t *Topology) sessionHandler(w http.ResponseWriter, r *http.Request) {
	key := r.PostFormValue("key")
	if key == "" {
		var body struct {
			Key string `json:"key"`
		}
		_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body)
		key = body.Key
	}
	if err := t.keys.Check("Bearer "+key, auth.ScopeRead); err != nil {
		auth.Deny(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: key, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// Snapshot is what the live page shows at one moment.
type Snapshot struct {
	Time   time.Time     `json:"time"`
	Clouds []CloudStatus `json:"clouds"`
	Global GlobalStatus  `json:"global"`
	// Errors are the latest error lines of the central store.
	Errors []logstore.Entry `json:"errors"`
	// Unreachable names the clouds whose status could not be read.
	Unreachable []string `json:"unreachable,omitempty"`
}

// Snapshot reads every cloud's status (in this process, or from its API),
// the global parts' and the latest errors.
func (t *Topology) Snapshot(ctx context.Context) Snapshot {
	s := Snapshot{Time: time.Now().UTC(), Global: t.GlobalStatus(), Errors: []logstore.Entry{}}
	for _, name := range t.cfg.CloudNames() {
		if c := t.clouds[name]; c != nil {
			s.Clouds = append(s.Clouds, c.Status())
			continue
		}
		st, err := t.remoteStatus(ctx, name)
		if err != nil {
			s.Unreachable = append(s.Unreachable, name+": "+oneLine(err))
			continue
		}
		s.Clouds = append(s.Clouds, st)
	}
	if t.logs != nil {
		if es, err := t.logs.Search(ctx, logstore.Query{Level: "ERROR", Limit: 10}); err == nil {
			s.Errors = es
		}
	}
	return s
}

// remoteStatus asks a cloud's API in another process for its status.
func (t *Topology) remoteStatus(ctx context.Context, name string) (CloudStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var st CloudStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.urlOf(name+"-api", t.cfg.Clouds[name].API)+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+t.opts.APIKey)
	resp, err := t.Client().Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if e := apierr.Read(resp); e != nil {
		return st, e
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// streamHandler sends a snapshot as a server-sent event every second
// until the client goes away.
func (t *Topology) streamHandler(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		apierr.Write(w, apierr.New(http.StatusInternalServerError, "internal", "streaming is not supported"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	tick := time.NewTicker(streamEvery)
	defer tick.Stop()
	for {
		b, _ := json.Marshal(t.Snapshot(r.Context()))
		if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", b); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.pipeCtx.Done():
			return
		case <-tick.C:
		}
	}
}

// consoleLogs searches the central store (this process's) with the query
// language of GET /v1/logs.
func (t *Topology) consoleLogs(w http.ResponseWriter, r *http.Request) {
	if t.logs == nil {
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "the central log store does not run in this process"))
		return
	}
	q, err := logstore.ParseQuery(r.URL.Query().Get("q"))
	if err != nil {
		apierr.Write(w, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "%s", strings.TrimPrefix(err.Error(), "logstore: ")))
		return
	}
	q.Limit = 100
	es, err := t.logs.Search(r.Context(), q)
	if err != nil {
		apierr.Write(w, apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "the log store could not run the search"))
		return
	}
	writeJSON(w, map[string][]logstore.Entry{"entries": es})
}

// Journey is a record's path across both clouds: where it is stored and
// every hop the central logs saw for its trace, oldest first.
type Journey struct {
	ID      string `json:"id,omitempty"`
	TraceID string `json:"trace_id"`
	// AckedAt is when the ingest API acknowledged it (its _ingested_at).
	AckedAt time.Time `json:"acked_at,omitzero"`
	// In names the clouds whose database holds the record.
	In   []string `json:"in"`
	Hops []Hop    `json:"hops"`
	// Spans are the trace's spans this process keeps (OpenTelemetry).
	Spans []telemetry.Span `json:"spans"`
}

// Hop is one step of a journey.
type Hop struct {
	Time      time.Time `json:"time"`
	Cloud     string    `json:"cloud"`
	Component string    `json:"component"`
	Msg       string    `json:"msg"`
	// SinceAck is the time from the acknowledgement to this hop.
	SinceAckMs float64 `json:"since_ack_ms"`
}

// journeyHandler answers GET /v1/journey?id=ID or ?trace_id=T.
func (t *Topology) journeyHandler(w http.ResponseWriter, r *http.Request) {
	j, err := t.Journey(r.Context(), r.URL.Query().Get("id"), r.URL.Query().Get("trace_id"))
	if err != nil {
		apierr.Write(w, err)
		return
	}
	writeJSON(w, j)
}

// Journey finds a record by id (in the databases of this process) or by
// trace id, and its hops in the central store.
func (t *Topology) Journey(ctx context.Context, id, trace string) (*Journey, error) {
	id, trace = strings.TrimSpace(id), strings.TrimSpace(trace)
	if id == "" && trace == "" {
		return nil, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "give a record id (id=) or a trace id (trace_id=)")
	}
	if t.logs == nil {
		return nil, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "the central log store does not run in this process")
	}
	j := &Journey{ID: id, TraceID: trace, In: []string{}, Hops: []Hop{}}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range t.clouds {
			if !yield(n) {
				return
			}
		}
	})
	for _, name := range names {
		db := t.clouds[name].DB
		q := db.Dialect.Quote
		col, key := record.ColID, id
		if id == "" {
			col, key = record.ColTraceID, trace
		}
		var gotID, gotTrace string
		var acked any
		err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s = %s", q(record.ColID), q(record.ColTraceID),
			q(record.ColIngestedAt), q(t.cfg.Schema.Table), q(col), db.Dialect.Placeholder(1)), key).Scan(&gotID, &gotTrace, &acked)
		if err != nil {
			continue
		}
		j.In = append(j.In, name)
		j.ID, j.TraceID = gotID, gotTrace
		if at, ok := asTime(acked); ok && j.AckedAt.IsZero() {
			j.AckedAt = at
		}
	}
	if j.TraceID == "" {
		return nil, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no record %q in the databases of this process", id)
	}
	es, err := t.logs.Search(ctx, logstore.Query{TraceID: j.TraceID, Limit: logstore.MaxLimit})
	if err != nil {
		return nil, apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "the log store could not run the search")
	}
	for _, e := range es {
		h := Hop{Time: e.Time, Cloud: e.Cloud, Component: e.Component, Msg: e.Msg}
		if !j.AckedAt.IsZero() {
			h.SinceAckMs = float64(e.Time.Sub(j.AckedAt).Microseconds()) / 1000
		}
		j.Hops = append(j.Hops, h)
	}
	sort.SliceStable(j.Hops, func(a, b int) bool { return j.Hops[a].Time.Before(j.Hops[b].Time) })
	j.Spans = t.Spans(j.TraceID)
	return j, nil
}

// Spans returns the spans of a trace that this process keeps, oldest
// first (never nil).
func (t *Topology) Spans(traceID string) []telemetry.Span {
	out := t.tracing.Store().Trace(traceID)
	if out == nil {
		out = []telemetry.Span{}
	}
	return out
}

// asTime reads a timestamp column as the drivers return it.
func asTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), true
	case string:
		for _, f := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999"} {
			if t, err := time.Parse(f, x); err == nil {
				return t.UTC(), true
			}
		}
	case []byte:
		return asTime(string(x))
	}
	return time.Time{}, false
}
