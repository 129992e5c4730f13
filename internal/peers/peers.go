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
