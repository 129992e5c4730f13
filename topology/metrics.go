package topology

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"

	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/telemetry"
)

// Samples returns the cloud's counters and gauges as /metrics exports
// them: ingest, the load function and every replication stream into this
// cloud (rows, rate, source and target lag, like a managed migration
// service's CDC latency), publish and the health of what it depends on.
func (c *Cloud) Samples() []telemetry.Sample {
	st := c.Status()
	cl := map[string]string{"cloud": c.Name}
	counter := func(name, help string, v float64, labels map[string]string) telemetry.Sample {
		return telemetry.Sample{Name: name, Help: help, Type: prometheus.CounterValue, Labels: labels, Value: v}
	}
	gauge := func(name, help string, v float64, labels map[string]string) telemetry.Sample {
		return telemetry.Sample{Name: name, Help: help, Type: prometheus.GaugeValue, Labels: labels, Value: v}
	}
	ms := []telemetry.Sample{
		counter("ingest_requests_total", "Ingest requests received.", float64(st.Ingest.Requests), cl),
		counter("ingest_records_acked_total", "Records acknowledged with 202.", float64(st.Ingest.RecordsAcked), cl),
		counter("ingest_objects_written_total", "Raw objects written.", float64(st.Ingest.ObjectsWritten), cl),
		counter("ingest_bytes_written_total", "Bytes of raw objects written.", float64(st.Ingest.BytesWritten), cl),
		gauge("ingest_pending_requests", "Requests waiting for their group commit.", float64(st.Ingest.Pending), cl),
		counter("load_succeeded_total", "Load invocations that succeeded.", float64(st.Load.Succeeded), cl),
		counter("load_failed_total", "Load invocations that failed.", float64(st.Load.Failed), cl),
		counter("load_dead_lettered_total", "Objects moved under dead/.", float64(st.Load.DeadLettered), cl),
		gauge("load_pending_events", "Load events queued, running or waiting to retry (the load backlog).", float64(st.Load.Backlog), cl),
		gauge("load_failing_events", "Load events whose last delivery failed, waiting to retry.", float64(st.Load.Failing), cl),
		gauge("load_dead_letters", "Objects under dead/ now: acknowledged records not loaded (intercloud dead list).", float64(st.DeadLetters), cl),
		gauge("cloud_degraded", "Whether the cloud's /healthz says degraded or unhealthy (1) or ok (0).", b2f(st.Health.Status != "" && st.Health.Status != "ok"), cl),
		gauge("clock_ahead_seconds", "How far the cloud's version clock runs ahead of its physical clock (raised by replicated rows from a clock that is ahead).", st.ClockAheadSeconds, cl),
		counter("clock_capped_total", "Replicated versions more than 24 h ahead of the physical clock (a clock badly wrong): they raised the version clock by 24 h only.", float64(st.ClockCapped), cl),
		gauge("cloud_problems", "Problems the cloud's /healthz names (a failing stage, an unreachable dependency).", float64(len(st.Health.Problems)), cl),
	}
	if c.health != nil {
		objs, db := c.health.up()
		for _, d := range []struct {
			name string
			up   bool
		}{{"database", db}, {"objects", objs}} {
			ms = append(ms, gauge("dependency_up", "Whether the cloud's last check reached the dependency (1) or not (0).", b2f(d.up),
				map[string]string{"cloud": c.Name, "dependency": d.name}))
		}
	}
	if p := st.Publish; p != nil {
		ms = append(ms,
			counter("publish_records_total", "Records whose aggregates were published.", float64(p.Published), cl),
			gauge("publish_failing", "Whether publishing fails and is being retried (1) or works (0).", b2f(!p.FailingSince.IsZero()), cl),
			counter("publish_bucket_failures_total", "Failed attempts at publishing one bucket (each retried on its own).", float64(p.BucketFailures), cl),
			gauge("publish_failing_buckets", "Buckets whose results are not published, retried with backoff while the others go on.", float64(len(p.FailingBuckets)), cl))
	}
	if wl := st.WriteLock; wl != nil {
		ms = append(ms,
			gauge("db_write_lock_busy_ratio", "Share of the last seconds the database's one write lock was held by this process (embedded SQLite): near 1, the database is at its limit.", wl.Busy, cl),
			gauge("db_write_lock_waiting", "Writers of this process queued for the database's write lock now.", float64(wl.Waiting), cl),
			counter("db_log_syncs_total", "Syncs of the database's write-ahead log that made commits durable, run after the write lock is free (commits that end together share one).", float64(wl.LogSyncs), cl))
		for _, w := range wl.Writers {
			l := map[string]string{"cloud": c.Name, "writer": w.Writer}
			ms = append(ms,
				counter("db_write_lock_writes_total", "Write transactions and statements that took the database's write lock, by writer.", float64(w.Writes), l),
				counter("db_write_lock_wait_seconds_total", "Time writers queued for the database's write lock, by writer.", w.WaitSeconds, l),
				counter("db_write_lock_held_seconds_total", "Time writers held the database's write lock, by writer.", w.HeldSeconds, l),
				counter("db_write_lock_bypassed_total", "Writes that queued as long as the database's busy timeout and went on to its own locking, by writer.", float64(w.Bypassed), l))
		}
	}
	if f := st.Freshness; f != nil {
		ms = append(ms, gauge("freshness_seconds", "Age of the oldest acknowledged record not yet in the published results (0: all are).", f.Seconds, cl))
	}
	for _, ls := range st.Leases {
		ll := map[string]string{"cloud": c.Name, "lease": ls.Name}
		ms = append(ms, gauge("lease_held", "Whether this process holds the lease of a singleton role (1) or stands by (0).", b2f(ls.Held), ll),
			counter("lease_takeovers_total", "Times this process gained the lease of a singleton role.", float64(ls.Takeovers), ll))
	}
	for code, n := range st.Ingest.Rejected {
		ms = append(ms, counter("ingest_rejected_total", "Ingest requests answered with an error, by code.", float64(n), map[string]string{"cloud": c.Name, "code": code}))
	}
	for _, r := range st.Replication {
		l := map[string]string{"cloud": c.Name, "stream": r.Name}
		ms = append(ms,
			counter("replication_snapshot_rows_total", "Rows written by the full load.", float64(r.SnapshotRows), l),
			counter("replication_cdc_rows_total", "Rows written by change data capture.", float64(r.CDCRows), l),
			gauge("replication_rows_per_second", "Recent write rate.", r.RowsPerSecond, l),
			gauge("replication_source_lag_seconds", "Age of the last batch when read from the source; grows while the source is unreachable.", r.SourceLagSeconds, l),
			gauge("replication_target_lag_seconds", "Age of the last batch when committed on the target; grows while changes cannot be applied.", r.TargetLagSeconds, l),
			gauge("replication_lease_lost", "Whether this process lost the stream's lease and no other process is seen holding it: the stream runs nowhere (1), or it runs in some process (0).", b2f(!r.LeaseLostSince.IsZero()), l),
			gauge("replication_reconnecting", "Whether the stream lost its source or target and is reconnecting (1) or runs (0).", b2f(!r.ReconnectingSince.IsZero()), l),
			counter("replication_conflicts_total", "Rows not applied because the target held the same id at the same or a later version (last writer wins by acknowledgement time, then cloud name).", float64(r.Conflicts), l),
		)
		ms = append(ms,
			counter("replication_apply_exceptions_total", "Changes the target rejected, skipped into _ic_apply_exceptions (on_error: skip).", float64(r.ApplyExceptions), l),
			gauge("replication_stopped_tables", "Tables of the stream stopped by a change the target rejected; the others go on.", float64(len(r.StoppedTables)), l))
		for _, te := range r.StoppedTables {
			ms = append(ms, gauge("replication_table_stopped", "A table stopped by an error (1), labelled with the table.", 1,
				map[string]string{"cloud": c.Name, "stream": r.Name, "table": te.Table}))
		}
		if r.PendingChanges >= 0 {
			ms = append(ms, gauge("replication_pending_changes", "Source changes not applied yet.", float64(r.PendingChanges), l))
		}
	}
	for _, v := range st.Validation {
		l := map[string]string{"cloud": c.Name, "stream": v.Name}
		ms = append(ms, counter("replication_validation_rounds_total", "Rounds of continuous validation.", float64(v.Rounds), l),
			gauge("replication_validation_failing", "Whether the last round of continuous validation failed (1) or ran (0).", b2f(v.Error != ""), l))
		for table, n := range v.DifferingRows {
			ms = append(ms, gauge("replication_differing_rows", "Rows that differ between source and target in the last round of continuous validation (in both of its looks).", float64(n),
				map[string]string{"cloud": c.Name, "stream": v.Name, "table": table}))
		}
	}
	return ms
}

// shipperSamples are the log shipping counters of this process.
func (t *Topology) shipperSamples() []telemetry.Sample {
	var out []telemetry.Sample
	for _, sh := range t.shippers {
		st := sh.Stats()
		l := map[string]string{"sink": sh.name}
		out = append(out,
			telemetry.Sample{Name: "log_lines_shipped_total", Help: "Log lines delivered to the sink.", Type: prometheus.CounterValue, Labels: l, Value: float64(st.Shipped)},
			telemetry.Sample{Name: "log_lines_dropped_total", Help: "Log lines dropped (buffer full, or rejected by the sink).", Type: prometheus.CounterValue, Labels: l, Value: float64(st.Dropped)},
			telemetry.Sample{Name: "log_lines_buffered", Help: "Log lines waiting to be shipped.", Type: prometheus.GaugeValue, Labels: l, Value: float64(st.Buffered)},
			telemetry.Sample{Name: "log_shipping_failing", Help: "Whether deliveries to the sink fail (1) or work (0).", Type: prometheus.GaugeValue, Labels: l, Value: b2f(!st.FailingSince.IsZero())},
		)
	}
	return out
}

// listenerSamples are the connection counters of this process's
// listeners that match: connections accepted and open, failed TLS
// handshakes (plain HTTP among them), requests answered on the fast path,
// and what the listener refused
// itself (slow bodies, oversized headers, malformed requests, connections
// over the per-address cap, requests over the per-key cap).
func (t *Topology) listenerSamples(match func(name string) bool) func() []telemetry.Sample {
	return func() []telemetry.Sample {
		t.serversMu.Lock()
		servers := slices.Clone(t.servers)
		t.serversMu.Unlock()
		var out []telemetry.Sample
		for _, s := range servers {
			if !match(s.name) {
				continue
			}
			st := s.srv.Stats()
			l := map[string]string{"listener": s.name}
			c := func(name, help string, v int64, extra ...string) {
				labels := l
				if len(extra) == 2 {
					labels = map[string]string{"listener": s.name, extra[0]: extra[1]}
				}
				out = append(out, telemetry.Sample{Name: name, Help: help, Type: prometheus.CounterValue, Labels: labels, Value: float64(v)})
			}
			c("listener_connections_total", "Connections the listener accepted.", st.Accepted)
			out = append(out, telemetry.Sample{Name: "listener_open_connections", Help: "Connections open now.", Type: prometheus.GaugeValue, Labels: l, Value: float64(st.Open)})
			c("listener_tls_handshake_failures_total", "TLS handshakes that failed (no or a refused client certificate, a timeout, plain HTTP).", st.TLSHandshakeFailures)
			c("listener_plain_http_on_tls_total", "Plain HTTP requests sent to the TLS listener (answered with a JSON 400).", st.PlainHTTPOnTLS)
			c("listener_fast_requests_total", "Requests the listener's fast path answered without Go's HTTP server (the edge's plain cache hits).", st.Fast)
			const refused = "Requests and connections the listener refused itself, by reason."
			c("listener_refused_total", refused, st.SlowBodies, "reason", "slow_body")
			c("listener_refused_total", refused, st.HeaderTooLarge, "reason", "header_too_large")
			c("listener_refused_total", refused, st.Malformed, "reason", "malformed")
			c("listener_refused_total", refused, st.ConnsRefused, "reason", "conns_per_ip")
			c("listener_refused_total", refused, st.KeyLimited, "reason", "requests_per_key")
		}
		return out
	}
}

// cloudListener reports whether a listener belongs to cloud's /metrics.
func cloudListener(cloud string) func(string) bool {
	return func(name string) bool { return strings.HasPrefix(name, cloud+"-") }
}

// globalSamples are the front door's and the edge's counters.
func (t *Topology) globalSamples() []telemetry.Sample {
	var out []telemetry.Sample
	s := func(name, help string, typ prometheus.ValueType, v float64, labels map[string]string) {
		out = append(out, telemetry.Sample{Name: name, Help: help, Type: typ, Labels: labels, Value: v})
	}
	if f := t.front; f != nil {
		for _, b := range f.Status() {
			l := map[string]string{"backend": b.Name}
			s("frontdoor_requests_total", "Requests routed to the backend and answered by it (routing decisions).", prometheus.CounterValue, float64(b.Requests), l)
			s("frontdoor_failovers_total", "Attempts on the backend that failed over to the next one.", prometheus.CounterValue, float64(b.Failures), l)
			s("frontdoor_backend_healthy", "Whether the front door routes to the backend (1) or not (0).", prometheus.GaugeValue, b2f(b.Healthy), l)
			s("frontdoor_backend_degraded", "Whether the backend's health check says degraded (1): it is used only when no other is healthy.", prometheus.GaugeValue, b2f(b.Degraded), l)
		}
		fs := f.Stats()
		s("frontdoor_retried_requests_total", "Requests answered by a backend after an attempt on another one failed.", prometheus.CounterValue, float64(fs.Retried), nil)
		s("frontdoor_unavailable_total", "Requests no backend could take (answered 503).", prometheus.CounterValue, float64(fs.Unavailable), nil)
	}
	if e := t.Edge(); e != nil {
		st := e.Stats()
		c := func(name, help string, v int64) { s(name, help, prometheus.CounterValue, float64(v), nil) }
		c("edge_hits_total", "Responses served from the cache without contacting an origin.", st.Hits)
		c("edge_misses_total", "Responses fetched from an origin and stored.", st.Misses)
		c("edge_stale_served_total", "Stale responses served (stale-while-revalidate, stale-if-error).", st.StaleServed)
		c("edge_revalidations_total", "Origin 304s that refreshed a stored response.", st.Revalidations)
		c("edge_passes_total", "Responses forwarded without storing.", st.Passes)
		c("edge_origin_requests_total", "Requests sent to origins (every attempt).", st.OriginRequests)
		c("edge_origin_errors_total", "Origin attempts that failed.", st.OriginErrors)
		c("edge_purges_total", "Purge operations.", st.Purges)
		c("edge_evictions_total", "Bodies dropped from a cache tier to stay within its bound.", st.Evictions)
		s("edge_cache_entries", "Responses in the cache.", prometheus.GaugeValue, float64(st.Entries), nil)
		s("edge_cache_bytes", "Bytes of cached bodies, by tier.", prometheus.GaugeValue, float64(st.MemoryBytes), map[string]string{"tier": "memory"})
		s("edge_cache_bytes", "Bytes of cached bodies, by tier.", prometheus.GaugeValue, float64(st.DiskBytes), map[string]string{"tier": "disk"})
	}
	return out
}

// newCloudRegistry makes a cloud's /metrics registry and histograms.
func (t *Topology) newCloudRegistry(c *Cloud) {
	c.registry = telemetry.NewRegistry()
	c.metrics = telemetry.NewCloudMetrics(c.registry, c.Name)
	c.registry.MustRegister(telemetry.SampleCollector(c.Samples), telemetry.SampleCollector(t.shipperSamples),
		telemetry.SampleCollector(t.listenerSamples(cloudListener(c.Name))))
}

// newGlobalRegistry makes the console's /metrics registry: the front
// door, the edge and this process's log shipping.
func (t *Topology) newGlobalRegistry() {
	t.registry = telemetry.NewRegistry()
	t.registry.MustRegister(telemetry.SampleCollector(t.globalSamples), telemetry.SampleCollector(t.shipperSamples),
		telemetry.SampleCollector(t.listenerSamples(func(name string) bool {
			for cloud := range t.cfg.Clouds {
				if cloudListener(cloud)(name) {
					return false
				}
			}
			return true
		})))
	t.frontDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "intercloud", Name: "frontdoor_request_duration_seconds",
		Help: "Latency of requests through the front door, by status code.", Buckets: prometheus.DefBuckets}, []string{"code"})
	t.edgeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "intercloud", Name: "edge_request_duration_seconds",
		Help: "Latency of requests to the edge, by status code.", Buckets: prometheus.DefBuckets}, []string{"code"})
	t.edgeBytes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "intercloud", Name: "edge_response_bytes_total",
		Help: "Body bytes the edge sent to clients."})
	t.registry.MustRegister(t.frontDuration, t.edgeDuration, t.edgeBytes)
}

// instrumentEdge counts the edge's latency and the bytes it sends.
func (t *Topology) instrumentEdge(h http.Handler) http.Handler {
	return telemetry.InstrumentHandler(h, t.edgeDuration, t.edgeBytes)
}

// timedLoad wraps the load handler to observe each invocation's duration.
func timedLoad(h functions.Handler, m *telemetry.CloudMetrics) functions.Handler {
	return func(ctx context.Context, e functions.Event) error {
		start := time.Now()
		err := h(ctx, e)
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		m.LoadDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		return err
	}
}

// observeApplied records a replicated batch's apply duration and lag.
func observeApplied(m *telemetry.CloudMetrics, stream string, b replicate.Batch) {
	if b.Snapshot || len(b.Changes) == 0 || b.AppliedAt.IsZero() {
		return
	}
	m.ApplyDuration.WithLabelValues(stream).Observe(b.Applied.Seconds())
	if !b.CommitTime.IsZero() {
		m.ReplicationLag.WithLabelValues(stream).Observe(max(0, b.AppliedAt.Sub(b.CommitTime)).Seconds())
	}
}

// instrumentIngest observes the latency of ingest requests by status code.
func instrumentIngest(h http.Handler, m *telemetry.CloudMetrics) http.Handler {
	return telemetry.InstrumentHandler(h, m.IngestDuration, nil)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves a registry behind a key of scope read, unless
// auth.public_metrics is set.
func (t *Topology) metricsHandler(reg *prometheus.Registry) http.Handler {
	h := telemetry.MetricsHandler(reg)
	if t.cfg.Auth.PublicMetrics {
		return h
	}
	return t.keys.Require(auth.ScopeRead, h)
}

// tracedLoad records each load invocation as a span of every record's
// trace the raw object carries (its trace-ids metadata).
func (t *Topology) tracedLoad(cloud string, h functions.Handler) functions.Handler {
	return func(ctx context.Context, e functions.Event) error {
		start := time.Now()
		err := h(ctx, e)
		if ids := e.Metadata["trace-ids"]; ids != "" {
			attrs := []attribute.KeyValue{attribute.String("cloud", cloud), attribute.String("object.key", e.ID)}
			if err != nil {
				attrs = append(attrs, attribute.String("error", err.Error()))
			}
			t.tracing.Hop("load", "load "+e.ID, strings.Split(ids, ","), start, time.Now(), attrs...)
		}
		return err
	}
}

// traceApplied records a replicated batch as a span of every trace its
// rows carry.
func (t *Topology) traceApplied(cloud, stream string, b replicate.Batch) {
	if b.AppliedAt.IsZero() || len(b.Changes) == 0 {
		return
	}
	seen := map[string]bool{}
	var ids []string
	for _, c := range b.Changes {
		if c.TraceID != "" && !seen[c.TraceID] {
			seen[c.TraceID] = true
			ids = append(ids, c.TraceID)
		}
	}
	t.tracing.Hop("replicate", "replicate "+stream, ids, b.AppliedAt.Add(-b.Applied), b.AppliedAt,
		attribute.String("cloud", cloud), attribute.String("stream", stream), attribute.Int("changes", len(b.Changes)))
}
