package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/internal/syncbuf"
	"github.com/intercloud/intercloud/topology"
)

// TestStatusTableJSONWatch runs `up` on fixed ports, sends records, and
// reads `status` as a table, as --json (one snake_case schema whose
// numbers match the APIs') and with --watch (redrawn in place).
func TestStatusTableJSONWatch(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("INTERCLOUD_API_KEY", "status-key")
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t)) }
	cfg := filepath.Join(dir, "topology.yaml")
	yaml := fmt.Sprintf(`clouds:
  aws: {api: "%s"}
  azure: {api: "%s", origin: "%s"}
edge: {listen: "%s"}
frontdoor: {listen: "%s", health_interval: 100ms}
logs: {listen: "%s"}
console: {listen: "%s"}
`, port(), port(), port(), port(), port(), port(), port())
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfg, "--data-dir", dir}
	urls, _ := upCLI(t, args...)
	if urls["console"] == "" {
		t.Fatalf("up printed no console line: %v", urls)
	}
	acked, err := demo.Send(context.Background(), urls["frontdoor"], "status-key", demo.Options{Records: 300, BatchSize: 30, Client: testClient(t, cfg, dir)})
	if err != nil || len(acked) != 300 {
		t.Fatalf("send: %d, %v", len(acked), err)
	}

	// --json: wait until everything is loaded, replicated and published.
	var rep Report
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, out, errs := runCLI(t, append([]string{"status", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("status --json exit %d: %s", code, errs)
		}
		if strings.Count(out, "\n") != 1 {
			t.Fatalf("status --json is not one line:\n%s", out)
		}
		for _, camel := range []string{"RecordsAcked", "BytesWritten", "_ns\"", "RowsPerSec"} {
			if strings.Contains(out, camel) {
				t.Fatalf("status --json has %q: keys must be snake_case:\n%s", camel, out)
			}
		}
		rep = Report{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		done := len(rep.Clouds) == 2 && rep.Global != nil
		for _, c := range rep.Clouds {
			for _, s := range c.Replication {
				if s.Name == "aws-to-azure" && s.CDCRows+s.SnapshotRows < 300 {
					done = false
				}
			}
			if c.Publish != nil && c.Publish.Published < 300 {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed everything done:\n%s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var total int64
	for _, c := range rep.Clouds {
		total += c.Ingest.RecordsAcked
		if c.Health.Status != "ok" {
			t.Errorf("%s health %+v", c.Cloud, c.Health)
		}
		// Each cloud's embedded database says who wrote under its write
		// lock: the leases on both, the load function where the front
		// door sent the records, the stream and the publisher on Azure.
		writers := map[string]topology.WriteLockWriter{}
		if c.WriteLock != nil {
			for _, w := range c.WriteLock.Writers {
				writers[w.Writer] = w
			}
		}
		want := []string{"lease"}
		switch c.Cloud {
		case "aws":
			want = append(want, "load")
		case "azure":
			want = append(want, "replicate:aws-to-azure", "publish")
		}
		for _, name := range want {
			if w := writers[name]; w.Writes == 0 || w.HeldSeconds <= 0 {
				t.Errorf("%s: write lock writer %q: %+v (all: %+v)", c.Cloud, name, w, c.WriteLock)
			}
		}
	}
	if total < 300 || len(rep.Global.FrontDoor) != 2 || rep.Global.Edge == nil { // a retried request may be acknowledged by both clouds
		t.Fatalf("report %+v", rep)
	}

	// The table: every cloud, stream, publish, the edge and the front door.
	code, out, _ := runCLI(t, append([]string{"status"}, args...)...)
	if code != 0 {
		t.Fatalf("status exit %d", code)
	}
	t.Logf("status:\n%s", out)
	for _, want := range []string{"CLOUD", "HEALTH", "INGEST/s", "LOAD BACKLOG", "aws", "azure", "STREAM", "aws-to-azure", "cdc",
		"publish    azure: ", " records published, ok", "edge       hit ratio", "front door aws healthy, azure healthy",
		"database   aws: write lock busy ", "database   azure: write lock busy "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if strings.Contains(out, "\x1b[") || strings.Contains(out, "PROBLEMS") {
		t.Errorf("table on a pipe has colors or problems:\n%q", out)
	}

	// --watch redraws until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	var wout syncbuf.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, append([]string{"status", "--watch", "--interval", "100ms"}, args...), &wout, &bytes.Buffer{})
	}()
	deadline = time.Now().Add(30 * time.Second)
	for strings.Count(wout.String(), "\x1b[H\x1b[2J") < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 || strings.Count(wout.String(), "\x1b[H\x1b[2J") < 3 || strings.Count(wout.String(), "aws-to-azure") < 3 {
		t.Fatalf("watch exit %d:\n%q", code, wout.String())
	}
}

// TestUpLogFormat: --log-format text writes stderr's lines as text (no
// terminal here, so no colors); a bad format is a usage error.
func TestUpLogFormat(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("INTERCLOUD_API_KEY", "k")
	cfg := writeConfig(t, dir, "")
	if code, _, errs := runCLI(t, "up", "--config", cfg, "--data-dir", dir, "--log-format", "yaml"); code != 2 || !strings.Contains(errs, `--log-format "yaml"`) {
		t.Fatalf("bad format: exit %d %s", code, errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr, stdout syncbuf.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"up", "--config", cfg, "--data-dir", dir, "--log-format", "text"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "topology started") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("up exit %d", code)
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if strings.HasPrefix(l, "{") || strings.Contains(l, "\x1b[") || len(l) < 19 || l[2] != ':' || l[12] != ' ' {
			t.Fatalf("stderr line %q is not text", l)
		}
	}
	if !strings.Contains(stderr.String(), " INFO  topology topology started roles=") {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
}
