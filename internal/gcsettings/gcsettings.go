// Package gcsettings holds the Go runtime's memory settings an intercloud
// process runs with: a soft memory limit unless the user set GOMEMLIMIT
// and, under that limit or the user's, a garbage collector target that
// lets the heap grow past twice its live size unless the user set GOGC
// (or lifted the limit with GOMEMLIMIT=off). The binary applies them at
// start; the benchmarks of a running topology (package topology's)
// apply them too, so they measure what the binary does.
package gcsettings

import "runtime/debug"

// DefaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set: the garbage collector runs early rather than let the heap
// grow to twice its live size while a backlog keeps full change batches in
// flight (GOMEMLIMIT=off lifts it).
const DefaultMemoryLimit = 64 << 20

// DefaultGCPercent is the garbage collector's target (GOGC) under a memory
// limit (DefaultMemoryLimit, or the user's GOMEMLIMIT) when GOGC is not
// set: the live heap of a running topology is 12–25 MB, and at the
// runtime's 100 the collector ran every 12–25 MB allocated (10–15 times a
// second at 20,000 records/s), so it lets the heap grow to four times the
// live size, the memory limit still bounding the whole (see
// docs/benchmarks.md).
const DefaultGCPercent = 300

// memoryLimit is the soft memory limit to set given GOMEMLIMIT's value, or
// false to leave the runtime's own (GOMEMLIMIT set).
func memoryLimit(env string) (int64, bool) {
	if env != "" {
		return 0, false
	}
	return DefaultMemoryLimit, true
}

// gcPercent is the GOGC to set given GOGC's and GOMEMLIMIT's values, or
// false to leave the runtime's own: DefaultGCPercent under any memory
// limit (the default or the user's, as the Kubernetes manifests set it
// from the container's), not when GOGC is set or GOMEMLIMIT=off lifts
// the limit, since without one it would let the heap grow to four times
// its live size. A deployment that sets its container's limit thus
// collects as rarely as the binary's default does (at the runtime's 100,
// after a third of the allocation; see docs/benchmarks.md, "A fifth
// machine").
func gcPercent(gogc, gomemlimit string) (int, bool) {
	if gogc != "" || gomemlimit == "off" {
		return 0, false
	}
	return DefaultGCPercent, true
}

// Apply sets the settings given the environment (getenv reads GOGC and
// GOMEMLIMIT) and returns a function that puts back the ones it replaced.
func Apply(getenv func(string) string) (restore func()) {
	memlimit := getenv("GOMEMLIMIT")
	limit, limited := memoryLimit(memlimit)
	pct, setPct := gcPercent(getenv("GOGC"), memlimit)
	var oldLimit int64
	var oldPct int
	if limited {
		oldLimit = debug.SetMemoryLimit(limit)
	}
	if setPct {
		oldPct = debug.SetGCPercent(pct)
	}
	return func() {
		if setPct {
			debug.SetGCPercent(oldPct)
		}
		if limited {
			debug.SetMemoryLimit(oldLimit)
		}
	}
}
