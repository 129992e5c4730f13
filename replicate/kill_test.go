package replicate_test

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/testchild"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

const (
	childSrcEnv = "REPLICATE_CHILD_SRC"
	childDstEnv = "REPLICATE_CHILD_DST"
)

// TestChildStream is the child process of TestKillRestart: it runs a stream
// between the databases its environment names until it is killed.
func TestChildStream(t *testing.T) {
	srcPath, dstPath := os.Getenv(childSrcEnv), os.Getenv(childDstEnv)
	if srcPath == "" || dstPath == "" {
		t.Skip("runs only as the child of TestKillRestart")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	s, err := replicate.New(replicate.Config{
		Name: "killed", Source: openAt(t, srcPath), Target: openAt(t, dstPath),
		Tables: []string{"items"}, BatchSize: 50, Poll: 5 * time.Millisecond, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func startChild(t *testing.T, srcPath, dstPath string) *osexec.Cmd {
	t.Helper()
	return testchild.Start(t, "TestChildStream", childSrcEnv+"="+srcPath, childDstEnv+"="+dstPath)
}

func kill(t *testing.T, cmd *osexec.Cmd) {
	t.Helper()
	testchild.Kill(t, cmd)
}

func checkpoint(t *testing.T, dst *sqldb.DB) replicate.Checkpoint {
	t.Helper()
	if err := replicate.EnsureCheckpoints(context.Background(), dst); err != nil {
		t.Fatal(err)
	}
	cp, err := replicate.LoadCheckpoint(context.Background(), dst, dst.Dialect, "killed")
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// TestKillRestart kills (SIGKILL) a replicating process mid-load and
// mid-CDC while the source keeps changing, restarts it, and checks the
// target ends equal to the source.
func TestKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	srcPath, dstPath := dir+"/src.db", dir+"/dst.db"
	src, dst := openAt(t, srcPath), openAt(t, dstPath)
	exec(t, src, itemsDDL)
	if err := replicate.Prepare(ctx, src, []string{"items"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	fillItems(t, src, 1, 3001)

	// Kill 1: during the full load.
	child := startChild(t, srcPath, dstPath)
	// A fast machine may finish the load before the first look: then
	// the kill lands in CDC, which the second half covers as well.
	waitFor(t, "a loaded chunk", 30*time.Second, func() bool {
		cp := checkpoint(t, dst)
		if cp.Phase == replicate.PhaseCDC {
			return true
		}
		states, err := replicate.LoadTableStates(context.Background(), dst, "killed")
		// On a fast run the load may be done before a chunk is seen.
		return err == nil && (cp.Phase == replicate.PhaseSnapshot && len(states["items"].LastKey) > 0 || cp.Phase == replicate.PhaseCDC)
	})
	exec(t, src, `UPDATE items SET name = 'during-load' WHERE id % 13 = 0`)
	kill(t, child)
	if cp := checkpoint(t, dst); cp.Phase != replicate.PhaseSnapshot {
		t.Logf("the load finished before the kill (checkpoint %+v)", cp)
	}

	// Kill 2: during CDC, with changes streaming in.
	child = startChild(t, srcPath, dstPath)
	waitFor(t, "cdc", 30*time.Second, func() bool { return checkpoint(t, dst).Phase == replicate.PhaseCDC })
	for i := 0; i < 20; i++ {
		exec(t, src, `UPDATE items SET qty = ? WHERE id % 20 = ?`, 1000+i, i)
		exec(t, src, `INSERT INTO items (id, name) VALUES (?, ?)`, 10000+i, fmt.Sprint("new-", i))
		exec(t, src, `DELETE FROM items WHERE id = ?`, 100+i)
	}
	before := checkpoint(t, dst).Position
	waitFor(t, "cdc progress", 30*time.Second, func() bool { return checkpoint(t, dst).Position != before })
	kill(t, child)
	exec(t, src, `UPDATE items SET id = id + 50000 WHERE id BETWEEN 200 AND 220`)

	// The restarted stream converges.
	r := sourcetest.Start(t, replicate.Config{Name: "killed", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 50, Poll: 5 * time.Millisecond})
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "items")
}
