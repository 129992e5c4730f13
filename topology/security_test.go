package topology_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/certs"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/serve"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/topology"
)

// Every endpoint that needs a key, with a key of every scope, the process
// key, a wrong key and none: only the scope the endpoint names passes; a
// wrong or missing key is a 401, a key without the scope a 403, both JSON.
func TestEveryEndpointEveryScope(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	keys := map[auth.Scope]string{}
	for _, s := range auth.Scopes {
		k, _, err := auth.Add(cfg.Auth.Keys, "test "+string(s), []auth.Scope{s}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		keys[s] = k
	}
	topo := start(t, cfg)
	record := `{"device":"d","metric":"m","value":1,"ts":"2026-11-30T00:00:00Z"}`
	endpoints := []struct {
		name, method, url, body string
		scope                   auth.Scope
	}{
		{"front door ingest", "POST", topo.URL("frontdoor") + "/v1/records", record, auth.ScopeIngest},
		{"aws ingest", "POST", topo.URL("aws-api") + "/v1/records", record, auth.ScopeIngest},
		{"azure ingest", "POST", topo.URL("azure-api") + "/v1/records", record, auth.ScopeIngest},
		{"aws status", "GET", topo.URL("aws-api") + "/v1/status", "", auth.ScopeRead},
		{"azure metrics", "GET", topo.URL("azure-api") + "/metrics", "", auth.ScopeRead},
		{"front door status", "GET", topo.URL("frontdoor") + "/v1/status", "", auth.ScopeRead},
		{"edge purge", "POST", topo.URL("edge") + "/purge", `{"tags":["results"]}`, auth.ScopePurge},
		{"logs search", "GET", topo.URL("logs") + "/v1/logs?q=component:load", "", auth.ScopeLogsRead},
		{"logs write", "POST", topo.URL("logs") + "/v1/logs", `{"msg":"x","level":"INFO"}` + "\n", auth.ScopeLogsWrite},
	}
	do := func(method, url, body, key string) (int, string, string) {
		req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := topo.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for _, ep := range endpoints {
		for _, holder := range auth.Scopes {
			code, ct, body := do(ep.method, ep.url, ep.body, keys[holder])
			switch {
			case holder == ep.scope && code >= 400:
				t.Errorf("%s with a %s key: %d %s", ep.name, holder, code, body)
			case holder != ep.scope && (code != http.StatusForbidden || ct != "application/json" || !strings.Contains(body, `"forbidden"`)):
				t.Errorf("%s with a %s key: %d %s %s, want a JSON 403", ep.name, holder, code, ct, body)
			}
		}
		if code, _, body := do(ep.method, ep.url, ep.body, testKey); code >= 400 {
			t.Errorf("%s with the API key: %d %s", ep.name, code, body)
		}
		for _, key := range []string{"", "wrong-key"} {
			if code, ct, body := do(ep.method, ep.url, ep.body, key); code != http.StatusUnauthorized || ct != "application/json" {
				t.Errorf("%s with key %q: %d %s %s, want a JSON 401", ep.name, key, code, ct, body)
			}
		}
	}
	// A lower-case scheme is the same key.
	req, _ := http.NewRequest(http.MethodGet, topo.URL("aws-api")+"/v1/status", nil)
	req.Header.Set("Authorization", "bearer "+keys[auth.ScopeRead])
	resp, err := topo.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status with 'bearer': %d", resp.StatusCode)
	}
}

// The listeners speak TLS only: the APIs, the origin and the log store
// refuse a client without a certificate of the project at the handshake,
// and one with a certificate of another CA; the front door and the edge
// serve any client that trusts the CA. Through the front door, a value
// whose sum could overflow is a 422, the same Idempotency-Key with another
// body a 422, and a body that trickles in is cut with a 408 in bounded
// time.
func TestTLSAndAttacks(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	topo := start(t, cfg)
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(cfg.TLS.Dir, certs.CACert))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("ca.crt: %v", err)
	}
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	other := t.TempDir()
	if _, err := certs.Init(other, map[string][]string{"global": nil}, time.Now()); err != nil {
		t.Fatal(err)
	}
	otherSrc, err := certs.RoleSource(other, "global")
	if err != nil {
		t.Fatal(err)
	}
	otherCA := otherSrc.ClientConfig("127.0.0.1", false)
	otherCA.InsecureSkipVerify, otherCA.VerifyConnection = true, nil // it trusts anyone: only its certificate matters
	foreign := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: otherCA}}
	for _, name := range []string{"aws-api", "azure-api", "azure-origin", "logs"} {
		u := topo.URL(name)
		if !strings.HasPrefix(u, "https://") {
			t.Fatalf("%s serves %s", name, u)
		}
		for cname, c := range map[string]*http.Client{"no certificate": anon, "another CA's certificate": foreign} {
			resp, err := c.Get(u + "/healthz")
			if err == nil {
				resp.Body.Close()
				t.Errorf("%s let in a client with %s (%d)", name, cname, resp.StatusCode)
			} else {
				// TLS 1.3 refuses after the client's Finished: the client
				// reads the alert, or finds the connection closed.
				t.Logf("%s with %s: %v", name, cname, err)
			}
		}
		// Plain HTTP to a TLS port: a JSON 400 naming the scheme.
		if resp, err := http.Get(strings.Replace(u, "https://", "http://", 1) + "/healthz"); err == nil {
			e := apierr.Read(resp)
			resp.Body.Close()
			if resp.StatusCode != 400 || e == nil || e.Code != serve.CodePlainHTTP {
				t.Errorf("%s answered plain HTTP with %d %v, want a JSON 400 %s", name, resp.StatusCode, e, serve.CodePlainHTTP)
			}
		} else {
			t.Errorf("%s: plain HTTP got no answer: %v", name, err)
		}
	}
	for _, name := range []string{"frontdoor", "edge"} {
		resp, err := anon.Get(topo.URL(name) + "/healthz")
		if err != nil {
			t.Fatalf("%s refused a client that trusts the CA: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "127.0.0.1") {
			t.Errorf("%s /healthz shows addresses without a key: %s", name, b)
		}
		if resp.ProtoMajor != 2 {
			t.Errorf("%s spoke %s, want HTTP/2", name, resp.Proto)
		}
	}

	post := func(body, idem string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, topo.URL("frontdoor")+"/v1/records", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", "application/json")
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		resp, err := anon.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	huge := `[{"device":"d","metric":"m","value":1.7976931348623157e308,"ts":"2026-11-30T00:00:00Z"},{"device":"d","metric":"m","value":1.7976931348623157e308,"ts":"2026-11-30T00:00:00Z"}]`
	if code, body := post(huge, ""); code != http.StatusUnprocessableEntity || !strings.Contains(body, "sums stay finite") {
		t.Errorf("two max-float values: %d %s", code, body)
	}
	one := `{"device":"d","metric":"m","value":1,"ts":"2026-11-30T00:00:00Z"}`
	if code, body := post(one, "order-1"); code != http.StatusAccepted {
		t.Fatalf("first: %d %s", code, body)
	}
	if code, body := post(strings.Replace(one, `"value":1`, `"value":2`, 1), "order-1"); code != http.StatusUnprocessableEntity || !strings.Contains(body, "idempotency_key_reused") {
		t.Errorf("reused key: %d %s", code, body)
	}

	// A body of one byte every 300 ms is cut once it falls below the
	// minimum rate (4 KiB/s after 10 s): well before a minute.
	addr := strings.TrimPrefix(topo.URL("frontdoor"), "https://")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/records HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", testKey)
	began := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the slow body got no answer within a minute: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || time.Since(began) > 30*time.Second {
		t.Fatalf("slow body: %d after %s", resp.StatusCode, time.Since(began))
	}
	t.Logf("a trickling body was cut after %s", time.Since(began).Round(time.Millisecond))
}

// A bucket that cannot be published (two values whose sum is +Inf, put
// into the publishing database directly, as ingest refuses them) does not
// stop publishing: records sent afterwards are published, /healthz says
// degraded naming the bucket, /metrics counts it and the status lists it.
func TestStuckBucketIsVisibleAndBlocksNothing(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	topo := start(t, cfg)
	db := topo.Cloud("azure").DB
	tbl := record.Table(cfg.Schema)
	// One transaction: the publisher sees both rows together.
	err := db.Tx(context.Background(), func(tx *sql.Tx) error {
		for _, id := range []string{"huge-1", "huge-2"} {
			row, err := record.Row(tbl, db.Dialect, record.Record{ID: id, Origin: "azure", IngestedAt: time.Now(),
				Fields: map[string]any{"device": "d", "metric": "overflow", "value": math.MaxFloat64, "ts": time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)}})
			if err != nil {
				return err
			}
			if _, err := tx.Exec(db.Dialect.Upsert(tbl, 1), row...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	acked, err := demo.Send(context.Background(), topo.URL("frontdoor"), testKey, demo.Options{Records: 100, BatchSize: 50, Client: topo.Client()})
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) (int, string) { return getBody(t, topo, url) }
	deadline := time.Now().Add(time.Minute)
	for {
		sum, serr := demo.FetchSummary(context.Background(), topo.Client(), topo.URL("edge"))
		_, health := get(topo.URL("azure-api") + "/healthz")
		_, metrics := get(topo.URL("azure-api") + "/metrics")
		_, status := get(topo.URL("azure-api") + "/v1/status")
		if serr == nil && sum.Records-sum.Groups["overflow"] == int64(len(acked)) && strings.Contains(health, `"degraded"`) && strings.Contains(health, "overflow/2026-11-30T01") &&
			strings.Contains(metrics, `intercloud_publish_failing_buckets{cloud="azure"} 1`) && strings.Contains(status, `"failing_buckets"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: summary %+v (%v)\nhealthz %s\nstatus %s", sum, serr, health, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tls.listeners gives one listener a certificate of its own (here one of
// another CA, as a public certificate would be), re-read when it changes;
// the others keep the project's.
func TestListenerCertificate(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	pub := t.TempDir()
	hosts := map[string][]string{"public": {"127.0.0.1"}}
	if _, err := certs.Init(pub, hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	cfg.TLS.Listeners = map[string]config.ListenerTLS{"frontdoor": {Cert: certs.CertFile(pub, "public"), Key: certs.KeyFile(pub, "public")}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	topo := start(t, cfg)
	peer := func(name string) *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", strings.TrimPrefix(topo.URL(name), "https://"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only the certificate is looked at
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	first := peer("frontdoor")
	if first.Subject.CommonName != "public" || peer("edge").Subject.CommonName != topology.RoleGlobal {
		t.Fatalf("frontdoor serves %q, edge %q", first.Subject.CommonName, peer("edge").Subject.CommonName)
	}
	if _, err := certs.Rotate(pub, hosts, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for peer("frontdoor").SerialNumber.Cmp(first.SerialNumber) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the rotated listener certificate was not taken")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
