// Package cputime reads the CPU time this process has used, the measure
// benchmarks report next to wall time: on a machine shared with other
// work the wall time of a stage swings with the CPU it gets, its CPU time
// much less.
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
