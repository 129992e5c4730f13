package testchild_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/testchild"
)

const childEnv = "TESTCHILD_TEST_CHILD"

// TestChild is the child: it waits to be killed.
func TestChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("runs only as the child of TestStartKill")
	}
	time.Sleep(time.Minute)
	t.Fatal("not killed within a minute")
}

// TestStartKill: the child runs the test it is started for, with the
// environment it is given (else it would skip and exit at once), until
// Kill ends it with SIGKILL; one left running is killed when its test
// ends.
func TestStartKill(t *testing.T) {
	cmd := testchild.Start(t, "TestChild", childEnv+"=1")
	time.Sleep(300 * time.Millisecond) // a child that skipped would have exited by now
	testchild.Kill(t, cmd)
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, want killed by SIGKILL", cmd.ProcessState)
	}

	var left *int
	t.Run("left running", func(t *testing.T) {
		c := testchild.Start(t, "TestChild", childEnv+"=1")
		pid := c.Process.Pid
		left = &pid
	})
	if err := syscall.Kill(*left, 0); err == nil {
		t.Errorf("the child %d of an ended test still runs", *left)
	}
}
