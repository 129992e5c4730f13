// Package peers installs, starts and stops the real servers that the
// project's tests talk to: versitygw (S3), Azurite (Azure Blob and Queue),
// MariaDB with binlog, PostgreSQL with logical decoding (and PostGIS), the
// AWS Lambda Runtime Interface Emulator and VictoriaLogs.
//
// Every server is its own instance in a temporary directory, listens on a
// free loopback port only, runs detached in its own session, is recorded by
// PID and is stopped by that PID when the test ends. Binaries and
// node_modules are cached under CacheDir so that a second run starts in
// seconds.
//
// When a peer cannot be installed or started, the Start functions skip the
// test with the reason, unless the environment variable CI is set or
// INTERCLOUD_REQUIRE_PEERS=1, in which case the test fails.
package peers

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// modulePath is the module whose root Root looks for.
const modulePath = "github.com/intercloud/intercloud"

// Root returns the repository root: the directory of the go.mod that
// declares the project's module, found by walking up from the working
// directory. When no such go.mod is found it falls back to the nearest
// go.mod, and then to the working directory.
func Root() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	nearest := ""
	for dir := wd; ; {
		gomod := filepath.Join(dir, "go.mod")
		if b, err := os.ReadFile(gomod); err == nil {
			if nearest == "" {
				nearest = dir
			}
			if declaresModule(b, modulePath) {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if nearest != "" {
		return nearest
	}
	return wd
}

// declaresModule reports whether the go.mod content declares module mod.
func declaresModule(gomod []byte, mod string) bool {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "module" && strings.Trim(f[1], `"`) == mod {
			return true
		}
	}
	return false
}

// CacheDir returns the directory where installed peers are cached:
// Root()/.cache/peers (git-ignored), or $INTERCLOUD_PEERS_CACHE when set.
// Go binaries live under bin/, node_modules under npm/.
func CacheDir() string {
	if d := os.Getenv("INTERCLOUD_PEERS_CACHE"); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	return filepath.Join(Root(), ".cache", "peers")
}

// binDir is where go-installed peers live.
func binDir() string { return filepath.Join(CacheDir(), "bin") }

// npmDir is the npm prefix where Azurite is installed.
func npmDir() string { return filepath.Join(CacheDir(), "npm") }

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
//
// It is picked at random below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), never from it: a port the kernel can
// hand to any outgoing connection or ":0" listener of a concurrent test
// would be taken between FreePort and the server's bind now and then.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("peers: free port: %v", err)
	}
	return p
}

// portsFrom is the lowest port FreePort picks.
const portsFrom = 10000

func freePort() (int, error) {
	if hi := ephemeralLow(); hi-portsFrom >= 1000 {
		for range 200 {
			p := portsFrom + rand.IntN(hi-portsFrom)
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				l.Close()
				return p, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (32768,
// Linux's default, where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	return parseEphemeralLow(string(b))
}

// parseEphemeralLow returns the lowest port of an ip_local_port_range
// ("32768\t60999"), or 32768 when it cannot be read.
func parseEphemeralLow(s string) int {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 || n > 65535 {
		return 32768
	}
	return n
}

// Required reports whether peers must be available: when true a peer that
// cannot be installed or started fails the test instead of skipping it.
// It is true when CI is set or INTERCLOUD_REQUIRE_PEERS=1.
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("INTERCLOUD_REQUIRE_PEERS") == "1"
}

// unavailable ends the test because a peer cannot be installed or started:
// a failure when peers are required, a skip otherwise.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatal(msg)
		return
	}
	t.Skip(msg + " (set CI or INTERCLOUD_REQUIRE_PEERS=1 to fail instead)")
}

// mkdirs creates each directory with its parents.
func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// The environment variables that give the servers a test run starts
// settings of their own, for a benchmark that sizes them as a production
// server would be, or loads an extension: "name=value" pairs separated by
// ";", added after the harness's own (so they win), e.g.
//
//	INTERCLOUD_PEERS_POSTGRES_SETTINGS="shared_buffers=1GB;shared_preload_libraries='pg_stat_statements'"
//	INTERCLOUD_PEERS_MARIADB_SETTINGS="innodb_buffer_pool_size=1G"
const (
	PostgresSettingsEnv = "INTERCLOUD_PEERS_POSTGRES_SETTINGS"
	MariaDBSettingsEnv  = "INTERCLOUD_PEERS_MARIADB_SETTINGS"
)

// serverSettings parses the value of one of the settings variables into
// its name and value pairs (nil for an empty value). A name is letters,
// digits, '_', '-' and '.'; a value is what follows the first '=' with
// the spaces around it trimmed, and may not hold a line break or '#' (a
// comment in both servers' files).
func serverSettings(env, s string) ([][2]string, error) {
	var out [][2]string
	for item := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsFunc(k, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')
		}) {
			return nil, fmt.Errorf("%s: %q is not name=value", env, item)
		}
		if v == "" || strings.ContainsAny(v, "\r\n#") {
			return nil, fmt.Errorf("%s: %s: the value %q is empty or holds a line break or '#'", env, k, v)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// settingsLines renders the pairs of the settings variable env, one
// "name = value" line each (both servers' files take that form).
func settingsLines(env string) (string, error) {
	pairs, err := serverSettings(env, os.Getenv(env))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&b, "%s = %s\n", p[0], p[1])
	}
	return b.String(), nil
}
