// Package chaos is the chaos suite: each cloud and the front door run as
// processes of their own, each cloud in its own network namespace, the
// clouds joined by a veth link (the intercloud link) that carries their
// cross-cloud traffic through a delaying TCP proxy (WAN latency, jitter and
// a little loss); a steady load runs through the front door while faults
// hit in random order (SIGKILL of any process, a lease holder included, a
// whole cloud cut off, the intercloud link cut, a database restarted, a
// full disk under an object store, a skewed clock), and after each round
// the suite waits until every acknowledged record is in both databases
// and counted at the edge. It needs root (namespaces, veths, tmpfs).
//
//	go test ./chaos -run Chaos -v                                     # short: a few rounds
//	INTERCLOUD_CHAOS_ROUNDS=100 INTERCLOUD_CHAOS_HOLD=8s go test ./chaos -run Chaos -v -timeout 3h
//	INTERCLOUD_CHAOS_SEED=42 ...                                      # replay a run
package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/certs"
	"github.com/intercloud/intercloud/chaos/wan"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/outagetest"
	"github.com/intercloud/intercloud/internal/peers"
	_ "github.com/intercloud/intercloud/objects/file"
	_ "github.com/intercloud/intercloud/replicate/mysqlsrc"
	_ "github.com/intercloud/intercloud/replicate/pgsrc"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	"github.com/intercloud/intercloud/topology"
)

const (
	childEnv = "INTERCLOUD_CHAOS_CHILD"
	apiKey   = "chaos-key"
)

// TestChildUp is one `up --cloud ROLE` process of the suite (a child of
// the test binary, so that it needs no separate build): env
// INTERCLOUD_CHAOS_CHILD=up ROLE CONFIG [SKEW].
func TestChildUp(t *testing.T) {
	f := strings.Fields(os.Getenv(childEnv))
	if len(f) < 3 || f[0] != "up" {
		t.Skip("runs only as a child process")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, err := config.Load(f[2], "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	opts := topology.Options{Roles: []string{f[1]}, APIKey: apiKey, LogWriter: os.Stderr, DefaultLogger: true}
	if len(f) > 3 {
		skew, err := time.ParseDuration(f[3])
		if err != nil {
			os.Exit(2)
		}
		opts.Now = func() time.Time { return time.Now().Add(skew) }
	}
	topo, err := topology.Start(ctx, cfg, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, ep := range topo.Endpoints() {
		fmt.Printf("%s %s\n", ep.Name, ep.URL)
	}
	fmt.Println("ready")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = topo.Stop(sctx)
	os.Exit(0)
}

// TestChildProxy runs TCP proxies in a namespace: env
// INTERCLOUD_CHAOS_CHILD=proxy SEED LISTEN=TARGET[/wan] ...; /wan puts the
// WAN link (40 ms ± 10 ms, 1% loss) on that hop.
func TestChildProxy(t *testing.T) {
	f := strings.Fields(os.Getenv(childEnv))
	if len(f) < 3 || f[0] != "proxy" {
		t.Skip("runs only as a child process")
	}
	seed, _ := strconv.ParseUint(f[1], 10, 64)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	for i, spec := range f[2:] {
		listen, target, _ := strings.Cut(spec, "=")
		target, slow := strings.CutSuffix(target, "/wan")
		var l wan.Link
		if slow {
			l = WANLink(seed + uint64(i))
		}
		p, err := wan.New(target, l)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		go func() { _ = p.Serve(ctx, ln) }()
	}
	fmt.Println("ready")
	<-ctx.Done()
	os.Exit(0)
}

// WANLink is the link between the clouds: 40 ms ± 10 ms each way and 1%
// of the chunks held back a retransmission timeout.
func WANLink(seed uint64) wan.Link {
	return wan.Link{Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, Loss: 0.01, Seed: seed}
}

// proc is one child process, restartable.
type proc struct {
	name string
	argv []string
	env  []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	urls map[string]string
}

func (p *proc) start(t testing.TB) {
	t.Helper()
	errf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stderr = errf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if sc.Text() == "ready" && !ok {
				ok = true
				ready <- true
			}
			if f := strings.Fields(sc.Text()); len(f) == 2 && !ok {
				urls[f[0]] = f[1]
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited before it was ready:\n%s", p.name, tail(string(b), 20))
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("%s not ready in 2 minutes", p.name)
	}
	p.mu.Lock()
	p.cmd, p.urls = cmd, urls
	p.mu.Unlock()
}

// kill sends SIGKILL and waits; stop sends SIGTERM and waits.
func (p *proc) kill() { p.signal(syscall.SIGKILL) }
func (p *proc) stop() { p.signal(syscall.SIGTERM) }

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	// `ip netns exec` execs the child: the pid is the child's.
	_ = cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// settings of a run, from the environment.
type settings struct {
	rounds int
	hold   time.Duration
	seed   uint64
}

func load(t *testing.T) settings {
	s := settings{rounds: 3, hold: 2 * time.Second, seed: uint64(time.Now().UnixNano() % 1_000_000)}
	if v := os.Getenv("INTERCLOUD_CHAOS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("INTERCLOUD_CHAOS_ROUNDS=%q: want a positive number", v)
		}
		s.rounds = n
	}
	if v := os.Getenv("INTERCLOUD_CHAOS_HOLD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("INTERCLOUD_CHAOS_HOLD=%q: want a duration", v)
		}
		s.hold = d
	}
	if v := os.Getenv("INTERCLOUD_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("INTERCLOUD_CHAOS_SEED=%q: want a number", v)
		}
		s.seed = n
	}
	return s
}

// The fault kinds.
const (
	faultKill      = "kill"
	faultCloudDown = "cloud-down"
	faultLinkCut   = "link-cut"
	faultDBRestart = "db-restart"
	faultDiskFull  = "disk-full"
	faultClockSkew = "clock-skew"
)

var faultKinds = []string{faultKill, faultCloudDown, faultLinkCut, faultDBRestart, faultDiskFull, faultClockSkew}

// suite is one running chaos setup.
type suite struct {
	t     *testing.T
	dir   string
	net   *network
	my    *peers.MariaDB
	pg    *peers.Postgres
	procs map[string]*proc // aws-1, aws-2, azure, global, proxy-aws, proxy-azure
	// awsObjects is the tmpfs under AWS's object store.
	awsObjects string
	front      string
	edge       string
	apis       map[string]string // aws-1, aws-2, azure: API URLs from the root namespace
	tlsDir     string
	client     *http.Client // with a certificate of the suite's CA
	rng        *rand.Rand
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts namespaces, MariaDB, PostgreSQL and six processes")
	}
	st := load(t)
	t.Logf("chaos: seed %d (INTERCLOUD_CHAOS_SEED=%d replays it), %d rounds, faults held %v", st.seed, st.seed, st.rounds, st.hold)
	s := &suite{t: t, dir: t.TempDir(), procs: map[string]*proc{}, rng: rand.New(rand.NewPCG(st.seed, 17))}
	s.net = newNetwork(t)
	s.net.limitRate("100mbit")
	s.my, s.pg = peers.StartMariaDB(t), peers.StartPostgres(t)
	s.setup(st.seed)

	send := newSender(s.client, s.front)
	defer send.stop()
	lag := newLagSampler(s.client, s.apis["azure"])
	defer lag.stop()
	if !send.waitAcked(200, time.Minute) {
		t.Fatalf("the load does not get through: %d acknowledged in a minute", send.acked())
	}

	var (
		byKind      = map[string]int{}
		failovers   []time.Duration
		convergence []time.Duration
		foByKind    = map[string][]time.Duration{}
		convByKind  = map[string][]time.Duration{}
	)
	for round := 1; round <= st.rounds; round++ {
		kind := faultKinds[s.rng.IntN(len(faultKinds))]
		byKind[kind]++
		before := send.acked()
		began := time.Now()
		desc, heal := s.inject(kind)
		time.Sleep(st.hold)
		heal()
		healed := time.Now()
		// Failover: the longest the load waited for an acknowledgement
		// from the fault until it healed.
		fo := send.longestGap(began, healed)
		failovers = append(failovers, fo)
		foByKind[kind] = append(foByKind[kind], fo)
		if !send.waitAcked(50, 2*time.Minute) {
			t.Fatalf("round %d (%s): the load does not get through after healing", round, desc)
		}
		conv, err := s.converged(send.snapshot(), 3*time.Minute)
		if err != nil {
			t.Fatalf("round %d (%s): %v", round, desc, err)
		}
		convergence = append(convergence, conv)
		convByKind[kind] = append(convByKind[kind], conv)
		t.Logf("round %d/%d: %s; failover %v, converged %v after healing, %d acknowledged this round",
			round, st.rounds, desc, fo.Round(time.Millisecond), conv.Round(time.Millisecond), send.acked()-before)
	}
	send.stop()
	acked := send.snapshot()
	if _, err := s.converged(acked, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	// Every row of Azure (acknowledged or not) is counted once at the edge.
	rows := len(s.ids(func(t testing.TB) []string { return s.pg.Query(t, "app", "SELECT id FROM records") }))
	outagetest.CountedOnce(t, s.client, s.edge, rows, 3*time.Minute)
	lost, dup := s.lostAndDuplicated(acked)
	report := map[string]any{
		"seed": st.seed, "rounds": st.rounds, "hold": st.hold.String(), "faults": byKind,
		"acknowledged": len(acked), "unacknowledged_requests": send.failed(), "lost": lost, "duplicated": dup,
		"failover_p50": pct(failovers, 50).String(), "failover_p99": pct(failovers, 99).String(),
		"convergence_p50": pct(convergence, 50).String(), "convergence_p99": pct(convergence, 99).String(),
		"replication_lag_p99": lag.p99().String(), "wan": "40ms±10ms one way, 1% held back 200ms, tbf 100mbit",
	}
	perKind := map[string]string{}
	for k, ds := range foByKind {
		perKind[k] = fmt.Sprintf("failover p50 %v p99 %v, convergence p50 %v p99 %v", pct(ds, 50), pct(ds, 99), pct(convByKind[k], 50), pct(convByKind[k], 99))
	}
	report["by_kind"] = perKind
	b, _ := json.Marshal(report)
	t.Logf("chaos summary: %s", b)
	fmt.Printf("%s\n", b)
	if lost != 0 || dup != 0 {
		t.Fatalf("%d acknowledged records lost, %d duplicated", lost, dup)
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(len(s)-1, max(0, i-1))].Round(time.Millisecond)
}

// setup writes the topology files and starts the proxies and the roles.
func (s *suite) setup(seed uint64) {
	t := s.t
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := func(ns string) []string {
		return inNS(ns, exe, "-test.run=^(TestChildUp|TestChildProxy)$", "-test.count=1")
	}
	// The databases listen on the root namespace's loopback; forwarders
	// of the test make them reachable at the root ends of the veths.
	myRoot := s.forward(rootA, s.my.Port)
	pgRoot := s.forward(rootZ, s.pg.Port)
	// In each cloud: its own database at 127.0.0.1, the other cloud's
	// through the WAN proxy over the intercloud link.
	const (
		localDB  = 13306 // a cloud's own database, in its namespace
		remoteDB = 15432 // the other cloud's database, through the WAN
		interDB  = 23306 // the far end of the intercloud link
	)
	for _, p := range []struct{ name, ns, spec string }{
		{"proxy-aws", s.net.nsA, fmt.Sprintf("proxy %d 127.0.0.1:%d=%s 127.0.0.1:%d=%s/wan %s=%s", seed,
			localDB, myRoot, remoteDB, addr(azureA, interDB), addr(awsZ, interDB), myRoot)},
		{"proxy-azure", s.net.nsZ, fmt.Sprintf("proxy %d 127.0.0.1:%d=%s 127.0.0.1:%d=%s/wan %s=%s", seed+100,
			localDB, pgRoot, remoteDB, addr(awsZ, interDB), addr(azureA, interDB), pgRoot)},
	} {
		pr := &proc{name: p.name, argv: child(p.ns), env: []string{childEnv + "=" + p.spec}, log: filepath.Join(s.dir, p.name+".log")}
		pr.start(t)
		s.procs[p.name] = pr
		t.Cleanup(pr.stop)
	}
	// AWS's object store on a small tmpfs, so that it can fill up.
	s.awsObjects = filepath.Join(s.dir, "aws-objects")
	if err := os.MkdirAll(s.awsObjects, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", s.awsObjects)
	t.Cleanup(func() { _ = exec.Command("umount", "-l", s.awsObjects).Run() })

	front, edge, logs := peers.FreePort(t), peers.FreePort(t), peers.FreePort(t)
	// One CA for every role, with the namespace addresses each role is
	// reached at in its certificate.
	s.tlsDir = filepath.Join(s.dir, "tls")
	if _, err := certs.Init(s.tlsDir, map[string][]string{
		"aws": {awsG, awsZ}, "azure": {azureG, azureA}, topology.RoleGlobal: {rootA, rootZ, "127.0.0.1"},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	myAt := func(hostport string) string {
		return strings.Replace(s.my.URL("app"), fmt.Sprintf("127.0.0.1:%d", s.my.Port), hostport, 1)
	}
	pgAt := func(hostport string) string {
		return strings.Replace(s.pg.URL("app"), fmt.Sprintf("127.0.0.1:%d", s.pg.Port), hostport, 1)
	}
	tf := topologyFiles{dir: s.dir, awsObjects: s.awsObjects, tlsDir: s.tlsDir, origin: addr(azureG, 8085),
		front: front, console: peers.FreePort(t), aws: awsG, azure: azureG}
	write := func(name, awsSQL, azureSQL, awsAPI, azureAPI, origin, edgeListen, logsListen, extra string) string {
		path, err := tf.write(name, awsSQL, azureSQL, awsAPI, azureAPI, origin, edgeListen, logsListen, extra)
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	local, remote := fmt.Sprintf("127.0.0.1:%d", localDB), fmt.Sprintf("127.0.0.1:%d", remoteDB)
	aws1 := write("aws-1", myAt(local), pgAt(remote), "0.0.0.0:8081", addr(azureG, 8082), addr(azureG, 8085), addr(rootA, edge), addr(rootA, logs), "")
	aws2 := write("aws-2", myAt(local), pgAt(remote), "0.0.0.0:8091", addr(azureG, 8082), addr(azureG, 8085), addr(rootA, edge), addr(rootA, logs), "")
	az := write("azure", myAt(remote), pgAt(local), addr(awsG, 8081), "0.0.0.0:8082", "0.0.0.0:8085", addr(rootZ, edge), addr(rootZ, logs), "")
	global := write("global", s.my.URL("app"), s.pg.URL("app"), addr(awsG, 8081), addr(azureG, 8082), addr(azureG, 8085),
		fmt.Sprintf("0.0.0.0:%d", edge), fmt.Sprintf("0.0.0.0:%d", logs), "")
	for _, p := range []struct{ name, ns, role, cfg string }{
		{"global", "", "global", global},
		{"azure", s.net.nsZ, "azure", az},
		{"aws-1", s.net.nsA, "aws", aws1},
		{"aws-2", s.net.nsA, "aws", aws2},
	} {
		pr := &proc{name: p.name, argv: child(p.ns), env: []string{childEnv + "=up " + p.role + " " + p.cfg}, log: filepath.Join(s.dir, p.name+".log")}
		pr.start(t)
		s.procs[p.name] = pr
		t.Cleanup(pr.stop)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range slices.Sorted(maps.Keys(s.procs)) {
				b, _ := os.ReadFile(s.procs[n].log)
				t.Logf("last lines of %s:\n%s", n, tail(string(b), 15))
			}
		}
	})
	s.front = fmt.Sprintf("https://127.0.0.1:%d", front)
	s.edge = fmt.Sprintf("https://127.0.0.1:%d", edge)
	s.apis = map[string]string{"aws-1": "https://" + addr(awsG, 8081), "aws-2": "https://" + addr(awsG, 8091), "azure": "https://" + addr(azureG, 8082)}
	cfg, err := config.Load(global, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.client, err = topology.ClientFor(cfg); err != nil {
		t.Fatal(err)
	}
}

// topologyFiles writes the topology files of the suite's processes.
type topologyFiles struct {
	dir, awsObjects, tlsDir string
	origin                  string // the origin's address the edge reaches
	front, console          int    // the global role's own ports
	aws, azure              string // the clouds' addresses on the global link
}

// write writes one process's topology file. Every listener of the global
// role (front door, edge, logs, console) gets a port of the run's own: the
// global role runs in the root namespace, where the defaults would collide
// with other tests and runs.
func (f topologyFiles) write(name, awsSQL, azureSQL, awsAPI, azureAPI, origin, edgeListen, logsListen, extra string) (string, error) {
	path := filepath.Join(f.dir, name+".yaml")
	y := fmt.Sprintf(`data_dir: %s
api_key: %s
clouds:
  aws: {sql: "%s", objects: "file://%s", api: "%s"}
  azure: {sql: "%s", objects: "file://%s", api: "%s", origin: "%s"}
edge: {listen: "%s", origins: ["https://%s"]}
frontdoor:
  listen: "127.0.0.1:%d"
  health_interval: 250ms
  backends: {aws: ["https://%s:8081", "https://%s:8091"], azure: ["https://%s:8082"]}
logs: {listen: "%s"}
console: {listen: "127.0.0.1:%d"}
tls: {dir: "%s"}
leases: {ttl: 2s}
functions: {backoff: 50ms, max_backoff: 1s, reconcile: 2s}
%s`, filepath.Join(f.dir, name), apiKey, awsSQL, f.awsObjects, awsAPI, azureSQL,
		filepath.Join(f.dir, "azure-objects"), azureAPI, origin, edgeListen, f.origin, f.front, f.aws, f.aws, f.azure, logsListen, f.console, f.tlsDir, extra)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		return "", fmt.Errorf("chaos: write %s: %w", path, err)
	}
	return path, nil
}

// forward makes a loopback port of the root namespace reachable at ip.
func (s *suite) forward(ip string, port int) string {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		s.t.Fatal(err)
	}
	p, err := wan.New(fmt.Sprintf("127.0.0.1:%d", port), wan.Link{})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.t.Cleanup(cancel)
	go func() { _ = p.Serve(ctx, ln) }()
	return ln.Addr().String()
}

// inject starts a fault and returns what it is and how to heal it.
func (s *suite) inject(kind string) (string, func()) {
	t := s.t
	switch kind {
	case faultKill:
		names := []string{"aws-1", "aws-2", "azure", "global"}
		// The holder of the reverse stream's lease is a candidate too:
		// whichever aws replica holds it now.
		n := names[s.rng.IntN(len(names))]
		p := s.procs[n]
		p.kill()
		return "SIGKILL " + n, func() { p.start(t) }
	case faultCloudDown:
		c := []string{"aws", "azure"}[s.rng.IntN(2)]
		s.net.set(c, false)
		s.net.set("inter", false)
		return c + " cut off (its links down)", func() { s.net.set(c, true); s.net.set("inter", true) }
	case faultLinkCut:
		s.net.set("inter", false)
		return "intercloud link cut", func() { s.net.set("inter", true) }
	case faultDBRestart:
		if s.rng.IntN(2) == 0 {
			s.my.Kill(t)
			return "MariaDB killed and restarted", func() { s.my.Start(t) }
		}
		s.pg.Stop(t)
		return "PostgreSQL stopped and restarted", func() { s.pg.Start(t) }
	case faultDiskFull:
		filler := filepath.Join(s.awsObjects, "filler")
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
		f.Close()
		return "AWS object store disk full", func() { _ = os.Remove(filler) }
	case faultClockSkew:
		n := []string{"aws-1", "azure"}[s.rng.IntN(2)]
		skew := time.Duration(s.rng.IntN(120)-60) * time.Second
		p := s.procs[n]
		p.stop()
		env := slices.Clone(p.env)
		p.env = []string{env[0] + " " + skew.String()}
		p.start(t)
		return fmt.Sprintf("clock of %s skewed %v", n, skew), func() {
			p.stop()
			p.env = env
			p.start(t)
		}
	}
	t.Fatalf("unknown fault %q", kind)
	return "", nil
}

// converged waits until both databases hold every acknowledged id and
// returns how long that took.
func (s *suite) converged(acked map[string]demo.Record, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		lost, dup := s.lostAndDuplicated(acked)
		if lost == 0 && dup == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			my := s.missing(acked, s.ids(func(t testing.TB) []string { return s.my.Query(t, "app", "SELECT id FROM records") }))
			pg := s.missing(acked, s.ids(func(t testing.TB) []string { return s.pg.Query(t, "app", "SELECT id FROM records") }))
			return 0, fmt.Errorf("not converged after %v: %d acknowledged records missing, %d doubled (MariaDB misses %d, e.g. %v; PostgreSQL %d, e.g. %v)",
				timeout, lost, dup, len(my), my[:min(3, len(my))], len(pg), pg[:min(3, len(pg))])
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// softTB turns a failed query of the databases' own clients into an
// error (a server just restarted may drop the first connection).
type softTB struct {
	testing.TB
	err error
}

func (s *softTB) Helper() {}

func (s *softTB) Fatalf(format string, args ...any) {
	s.err = fmt.Errorf(format, args...)
	runtime.Goexit()
}

func (s *softTB) Fatal(args ...any) {
	s.err = errors.New(fmt.Sprint(args...))
	runtime.Goexit()
}

// ids runs a query with a database's own client, retrying for up to a
// minute while the server does not answer.
func (s *suite) ids(query func(testing.TB) []string) []string {
	deadline := time.Now().Add(time.Minute)
	for {
		st := &softTB{TB: s.t}
		var out []string
		done := make(chan struct{})
		go func() {
			defer close(done)
			out = query(st)
		}()
		<-done
		if st.err == nil {
			return out
		}
		if time.Now().After(deadline) {
			s.t.Fatal(st.err)
		}
		s.t.Logf("query retried: %v", st.err)
		time.Sleep(time.Second)
	}
}

// missing lists the acknowledged ids not among ids.
func (s *suite) missing(acked map[string]demo.Record, ids []string) []string {
	have := make(map[string]bool, len(ids))
	for _, id := range ids {
		have[id] = true
	}
	var out []string
	for id := range acked {
		if !have[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// lostAndDuplicated counts acknowledged ids missing from a database (the
// larger of the two) and ids held twice, read with the databases' own
// clients.
func (s *suite) lostAndDuplicated(acked map[string]demo.Record) (lost, dup int) {
	for _, ids := range [][]string{
		s.ids(func(t testing.TB) []string { return s.my.Query(t, "app", "SELECT id FROM records") }),
		s.ids(func(t testing.TB) []string { return s.pg.Query(t, "app", "SELECT id FROM records") }),
	} {
		seen := make(map[string]int, len(ids))
		d := 0
		for _, id := range ids {
			seen[id]++
			if seen[id] == 2 {
				d++
			}
		}
		l := 0
		for id := range acked {
			if seen[id] == 0 {
				l++
			}
		}
		lost, dup = max(lost, l), max(dup, d)
	}
	return lost, dup
}

// sender keeps records coming through the front door and remembers every
// acknowledgement and when it came.
type sender struct {
	c    *http.Client
	url  string
	mu   sync.Mutex
	ack  map[string]demo.Record
	at   []time.Time // acknowledgement times, in order
	fail int
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

func newSender(c *http.Client, url string) *sender {
	s := &sender{c: c, url: url, ack: map[string]demo.Record{}, quit: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-s.quit:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				acked, err := demo.Send(ctx, s.url, apiKey, demo.Options{Records: 10, BatchSize: 10, Concurrency: 1, Attempts: 3, Client: s.c})
				cancel()
				now := time.Now()
				s.mu.Lock()
				maps.Copy(s.ack, acked)
				if len(acked) > 0 {
					s.at = append(s.at, now)
				} else {
					s.fail++
				}
				_ = err
				s.mu.Unlock()
				// About 4 × 10 records every 250 ms: a steady 160 records/s.
				time.Sleep(250 * time.Millisecond)
			}
		}()
	}
	go func() { wg.Wait(); close(s.done) }()
	return s
}

func (s *sender) stop() {
	s.once.Do(func() { close(s.quit) })
	<-s.done
}

func (s *sender) acked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ack)
}

func (s *sender) failed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail
}

func (s *sender) snapshot() map[string]demo.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.ack)
}

func (s *sender) waitAcked(n int, timeout time.Duration) bool {
	want := s.acked() + n
	deadline := time.Now().Add(timeout)
	for s.acked() < want {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// longestGap is the longest time without an acknowledgement between from
// and to (to included up to the next acknowledgement after it).
func (s *sender) longestGap(from, to time.Time) time.Duration {
	deadline := time.Now().Add(time.Minute)
	for {
		s.mu.Lock()
		last := time.Time{}
		if len(s.at) > 0 {
			last = s.at[len(s.at)-1]
		}
		s.mu.Unlock()
		if last.After(to) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, gap := from, time.Duration(0)
	for _, at := range s.at {
		if at.Before(from) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
		if at.After(to) {
			break
		}
	}
	return gap
}

// lagSampler reads Azure's replication lag from /metrics every second.
type lagSampler struct {
	mu      sync.Mutex
	samples []time.Duration
	quit    chan struct{}
	once    sync.Once
}

func newLagSampler(c *http.Client, api string) *lagSampler {
	l := &lagSampler{quit: make(chan struct{})}
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-l.quit:
				return
			case <-tick.C:
			}
			code, page := outagetest.Get(c, api+"/metrics", apiKey)
			if code != http.StatusOK {
				continue
			}
			for _, line := range strings.Split(page, "\n") {
				if v, ok := strings.CutPrefix(line, `intercloud_replication_target_lag_seconds{cloud="azure",stream="aws-to-azure"} `); ok {
					if f, err := strconv.ParseFloat(v, 64); err == nil {
						l.mu.Lock()
						l.samples = append(l.samples, time.Duration(f*float64(time.Second)))
						l.mu.Unlock()
					}
				}
			}
		}
	}()
	return l
}

func (l *lagSampler) stop() { l.once.Do(func() { close(l.quit) }) }

func (l *lagSampler) p99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return pct(l.samples, 99)
}
