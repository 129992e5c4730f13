package mysqlsrc_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	osexec "os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/testchild"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

const (
	childSrcEnv = "MYSQLSRC_CHILD_SRC"
	childDstEnv = "MYSQLSRC_CHILD_DST"
)

// TestChildStream is the child process of the kill test: it replicates
// between the URLs its environment names until it is killed.
func TestChildStream(t *testing.T) {
	srcURL, dstURL := os.Getenv(childSrcEnv), os.Getenv(childDstEnv)
	if srcURL == "" || dstURL == "" {
		t.Skip("runs only as a child of TestMariaDB/KillRestart")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	s, err := replicate.New(replicate.Config{
		Name: "killed", Source: sourcetest.Open(t, srcURL), Target: sourcetest.Open(t, dstURL),
		Tables: []string{"items"}, BatchSize: 500, Logger: sourcetest.Quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func startChild(t *testing.T, srcURL, dstURL string) *osexec.Cmd {
	t.Helper()
	return testchild.Start(t, "TestChildStream", childSrcEnv+"="+srcURL, childDstEnv+"="+dstURL)
}

func loadCheckpoint(t *testing.T, dst *sqldb.DB, name string) replicate.Checkpoint {
	t.Helper()
	if err := replicate.EnsureCheckpoints(context.Background(), dst); err != nil {
		t.Fatal(err)
	}
	cp, err := replicate.LoadCheckpoint(context.Background(), dst, dst.Dialect, name)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// versionTrigger makes the target count every write of a row: each insert
// or update of items bumps writes.n for its id.
const versionDDL = `CREATE TABLE writes (id BIGINT PRIMARY KEY, n INT NOT NULL);
CREATE FUNCTION count_write() RETURNS trigger AS $$
BEGIN
  INSERT INTO writes (id, n) VALUES (NEW.id, 1) ON CONFLICT (id) DO UPDATE SET n = writes.n + 1;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER items_writes AFTER INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION count_write();`

// testKill kills (SIGKILL) the replicating process during the full load
// and during CDC; the resumed stream converges, and the rows no source
// change touched after the load were written exactly once.
func testKill(t *testing.T, e *env) {
	srcURL, dstURL := e.mysqlURL(t, ""), e.pgURL(t)
	src, dst := sourcetest.Open(t, srcURL), sourcetest.Open(t, dstURL)
	sourcetest.Exec(t, src, itemsDDL)
	fillItems(t, src, 1, 20001)
	// The target table exists before the stream, with the write counter.
	sourcetest.Exec(t, dst, "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL, qty INTEGER NULL, price NUMERIC(12,2) NULL, _trace_id VARCHAR(64) NULL)")
	for _, stmt := range splitPL(versionDDL) {
		sourcetest.Exec(t, dst, stmt)
	}

	// Kill 1: during the full load.
	child := startChild(t, srcURL, dstURL)
	sourcetest.WaitFor(t, "a loaded chunk", 60*time.Second, func() bool {
		cp := loadCheckpoint(t, dst, "killed")
		states, err := replicate.LoadTableStates(context.Background(), dst, "killed")
		return err == nil && cp.Phase == replicate.PhaseSnapshot && len(states["items"].LastKey) > 0
	})
	sourcetest.Exec(t, src, "UPDATE items SET name = 'during-load' WHERE id % 13 = 0")
	testchild.Kill(t, child)
	if cp := loadCheckpoint(t, dst, "killed"); cp.Phase != replicate.PhaseSnapshot {
		t.Logf("the load finished before the kill (checkpoint %+v)", cp)
	}

	// Kill 2: during CDC, with a stream of changes.
	child = startChild(t, srcURL, dstURL)
	sourcetest.WaitFor(t, "cdc", 60*time.Second, func() bool { return loadCheckpoint(t, dst, "killed").Phase == replicate.PhaseCDC })
	before := loadCheckpoint(t, dst, "killed").Position
	for i := 0; i < 30; i++ {
		sourcetest.Exec(t, src, "UPDATE items SET qty = ? WHERE id % 50 = ?", 1000+i, i)
		sourcetest.Exec(t, src, "INSERT INTO items (id, name) VALUES (?, ?)", 100000+i, fmt.Sprint("new-", i))
		sourcetest.Exec(t, src, "DELETE FROM items WHERE id = ?", 5000+i)
	}
	sourcetest.WaitFor(t, "cdc progress", 60*time.Second, func() bool { return loadCheckpoint(t, dst, "killed").Position != before })
	testchild.Kill(t, child)
	sourcetest.Exec(t, src, "UPDATE items SET id = id + 50000 WHERE id BETWEEN 200 AND 220")

	r := sourcetest.Start(t, replicate.Config{Name: "killed", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 500})
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
	// Rows that no change touched after the load started are in the load
	// only: a chunk replayed after the kill writes them again, but never
	// CDC. Rows no statement above touched: id % 13 != 0, id % 50 >= 30.
	var twice int64
	if err := dst.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM writes w JOIN items i ON i.id = w.id
WHERE w.n > 2 AND i.id % 13 <> 0 AND i.id % 50 >= 30 AND i.id < 100000`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice > 0 {
		t.Errorf("%d untouched rows were written more than twice (once by the load, once more only by a replayed chunk)", twice)
	}
	// CDC changes after the last kill are applied exactly once.
	if n := sourcetest.Count(t, dst, "SELECT MAX(n) FROM writes WHERE id BETWEEN 50200 AND 50220"); n != 1 {
		t.Errorf("rows inserted by the last change written %d times", n)
	}
}

// splitPL splits statements at ";\n" outside $$ bodies.
func splitPL(s string) []string {
	var out []string
	var cur strings.Builder
	in := false
	for _, line := range strings.Split(s, "\n") {
		if strings.Count(line, "$$")%2 == 1 {
			in = !in
		}
		cur.WriteString(line + "\n")
		if !in && strings.HasSuffix(strings.TrimSpace(line), ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	return out
}

// testServerRestart stops and starts MariaDB while the stream runs.
func testServerRestart(t *testing.T, e *env) {
	src := sourcetest.Open(t, e.mysqlURL(t, ""))
	dst := sourcetest.Open(t, sqliteURL(t))
	sourcetest.Exec(t, src, itemsDDL)
	fillItems(t, src, 1, 101)
	r := sourcetest.Start(t, replicate.Config{Name: "restart", Source: src, Target: dst, Tables: []string{"items"}})
	waitCaughtUp(t, r, src)
	e.my.Stop(t)
	time.Sleep(300 * time.Millisecond)
	e.my.Start(t)
	sourcetest.WaitFor(t, "source back", 30*time.Second, func() bool { return src.PingContext(context.Background()) == nil })
	fillItems(t, src, 1000, 1100)
	sourcetest.Exec(t, src, "DELETE FROM items WHERE id < 50")
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
	if st := r.Stream.Status(); st.LastError == "" {
		t.Log("the restart went unnoticed by the stream")
	}
}

// testBidirectional runs MariaDB → SQLite and SQLite → MariaDB with
// SkipReplicated: writes on either side reach the other, nothing echoes.
func testBidirectional(t *testing.T, e *env) {
	my := sourcetest.Open(t, e.mysqlURL(t, ""))
	lite := sourcetest.Open(t, sqliteURL(t))
	sourcetest.Exec(t, my, itemsDDL)
	sourcetest.Exec(t, lite, `CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(64) NOT NULL, qty INTEGER, price DECIMAL_TEXT(12,2), _trace_id VARCHAR(64))`)
	if err := replicate.Prepare(context.Background(), lite, []string{"items"}, sourcetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	var echoes atomicCount
	ab := sourcetest.Start(t, replicate.Config{Name: "my-to-lite", Origin: "aws", Source: my, Target: lite, Tables: []string{"items"}, SkipReplicated: true, SkipFullLoad: true,
		OnApplied: func(b replicate.Batch) {
			echoes.add(b, func(id int64) bool { return id >= 1_000_000 && id != 1_000_005 })
		}})
	ba := sourcetest.Start(t, replicate.Config{Name: "lite-to-my", Origin: "azure", Source: lite, Target: my, Tables: []string{"items"}, SkipReplicated: true, SkipFullLoad: true,
		OnApplied: func(b replicate.Batch) { echoes.add(b, func(id int64) bool { return id < 1_000_000 }) }})
	fillItems(t, my, 1, 201)
	err := lite.Tx(context.Background(), func(tx *sql.Tx) error {
		for i := 1_000_000; i < 1_000_200; i++ {
			if _, err := tx.Exec("INSERT INTO items (id, name, qty) VALUES (?, ?, ?)", i, fmt.Sprint("lite-", i), i%5); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.WaitFor(t, "both sides", 60*time.Second, func() bool {
		return sourcetest.Count(t, my, "SELECT COUNT(*) FROM items") == 400 && sourcetest.Count(t, lite, "SELECT COUNT(*) FROM items") == 400
	})
	sourcetest.Exec(t, my, "UPDATE items SET qty = 99 WHERE id = 1000005")
	waitCaughtUp(t, ab, my)
	sourcetest.WaitFor(t, "update on sqlite", 30*time.Second, func() bool {
		return sourcetest.Count(t, lite, "SELECT COUNT(*) FROM items WHERE id = 1000005 AND qty = 99") == 1
	})
	time.Sleep(500 * time.Millisecond) // room for an echo to show
	mustValidate(t, my, lite, "items")
	if n := echoes.n.Load(); n != 0 {
		t.Fatalf("%d changes echoed back to their origin", n)
	}
	_ = ba
}

// atomicCount counts the changes of batches whose key is an echo.
type atomicCount struct{ n atomic.Int64 }

func (c *atomicCount) add(b replicate.Batch, echo func(id int64) bool) {
	for _, ch := range b.Changes {
		if len(ch.Key) == 1 {
			if n, err := sqldb.Normalize(sqldb.Type{Kind: sqldb.KindInt}, ch.Key[0]); err == nil {
				if id, ok := n.(int64); ok && echo(id) {
					c.n.Add(1)
				}
			}
		}
	}
}
