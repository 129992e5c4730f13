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
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/replicate"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func TestPruneKeepsWhatAReaderStillNeeds(t *testing.T) {
	cfg := config.Default(t.TempDir())
	for _, c := range cfg.Clouds {
		c.API = "127.0.0.1:0"
		if c.Origin != "" {
			c.Origin = "127.0.0.1:0"
		}
	}
	cfg.Edge.Listen, cfg.FrontDoor.Listen, cfg.Logs.Listen, cfg.Console.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	ctx := context.Background()
	topo, err := Start(ctx, cfg, Options{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Stop(ctx)
	aws, azure := topo.Cloud("aws"), topo.Cloud("azure")
	changes := func(db *sqldb.DB) int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM _ic_changes`).Scan(&n); err != nil {
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
		_ = azure.DB.QueryRow(`SELECT COUNT(*) FROM _ic_published`).Scan(&n)
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
	time.Sleep(300 * time.Millisecond) // let every reader checkpoint its last batch
	topo.prune(ctx)
	if n := changes(aws.DB); n != 0 {
		t.Fatalf("aws change table keeps %d changes every reader applied", n)
	}
	if n := changes(azure.DB); n != 0 {
		t.Fatalf("azure change table keeps %d changes every reader applied", n)
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
