package cputime

import (
	"fmt"
	"testing"
	"time"
)

func TestProcessGrowsWithWork(t *testing.T) {
	if err := burn(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// burn spins until the process has used d more CPU time, as Process
// reads it; it gives up after 10 s of wall time (a machine that busy
// would fail anyway).
func burn(d time.Duration) error {
	start, err := Process()
	if err != nil {
		return err
	}
	x := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		for i := 0; i < 100_000; i++ {
			x += i
		}
		now, err := Process()
		if err != nil {
			return err
		}
		if now-start >= d {
			return nil
		}
	}
	return fmt.Errorf("CPU time did not grow by %v while spinning for 10 s (%d)", d, x)
}

// fatalRecorder records what Used reports.
type fatalRecorder struct{ fatal []any }

func (*fatalRecorder) Helper()             {}
func (r *fatalRecorder) Fatal(args ...any) { r.fatal = args }

func TestUsed(t *testing.T) {
	before, err := Process()
	if err != nil {
		t.Fatal(err)
	}
	var r fatalRecorder
	got := Used(&r)
	after, err := Process()
	if err != nil {
		t.Fatal(err)
	}
	if r.fatal != nil || got < before || got > after {
		t.Fatalf("Used = %v (fatal %v), want between %v and %v", got, r.fatal, before, after)
	}
}
