package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/gcsettings"
	"github.com/intercloud/intercloud/internal/outagetest"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/topology"
)

// childEnv holds the arguments of `intercloud` for TestChildCLI.
const childEnv = "INTERCLOUD_CLI_CHILD"

// TestChildCLI is `intercloud ARGS` in a process of its own, for the tests
// that split the topology across processes; SIGTERM stops it as it stops
// the real binary.
func TestChildCLI(t *testing.T) {
	args := os.Getenv(childEnv)
	if args == "" {
		t.Skip("runs only as a child process")
	}
	gcsettings.Apply(os.Getenv) // as main does
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, strings.Fields(args), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// childCLI is the command that runs `intercloud ARGS` (args split on
// spaces) in a process of its own, through TestChildCLI.
func childCLI(args string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildCLI$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+args)
	return cmd
}

// child is one `intercloud up --cloud ROLE` process.
type child struct {
	role   string
	cmd    *exec.Cmd
	urls   map[string]string
	stderr string // path of its stderr
}

// startChild starts `intercloud up --cloud role` and waits for its
// endpoint lines.
func startChild(t *testing.T, dir, config, role string) *child {
	t.Helper()
	return startReplica(t, dir, config, role, role)
}

// startReplica is startChild for one of several processes of a role,
// named name in its stderr file and the test's log.
func startReplica(t *testing.T, dir, config, role, name string) *child {
	t.Helper()
	c := &child{role: role, urls: map[string]string{}, stderr: filepath.Join(dir, name+".stderr")}
	errf, err := os.Create(c.stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { errf.Close() })
	c.cmd = childCLI("up --cloud " + role + " --config " + config)
	c.cmd.Stderr = errf
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
		if t.Failed() {
			if d := os.Getenv("INTERCLOUD_KEEP_LOGS"); d != "" {
				_ = exec.Command("cp", c.stderr, d).Run()
			}
			b, _ := os.ReadFile(c.stderr)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("last lines of %s:\n%s", name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	want := map[string]string{"aws": "aws-api", "azure": "azure-origin", "global": "logs"}[role]
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(2 * time.Minute)
	for c.urls[want] == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s exited before printing its endpoints", role)
			}
			if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[1], "http") {
				c.urls[f[0]] = f[1]
			}
		case <-deadline:
			t.Fatalf("%s printed no %s endpoint", role, want)
		}
	}
	go func() {
		for range lines {
		}
	}()
	return c
}

// stop interrupts the process and waits until it exits.
func (c *child) stop(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", c.role, err)
		}
	case <-time.After(90 * time.Second):
		t.Errorf("%s did not stop", c.role)
	}
}

// onlyJSON checks that every line the process wrote on stderr is a JSON
// log line, and returns how many came from dependencies.
func (c *child) onlyJSON(t *testing.T) (lines, library int) {
	t.Helper()
	f, err := os.Open(c.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["msg"] == nil || m["level"] == nil {
			t.Errorf("%s wrote a line on stderr that is not a JSON log line: %q", c.role, sc.Text())
			continue
		}
		if m["library"] != nil {
			library++
		}
	}
	return lines, library
}

func get(c *http.Client, url string) (int, string) { return outagetest.Get(c, url, "outage-key") }

// testClient is a client for the endpoints of a topology file (its CA,
// a certificate of its TLS directory).
func testClient(t *testing.T, configPath, dataDir string) *http.Client {
	t.Helper()
	cfg, err := config.Load(configPath, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := topology.ClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOutageAcrossProcesses runs `intercloud up --cloud aws`, `--cloud
// azure` and `--cloud global` as three processes on MariaDB (AWS) and
// PostgreSQL (Azure) while records keep coming through the front door,
// kills MariaDB with SIGKILL for a minute and then stops PostgreSQL
// cleanly for five seconds. Meanwhile the operator's tools tell the truth
// (status: reconnecting with growing lag; the front door: AWS degraded);
// in the end every acknowledged id is in both databases exactly once,
// counted once at the edge, nothing is dead-lettered, validate passes, and
// the processes wrote nothing but JSON log lines on stderr.
func TestOutageAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB, PostgreSQL and three processes, and takes the databases down for over a minute")
	}
	my := peers.StartMariaDB(t)
	pg := peers.StartPostgres(t)
	dir := t.TempDir()
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t)) }
	config := filepath.Join(dir, "topology.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
api_key: outage-key
clouds:
  aws: {sql: "%s", api: "%s"}
  azure: {sql: "%s", api: "%s", origin: "%s"}
edge: {listen: "%s"}
frontdoor: {listen: "%s", health_interval: 200ms}
logs: {listen: "%s"}
console: {listen: "%s"}
functions: {backoff: 50ms, max_backoff: 1s, reconcile: 2s}
`, dir, my.URL("app"), port(), pg.URL("app"), port(), port(), port(), port(), port(), port())
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INTERCLOUD_API_KEY", "")
	var children []*child
	for _, role := range []string{"azure", "aws", "global"} {
		children = append(children, startChild(t, dir, config, role))
	}
	azure, aws, global := children[0], children[1], children[2]
	cli := func(args ...string) (int, string) {
		code, out, errs := runCLI(t, append(args, "--config", config)...)
		return code, out + errs
	}

	client := testClient(t, config, dir)
	s := outagetest.Send(client, global.urls["frontdoor"], "outage-key", 20, 2)
	s.WaitFor(t, 300)

	outage := time.Minute
	if d, err := time.ParseDuration(os.Getenv("INTERCLOUD_OUTAGE")); err == nil {
		outage = d
	}
	t.Logf("killing MariaDB for %s; %d records acknowledged so far", outage, s.Acked())
	began := time.Now()
	my.Kill(t)
	seen := map[string]bool{}
	for time.Since(began) < outage {
		if code, body := get(client, aws.urls["aws-api"]+"/healthz"); code == 200 && strings.Contains(body, `"degraded"`) && strings.Contains(body, "database unreachable") {
			seen["aws degraded"] = true
		}
		if _, body := get(client, global.urls["frontdoor"]+"/healthz"); strings.Contains(body, `"degraded": true`) {
			seen["front door sees it"] = true
		}
		if _, out := cli("status", "--json"); strings.Contains(out, "reconnecting since") && strings.Contains(out, `"unreachable":"source"`) {
			seen["status reconnecting"] = true
		}
		if _, m := get(client, azure.urls["azure-api"]+"/metrics"); time.Since(began) > outage/3 {
			if lag := metric(m, `intercloud_replication_source_lag_seconds{cloud="azure",stream="aws-to-azure"}`); lag > outage.Seconds()/4 {
				seen["source lag growing"] = true
			}
		}
		time.Sleep(time.Second)
	}
	for _, want := range []string{"aws degraded", "front door sees it", "status reconnecting", "source lag growing"} {
		if !seen[want] {
			t.Errorf("during the MariaDB outage, never: %s (saw %v)", want, outagetest.Keys(seen))
		}
	}
	my.Start(t)
	waitHealthy(t, client, aws, azure)
	s.WaitFor(t, 300)

	t.Logf("stopping PostgreSQL for 5 s; %d records acknowledged so far", s.Acked())
	pg.Stop(t)
	s.WaitFor(t, 100)
	time.Sleep(5 * time.Second)
	pg.Start(t)
	waitHealthy(t, client, aws, azure)
	s.WaitFor(t, 300)
	acked := s.Stop(t)
	t.Logf("%d records acknowledged", len(acked))

	outagetest.ExactlyOnce(t, acked, 3*time.Minute, outagetest.MariaDB(my, "app", "records"), outagetest.Postgres(pg, "app", "records"))
	rows := len(pg.Query(t, "app", "SELECT id FROM records"))
	outagetest.CountedOnce(t, client, global.urls["edge"], rows, 2*time.Minute)
	t.Logf("records by the cloud that took them: %v", outagetest.Origins(t, my, "app", "records"))
	if code, out := cli("dead", "list"); code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("dead letters after the outages (exit %d):\n%s", code, out)
	}
	if code, out := cli("validate"); code != 0 || !strings.Contains(out, "completeness:") || !strings.Contains(out, "ok, every record is in every database") {
		t.Errorf("validate after the outages: exit %d\n%s", code, out)
	}

	for _, c := range []*child{global, azure, aws} {
		c.stop(t)
	}
	for _, c := range children {
		n, lib := c.onlyJSON(t)
		t.Logf("%s: %d JSON lines on stderr, %d from dependencies", c.role, n, lib)
	}
}

// metric returns the value of one sample of a Prometheus text page, or -1.
func metric(page, series string) float64 {
	for _, l := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// waitHealthy waits until both clouds say they are healthy and no stream
// is reconnecting.
func waitHealthy(t *testing.T, client *http.Client, aws, azure *child) {
	t.Helper()
	start := time.Now()
	for {
		why := ""
		for _, u := range []string{aws.urls["aws-api"], azure.urls["azure-api"]} {
			if code, body := get(client, u+"/healthz"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
				why = body
			} else if _, st := get(client, u+"/v1/status"); strings.Contains(st, "reconnecting since") || strings.Contains(st, `"state":"stopped`) {
				why = st
			}
		}
		if why == "" {
			t.Logf("healthy again after %s", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("not healthy two minutes after the database came back: %s", why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
