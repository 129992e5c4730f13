package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/syncbuf"

	_ "modernc.org/sqlite"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDemoValidateLogs(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("INTERCLOUD_API_KEY", "")
	code, out, errs := runCLI(t, "demo", "--records", "400", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("demo exit %d\n%s", code, errs)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("demo stdout is not one JSON line: %q", out)
	}
	for _, k := range []string{"sent", "acked", "aws_rows", "azure_rows", "results_records"} {
		if sum[k] != 400.0 {
			t.Errorf("%s = %v, want 400", k, sum[k])
		}
	}
	if sum["lost"] != 0.0 || sum["e2e_p99_ms"] == nil {
		t.Errorf("summary %v", sum)
	}
	if !strings.Contains(errs, "made an API key") || !strings.Contains(errs, "every record arrived") {
		t.Errorf("progress on stderr lacks the key or the end:\n%s", errs)
	}

	// Everything the demo made is for its user only.
	if err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %04o: others may read it", p, fi.Mode().Perm())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "validate", "--data-dir", dir); code != 0 {
		t.Fatalf("validate exit %d\n%s%s", code, out, errs)
	}
	// A row lost on the target is found, named, and repaired.
	db, err := sql.Open("sqlite", filepath.Join(dir, "azure", "sql.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM records WHERE id = (SELECT MIN(id) FROM records)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, _ = runCLI(t, "validate", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "records") || !strings.Contains(out, "missing on target") {
		t.Fatalf("validate after a planted difference: exit %d\n%s", code, out)
	}
	// Continuous validation finds it too, and serves the count.
	continuousValidate(t, dir)
	if code, out, errs := runCLI(t, "validate", "--resync", "--data-dir", dir); code != 0 || !strings.Contains(errs, "resynced 1 differing rows") {
		t.Fatalf("validate --resync exit %d\n%s%s", code, out, errs)
	}

	// The central store is searchable without a running service.
	code, out, errs = runCLI(t, "logs", "--data-dir", dir, "component:load", "--limit", "5")
	if code != 0 || !strings.Contains(out, "object loaded") {
		t.Fatalf("logs exit %d\n%s%s", code, out, errs)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n > 5 {
		t.Fatalf("logs printed %d lines, want at most 5", n)
	}
}

// continuousValidate runs validate --continuous until its first round
// reports the one planted difference, and reads it from /metrics.
func continuousValidate(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"validate", "--continuous", "--every", "1h", "--recheck", "10ms", "--listen", "127.0.0.1:0", "--data-dir", dir}, &out, &errs)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "records: 1 differing rows") {
		if time.Now().After(deadline) {
			t.Fatalf("no round reported the difference:\n%s%s", out.String(), errs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "missing on target") {
		t.Fatalf("round output:\n%s", out.String())
	}
	_, addr, _ := strings.Cut(errs.String(), "metrics on ")
	addr, _, _ = strings.Cut(addr, "\n")
	resp, err := http.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `intercloud_validation_differing_rows{stream="aws-to-azure",table="records"} 1`) {
		t.Fatalf("metrics:\n%s", body)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("validate --continuous exit %d\n%s", code, errs.String())
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("clouds:\n  aws:\n    objcts: file:///x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"demo", "--records"}, 2, "flag needs an argument"},
		{[]string{"up", "--config", bad}, 1, `unknown key "objcts"`},
		{[]string{"up", "--cloud", "gcp", "--data-dir", dir}, 1, `unknown role "gcp"`},
		{[]string{"version"}, 0, ""},
		{[]string{"up", "--data-dir", open}, 1, "world-writable"},
	} {
		code, _, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

func TestUpPrintsEndpointsAndStops(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "topology.yaml")
	yaml := `clouds:
  aws: {api: "127.0.0.1:0"}
  azure: {api: "127.0.0.1:0", origin: "127.0.0.1:0"}
edge: {listen: "127.0.0.1:0"}
frontdoor: {listen: "127.0.0.1:0"}
logs: {listen: "127.0.0.1:0"}
console: {listen: "127.0.0.1:0"}
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"up", "--config", cfg, "--data-dir", dir}, pw, io.Discard)
		pw.Close()
	}()
	names := map[string]bool{}
	sc := bufio.NewScanner(pr)
	for len(names) < 7 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !strings.HasPrefix(f[1], "https://127.0.0.1:") {
			t.Fatalf("endpoint line %q is not '<name> <url>'", sc.Text())
		}
		names[f[0]] = true
	}
	for _, n := range []string{"frontdoor", "aws-api", "azure-api", "edge", "console", "logs"} {
		if !names[n] {
			t.Errorf("no %s endpoint in %v", n, names)
		}
	}
	go io.Copy(io.Discard, pr)
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("up exit %d after interrupt", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop")
	}
}

// keys add prints a key once and stores only its hash; list names it
// without the key; revoke removes it.
func TestKeysCLI(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "keys", "add", "--scopes", "ingest,read", "--name", "ci", "--data-dir", dir)
	key := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(key, "ick_") || !strings.Contains(errs, "ingest,read") {
		t.Fatalf("keys add: %d %q %s", code, out, errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "keys.json"))
	if err != nil || strings.Contains(string(b), key) {
		t.Fatalf("keys file holds the key in clear (or %v)", err)
	}
	code, out, _ = runCLI(t, "keys", "list", "--json", "--data-dir", dir)
	var k struct {
		ID     string   `json:"id"`
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(out), &k); code != 0 || err != nil || k.Name != "ci" || len(k.Scopes) != 2 || strings.Contains(out, key) {
		t.Fatalf("keys list: %d %q %v", code, out, err)
	}
	if code, _, errs := runCLI(t, "keys", "revoke", k.ID, "--data-dir", dir); code != 0 {
		t.Fatalf("keys revoke: %d %s", code, errs)
	}
	if code, out, _ := runCLI(t, "keys", "list", "--data-dir", dir); code != 0 || strings.Contains(out, k.ID) {
		t.Fatalf("after revoke: %d %s", code, out)
	}
	for _, args := range [][]string{{"keys"}, {"keys", "add"}, {"keys", "add", "--scopes", "root"}, {"keys", "revoke"}, {"keys", "nope"}} {
		if code, _, _ := runCLI(t, append(args, "--data-dir", dir)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestMemProfile: --memprofile writes a heap profile (gzipped protobuf);
// a path that cannot be created is an error before the command runs.
func TestMemProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "heap.pprof")
	if code, _, errs := runCLI(t, "version", "--memprofile", path); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("the profile is %d bytes, not gzip", len(b))
	}
	if code, out, errs := runCLI(t, "version", "--memprofile", filepath.Join(dir, "no", "such", "dir")); code != 1 || !strings.Contains(errs, "memprofile") || out != "" {
		t.Errorf("unwritable path: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestCPUProfile: --cpuprofile writes a profile (gzipped, as pprof reads
// it); a path that
// cannot be created is an error before the command runs.
func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cpu.pprof")
	if code, _, errs := runCLI(t, "version", "--cpuprofile", path); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // a profile is gzipped protobuf
		t.Fatalf("the profile is %d bytes, not gzip", len(b))
	}
	if code, out, errs := runCLI(t, "version", "--cpuprofile", filepath.Join(dir, "no", "such", "dir")); code != 1 || !strings.Contains(errs, "cpuprofile") || out != "" {
		t.Errorf("unwritable path: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestDemoPeakRSS: the whole topology, its clients and the demo's
// records stay under 150 MB of resident memory at their peak (what
// `/usr/bin/time -v` reports): the demo holds no per-record state, and
// neither the Go heap (under its 64 MiB soft limit) nor SQLite's page
// caches grow with the records.
func TestDemoPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 500,000 records")
	}
	cmd := childCLI("demo --records 500000 --data-dir " + t.TempDir())
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, errb.String())
	}
	var sum struct{ Acked, Lost int }
	if err := json.Unmarshal(bytes.TrimSpace(out), &sum); err != nil || sum.Acked != 500000 || sum.Lost != 0 {
		t.Fatalf("demo summary %s (%v)", out, err)
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // Linux: KiB
	t.Logf("peak RSS %.1f MB", float64(peak)/1e6)
	if peak >= 150e6 {
		t.Errorf("peak RSS %.1f MB, want under 150 MB", float64(peak)/1e6)
	}
}
