package topology_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/topology"
)

// TestTraceAcrossClouds sends one record with the client's W3C
// traceparent: the record's row carries its trace id on both clouds, and
// its trace holds a span for every hop — the front door (a child of the
// client's span), ingest (a child of the front door's), the load on AWS,
// the replication into Azure, publish and its edge purge — in the embedded store and at
// an OTLP/HTTP collector.
func TestTraceAcrossClouds(t *testing.T) {
	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	var mu sync.Mutex
	exported := map[string][]string{} // trace id → span names at the collector
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					id := hex.EncodeToString(sp.TraceId)
					exported[id] = append(exported[id], sp.Name)
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	defer collector.Close()

	cfg := testConfig(t, t.TempDir())
	cfg.Traces.OTLP = collector.URL
	topo := start(t, cfg)
	// A record the stream takes by its full load (written before the
	// stream started) has no replicate span: write once it is in CDC.
	waitStreamInCDC(t, topo, "azure", "aws-to-azure")
	rec := demo.Record{Device: "d-trace", Metric: "cpu", Value: 1.5, TS: time.Now().UTC().Truncate(time.Second)}
	body, _ := json.Marshal(rec)
	req, _ := http.NewRequest(http.MethodPost, topo.URL("frontdoor")+"/v1/records", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	resp, err := topo.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		IDs []string `json:"ids"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || len(out.IDs) != 1 {
		t.Fatalf("ingest: %d %v", resp.StatusCode, out)
	}
	id := out.IDs[0]
	if _, err := demo.Verify(context.Background(), topo, cfg, map[string]demo.Record{id: rec}, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	// The row carries the trace id on both clouds (read with SQL).
	for _, cloud := range []string{"aws", "azure"} {
		var got string
		if err := topo.Cloud(cloud).DB.QueryRow(`SELECT "_trace_id" FROM records WHERE id = ?`, id).Scan(&got); err != nil || got != traceID {
			t.Fatalf("%s row trace %q (%v)", cloud, got, err)
		}
	}
	want := []string{"frontdoor", "ingest POST /v1/records", "load raw/", "replicate aws-to-azure", "publish: results written, edge purged", topology.SpanEdgePurge}
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := topo.Spans(traceID)
		byName := map[string]string{}
		parents := map[string]string{}
		for _, sp := range spans {
			for _, w := range want {
				if strings.HasPrefix(sp.Name, w) {
					byName[w], parents[w] = sp.SpanID, sp.ParentID
				}
			}
		}
		mu.Lock()
		atCollector := strings.Join(exported[traceID], "|")
		mu.Unlock()
		all := len(byName) == len(want)
		for _, w := range want {
			all = all && strings.Contains(atCollector, w)
		}
		if all {
			if parents["frontdoor"] != clientSpan || parents["ingest POST /v1/records"] != byName["frontdoor"] {
				t.Fatalf("parents: frontdoor under %s (want the client's %s), ingest under %s (want %s)",
					parents["frontdoor"], clientSpan, parents["ingest POST /v1/records"], byName["frontdoor"])
			}
			for _, sp := range spans {
				if sp.TraceID != traceID {
					t.Fatalf("span %s in trace %s", sp.Name, sp.TraceID)
				}
			}
			t.Logf("%d spans; at the collector: %s", len(spans), atCollector)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans %v; at the collector %q", spans, atCollector)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
