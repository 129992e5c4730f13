package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
)

// TestDeadListReplay: dead letters are listed with their cloud, key,
// records, age and error, and replayed through the same load: the one
// whose cause is gone loads, the malformed one stays dead (exit 1).
func TestDeadListReplay(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("INTERCLOUD_API_KEY", "k")
	cfg := config.Default(dir)
	ctx := context.Background()
	b, err := objects.Open(ctx, cfg.Clouds["aws"].Objects, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	part := load.PartitionOf(time.Now())
	lines := `{"id":"dead-1","_origin":"aws","_trace_id":"t1","_ingested_at":"2026-11-24T10:00:00Z","device":"d","metric":"cpu","value":1,"ts":"2026-11-24T10:00:00Z"}
{"id":"dead-2","_origin":"aws","_trace_id":"t1","_ingested_at":"2026-11-24T10:00:00Z","device":"d","metric":"cpu","value":2,"ts":"2026-11-24T10:00:00Z"}
`
	good, bad := part+"good.ndjson", part+"bad.ndjson"
	for key, body := range map[string]string{good: lines, bad: "not json\n"} {
		if err := b.Put(ctx, load.DeadPrefix+key, []byte(body), &objects.PutOptions{Metadata: map[string]string{load.MetaError: "dial tcp 127.0.0.1:3306: connect: connection refused", load.MetaAttempts: "5"}}); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing ran yet: the databases are made by the first command.
	if code, _, errs := runCLI(t, "dead", "replay", "--data-dir", dir); code != 2 || !strings.Contains(errs, "--all or the keys") {
		t.Fatalf("replay without keys: exit %d\n%s", code, errs)
	}
	code, out, errs := runCLI(t, "dead", "list", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("dead list exit %d\n%s", code, errs)
	}
	lns := strings.Split(strings.TrimSpace(out), "\n")
	if len(lns) != 3 || !strings.HasPrefix(lns[0], "CLOUD") {
		t.Fatalf("dead list:\n%s", out)
	}
	for i, want := range []string{bad, good} {
		f := strings.Fields(lns[i+1])
		if f[0] != "aws" || f[1] != want || !strings.Contains(lns[i+1], "connection refused") {
			t.Fatalf("line %q, want aws %s ... connection refused", lns[i+1], want)
		}
	}
	if f := strings.Fields(lns[2]); f[2] != "2" || !strings.HasSuffix(f[3], "s") {
		t.Fatalf("records/age of %q", lns[2])
	}
	code, out, _ = runCLI(t, "dead", "list", "--json", "--cloud", "aws", "--data-dir", dir)
	if code != 0 || strings.Count(out, `"cloud":"aws"`) != 2 || !strings.Contains(out, `"records":2`) {
		t.Fatalf("dead list --json: %d\n%s", code, out)
	}

	code, out, errs = runCLI(t, "dead", "replay", "--all", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, good+"\tloaded: 2 records, 2 new") || !strings.Contains(out, bad+"\tfailed") {
		t.Fatalf("replay --all: exit %d\n%s%s", code, out, errs)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "aws", "sql.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM records WHERE id IN ('dead-1', 'dead-2')`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d replayed rows, %v", n, err)
	}
	code, out, _ = runCLI(t, "dead", "list", "--data-dir", dir)
	if code != 0 || strings.Contains(out, good) || !strings.Contains(out, bad) || !strings.Contains(out, "line 1") {
		t.Fatalf("after replay: %d\n%s", code, out)
	}
	if code, out, _ := runCLI(t, "dead", "replay", "--data-dir", dir, "dead/"+part+"nope.ndjson"); code != 1 || !strings.Contains(out, "no such dead letter") {
		t.Fatalf("replay of an unknown key: %d\n%s", code, out)
	}
}
