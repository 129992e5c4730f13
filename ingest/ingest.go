// Package ingest is the ingest API each cloud runs: POST /v1/records takes
// records, authenticates the caller, validates every record against the
// schema, gives each an id, and group-commits the records of concurrent
// requests into one NDJSON object under raw/YYYY/MM/DD/HH/ in the cloud's
// object store: per request, a shared line of its origin, trace id and
// ingest time, then a line per record of its id and fields (the layout
// record.ReadStored reads). It answers 202 only after that object was
// written, so an acknowledged record is durable.
//
// # Requests
//
// A body is one JSON object, a JSON array of objects (Content-Type
// application/json) or one object per line (application/x-ndjson, blank
// lines ignored). The caller sends "Authorization: Bearer <key>". One bad
// record rejects the whole request and nothing of it is written. Errors are
// JSON (see package apierr): 400 malformed, 401 unauthenticated, 403 a key
// without the ingest scope (see package auth), 404/405, 408 a body that
// arrives too slowly (see internal/serve), 413 too large, 415 wrong type,
// 422 schema violation naming the record and field (or a reused
// Idempotency-Key), 429 rate limited (with Retry-After), 503 closing or
// store unavailable.
//
// # Ids
//
// A record's id is its client-supplied "id" (1 to 64 characters of
// A-Z a-z 0-9 . _ : -), else a fresh UUIDv7. When the request carries an
// Idempotency-Key header (1 to 200 printable ASCII characters), a record
// without an id gets DerivedID(key, time, index) instead, where time is the
// request's Intercloud-Request-Time header (RFC 3339), else the time of a
// key that is itself a UUIDv7 (as the front door makes when the client
// sends none): a UUIDv7 whose time is that time and whose other bits come from
// the record index and SHA-256(key || 0x00 || decimal record index), so
// the ids stay time-ordered. A key with no time gives a version 8 UUID
// from the hash alone. A retry of the same request with the same key (and
// time), on this cloud or another, therefore yields the same ids, and the
// stores downstream (keyed by id) keep each record once. A key
// names one logical request: the API remembers the hash of the media type
// and body each key was acknowledged with for Limits.IdempotencyWindow
// (default 24 h, at most Limits.IdempotencyKeys keys, oldest forgotten
// first; in memory, so per API process), and the same key with a
// different request within that window is a 422 idempotency_key_reused
// that writes nothing. A request that was not acknowledged binds nothing.
//
// # Numbers
//
// A number field's magnitude is at most MaxNumber (1e288), so no
// aggregate of a bucket can overflow to ±Inf; a larger one is a 422.
//
// # Traces
//
// The trace id comes from a valid W3C traceparent header, else it is 16
// random bytes in hex. It is answered in X-Trace-Id, stamped into the
// request's shared line in the object (so into every record's row) and
// into every log line about the request (trace_id).
//
// # Group commit
//
// Validated requests queue for one committer, which gathers the records of
// concurrent requests into one object with IfNotExist (up to
// Config.Writers objects are written at once). The group is adaptive: it
// closes as soon as no other request is being read or validated (one that
// could still join it), else once it holds Limits.BatchBytes of NDJSON or
// Limits.BatchWait has passed since its first request arrived, whichever
// comes first. While an object is being written, the next group keeps
// gathering the requests that queue behind it until that write is done
// (as a database's next log flush takes the commits that arrived during
// the last), and starts a write beside it only once it is full or its
// first request has waited Limits.BatchWait: a store that writes faster
// than that gets one object (one file and its fsyncs) for all the
// requests of a write's duration, a slower one (writes that lately took
// longer than BatchWait on average) gets writes in parallel at once. A
// lone client's request is written at once; many clients' requests share
// objects. A request is never split across objects; one larger than
// BatchBytes is an object of its own. A failed write is retried under the
// same key; when every attempt fails each request of the batch gets 503
// store_unavailable and none of it is acknowledged. A request whose client
// went away while queued is still written, or not, as a whole.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/hlc"
	"github.com/intercloud/intercloud/internal/serve"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/record"
)

// Routes the API serves.
const (
	PathRecords = "/v1/records"
	PathHealth  = "/healthz"
)

// Headers the API reads or sets.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderRequestTime fixes the time the ids of a request with an
	// Idempotency-Key are derived from (RFC 3339); a client whose keys are
	// not UUIDv7s sends it, the same on every retry, for time-ordered ids.
	HeaderRequestTime = "Intercloud-Request-Time"
	HeaderTraceparent = "Traceparent"
	HeaderTraceID     = "X-Trace-Id"
)

// CodeStoreUnavailable is the apierr code of the 503 answered when the
// object store did not take a batch.
const CodeStoreUnavailable = "store_unavailable"

// CodeBacklog is the apierr code of the 503 (with Retry-After) answered
// while the published results are further behind than Limits.MaxBacklog.
const CodeBacklog = "backlog"

// RawPrefix is where raw objects are written.
const RawPrefix = "raw/"

// Defaults for zero fields of Config and Config.Limits.
const (
	DefaultMaxBodyBytes = 8 << 20
	DefaultMaxRecords   = 10000
	DefaultBatchBytes   = 4 << 20
	DefaultBatchWait    = 5 * time.Millisecond
	DefaultWriters      = 4
	DefaultWriteTimeout = 30 * time.Second
	// DefaultDegradedBacklog is Limits.DegradedBacklog's default.
	DefaultDegradedBacklog = time.Minute
	// putAttempts is one write plus three retries.
	putAttempts = 4
)

// Config configures an API.
type Config struct {
	// Cloud names this cloud ("aws", "azure"); it is stamped into every
	// record's origin and every log line.
	Cloud string
	// Bucket is where raw objects are written.
	Bucket *objects.Bucket
	// Schema is what records are validated against.
	Schema config.Schema
	// Limits bounds requests and batches; zero fields take the defaults
	// above, RateLimit 0 means no rate limit.
	Limits config.Ingest
	// Keys authorizes callers (scope ingest). When nil, APIKey is the one
	// key, with every scope; one of the two is required.
	Keys *auth.Keyring
	// APIKey is the bearer key callers must present when Keys is nil.
	APIKey string
	// Logger receives the API's logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the physical clock: it picks the object's hour and, through
	// Clock, stamps IngestedAt (default time.Now).
	Now func() time.Time
	// Clock stamps IngestedAt, the version by which the same id written on
	// two clouds converges (default a clock of its own over Now). Share it
	// with the replication streams into this cloud's database (their
	// Observe), so that a write acknowledged here after a replicated row
	// was applied carries a greater version than that row.
	Clock *hlc.Clock
	// Writers bounds the objects written at once (default 4).
	Writers int
	// WriteTimeout bounds the writing of one object, retries included
	// (default 30s).
	WriteTimeout time.Duration
	// Health reports the health of what the API depends on (its object
	// store, the database its records are loaded into, dead letters) for
	// GET /healthz; nil means only the API itself counts. It must answer
	// quickly (report a recent check, do not run one).
	Health func() Health
	// OnCommit, when set, is told each group commit that wrote its
	// object: how many records and requests it held, its size and how
	// long the write took (for the batch-size histogram).
	OnCommit func(records, requests, bytes int, took time.Duration)
	// Backlog returns how long the oldest acknowledged record not yet in
	// the published results has waited, and whether that is known; with
	// Limits.MaxBacklog set, writes are refused while it is greater. nil
	// means unknown.
	Backlog func() (time.Duration, bool)
	// OnAck is told the ingest time stamped into the records of every
	// acknowledged request, after the 202 is decided. It must not block.
	OnAck func(ingestedAt time.Time, records int)
}

// Health states GET /healthz reports.
const (
	// HealthOK: the cloud takes writes and processes them.
	HealthOK = "ok"
	// HealthDegraded: the cloud takes writes (they are durable) but
	// something behind it is failing, such as its database; a front door
	// prefers another cloud. Answered with 200.
	HealthDegraded = "degraded"
	// HealthUnhealthy: the cloud cannot take writes (its object store is
	// unreachable). Answered with 503.
	HealthUnhealthy = "unhealthy"
)

// Health is the state of what an API depends on.
type Health struct {
	// Status is HealthOK, HealthDegraded or HealthUnhealthy.
	Status string `json:"status"`
	// Problems name what is wrong, one line each.
	Problems []string `json:"problems,omitempty"`
}

// Stats are the API's counters since New.
type Stats struct {
	// Requests counts POST /v1/records requests.
	Requests int64
	// RecordsAcked counts records answered with 202.
	RecordsAcked int64
	// ObjectsWritten counts raw objects written.
	ObjectsWritten int64
	// BytesWritten counts the bytes of those objects.
	BytesWritten int64
	// Pending counts requests queued for or being written to an object.
	Pending int64
	// Rejected counts error answers by apierr code.
	Rejected map[string]int64
}

// API is the ingest HTTP API. It is safe for concurrent use.
type API struct {
	cfg     Config
	log     *slog.Logger
	limiter *rate.Limiter
	idem    *idemStore
	fast    *fastPlan // nil: every request takes Parse
	// idSources gives the fast path the random bits of fresh ids.
	idSources idSources
	// bufs recycles request bodies, objects' lines and answers.
	bufs bufPool

	queue     chan *pending
	sem       chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
	stopCh    chan struct{} // closed when no request is left: the committer ends
	loopDone  chan struct{} // closed when the committer has ended
	writers   sync.WaitGroup

	mu        sync.Mutex
	closing   bool
	closingCh chan struct{} // closed by Close: flush without waiting
	inflight  sync.WaitGroup

	requests, acked, objects, bytes, pending atomic.Int64
	// preparing counts the write requests being read or validated, not
	// yet queued: the ones a group may still wait for.
	preparing atomic.Int64
	// prepared is nudged when preparing falls to 0.
	prepared chan struct{}
	// writing counts the objects being written; wrote is nudged when one
	// is done (its requests answered).
	writing atomic.Int64
	wrote   chan struct{}
	// writeTime is the moving average of the objects' write times, in
	// nanoseconds (noteWrite).
	writeTime atomic.Int64
	rejMu     sync.Mutex
	rejected  map[string]int64
}

var _ http.Handler = (*API)(nil)

// New checks cfg, fills defaults and returns an API. It starts nothing: the
// committer starts with the first write.
func New(cfg Config) (*API, error) {
	if cfg.Cloud == "" {
		return nil, errors.New("ingest: config: Cloud is required")
	}
	if cfg.Bucket == nil {
		return nil, errors.New("ingest: config: Bucket is required")
	}
	if cfg.Keys == nil && cfg.APIKey == "" {
		return nil, errors.New("ingest: config: Keys or APIKey is required")
	}
	if cfg.Keys == nil {
		cfg.Keys = auth.Single(cfg.APIKey)
	}
	if err := cfg.Schema.Validate(); err != nil {
		return nil, fmt.Errorf("ingest: config: %w", err)
	}
	l := &cfg.Limits
	if l.MaxBodyBytes < 0 || l.MaxRecords < 0 || l.BatchBytes < 0 || l.BatchWait < 0 || l.RateLimit < 0 || l.RateBurst < 0 ||
		l.MaxBacklog < 0 || l.DegradedBacklog < 0 ||
		l.IdempotencyWindow < 0 || l.IdempotencyKeys < 0 ||
		math.IsNaN(l.RateLimit) || cfg.Writers < 0 || cfg.WriteTimeout < 0 {
		return nil, errors.New("ingest: config: limits must not be negative")
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxRecords == 0 {
		l.MaxRecords = DefaultMaxRecords
	}
	if l.BatchBytes == 0 {
		l.BatchBytes = DefaultBatchBytes
	}
	if l.BatchWait == 0 {
		l.BatchWait = config.Duration(DefaultBatchWait)
	}
	if l.DegradedBacklog == 0 {
		l.DegradedBacklog = config.Duration(DefaultDegradedBacklog)
	}
	if l.IdempotencyWindow == 0 {
		l.IdempotencyWindow = config.Duration(DefaultIdempotencyWindow)
	}
	if l.IdempotencyKeys == 0 {
		l.IdempotencyKeys = DefaultIdempotencyKeys
	}
	if cfg.Writers == 0 {
		cfg.Writers = DefaultWriters
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Clock == nil {
		cfg.Clock = hlc.New(cfg.Now)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{
		cfg:       cfg,
		log:       cfg.Logger,
		queue:     make(chan *pending, 1024),
		sem:       make(chan struct{}, cfg.Writers),
		stopCh:    make(chan struct{}),
		loopDone:  make(chan struct{}),
		closingCh: make(chan struct{}),
		prepared:  make(chan struct{}, 1),
		wrote:     make(chan struct{}, 1),
		rejected:  map[string]int64{},
		idem:      newIdemStore(l.IdempotencyWindow.D(), l.IdempotencyKeys, cfg.Now),
		fast:      newFastPlan(cfg.Schema, cfg.Cloud),
	}
	if l.RateLimit > 0 {
		burst := l.RateBurst
		if burst == 0 {
			burst = int(l.RateLimit) + 1
		}
		a.limiter = rate.NewLimiter(rate.Limit(l.RateLimit), burst)
	}
	return a, nil
}

// ServeHTTP routes POST /v1/records and GET /healthz; anything else is a
// JSON 404 or 405.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathRecords:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			a.fail(w, nil, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "%s %s is not allowed: use POST", r.Method, PathRecords))
			return
		}
		a.postRecords(w, r)
	case PathHealth:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			a.fail(w, nil, apierr.New(http.StatusMethodNotAllowed, apierr.CodeMethod, "%s %s is not allowed: use GET", r.Method, PathHealth))
			return
		}
		a.health(w)
	default:
		a.fail(w, nil, apierr.New(http.StatusNotFound, apierr.CodeNotFound, "no route %s (have POST %s, GET %s)", clip(r.URL.Path, 200), PathRecords, PathHealth))
	}
}

// health answers GET /healthz: {"status": "ok"|"degraded"|"unhealthy"|
// "closing", "cloud": ..., "problems": [...]}, 200 when the API takes
// writes (ok, degraded), else 503.
func (a *API) health(w http.ResponseWriter) {
	h := Health{Status: HealthOK}
	if a.cfg.Health != nil {
		h = a.cfg.Health()
	}
	code := http.StatusOK
	switch {
	case a.isClosing():
		h.Status, code = "closing", http.StatusServiceUnavailable
	case h.Status == HealthUnhealthy:
		code = http.StatusServiceUnavailable
	case h.Status != HealthDegraded:
		h.Status = HealthOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Cloud    string   `json:"cloud"`
		Status   string   `json:"status"`
		Problems []string `json:"problems,omitempty"`
	}{a.cfg.Cloud, h.Status, h.Problems})
}

// postRecords is POST /v1/records.
func (a *API) postRecords(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	a.requests.Add(1)
	trace := traceIDFrom(r.Header.Get(HeaderTraceparent))
	if trace == "" {
		trace = newTraceID()
	}
	w.Header().Set(HeaderTraceID, trace)
	log := a.log.With("trace_id", trace)

	if !a.enter() {
		a.fail(w, log, apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "the %s ingest API is shutting down", a.cfg.Cloud))
		return
	}
	defer a.inflight.Done()
	a.preparing.Add(1)
	preparing := true
	defer func() {
		if preparing {
			a.donePreparing()
		}
	}()

	if err := a.cfg.Keys.Check(r.Header.Get("Authorization"), auth.ScopeIngest); err != nil {
		if status(err) == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="intercloud"`)
		}
		a.fail(w, log, err)
		return
	}
	if a.limiter != nil {
		res := a.limiter.Reserve()
		if d := res.Delay(); !res.OK() || d > 0 {
			res.Cancel()
			secs := int64(math.Ceil(d.Seconds()))
			if !res.OK() || secs < 1 {
				secs = 1
			}
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			a.fail(w, log, apierr.New(http.StatusTooManyRequests, apierr.CodeRateLimited, "rate limit of %g requests per second exceeded; retry after %d s", a.cfg.Limits.RateLimit, secs))
			return
		}
	}
	if limit := a.cfg.Limits.MaxBacklog.D(); limit > 0 && a.cfg.Backlog != nil {
		if behind, ok := a.cfg.Backlog(); ok && behind > limit {
			// Come back once the pipeline had time to catch up, between
			// 1 s and 30 s.
			secs := int64(math.Ceil(min(max(behind-limit, time.Second), 30*time.Second).Seconds()))
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			a.fail(w, log, apierr.New(http.StatusServiceUnavailable, CodeBacklog,
				"the published results are %s behind, more than ingest.max_backlog (%s); nothing was written, retry after %d s",
				behind.Round(time.Millisecond), limit, secs))
			return
		}
	}
	ct := r.Header.Get("Content-Type")
	if _, err := mediaType(ct); err != nil {
		a.fail(w, log, err)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		a.fail(w, log, apierr.New(http.StatusUnsupportedMediaType, apierr.CodeUnsupportedType, "Content-Encoding %q is not supported: send the body uncompressed", clip(ce, 40)))
		return
	}
	idemKey, hasKey := "", false
	if vs := r.Header.Values(HeaderIdempotencyKey); len(vs) > 0 {
		if len(vs) > 1 || !ValidIdempotencyKey(vs[0]) {
			a.fail(w, log, malformed("%s must be one value of 1 to %d printable ASCII characters", HeaderIdempotencyKey, MaxIdempotencyKey))
			return
		}
		idemKey, hasKey = vs[0], true
	}
	stamp, ok := RequestTime(r.Header.Values(HeaderRequestTime), idemKey)
	if !ok {
		a.fail(w, log, malformed("%s must be one RFC 3339 time, e.g. 2026-11-24T10:00:00.123Z", HeaderRequestTime))
		return
	}
	body, err := a.readBody(w, r)
	if err != nil {
		a.fail(w, log, err)
		return
	}
	// Nothing refers to the body once the request is answered: the
	// records' lines and answer are copies.
	defer a.bufs.put(body)
	now := a.stamp()
	var p *pending
	if fr, ok := a.fastPrepare(ct, body, trace, now, idemKey, hasKey, stamp); ok {
		p = &pending{trace: trace, ingested: now, lines: fr.lines, records: fr.records, answer: fr.answer, done: make(chan result, 1)}
	} else {
		recs, err := Parse(a.cfg.Schema, ct, body, a.cfg.Limits.MaxRecords)
		if err != nil {
			a.fail(w, log, err)
			return
		}
		if p, err = a.prepare(recs, trace, now, idemKey, hasKey, stamp); err != nil {
			a.fail(w, log, err)
			return
		}
	}
	if hasKey {
		media, _ := mediaType(ct)
		ok, done := a.idem.reserve(idemKey, requestHash(media, body))
		if !ok {
			a.fail(w, log, apierr.New(http.StatusUnprocessableEntity, CodeIdempotencyKeyReused,
				"this %s was used with a different request within the last %s; use a new key for new records", HeaderIdempotencyKey, a.cfg.Limits.IdempotencyWindow.D()))
			return
		}
		defer func() { done(p.acked) }()
	}
	// The records are complete: from here the request is written as a
	// whole or not at all, whatever its client does.
	a.startOnce.Do(func() { go a.commitLoop() })
	p.at = time.Now()
	select {
	case a.queue <- p:
	case <-r.Context().Done():
		a.fail(w, log, apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "the request was cancelled before it was queued; nothing was written"))
		return
	}
	a.pending.Add(1)
	preparing = false
	a.donePreparing()
	res := <-p.done
	a.pending.Add(-1)
	if res.err != nil {
		log.Error("records not written", "records", p.records, "key", res.key, "err", res.err)
		a.fail(w, log, apierr.New(http.StatusServiceUnavailable, CodeStoreUnavailable, "the %s object store did not take the write; nothing was stored, retry", a.cfg.Cloud))
		return
	}
	a.acked.Add(int64(p.records))
	p.acked = true
	if a.cfg.OnAck != nil {
		a.cfg.OnAck(p.ingested, p.records)
	}
	w.Header().Set("Content-Type", "application/json")
	// Its length up front: the ids of a large request (about 40 bytes a
	// record) go out as they are, not in chunks.
	w.Header().Set("Content-Length", strconv.Itoa(len(p.answer)))
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(p.answer)
	a.bufs.put(p.answer)
	log.Info("records accepted", "status", http.StatusAccepted, "records", p.records, "key", res.key, "duration", time.Since(start))
}

// readBody reads the body up to MaxBodyBytes; past it is a 413.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := a.cfg.Limits.MaxBodyBytes
	tooLarge := apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeTooLarge, "the body is larger than %d bytes", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	size := int64(512)
	if r.ContentLength > 0 {
		size = r.ContentLength + 1
	}
	buf := a.bufs.get(int(size))
	rd := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge
			}
			if serve.IsBodyTooSlow(err) {
				return nil, serve.BodyTooSlow()
			}
			return nil, malformed("reading the body: %v", err)
		}
	}
}

// stamp returns a request's acknowledgement time from the hybrid logical
// clock: whole microseconds, strictly after every time this API gave and
// every version the streams into its database applied. The same id written
// twice is thereby ordered: the later write carries the greater
// _ingested_at, which is what replication and load compare (last writer
// wins, ties broken by the cloud's name).
func (a *API) stamp() time.Time { return a.cfg.Clock.Now() }

// prepare stamps ids, origin, trace and the time now on the records and
// renders their NDJSON (the shared line, then a compact line per record)
// and the 202 answer.
func (a *API) prepare(recs []record.Record, trace string, now time.Time, idemKey string, hasKey bool, reqTime time.Time) (*pending, error) {
	p := &pending{trace: trace, ingested: now, records: len(recs), done: make(chan result, 1)}
	ids := make([]string, len(recs))
	lines := make([]byte, 0, 128+128*len(recs))
	lines = append(record.AppendShared(lines, record.Shared{Origin: a.cfg.Cloud, TraceID: trace, IngestedAt: now}), '\n')
	for i := range recs {
		rec := &recs[i]
		switch {
		case rec.ID != "":
		case hasKey:
			rec.ID = DerivedID(idemKey, reqTime, i)
		default:
			id, err := newID()
			if err != nil {
				return nil, err
			}
			rec.ID = id
		}
		rec.Origin, rec.TraceID, rec.IngestedAt = a.cfg.Cloud, trace, now
		var err error
		if lines, err = rec.AppendCompact(lines); err != nil {
			return nil, fmt.Errorf("ingest: render record %d: %w", i, err)
		}
		lines = append(lines, '\n')
		ids[i] = rec.ID
	}
	p.lines = lines
	answer, err := json.Marshal(struct {
		IDs []string `json:"ids"`
	}{ids})
	if err != nil {
		return nil, fmt.Errorf("ingest: render answer: %w", err)
	}
	p.answer = append(answer, '\n')
	return p, nil
}

// status is the HTTP status of an *apierr.Error, else 500.
func status(err error) int {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}

// enter counts a write request in unless the API is closing.
func (a *API) enter() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return false
	}
	a.inflight.Add(1)
	return true
}

// donePreparing counts a request out of the ones being prepared (queued or
// failed) and wakes the committer when none is left.
func (a *API) donePreparing() {
	if a.preparing.Add(-1) == 0 {
		select {
		case a.prepared <- struct{}{}:
		default:
		}
	}
}

func (a *API) isClosing() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closing
}

// fail answers err and counts and logs the rejection.
func (a *API) fail(w http.ResponseWriter, log *slog.Logger, err error) {
	var e *apierr.Error
	if !errors.As(err, &e) {
		e = apierr.New(http.StatusInternalServerError, apierr.CodeInternal, "internal error")
		if log != nil {
			log.Error("ingest failed", "err", err)
		}
	}
	a.rejMu.Lock()
	a.rejected[e.Code]++
	a.rejMu.Unlock()
	if log != nil {
		log.Info("request rejected", "status", e.Status, "code", e.Code, "message", e.Message)
	}
	apierr.Write(w, e)
}

// Close stops taking writes (new ones get 503, /healthz answers 503), has
// every queued request written at once and answered, and waits for every
// request in flight. It returns ctx's error if that takes longer; the
// remaining requests are still answered afterwards. Close may be called
// more than once.
func (a *API) Close(ctx context.Context) error {
	a.mu.Lock()
	if !a.closing {
		a.closing = true
		close(a.closingCh)
	}
	a.mu.Unlock()
	drained := make(chan struct{})
	go func() {
		a.inflight.Wait()
		a.stopOnce.Do(func() { close(a.stopCh) })
		a.startOnce.Do(func() { close(a.loopDone) }) // never started: nothing to wait for
		<-a.loopDone
		close(drained)
	}()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ingest: close: %w", ctx.Err())
	}
}

// Stats returns a snapshot of the counters.
func (a *API) Stats() Stats {
	s := Stats{
		Requests:       a.requests.Load(),
		RecordsAcked:   a.acked.Load(),
		ObjectsWritten: a.objects.Load(),
		BytesWritten:   a.bytes.Load(),
		Pending:        a.pending.Load(),
		Rejected:       map[string]int64{},
	}
	a.rejMu.Lock()
	for k, v := range a.rejected {
		s.Rejected[k] = v
	}
	a.rejMu.Unlock()
	return s
}
