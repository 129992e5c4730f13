package topology_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/syncbuf"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/topology"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %s: %s", d, what, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStageFailuresAreLoud: publish failing at run time (its results
// cannot be written) and a log sink that is not there each show within
// seconds as a plain line on the alerts writer (demo's stderr) and as an
// ERROR log line (up's stderr) that reads the same, again and updated
// while they last, in /healthz (degraded) and in the status, naming the
// stage and why; when publish works again the cloud says so.
func TestStageFailuresAreLoud(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Logs.Elasticsearch = fmt.Sprintf("http://127.0.0.1:%d", peers.FreePort(t))
	alerts, logs := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	// The log as `up` writes it on a terminal (text), and the alerts as
	// the demo writes them.
	topo, err := topology.Start(context.Background(), cfg, topology.Options{APIKey: testKey, LogWriter: io.MultiWriter(testLog(t), logs),
		LogText: true, Alerts: alerts, AlertEvery: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = topo.Stop(context.Background()) })
	// The results "directory" becomes a file: every publish write fails.
	results := filepath.Join(strings.TrimPrefix(cfg.Clouds["azure"].Objects, "file://"), "results")
	if err := os.Rename(results, results+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(results, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if _, err := demo.Send(context.Background(), topo.URL("frontdoor"), testKey, demo.Options{Records: 20, BatchSize: 10, Client: topo.Client()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "no alert names publish and the log sink", func() (bool, string) {
		a := alerts.String()
		return strings.Contains(a, "intercloud: azure degraded: ") && strings.Contains(a, "publish failing since") &&
			strings.Contains(a, "log shipping to the elasticsearch (logs.elasticsearch) failing"), a
	})
	t.Logf("alerted after %s:\n%s", time.Since(started).Round(time.Millisecond), alerts.String())
	// While the failure lasts, it is announced again, updated: on the
	// alerts writer and as an ERROR line of the log (up's stderr) whose
	// message a person reads.
	line := func(buf *syncbuf.Buffer, parts ...string) string {
	next:
		for l := range strings.SplitSeq(buf.String(), "\n") {
			for _, p := range parts {
				if !strings.Contains(l, p) {
					continue next
				}
			}
			return l
		}
		return ""
	}
	var logged [2]string
	waitFor(t, 30*time.Second, "the failure is not announced again, on the alerts writer and in the log", func() (bool, string) {
		logged = [2]string{line(logs, " ERROR ", "azure/health", "azure degraded: ", "publish"), line(logs, " ERROR ", "azure/health", "azure still degraded: ", "publish")}
		return line(alerts, "intercloud: azure still degraded: ", "publish") != "" && logged[0] != "" && logged[1] != "",
			alerts.String() + "\nlog:\n" + logs.String()
	})
	t.Logf("logged:\n%s\n%s", logged[0], logged[1])
	code, body := getBody(t, topo, topo.URL("azure-api")+"/healthz")
	if code != 200 || !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, "publish failing") {
		t.Fatalf("healthz %d %s", code, body)
	}
	if st := topo.Cloud("azure").Status(); !strings.Contains(strings.Join(st.Health.Problems, "\n"), "publish failing") {
		t.Fatalf("status health %+v", st.Health)
	}
	if err := os.Remove(results); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(results+".away", results); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "publish never recovered", func() (bool, string) {
		st := topo.Cloud("azure").Status()
		return !strings.Contains(strings.Join(st.Health.Problems, "\n"), "publish failing"), strings.Join(st.Health.Problems, "; ")
	})
}
