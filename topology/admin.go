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

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/edge"
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
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
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
		m("load_pending_events", "Load events queued, running or waiting to retry.", "gauge", float64(st.Load.Backlog), cl),
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
			m("publish_failing", "Whether publishing fails and is being retried (1) or works (0).", "gauge", b2f(!p.FailingSince.IsZero()), cl))
	}
	for code, n := range st.Ingest.Rejected {
		ms = append(ms, m("ingest_rejected_total", "Ingest requests answered with an error, by code.", "counter", float64(n), map[string]string{"cloud": c.Name, "code": code}))
	}
	for _, r := range st.Replication {
		l := map[string]string{"cloud": c.Name, "stream": r.Name}
		ms = append(ms,
			m("replication_snapshot_rows_total", "Rows written by the full load.", "counter", float64(r.SnapshotRows), l),
			m("replication_cdc_rows_total", "Rows written by change data capture.", "counter", float64(r.CDCRows), l),
			m("replication_rows_per_second", "Recent write rate.", "gauge", r.RowsPerSecond, l),
			m("replication_source_lag_seconds", "Age of the last batch when read from the source; grows while the source is unreachable.", "gauge", r.SourceLagSeconds, l),
			m("replication_target_lag_seconds", "Age of the last batch when committed on the target; grows while changes cannot be applied.", "gauge", r.TargetLagSeconds, l),
			m("replication_reconnecting", "Whether the stream lost its source or target and is reconnecting (1) or runs (0).", "gauge", b2f(!r.ReconnectingSince.IsZero()), l),
		)
		if r.PendingChanges >= 0 {
			ms = append(ms, m("replication_pending_changes", "Source changes not applied yet.", "gauge", float64(r.PendingChanges), l))
		}
	}
	return ms
}

func (t *Topology) metricsHandler(c *Cloud) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
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
func purgeHTTP(ctx context.Context, edgeURL, key string, pr edge.PurgeRequest) error {
	body, _ := json.Marshal(pr)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, edgeURL+"/purge", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	defer resp.Body.Close()
	if e := apierr.Read(resp); e != nil {
		return fmt.Errorf("purge: %w", e)
	}
	return nil
}
