package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Versions of the peers that Install puts in place.
const (
	VersitygwVersion    = "v1.8.0"
	RIEVersion          = "v0.0.0-20261030222936-bef5c4ba774d"
	VictoriaLogsVersion = "v1.52.1"
	AzuriteVersion      = "3.37.0"
	PostgresVersion     = "15" // preferred major version; another installed one is used if 15 is absent
	// StaticcheckVersion is the linter `make test` runs (not a server, but
	// installed and cached the same way).
	StaticcheckVersion = "v0.8.2"
)

// Go modules of the go-installed peers.
const (
	versitygwModule    = "github.com/versity/versitygw/cmd/versitygw"
	rieModule          = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
	victoriaLogsModule = "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
	staticcheckModule  = "honnef.co/go/tools/cmd/staticcheck"
)

// peer says how to check and install one peer.
type peer struct {
	name      string
	lock      string // lock file name; peers installed by apt share one
	what      string // human-readable what-and-version for progress lines
	installed func() bool
	install   func(ctx context.Context) error
}

// Names returns the names Install accepts, in install order.
func Names() []string {
	return []string{"versitygw", "azurite", "rie", "victorialogs", "mariadb", "postgres", "staticcheck"}
}

func peerByName(name string) (peer, error) {
	switch name {
	case "versitygw":
		return goPeer(name, "versitygw", versitygwModule, VersitygwVersion), nil
	case "rie":
		return goPeer(name, "aws-lambda-rie", rieModule, RIEVersion), nil
	case "victorialogs":
		return goPeer(name, "victoria-logs", victoriaLogsModule, VictoriaLogsVersion), nil
	case "staticcheck":
		return goPeer(name, "staticcheck", staticcheckModule, StaticcheckVersion), nil
	case "azurite":
		return peer{
			name:      name,
			lock:      name,
			what:      "azurite@" + AzuriteVersion + " (npm)",
			installed: azuriteInstalled,
			install:   installAzurite,
		}, nil
	case "mariadb":
		return peer{
			name:      name,
			lock:      "apt",
			what:      "mariadb-server (apt)",
			installed: func() bool { _, err := mariadbTools(); return err == nil },
			install:   func(ctx context.Context) error { return aptInstall(ctx, "mariadb-server", "mariadb-client") },
		}, nil
	case "postgres":
		return peer{
			name: name,
			lock: "apt",
			what: "postgresql with postgis (apt)",
			installed: func() bool {
				ts, err := postgresTools()
				return err == nil && postgisInstalled(ts.version)
			},
			install: installPostgres,
		}, nil
	}
	return peer{}, fmt.Errorf("peers: unknown peer %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Install installs the named peers (all of them when no name is given)
// into CacheDir, or with apt-get for the database servers. It is
// idempotent and fast when everything is cached. A file lock per peer
// keeps concurrent processes from installing into the same place at once.
// Progress lines go to stderr.
func Install(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		names = Names()
	}
	var errs []error
	for _, n := range names {
		p, err := peerByName(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := installPeer(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func installPeer(ctx context.Context, p peer) error {
	if p.installed() {
		return nil
	}
	unlock, err := lockFile(ctx, filepath.Join(CacheDir(), "locks", p.lock+".lock"))
	if err != nil {
		return fmt.Errorf("peers: install %s: %w", p.name, err)
	}
	defer unlock()
	if p.installed() { // another process finished it while we waited
		return nil
	}
	progress("installing %s ...", p.what)
	start := time.Now()
	if err := p.install(ctx); err != nil {
		progress("installing %s failed after %s", p.what, time.Since(start).Round(time.Millisecond))
		return fmt.Errorf("peers: install %s: %w", p.name, err)
	}
	if !p.installed() {
		return fmt.Errorf("peers: install %s: finished but the peer is still missing", p.name)
	}
	progress("installed %s in %s", p.what, time.Since(start).Round(time.Millisecond))
	return nil
}

// progress prints one progress line on stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peers: "+format+"\n", args...)
}

// lockFile takes an exclusive flock on path, waiting until ctx is done.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	if err := mkdirs(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !told {
			progress("waiting for another install (%s)", filepath.Base(path))
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// goPeer is a peer installed with `go install module@version` into bin/.
func goPeer(name, bin, module, version string) peer {
	path := filepath.Join(binDir(), bin)
	stamp := filepath.Join(binDir(), "."+bin+".version")
	want := module + "@" + version
	return peer{
		name: name,
		lock: name,
		what: bin + " " + version,
		installed: func() bool {
			st, err := os.Stat(path)
			if err != nil || st.IsDir() {
				return false
			}
			b, err := os.ReadFile(stamp)
			return err == nil && strings.TrimSpace(string(b)) == want
		},
		install: func(ctx context.Context) error {
			if err := mkdirs(binDir()); err != nil {
				return err
			}
			_ = os.Remove(stamp)
			tmp, err := os.MkdirTemp("", "peers-go-install-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			gobin, err := goTool()
			if err != nil {
				return err
			}
			cmd := exec.CommandContext(ctx, gobin, "install", want)
			cmd.Dir = tmp // outside the project's module: its go.mod stays untouched
			cmd.Env = append(os.Environ(),
				"GOBIN="+binDir(),
				"GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"),
				"GOWORK=off",
			)
			if err := runLogged(cmd); err != nil {
				return err
			}
			return os.WriteFile(stamp, []byte(want+"\n"), 0o644)
		},
	}
}

// goTool finds the go command.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	// Not on PATH: where `go env GOROOT` usually is.
	for _, root := range []string{os.Getenv("GOROOT"), "/usr/local/go", "/usr/lib/go"} {
		if root == "" {
			continue
		}
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("go command not found")
}

// runLogged runs cmd and returns an error with the tail of its output.
func runLogged(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, tailString(out.String(), 25))
	}
	return nil
}

// tailString returns the last n lines of s.
func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// azuriteBin returns the path of one of Azurite's executables (azurite-blob,
// azurite-queue).
func azuriteBin(name string) string {
	return filepath.Join(npmDir(), "node_modules", ".bin", name)
}

func azuriteInstalled() bool {
	b, err := os.ReadFile(filepath.Join(npmDir(), "node_modules", "azurite", "package.json"))
	if err != nil {
		return false
	}
	var pkg struct{ Version string }
	if json.Unmarshal(b, &pkg) != nil || pkg.Version != AzuriteVersion {
		return false
	}
	for _, b := range []string{"azurite-blob", "azurite-queue"} {
		if _, err := os.Stat(azuriteBin(b)); err != nil {
			return false
		}
	}
	_, err = exec.LookPath("node")
	return err == nil
}

func installAzurite(ctx context.Context) error {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return errors.New("npm not found (install Node.js 20 or newer)")
	}
	if err := mkdirs(npmDir()); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, npm, "install", "azurite@"+AzuriteVersion,
		"--no-audit", "--no-fund", "--prefix", npmDir())
	cmd.Dir = npmDir()
	cmd.Env = append(os.Environ(), "NPM_CONFIG_UPDATE_NOTIFIER=false")
	return runLogged(cmd)
}

// installPostgres installs PostGIS for the PostgreSQL version the test
// clusters use (see postgresTools), or, when no PostgreSQL is installed,
// the distribution's default PostgreSQL and PostGIS together.
func installPostgres(ctx context.Context) error {
	pkgs := []string{"postgresql", "postgresql-postgis"}
	if ts, err := postgresTools(); err == nil {
		pkgs = []string{postgisPackage(ts.version)}
	}
	return aptInstall(ctx, pkgs...)
}

// postgisPackage is the Debian package of PostGIS 3 for PostgreSQL major
// version v.
func postgisPackage(v string) string { return "postgresql-" + v + "-postgis-3" }

// postgisInstalled reports whether PostGIS is installed for PostgreSQL
// major version v (CREATE EXTENSION postgis would find it).
func postgisInstalled(v string) bool {
	_, err := os.Stat(filepath.Join("/usr/share/postgresql", v, "extension", "postgis.control"))
	return err == nil
}

// aptInstall installs Debian packages. Services that the packages would
// start are held back with a temporary policy-rc.d, so no system-wide
// server is left running.
func aptInstall(ctx context.Context, pkgs ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("apt-get install %s needs root", strings.Join(pkgs, " "))
	}
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return errors.New("apt-get not found")
	}
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err == nil {
			defer os.Remove(policy)
		}
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	// Another apt-get or dpkg (not one of ours: those take the apt lock)
	// is waited for rather than failed on.
	wait := []string{"-o", "DPkg::Lock::Timeout=600"}
	update := exec.CommandContext(ctx, aptGet, append(wait, "update")...)
	update.Env = env
	if err := runLogged(update); err != nil {
		return err
	}
	install := exec.CommandContext(ctx, aptGet, append(append(wait, "install", "-y"), pkgs...)...)
	install.Env = env
	return runLogged(install)
}

// lookTool finds an executable in PATH or in the usual system directories.
func lookTool(name string, extraDirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range append(extraDirs, "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin") {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// mariadbToolset holds the MariaDB executables.
type mariadbToolset struct{ server, installDB, admin, client string }

func mariadbTools() (mariadbToolset, error) {
	var ts mariadbToolset
	var err error
	for _, x := range []struct {
		dst   *string
		names []string
	}{
		{&ts.server, []string{"mariadbd", "mysqld"}},
		{&ts.installDB, []string{"mariadb-install-db", "mysql_install_db"}},
		{&ts.admin, []string{"mariadb-admin", "mysqladmin"}},
		{&ts.client, []string{"mariadb", "mysql"}},
	} {
		for _, n := range x.names {
			if *x.dst, err = lookTool(n); err == nil {
				break
			}
		}
		if err != nil {
			return ts, err
		}
	}
	return ts, nil
}

// postgresToolset holds the PostgreSQL executables of one major version.
type postgresToolset struct {
	version                string
	createCluster, dropCls string
	server, isReady, psql  string
}

func postgresTools() (postgresToolset, error) {
	ts := postgresToolset{}
	var err error
	if ts.createCluster, err = lookTool("pg_createcluster"); err != nil {
		return ts, err
	}
	if ts.dropCls, err = lookTool("pg_dropcluster"); err != nil {
		return ts, err
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(versions) == 0 {
		return ts, errors.New("no /usr/lib/postgresql/*/bin/postgres")
	}
	sort.Slice(versions, func(i, j int) bool { return pgMajor(versions[i]) > pgMajor(versions[j]) })
	for _, v := range versions {
		major := filepath.Base(filepath.Dir(filepath.Dir(v)))
		if major == PostgresVersion {
			ts.version = major
			break
		}
	}
	if ts.version == "" {
		ts.version = filepath.Base(filepath.Dir(filepath.Dir(versions[0])))
	}
	bin := filepath.Join("/usr/lib/postgresql", ts.version, "bin")
	ts.server = filepath.Join(bin, "postgres")
	ts.isReady = filepath.Join(bin, "pg_isready")
	ts.psql = filepath.Join(bin, "psql")
	for _, p := range []string{ts.isReady, ts.psql} {
		if _, err := os.Stat(p); err != nil {
			return ts, fmt.Errorf("%s not found", p)
		}
	}
	return ts, nil
}

// pgMajor returns the major version number in a /usr/lib/postgresql/N/...
// path, or 0.
func pgMajor(path string) int {
	var n int
	_, _ = fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(path))), "%d", &n)
	return n
}
