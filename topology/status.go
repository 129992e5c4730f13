package topology

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/edge"
	"github.com/intercloud/intercloud/frontdoor"
	"github.com/intercloud/intercloud/ingest"
	"github.com/intercloud/intercloud/lease"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/publish"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/telemetry"
)

// The status schema: what GET /v1/status on a cloud's API and on the
// console answer, and what `intercloud status --json` prints. Every key is
// snake_case; durations are seconds (float), times RFC 3339.

// CloudStatus is what GET /v1/status on a cloud's API reports.
type CloudStatus struct {
	Cloud string `json:"cloud"`
	// Health is what GET /healthz says.
	Health      ingest.Health  `json:"health"`
	Ingest      IngestStatus   `json:"ingest"`
	Load        LoadStatus     `json:"load"`
	Replication []StreamStatus `json:"replication"`
	// Validation is the last round of each continuous validation
	// (replication.validate_every).
	Validation []replicate.ValidationStatus `json:"validation,omitempty"`
	// Publish is set on the cloud that publishes.
	Publish *PublishStatus `json:"publish,omitempty"`
	// Leases are this process's leases for the cloud's singleton roles:
	// which it holds, and who holds the others.
	Leases []lease.Status `json:"leases,omitempty"`
	// DeadLetters counts the dead-lettered objects; DeadLetterList names
	// the first maxStatusDead of them.
	DeadLetters    int         `json:"dead_letters"`
	DeadLetterList []load.Dead `json:"dead_letter_list,omitempty"`
	// Freshness says how far the published results are behind what was
	// acknowledged; set where this process publishes.
	Freshness *Freshness `json:"freshness,omitempty"`
	// ClockAheadSeconds is how far the cloud's version clock (package
	// hlc) runs ahead of its physical clock: above 0 after it applied
	// replicated rows versioned by a clock that is ahead of this one.
	ClockAheadSeconds float64 `json:"clock_ahead_seconds"`
	// ClockCapped counts replicated versions more than hlc.MaxLead ahead
	// of this cloud's physical clock (a clock badly wrong somewhere): they
	// raised the version clock only by hlc.MaxLead.
	ClockCapped int64 `json:"clock_capped,omitempty"`
	// WriteLock is set where the cloud's database takes one writer at a
	// time (the embedded SQLite): how this process's writers share it.
	WriteLock *WriteLockStatus `json:"write_lock,omitempty"`
	// Starting is set while the cloud's part has not started yet: what
	// start waits for (a database that does not answer), retried with
	// backoff. The cloud takes no writes meanwhile.
	Starting string    `json:"starting,omitempty"`
	Time     time.Time `json:"time"`
}

// Freshness is the age of the oldest acknowledged record whose aggregates
// are not published yet (0 when every acknowledged record is).
type Freshness struct {
	Seconds float64 `json:"seconds"`
	// OldestUnpublished is that record's ingest time.
	OldestUnpublished time.Time `json:"oldest_unpublished,omitzero"`
}

// IngestStatus is a cloud's ingest API.
type IngestStatus struct {
	Requests       int64 `json:"requests"`
	RecordsAcked   int64 `json:"records_acked"`
	ObjectsWritten int64 `json:"objects_written"`
	BytesWritten   int64 `json:"bytes_written"`
	// Pending counts requests waiting for their group commit.
	Pending int64 `json:"pending"`
	// Rejected counts error answers by code.
	Rejected map[string]int64 `json:"rejected,omitempty"`
	// RecordsPerSecond is the acknowledged rate over the last seconds.
	RecordsPerSecond float64 `json:"records_per_second"`
}

// LoadStatus is a cloud's load function.
type LoadStatus struct {
	Succeeded    int64 `json:"succeeded"`
	Failed       int64 `json:"failed"`
	Retried      int64 `json:"retried"`
	DeadLettered int64 `json:"dead_lettered"`
	// Backlog counts events queued, running or waiting to retry.
	Backlog int64 `json:"backlog"`
	// Failing counts events whose last delivery failed.
	Failing     int64     `json:"failing"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// StreamStatus is a replication stream into a cloud.
type StreamStatus struct {
	Name  string `json:"name"`
	Phase string `json:"phase"`
	// SourceMode is how the stream reads its source: "log" or "poll".
	SourceMode string `json:"source_mode"`
	// State says what the stream does, in words.
	State             string    `json:"state"`
	Table             string    `json:"table,omitempty"`
	Position          string    `json:"position"`
	SnapshotRows      int64     `json:"snapshot_rows"`
	CDCRows           int64     `json:"cdc_rows"`
	RowsPerSecond     float64   `json:"rows_per_second"`
	SourceLagSeconds  float64   `json:"source_lag_seconds"`
	TargetLagSeconds  float64   `json:"target_lag_seconds"`
	ReconnectingSince time.Time `json:"reconnecting_since,omitzero"`
	Unreachable       string    `json:"unreachable,omitempty"`
	// PendingChanges is -1 when the source cannot count them.
	PendingChanges     int64     `json:"pending_changes"`
	SourceBacklogBytes int64     `json:"source_backlog_bytes"`
	AppliedAt          time.Time `json:"applied_at,omitzero"`
	// StoppedTables are the tables stopped by a change the target
	// rejected; ApplyExceptions counts the changes skipped into
	// _ic_apply_exceptions.
	StoppedTables   []replicate.TableError `json:"stopped_tables,omitempty"`
	ApplyExceptions int64                  `json:"apply_exceptions"`
	// RenamedTables are the latest tables renamed on the source during
	// change data capture: followed on the target, or (Left) out of the
	// stream.
	RenamedTables []replicate.TableRename `json:"renamed_tables,omitempty"`
	// Conflicts counts rows not applied because the target held the same
	// id at the same or a later version.
	Conflicts   int64     `json:"conflicts"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LeaseLostSince is when this process lost the stream's lease, which
	// no other process is seen holding since: the stream runs nowhere
	// until one (re)gains it. Zero while a process holds it.
	LeaseLostSince time.Time `json:"lease_lost_since,omitzero"`
}

// PublishStatus is the publish function.
type PublishStatus struct {
	// Published counts the records whose aggregates were written.
	Published int64 `json:"published"`
	// FreshnessP50Seconds and FreshnessP99Seconds estimate the end-to-end
	// freshness (acknowledged → published) from its histogram.
	FreshnessP50Seconds float64   `json:"freshness_p50_seconds"`
	FreshnessP99Seconds float64   `json:"freshness_p99_seconds"`
	FailingSince        time.Time `json:"failing_since,omitzero"`
	// BucketFailures counts the failed attempts at single buckets;
	// FailingBuckets are the buckets not published, each retried on its
	// own while the others go on.
	BucketFailures int64                   `json:"bucket_failures"`
	FailingBuckets []publish.BucketFailure `json:"failing_buckets,omitempty"`
	LastError      string                  `json:"last_error,omitempty"`
	LastErrorAt    time.Time               `json:"last_error_at,omitzero"`
}

// GlobalStatus is what GET /v1/status on the console reports: the parts
// that belong to no cloud.
type GlobalStatus struct {
	FrontDoor []frontdoor.BackendStatus `json:"frontdoor"`
	Edge      *EdgeStatus               `json:"edge,omitempty"`
	Time      time.Time                 `json:"time"`
}

// EdgeStatus is the edge's counters and its hit ratio.
type EdgeStatus struct {
	edge.Stats
	// HitRatio is hits / (hits + misses + stale served + revalidations),
	// 0 before any request.
	HitRatio float64 `json:"hit_ratio"`
}

// edgeStatus returns the edge's status.
func edgeStatus(e *edge.Edge) *EdgeStatus {
	st := e.Stats()
	es := &EdgeStatus{Stats: st}
	if n := st.Hits + st.Misses + st.StaleServed + st.Revalidations; n > 0 {
		es.HitRatio = float64(st.Hits) / float64(n)
	}
	return es
}

// Status returns a cloud's status from its counters and last checks.
func (c *Cloud) Status() CloudStatus {
	is, ls := c.API.Stats(), c.Load.Stats()
	st := CloudStatus{
		Cloud: c.Name, Time: time.Now().UTC(), ClockAheadSeconds: c.Clock.Ahead().Seconds(), ClockCapped: c.Clock.Capped(),
		Ingest: IngestStatus{Requests: is.Requests, RecordsAcked: is.RecordsAcked, ObjectsWritten: is.ObjectsWritten,
			BytesWritten: is.BytesWritten, Pending: is.Pending, Rejected: is.Rejected, RecordsPerSecond: c.ackRate.rate()},
		Load: LoadStatus{Succeeded: ls.Succeeded, Failed: ls.Failed, Retried: ls.Retried, DeadLettered: ls.DeadLettered,
			Backlog: ls.Pending, Failing: ls.Failing, LastError: ls.LastError, LastErrorAt: ls.LastErrorAt},
	}
	if c.health != nil {
		st.Health, st.DeadLetters = c.health.report(), c.health.deadLetters()
	}
	for _, l := range c.Leases {
		st.Leases = append(st.Leases, l.Status())
	}
	for _, s := range c.Streams {
		ss, lostSince := c.streamStatus(s)
		rs := streamStatus(ss)
		rs.LeaseLostSince = lostSince
		st.Replication = append(st.Replication, rs)
	}
	for _, v := range c.Validators {
		st.Validation = append(st.Validation, v.Status())
	}
	if c.Publish != nil {
		ps := c.Publish.Stats()
		st.Publish = &PublishStatus{Published: ps.Published, FailingSince: ps.FailingSince, LastError: ps.LastError, LastErrorAt: ps.LastErrorAt,
			BucketFailures: ps.BucketFailures, FailingBuckets: ps.Failing}
		if c.metrics != nil {
			st.Publish.FreshnessP50Seconds = telemetry.Quantile(c.metrics.Freshness, 0.5)
			st.Publish.FreshnessP99Seconds = telemetry.Quantile(c.metrics.Freshness, 0.99)
		}
	}
	st.WriteLock = c.writeLockStatus()
	if age, oldest, ok := c.fresh.age(time.Now()); ok {
		st.Freshness = &Freshness{Seconds: age.Seconds(), OldestUnpublished: oldest}
	}
	return st
}

// Phases of a stream that does not run in this process, next to the
// stream's own (replicate.Status.Phase).
const (
	// PhaseStandby: another process holds the stream's lease and runs it.
	PhaseStandby = "standby"
	// PhaseWaiting: no process is seen holding the stream's lease; this
	// one campaigns for it (at start, or after it lost it).
	PhaseWaiting = "waiting"
)

// streamStatus is a stream's status as this process sees it, and since
// when no process is seen running it after this one lost its lease (zero
// otherwise). A stream runs only in the process that holds its lease; one
// stopped because the lease was lost says only "stopped" itself.
func (c *Cloud) streamStatus(s *replicate.Stream) (replicate.Status, time.Time) {
	ss := s.Status()
	l := c.roleLease[ss.Name]
	if l == nil {
		return ss, time.Time{}
	}
	ls := l.Status()
	switch {
	case ls.Held:
		return ss, time.Time{}
	case ls.Holder != "" && !ls.Mine:
		ss.Phase, ss.State = PhaseStandby, "standby: "+ls.Holder+" holds the stream's lease"
		return ss, time.Time{}
	}
	ss.Phase = PhaseWaiting
	if ls.Since.IsZero() {
		ss.State = "waiting for the stream's lease"
	} else {
		why := cmp.Or(ls.Lost, "released")
		ss.State = fmt.Sprintf("lease lost at %s (%s), held by no other process; waiting to reacquire it", ls.Since.UTC().Format(time.TimeOnly), why)
	}
	if ls.LastError != "" {
		ss.State += ": " + ls.LastError
	}
	if ls.Since.IsZero() {
		return ss, time.Time{}
	}
	return ss, ls.Since
}

func streamStatus(r replicate.Status) StreamStatus {
	return StreamStatus{
		Name: r.Name, SourceMode: r.SourceMode, Phase: r.Phase, State: r.State, Table: r.Table, Position: string(r.Position),
		SnapshotRows: r.SnapshotRows, CDCRows: r.CDCRows, RowsPerSecond: r.RowsPerSec,
		SourceLagSeconds: r.SourceLag.Seconds(), TargetLagSeconds: r.TargetLag.Seconds(),
		ReconnectingSince: r.ReconnectingSince, Unreachable: r.Unreachable, PendingChanges: r.PendingChanges,
		SourceBacklogBytes: r.SourceBacklogBytes, AppliedAt: r.AppliedAt, LastError: r.LastError, LastErrorAt: r.LastErrorAt,
		StoppedTables: r.StoppedTables, ApplyExceptions: r.ApplyExceptions, Conflicts: r.Conflicts,
		RenamedTables: r.RenamedTables,
	}
}

// statusWithDead is Status with the dead letters listed afresh.
func (c *Cloud) statusWithDead(ctx context.Context) CloudStatus {
	st := c.Status()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if dead, err := c.Loader.DeadLetters(ctx, false); err == nil {
		st.DeadLetters = len(dead)
		st.DeadLetterList = dead[:min(len(dead), maxStatusDead)]
	}
	return st
}

// GlobalStatus returns the status of the global parts this process runs.
func (t *Topology) GlobalStatus() GlobalStatus {
	gs := GlobalStatus{Time: time.Now().UTC()}
	if t.front != nil {
		gs.FrontDoor = t.front.Status()
	}
	if e := t.Edge(); e != nil {
		gs.Edge = edgeStatus(e)
	}
	return gs
}

// authorized checks that a request carries a key of scope read.
func (t *Topology) authorized(w http.ResponseWriter, r *http.Request) bool {
	if err := t.keys.Check(r.Header.Get("Authorization"), auth.ScopeRead); err != nil {
		auth.Deny(w, err)
		return false
	}
	return true
}

func (t *Topology) statusHandler(c *Cloud) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !t.authorized(w, r) {
			return
		}
		writeJSON(w, c.statusWithDead(r.Context()))
	}
}

func (t *Topology) globalStatusHandler(w http.ResponseWriter, r *http.Request) {
	if !t.authorized(w, r) {
		return
	}
	writeJSON(w, t.GlobalStatus())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// rateMeter turns a growing count into a rate over the last rateWindow,
// sampled by the health loop.
type rateMeter struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at time.Time
	n  int64
}

// rateWindow is how far back a rate looks.
const rateWindow = 5 * time.Second

func (m *rateMeter) sample(now time.Time, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, rateSample{now, n})
	for len(m.samples) > 2 && now.Sub(m.samples[1].at) >= rateWindow {
		m.samples = m.samples[1:]
	}
}

func (m *rateMeter) rate() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	d := last.at.Sub(first.at).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(last.n-first.n) / d
}

// maxStatusDead bounds the dead letters a status lists.
const maxStatusDead = 100

// FreshnessQuantile estimates the q-quantile (0..1), in seconds, of the
// end-to-end freshness histogram of the publishing cloud when it runs in
// this process (0 otherwise, or before anything was published).
func (t *Topology) FreshnessQuantile(q float64) float64 {
	c := t.clouds[t.cfg.Publish.Cloud]
	if c == nil || c.metrics == nil {
		return 0
	}
	return telemetry.Quantile(c.metrics.Freshness, q)
}

// FreshnessSamples is how many published records the end-to-end freshness
// histogram has seen. The publisher observes them right after it wrote
// their results, so a reader of the results may see them a moment before
// the histogram does.
func (t *Topology) FreshnessSamples() uint64 {
	c := t.clouds[t.cfg.Publish.Cloud]
	if c == nil || c.metrics == nil {
		return 0
	}
	return telemetry.SampleCount(c.metrics.Freshness)
}
