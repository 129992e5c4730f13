package topology

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/edge"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/ingest"
	"github.com/intercloud/intercloud/lease"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/publish"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/telemetry"
)

// KeyEnv is the environment variable that overrides the API key.
const KeyEnv = "INTERCLOUD_API_KEY"

// ResolveAPIKey returns the API key: $INTERCLOUD_API_KEY, else the topology
// file's api_key, else the key kept in the data directory, made on first
// use (created reports that).
func ResolveAPIKey(cfg *config.Config) (key string, created bool, err error) {
	if k := strings.TrimSpace(os.Getenv(KeyEnv)); k != "" {
		return k, false, nil
	}
	if cfg.APIKey != "" {
		return cfg.APIKey, false, nil
	}
	path := filepath.Join(cfg.DataDir, "api-key")
	if b, err := os.ReadFile(path); err == nil {
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, false, nil
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("topology: api key: %w", err)
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", false, fmt.Errorf("topology: api key: %w", err)
	}
	k := "ick_" + hex.EncodeToString(buf)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process made it first
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false, fmt.Errorf("topology: api key: %w", err)
		}
		return strings.TrimSpace(string(b)), false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("topology: api key: %w", err)
	}
	_, werr := f.WriteString(k + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return "", false, fmt.Errorf("topology: api key: %w", err)
	}
	return k, true, nil
}

// CloudStatus is what GET /v1/status on a cloud's API reports.
type CloudStatus struct {
	Cloud string `json:"cloud"`
	// Health is what GET /healthz says.
	Health      ingest.Health      `json:"health"`
	Ingest      ingest.Stats       `json:"ingest"`
	Load        functions.Stats    `json:"load"`
	Replication []replicate.Status `json:"replication"`
	// Validation is the last round of each continuous validation
	// (replication.validate_every).
	Validation []replicate.ValidationStatus `json:"validation,omitempty"`
	// Publish is set on the cloud that publishes.
	Publish *publish.Stats `json:"publish,omitempty"`
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
	Time      time.Time  `json:"time"`
}

// Freshness is the age of the oldest acknowledged record whose aggregates
// are not published yet (0 when every acknowledged record is).
type Freshness struct {
	Seconds float64 `json:"seconds"`
	// OldestUnpublished is that record's ingest time.
	OldestUnpublished time.Time `json:"oldest_unpublished,omitzero"`
}

// maxStatusDead bounds the dead letters a status lists.
const maxStatusDead = 100

// Status returns a cloud's status from its counters and last checks.
func (c *Cloud) Status() CloudStatus {
	st := CloudStatus{Cloud: c.Name, Ingest: c.API.Stats(), Load: c.Load.Stats(), Time: time.Now().UTC()}
	if c.health != nil {
		st.Health, st.DeadLetters = c.health.report(), c.health.deadLetters()
	}
	for _, l := range c.Leases {
		st.Leases = append(st.Leases, l.Status())
	}
	for _, s := range c.Streams {
		ss := s.Status()
		if l := c.roleLease[ss.Name]; l != nil {
			if ls := l.Status(); !ls.Held {
				ss.Phase, ss.State = "standby", "standby: another process holds the stream's lease"
				if ls.Holder != "" {
					ss.State = "standby: " + ls.Holder + " holds the stream's lease"
				}
			}
		}
		st.Replication = append(st.Replication, ss)
	}
	for _, v := range c.Validators {
		st.Validation = append(st.Validation, v.Status())
	}
	if c.Publish != nil {
		ps := c.Publish.Stats()
		st.Publish = &ps
	}
	if age, oldest, ok := c.fresh.age(time.Now()); ok {
		st.Freshness = &Freshness{Seconds: age.Seconds(), OldestUnpublished: oldest}
	}
	return st
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

// Metrics returns the cloud's counters and gauges: ingest, the load
// function and every replication stream into this cloud (rows, rate,
// source and target lag, like a managed migration service's CDC latency).
func (c *Cloud) Metrics() []telemetry.Metric {
	st := c.Status()
	cl := map[string]string{"cloud": c.Name}
	m := func(name, help, typ string, v float64, labels map[string]string) telemetry.Metric {
		return telemetry.Metric{Name: "intercloud_" + name, Help: help, Type: typ, Labels: labels, Value: v}
	}
	ms := []telemetry.Metric{
		m("ingest_requests_total", "Ingest requests received.", "counter", float64(st.Ingest.Requests), cl),
		m("ingest_records_acked_total", "Records acknowledged with 202.", "counter", float64(st.Ingest.RecordsAcked), cl),
		m("ingest_objects_written_total", "Raw objects written.", "counter", float64(st.Ingest.ObjectsWritten), cl),
		m("ingest_bytes_written_total", "Bytes of raw objects written.", "counter", float64(st.Ingest.BytesWritten), cl),
		m("ingest_pending_requests", "Requests waiting for their group commit.", "gauge", float64(st.Ingest.Pending), cl),
		m("load_succeeded_total", "Load invocations that succeeded.", "counter", float64(st.Load.Succeeded), cl),
		m("load_failed_total", "Load invocations that failed.", "counter", float64(st.Load.Failed), cl),
		m("load_dead_lettered_total", "Objects moved under dead/.", "counter", float64(st.Load.DeadLettered), cl),
		m("load_pending_events", "Load events queued, running or waiting to retry.", "gauge", float64(st.Load.Pending), cl),
		m("load_failing_events", "Load events whose last delivery failed, waiting to retry.", "gauge", float64(st.Load.Failing), cl),
		m("load_dead_letters", "Objects under dead/ now: acknowledged records not loaded (intercloud dead list).", "gauge", float64(st.DeadLetters), cl),
	}
	if c.health != nil {
		objs, db := c.health.up()
		for _, d := range []struct {
			name string
			up   bool
		}{{"database", db}, {"objects", objs}} {
			ms = append(ms, m("dependency_up", "Whether the cloud's last check reached the dependency (1) or not (0).", "gauge", b2f(d.up),
				map[string]string{"cloud": c.Name, "dependency": d.name}))
		}
	}
	if p := st.Publish; p != nil {
		ms = append(ms,
			m("publish_records_total", "Records whose aggregates were published.", "counter", float64(p.Published), cl),
			m("publish_failing", "Whether publishing fails and is being retried (1) or works (0).", "gauge", b2f(!p.FailingSince.IsZero()), cl),
			m("publish_bucket_failures_total", "Failed attempts at publishing one bucket (each retried on its own).", "counter", float64(p.BucketFailures), cl),
			m("publish_failing_buckets", "Buckets whose results are not published, retried with backoff while the others go on.", "gauge", float64(len(p.Failing)), cl))
	}
	if f := st.Freshness; f != nil {
		ms = append(ms, m("freshness_seconds", "Age of the oldest acknowledged record not yet in the published results (0: all are).", "gauge", f.Seconds, cl))
	}
	for code, n := range st.Ingest.Rejected {
		ms = append(ms, m("ingest_rejected_total", "Ingest requests answered with an error, by code.", "counter", float64(n), map[string]string{"cloud": c.Name, "code": code}))
	}
	for _, ls := range st.Leases {
		ms = append(ms, m("lease_held", "Whether this process holds the lease of a singleton role (1) or stands by (0).", "gauge", b2f(ls.Held),
			map[string]string{"cloud": c.Name, "lease": ls.Name}))
		ms = append(ms, m("lease_takeovers_total", "Times this process gained the lease of a singleton role.", "counter", float64(ls.Takeovers),
			map[string]string{"cloud": c.Name, "lease": ls.Name}))
	}
	for _, r := range st.Replication {
		l := map[string]string{"cloud": c.Name, "stream": r.Name}
		ms = append(ms,
			m("replication_snapshot_rows_total", "Rows written by the full load.", "counter", float64(r.SnapshotRows), l),
			m("replication_cdc_rows_total", "Rows written by change data capture.", "counter", float64(r.CDCRows), l),
			m("replication_rows_per_second", "Recent write rate.", "gauge", r.RowsPerSec, l),
			m("replication_source_lag_seconds", "Age of the last batch when read from the source; grows while the source is unreachable.", "gauge", r.SourceLag.Seconds(), l),
			m("replication_target_lag_seconds", "Age of the last batch when committed on the target; grows while changes cannot be applied.", "gauge", r.TargetLag.Seconds(), l),
			m("replication_reconnecting", "Whether the stream lost its source or target and is reconnecting (1) or runs (0).", "gauge", b2f(!r.ReconnectingSince.IsZero()), l),
			m("replication_conflicts_total", "Rows not applied because the target held the same id at the same or a later version (last writer wins by acknowledgement time, then cloud name).", "counter", float64(r.Conflicts), l),
		)
		ms = append(ms, m("replication_apply_exceptions_total", "Changes the target rejected, skipped into _ic_apply_exceptions (on_error: skip).", "counter", float64(r.ApplyExceptions), l))
		ms = append(ms, m("replication_stopped_tables", "Tables of the stream stopped by a change the target rejected; the others go on.", "gauge", float64(len(r.StoppedTables)), l))
		for _, te := range r.StoppedTables {
			ms = append(ms, m("replication_table_stopped", "A table stopped by an error (1), labelled with the table.", "gauge", 1,
				map[string]string{"cloud": c.Name, "stream": r.Name, "table": te.Table}))
		}
		if r.PendingChanges >= 0 {
			ms = append(ms, m("replication_pending_changes", "Source changes not applied yet.", "gauge", float64(r.PendingChanges), l))
		}
	}
	for _, v := range st.Validation {
		l := map[string]string{"cloud": c.Name, "stream": v.Name}
		ms = append(ms, m("replication_validation_rounds_total", "Rounds of continuous validation.", "counter", float64(v.Rounds), l),
			m("replication_validation_failing", "Whether the last round of continuous validation failed (1) or ran (0).", "gauge", b2f(v.Error != ""), l))
		for table, n := range v.DifferingRows {
			ms = append(ms, m("replication_differing_rows", "Rows that differ between source and target in the last round of continuous validation (in both of its looks).", "gauge", float64(n),
				map[string]string{"cloud": c.Name, "stream": v.Name, "table": table}))
		}
	}
	return ms
}

func (t *Topology) statusHandler(c *Cloud) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := t.keys.Check(r.Header.Get("Authorization"), auth.ScopeRead); err != nil {
			auth.Deny(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.statusWithDead(r.Context()))
	}
}

func (t *Topology) metricsHandler(c *Cloud) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !t.cfg.Auth.PublicMetrics {
			if err := t.keys.Check(r.Header.Get("Authorization"), auth.ScopeRead); err != nil {
				auth.Deny(w, err)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_ = telemetry.WriteMetrics(w, c.Metrics())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// purgeHTTP asks an edge in another process to purge paths.
func purgeHTTP(ctx context.Context, client *http.Client, edgeURL, key string, pr edge.PurgeRequest) error {
	body, _ := json.Marshal(pr)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, edgeURL+"/purge", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	defer resp.Body.Close()
	if e := apierr.Read(resp); e != nil {
		return fmt.Errorf("purge: %w", e)
	}
	return nil
}
