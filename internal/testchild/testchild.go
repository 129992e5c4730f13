// Package testchild runs the test binary again as a child process that
// runs one of its tests: a process that a crash test can kill.
package testchild

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// Start starts the test binary (os.Args[0]) running only the top-level
// test named test, once, with env ("KEY=value") added to the
// environment and its output on the test's standard error. When t ends
// it kills the child unless the child has been waited for.
func Start(t testing.TB, test string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testchild: start %s: %v", test, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// Kill kills cmd with SIGKILL, as a crash would, and waits until it has
// exited.
func Kill(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("testchild: kill %d: %v", cmd.Process.Pid, err)
	}
	_ = cmd.Wait()
}
