// Package gcsettings holds the Go runtime's memory settings an intercloud
// process runs with: a soft memory limit and, under it, a garbage
// collector target that lets the heap grow past twice its live size,
// unless the user set GOGC or GOMEMLIMIT. The binary applies them at
// start; the benchmarks of a running topology (package topology's)
// apply them too, so they measure what the binary does.
package gcsettings

import "runtime/debug"

// DefaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set: the garbage collector runs early rather than let the heap
// grow to twice its live size while a backlog keeps full change batches in
// flight (GOMEMLIMIT=off lifts it).
const DefaultMemoryLimit = 64 << 20

// DefaultGCPercent is the garbage collector's target (GOGC) that goes with
// DefaultMemoryLimit when neither GOGC nor GOMEMLIMIT is set: the live heap
// of a running topology is 12–25 MB, and at the runtime's 100 the collector
// ran every 12–25 MB allocated (10–15 times a second at 20,000 records/s),
// so it lets the heap grow to four times the live size, the memory limit
// still bounding the whole (see docs/benchmarks.md).
const DefaultGCPercent = 300

// memoryLimit is the soft memory limit to set given GOMEMLIMIT's value, or
// false to leave the runtime's own (GOMEMLIMIT set).
func memoryLimit(env string) (int64, bool) {
	if env != "" {
		return 0, false
	}
	return DefaultMemoryLimit, true
}

// gcPercent is the GOGC to set given GOGC's value and whether the default
// memory limit applies (memoryLimit), or false to leave the runtime's own:
// DefaultGCPercent only under the default limit, since without a limit it
// would let the heap grow to four times its live size.
func gcPercent(gogc string, defaultLimit bool) (int, bool) {
	if gogc != "" || !defaultLimit {
		return 0, false
	}
	return DefaultGCPercent, true
}

// Apply sets the settings given the environment (getenv reads GOGC and
// GOMEMLIMIT) and returns a function that puts back the ones it replaced.
func Apply(getenv func(string) string) (restore func()) {
	limit, limited := memoryLimit(getenv("GOMEMLIMIT"))
	pct, setPct := gcPercent(getenv("GOGC"), limited)
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
