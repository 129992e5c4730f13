package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/objects"
)

// upCLI runs `intercloud up` in this process and returns the URLs it
// printed by name, and a stop that interrupts it and waits until it has
// stopped (also called when the test ends).
func upCLI(t *testing.T, args ...string) (map[string]string, func()) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"up"}, args...), pw, io.Discard)
		pw.Close()
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("up exit %d", code)
				}
			case <-time.After(60 * time.Second):
				var stacks strings.Builder
				_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
				t.Errorf("up did not stop; goroutines:\n%s", stacks.String())
			}
		})
	}
	t.Cleanup(stop)
	urls := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			urls[f[0]] = f[1]
		}
		if urls["logs"] != "" && urls["frontdoor"] != "" {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if urls["frontdoor"] == "" {
		t.Fatal("up printed no front door")
	}
	return urls, stop
}

// idsOf returns the record ids of a raw object.
func idsOf(t *testing.T, objectsURL, key string) []string {
	t.Helper()
	b, err := objects.Open(context.Background(), objectsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data, _, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		var r struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.ID == "" {
			continue // a shared line: what the next records share, no record
		}
		ids = append(ids, r.ID)
	}
	return ids
}

func writeConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "topology.yaml")
	yaml := `clouds:
  aws: {api: "127.0.0.1:0"}
  azure: {api: "127.0.0.1:0", origin: "127.0.0.1:0"}
edge: {listen: "127.0.0.1:0"}
frontdoor: {listen: "127.0.0.1:0", health_interval: 100ms}
logs: {listen: "127.0.0.1:0"}
console: {listen: "127.0.0.1:0"}
functions: {backoff: 20ms, max_backoff: 200ms, reconcile: 300ms}
` + extra
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// validateUntil runs `intercloud validate` until its exit code is want.
func validateUntil(t *testing.T, want int, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, out, errs := runCLI(t, append([]string{"validate"}, args...)...)
		if code == want {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("validate exit %d, want %d\n%s%s", code, want, out, errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestLostMarkerFailsValidateAndIsRepaired: a loaded-object marker that is
// deleted (with, for a second object, its rows) makes validate fail and
// name the objects and ids; the reconciler loads them again and validate
// passes.
func TestLostMarkerFailsValidateAndIsRepaired(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("INTERCLOUD_API_KEY", "test-key")
	cfg := writeConfig(t, dir, "")
	args := []string{"--config", cfg, "--data-dir", dir}
	urls, stop := upCLI(t, args...)
	// Two sends one after the other: at least two raw objects, whatever
	// the group commit packs together.
	for range 2 {
		acked, err := demo.Send(context.Background(), urls["frontdoor"], "test-key", demo.Options{Records: 150, BatchSize: 30, Client: testClient(t, cfg, dir)})
		if err != nil || len(acked) != 150 {
			t.Fatalf("send: %d acked, %v", len(acked), err)
		}
	}
	out := validateUntil(t, 0, args...)
	if !strings.Contains(out, "completeness:") || !strings.Contains(out, "300 records: ok") {
		t.Fatalf("validate:\n%s", out)
	}
	stop()

	db, err := sql.Open("sqlite", filepath.Join(dir, "aws", "sql.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var keys []string
	rows, err := db.Query(`SELECT "key" FROM "_ic_loaded" ORDER BY "key" LIMIT 2`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		keys = append(keys, k)
	}
	rows.Close()
	if len(keys) != 2 {
		t.Fatalf("loaded keys %v", keys)
	}
	lost, gone := keys[0], keys[1]
	goneIDs := idsOf(t, config.Default(dir).Clouds["aws"].Objects, gone)
	for _, k := range keys {
		if _, err := db.Exec(`DELETE FROM "_ic_loaded" WHERE "key" = ?`, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`DELETE FROM records WHERE id IN ('` + strings.Join(goneIDs, "','") + `')`); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, append([]string{"validate"}, args...)...)
	if code != 1 || !strings.Contains(out, "not loaded: aws "+lost) || !strings.Contains(out, "not loaded: aws "+gone) ||
		!strings.Contains(out, "missing: id "+goneIDs[0]+" (from aws "+gone+") not in aws") {
		t.Fatalf("validate after losing markers: exit %d\n%s", code, out)
	}

	upCLI(t, args...)
	out = validateUntil(t, 0, args...)
	if !strings.Contains(out, "300 records: ok") {
		t.Fatalf("validate after repair:\n%s", out)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM "_ic_loaded" WHERE "key" IN (?, ?)`, lost, gone).Scan(&n); err != nil || n != 2 {
		t.Fatalf("markers back: %d, %v", n, err)
	}
}
