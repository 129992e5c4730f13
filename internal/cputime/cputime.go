// Package cputime reads the CPU time this process (Process, Used) or
// another process with everything below it (Tree: a database server with
// its backends) has used, the measure benchmarks report next to wall
// time: on a machine shared with other work the wall time of a stage
// swings with the CPU it gets, its CPU time much less.
package cputime

import (
	"fmt"
	"syscall"
	"time"
)

// Process returns the user and system CPU time the process has used.
func Process() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cputime: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// TB is the part of *testing.T and *testing.B that Used needs (this
// package does not import testing).
type TB interface {
	Helper()
	Fatal(args ...any)
}

// Used returns the CPU time the process has used (Process), and fails tb
// when it cannot be read: the reading a benchmark takes before and after
// the work it measures.
func Used(tb TB) time.Duration {
	tb.Helper()
	d, err := Process()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
