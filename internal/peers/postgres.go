package peers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Postgres is a running PostgreSQL cluster of its own with wal_level=logical
// (8 replication slots, 8 WAL senders), a database "app" owned by the role
// app/secret (LOGIN REPLICATION), and password authentication
// (scram-sha-256) over TCP on 127.0.0.1. The superuser postgres has the
// password secret too.
type Postgres struct {
	Port    int    // TCP port on 127.0.0.1
	Dir     string // holds data/ (the cluster's data directory), run/ and postgres.log
	Name    string // cluster name, as in pg_lsclusters
	Version string // major version, as in /etc/postgresql/VERSION/NAME

	tools    postgresToolset
	cred     *syscall.Credential
	confDir  string
	tls      *TLSFiles
	settings string // PostgresSettingsEnv's lines for postgresql.conf

	mu   sync.Mutex
	proc *proc // nil while stopped
}

// Postgres's fixed credentials.
const (
	postgresUser     = "app"
	postgresPassword = "secret"
	postgresDatabase = "app"
)

// clusterPrefix starts the name of every cluster made here; the process
// id follows, so clusters of a test process that died can be found.
const clusterPrefix = "peers_"

// StartPostgres creates a cluster with pg_createcluster in a fresh
// directory, starts its postmaster as a child of the test process on a
// free loopback port, and drops the cluster when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	return startPostgres(t, nil)
}

// StartPostgresTLS is StartPostgres with a server that speaks TLS with f's
// certificate and accepts TCP connections only over TLS (hostssl); with
// f.CA set it verifies client certificates that are sent.
func StartPostgresTLS(t testing.TB, f TLSFiles) *Postgres {
	t.Helper()
	return startPostgres(t, &f)
}

func startPostgres(t testing.TB, f *TLSFiles) *Postgres {
	t.Helper()
	settings, err := settingsLines(PostgresSettingsEnv)
	if err != nil {
		t.Fatalf("peers: postgres: %v", err)
	}
	// An installed server is enough here: PostGIS, which Install puts in
	// too, is what CreatePostGIS needs.
	tools, err := postgresTools()
	if err != nil {
		if err := Install(t.Context(), "postgres"); err != nil {
			unavailable(t, "peers: postgres: %v", err)
		}
		if tools, err = postgresTools(); err != nil {
			unavailable(t, "peers: postgres: %v", err)
		}
	}
	cred, err := postgresCredential()
	if err != nil {
		unavailable(t, "peers: postgres: %v", err)
	}
	dropStaleClusters(t.Context(), tools)

	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	p := &Postgres{
		Port:     FreePort(t),
		Name:     clusterPrefix + strconv.Itoa(os.Getpid()) + "_" + hex.EncodeToString(rnd[:]),
		Version:  tools.version,
		tools:    tools,
		cred:     cred,
		tls:      f,
		settings: settings,
	}
	p.confDir = filepath.Join("/etc/postgresql", p.Version, p.Name)
	// The data directory's parent must belong to postgres, and every
	// directory above it must be searchable by postgres: t.TempDir is not.
	p.Dir, err = os.MkdirTemp("", "peers-pg-")
	if err != nil {
		t.Fatalf("peers: postgres: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(p.Dir) })
	for _, d := range []string{p.Dir, filepath.Join(p.Dir, "run")} {
		if err := prepareDir(d, cred); err != nil {
			t.Fatalf("peers: postgres: %v", err)
		}
	}
	if err := p.create(t.Context()); err != nil {
		unavailable(t, "%v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, tools.dropCls, "--stop", p.Version, p.Name)
		if err := runLogged(cmd); err != nil {
			t.Errorf("peers: postgres: drop cluster: %v", err)
		}
	})
	t.Cleanup(func() {
		if err := p.stop(syscall.SIGINT); err != nil {
			t.Errorf("%v", err)
		}
	})
	if err := p.start(); err != nil {
		unavailable(t, "%v", err)
	}
	if err := p.setup(t.Context()); err != nil {
		t.Fatalf("%v", err)
	}
	return p
}

// prepareDir creates dir (with its parents), opens it to everyone for
// search and gives it to the postgres user.
func prepareDir(dir string, cred *syscall.Credential) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return os.Chown(dir, int(cred.Uid), int(cred.Gid))
}

// postgresCredential returns the credential of the postgres system user.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("must run as root to start a cluster as the postgres user")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("user postgres: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// create runs pg_createcluster and adjusts postgresql.conf.
func (p *Postgres) create(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.tools.createCluster,
		"--port", strconv.Itoa(p.Port),
		"--datadir", p.dataDir(),
		"--encoding", "UTF8",
		"--locale", "C.UTF-8",
		"-o", "wal_level=logical",
		"-o", "max_replication_slots=8",
		"-o", "max_wal_senders=8",
		p.Version, p.Name,
		"--", "--no-sync", // initdb: a test cluster need not survive a power cut
	)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if err := runLogged(cmd); err != nil {
		return fmt.Errorf("peers: postgres: create cluster: %w", err)
	}
	// Later lines win in postgresql.conf. listen_addresses cannot be given
	// with -o (it writes a broken value).
	extra := fmt.Sprintf(`
# added by the test harness
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
external_pid_file = ''
%s
%s`, filepath.Join(p.Dir, "run"), p.tlsConf(), p.settings)
	f, err := os.OpenFile(filepath.Join(p.confDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("peers: postgres: %w", err)
	}
	_, err = f.WriteString(extra)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("peers: postgres: write postgresql.conf: %w", err)
	}
	if p.tls != nil {
		// TCP clients only over TLS.
		hba := filepath.Join(p.confDir, "pg_hba.conf")
		b, err := os.ReadFile(hba)
		if err != nil {
			return fmt.Errorf("peers: postgres: %w", err)
		}
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "host "); ok {
				l = "hostssl " + rest
			}
			out = append(out, l)
		}
		if err := os.WriteFile(hba, []byte(strings.Join(out, "\n")), 0o640); err != nil {
			return fmt.Errorf("peers: postgres: %w", err)
		}
	}
	return nil
}

// tlsConf copies the TLS files where the postgres user may read them
// (the key 0600, its own) and returns the postgresql.conf lines.
func (p *Postgres) tlsConf() string {
	if p.tls == nil {
		return "ssl = off"
	}
	dir := filepath.Join(p.Dir, "tls")
	_ = os.MkdirAll(dir, 0o700)
	_ = os.Chown(dir, int(p.cred.Uid), int(p.cred.Gid))
	cp := func(src, name string) string {
		dst := filepath.Join(dir, name)
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.WriteFile(dst, b, 0o600)
		}
		if err == nil {
			err = os.Chown(dst, int(p.cred.Uid), int(p.cred.Gid))
		}
		if err != nil {
			return "/nonexistent/" + name // the server's start then fails and says so
		}
		return dst
	}
	s := fmt.Sprintf("ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'", cp(p.tls.Cert, "server.crt"), cp(p.tls.Key, "server.key"))
	if p.tls.CA != "" {
		s += fmt.Sprintf("\nssl_ca_file = '%s'", cp(p.tls.CA, "ca.crt"))
	}
	return s
}

func (p *Postgres) dataDir() string { return filepath.Join(p.Dir, "data") }

// start runs the postmaster as the postgres user and waits until it
// accepts connections.
func (p *Postgres) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil && !p.proc.exited() {
		return fmt.Errorf("peers: postgres: already running (pid %d)", p.proc.pid)
	}
	proc, err := startProc(procSpec{
		name: "postgres",
		path: p.tools.server,
		args: []string{"-D", p.dataDir(), "-c", "config_file=" + filepath.Join(p.confDir, "postgresql.conf")},
		env:  []string{"PATH=/usr/bin:/bin", "HOME=" + p.Dir, "LC_ALL=C.UTF-8"},
		// The log lives in Dir, outside the data directory: the pid file
		// goes there too.
		dir:     p.Dir,
		logPath: filepath.Join(p.Dir, "postgres.log"),
		cred:    p.cred,
	})
	if err != nil {
		return err
	}
	p.proc = proc
	return waitReady(proc, readyTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, p.tools.isReady, "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-t", "2").CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_isready: %v %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// CPU returns the CPU time (user + system) the cluster has used since it
// last started: the postmaster's and every process's below it (backends,
// WAL senders, background workers), the ended ones included (see
// cputime.Tree); the difference of two readings is what the server spent
// between them. It fails t when the cluster is not running.
func (p *Postgres) CPU(t testing.TB) time.Duration {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc.cpu(t)
}

// stop signals the postmaster, waits until it is gone, and then until every
// process of the cluster (backends, WAL senders, ...) is gone too.
func (p *Postgres) stop(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return nil
	}
	err := p.proc.stop(sig, stopTimeout)
	p.proc = nil
	if err != nil {
		return err
	}
	return p.reapCluster(sig == syscall.SIGKILL)
}

// reapCluster waits until no process runs in the cluster's data directory
// (the postmaster's children each lead their own process group, so the
// group signal does not reach them). With kill, they are SIGKILLed at once;
// otherwise only after a timeout.
func (p *Postgres) reapCluster(kill bool) error {
	dir, err := filepath.EvalSymlinks(p.dataDir())
	if err != nil {
		dir = p.dataDir()
	}
	deadline := time.Now().Add(stopTimeout)
	for {
		pids := pidsInDir(dir)
		if len(pids) == 0 {
			return nil
		}
		if kill || time.Now().After(deadline) {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline.Add(stopTimeout)) {
			return fmt.Errorf("peers: postgres: processes %v survive in %s", pids, dir)
		}
		time.Sleep(pollEvery)
	}
}

// pidsInDir lists the processes whose working directory is dir.
func pidsInDir(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// setup creates the app role and database and sets the superuser's
// password, as postgres over the cluster's own unix socket.
func (p *Postgres) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args := []string{"-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", filepath.Join(p.Dir, "run"), "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", "postgres"}
	for _, s := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s'", postgresUser, postgresPassword),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", postgresDatabase, postgresUser),
		fmt.Sprintf("ALTER ROLE postgres PASSWORD '%s'", postgresPassword),
	} {
		args = append(args, "-c", s)
	}
	cmd := exec.CommandContext(ctx, p.tools.psql, args...)
	cmd.Dir = p.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + p.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if err := runLogged(cmd); err != nil {
		return fmt.Errorf("peers: postgres: setup: %w", err)
	}
	return nil
}

// dropStaleClusters drops clusters left behind by test processes that are
// gone (killed before their cleanup ran).
func dropStaleClusters(ctx context.Context, tools postgresToolset) {
	entries, _ := os.ReadDir(filepath.Join("/etc/postgresql", tools.version))
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, clusterPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "_")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		parent := ""
		if dataDir := confSetting(filepath.Join("/etc/postgresql", tools.version, name, "postgresql.conf"), "data_directory"); dataDir != "" {
			parent = filepath.Dir(dataDir)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		cmd := exec.CommandContext(cctx, tools.dropCls, "--stop", tools.version, name)
		if err := runLogged(cmd); err != nil {
			progress("could not drop stale cluster %s: %v", name, err)
		} else if strings.HasPrefix(filepath.Base(parent), "peers-pg-") {
			_ = os.RemoveAll(parent)
		}
		cancel()
	}
}

// CreatePostGIS creates the postgis extension in database db, as the
// superuser, after installing PostGIS for the cluster's version when it
// is missing (see Install). Without PostGIS the test is skipped, or fails
// when peers are required.
func (p *Postgres) CreatePostGIS(t testing.TB, db string) {
	t.Helper()
	if !postgisInstalled(p.Version) {
		if err := Install(t.Context(), "postgres"); err != nil {
			unavailable(t, "peers: postgis: %v", err)
		}
	}
	p.Query(t, db, "CREATE EXTENSION IF NOT EXISTS postgis")
}

// URL returns a postgres URL for role app on database db.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", postgresUser, postgresPassword, p.Port, db)
}

// RootURL returns a postgres URL for the superuser postgres on database db.
func (p *Postgres) RootURL(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", postgresPassword, p.Port, db)
}

// Stop shuts the cluster down (SIGINT: fast shutdown, which disconnects
// clients instead of waiting for them) and waits until every process of it
// has exited.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	if err := p.stop(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
}

// Kill kills the postmaster and all its children with SIGKILL, as a crash
// would, and waits until they are gone.
func (p *Postgres) Kill(t testing.TB) {
	t.Helper()
	if err := p.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// Start starts the cluster again on the same data directory and port
// (after Stop or Kill) and waits until it accepts connections.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
}

// confSetting returns the last value of key in a postgresql.conf, without
// quotes, or "".
func confSetting(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return parseConfSetting(string(b), key)
}

// parseConfSetting returns the last value of key in postgresql.conf
// content, without quotes, or "".
func parseConfSetting(conf, key string) string {
	val := ""
	for _, line := range strings.Split(conf, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		v, _, _ = strings.Cut(v, "#")
		val = strings.Trim(strings.TrimSpace(v), "'")
	}
	return val
}

// Query runs a query as the superuser with the server's own command-line
// client (psql -At) on database db and returns the output's lines: an
// independent way to read what the server holds.
func (p *Postgres) Query(t testing.TB, db, query string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.tools.psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
		"-h", filepath.Join(p.Dir, "run"), "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", db, "-c", query)
	cmd.Dir = p.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + p.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("peers: postgres: %s: %v\n%s", query, err, stderr.String())
	}
	return lines(string(out))
}

// lines splits command output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}
