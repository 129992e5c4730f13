package topology

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/replicate"
	_ "github.com/intercloud/intercloud/replicate/pollsrc"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func TestPruneKeepsWhatAReaderStillNeeds(t *testing.T) {
	// The log source's change table (SQLite) and the poll source's.
	for mode, table := range map[string]string{config.SourceLog: "_ic_changes", config.SourcePoll: "_ic_poll_log"} {
		t.Run(mode, func(t *testing.T) { testPruneKeeps(t, mode, table) })
	}
}

func testPruneKeeps(t *testing.T, mode, table string) {
	cfg := config.Default(t.TempDir())
	cfg.Replication.Source = mode
	cfg.ListenOnFreePorts()
	ctx := context.Background()
	topo, err := Start(ctx, cfg, Options{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Stop(ctx)
	aws, azure := topo.Cloud("aws"), topo.Cloud("azure")
	changes := func(db *sqldb.DB) int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var body strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&body, `{"device":"d","metric":"m","value":%d,"ts":"2026-11-24T10:00:00Z"}`+"\n", i)
	}
	req, _ := http.NewRequest(http.MethodPost, topo.URL("aws-api")+"/v1/records", strings.NewReader(body.String()))
	req.Header.Set("Authorization", "Bearer k")
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := topo.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		_ = azure.DB.QueryRow(`SELECT COUNT(*) FROM _ic_publish_rows`).Scan(&n)
		var rows int
		_ = azure.DB.QueryRow(`SELECT COUNT(*) FROM records`).Scan(&rows)
		if rows == 100 && n > 0 && changes(aws.DB) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("records did not arrive")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every reader checkpoints its last batch: at once, or within a
	// second and a half for a batch that only moved its position (the
	// reverse stream skips every replicated change).
	deadline = time.Now().Add(10 * time.Second)
	for {
		topo.prune(ctx)
		a, z := changes(aws.DB), changes(azure.DB)
		if a == 0 && z == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change tables keep %d (aws) and %d (azure) changes every reader applied", a, z)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A reader that falls behind holds the rest back.
	err = azure.DB.Tx(ctx, func(tx *sql.Tx) error {
		return replicate.SaveCheckpoint(ctx, tx, azure.DB.Dialect, "laggard", replicate.Checkpoint{Phase: replicate.PhaseCDC, Position: "0"})
	})
	if err != nil {
		t.Fatal(err)
	}
	topo.addReader(azure.DB, "laggard", azure.DB)
	if _, err := azure.DB.Exec(`UPDATE records SET value = value + 1 WHERE id = (SELECT MIN(id) FROM records)`); err != nil {
		t.Fatal(err)
	}
	before := changes(azure.DB)
	topo.prune(ctx)
	if after := changes(azure.DB); after != before || before == 0 {
		t.Fatalf("pruned past a reader's checkpoint: %d → %d", before, after)
	}
}

// TestSplitModeTrimsAndExpires runs each cloud as a topology of its own
// (as `up --cloud aws` and `up --cloud azure` do): the change tables are
// still trimmed to empty once every reader has applied them, through the
// positions the streams confirm in the source, and a loaded raw object past
// its retention is deleted while its records stay.
func TestSplitModeTrimsAndExpires(t *testing.T) {
	cfg := config.Default(t.TempDir())
	cfg.ListenOnFreePorts()
	cfg.Functions.Reconcile = config.Duration(300 * time.Millisecond)
	cfg.Retention.Raw = config.Duration(time.Millisecond)
	ctx := context.Background()
	var topos []*Topology
	for _, role := range []string{"aws", "azure"} {
		topo, err := Start(ctx, cfg, Options{Roles: []string{role}, APIKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		defer topo.Stop(ctx)
		topos = append(topos, topo)
	}
	aws, azure := topos[0].Cloud("aws"), topos[1].Cloud("azure")
	post := func(topo *Topology, api string, n int) {
		var body strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&body, `{"device":"d","metric":"m","value":%d,"ts":"2026-11-24T10:00:00Z"}`+"\n", i)
		}
		req, _ := http.NewRequest(http.MethodPost, api+"/v1/records", strings.NewReader(body.String()))
		req.Header.Set("Authorization", "Bearer k")
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := topo.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("ingest: %d", resp.StatusCode)
		}
	}
	post(topos[0], topos[0].URL("aws-api"), 100)
	post(topos[1], topos[1].URL("azure-api"), 50)
	rows := func(db *sqldb.DB) int {
		var n int
		_ = db.QueryRow(`SELECT COUNT(*) FROM records`).Scan(&n)
		return n
	}
	changes := func(db *sqldb.DB) int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM _ic_changes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(time.Minute)
	for rows(aws.DB) != 150 || rows(azure.DB) != 150 {
		if time.Now().After(deadline) {
			t.Fatalf("records: aws %d, azure %d, want 150 each", rows(aws.DB), rows(azure.DB))
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := [2]int{changes(aws.DB), changes(azure.DB)}
	if before[0] == 0 || before[1] == 0 {
		t.Fatalf("change tables %v before trimming, want rows in both", before)
	}
	for {
		for _, topo := range topos {
			topo.prune(ctx)
		}
		if changes(aws.DB) == 0 && changes(azure.DB) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("change tables %d and %d a minute on (were %v): not trimmed in split mode", changes(aws.DB), changes(azure.DB), before)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("change tables trimmed in split mode: aws %d → 0, azure %d → 0", before[0], before[1])

	// A raw object of an hour long past, loaded, then past its retention.
	key := "raw/2026/01/01/00/old.ndjson"
	line := `{"id":"from-the-past","device":"d","metric":"cpu","value":1,"ts":"2026-01-01T00:00:00Z","_origin":"aws","_trace_id":"t","_ingested_at":"2026-01-01T00:00:00Z"}` + "\n"
	if err := aws.Bucket.Put(ctx, key, []byte(line), nil); err != nil {
		t.Fatal(err)
	}
	for {
		var n int
		_ = aws.DB.QueryRow(`SELECT COUNT(*) FROM records WHERE id = 'from-the-past'`).Scan(&n)
		if n == 1 {
			break
		}
		if time.Now().After(deadline.Add(time.Minute)) {
			t.Fatal("the old raw object was not loaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	topos[0].expireRaw(ctx, aws)
	if ok, _ := aws.Bucket.Exists(ctx, key); ok {
		t.Fatal("a loaded raw object past its retention is still there")
	}
	var n int
	if err := aws.DB.QueryRow(`SELECT COUNT(*) FROM records`).Scan(&n); err != nil || n != 151 {
		t.Fatalf("records after expiry: %d, %v", n, err)
	}
	// The recent objects (this hour) stay.
	recent := 0
	_ = aws.Bucket.List(ctx, load.RawPrefix, func(objects.Object) error { recent++; return nil })
	if recent == 0 {
		t.Fatal("recent raw objects were deleted")
	}
}
