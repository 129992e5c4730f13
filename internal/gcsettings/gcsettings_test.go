package gcsettings

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestMemoryLimit: without GOMEMLIMIT the process takes the default soft
// memory limit; with it (a size or off), the runtime's own stands.
func TestMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		env   string
		limit int64
		set   bool
	}{
		{"", DefaultMemoryLimit, true},
		{"off", 0, false},
		{"200MiB", 0, false},
	} {
		if limit, set := memoryLimit(tt.env); limit != tt.limit || set != tt.set {
			t.Errorf("GOMEMLIMIT=%q: %d %v, want %d %v", tt.env, limit, set, tt.limit, tt.set)
		}
	}
}

// TestGCPercent: the higher GOGC goes with any memory limit, the
// default or the user's; a GOGC of the user's, or a lifted limit, leaves
// the runtime's own.
func TestGCPercent(t *testing.T) {
	for _, tt := range []struct {
		gogc, memlimit string
		pct            int
		set            bool
	}{
		{"", "", DefaultGCPercent, true},
		{"100", "", 0, false},
		{"off", "", 0, false},
		{"", "off", 0, false},
		{"", "1GiB", DefaultGCPercent, true},
		{"50", "1GiB", 0, false},
	} {
		if pct, set := gcPercent(tt.gogc, tt.memlimit); pct != tt.pct || set != tt.set {
			t.Errorf("GOGC=%q GOMEMLIMIT=%q: %d %v, want %d %v", tt.gogc, tt.memlimit, pct, set, tt.pct, tt.set)
		}
	}
}

// TestApply reads the runtime's settings back: Apply sets the defaults
// when the environment names neither, leaves them alone when it names
// one, and its restore puts back what was there.
func TestApply(t *testing.T) {
	current := func() (int64, int) {
		pct := debug.SetGCPercent(-1)
		debug.SetGCPercent(pct)
		return debug.SetMemoryLimit(-1), pct // a negative limit only reads it
	}
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(100); debug.SetMemoryLimit(math.MaxInt64) })

	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	restore := Apply(getenv)
	if limit, pct := current(); limit != DefaultMemoryLimit || pct != DefaultGCPercent {
		t.Fatalf("after Apply: limit %d, GOGC %d; want %d, %d", limit, pct, DefaultMemoryLimit, DefaultGCPercent)
	}
	restore()
	if limit, pct := current(); limit != math.MaxInt64 || pct != 100 {
		t.Fatalf("after restore: limit %d, GOGC %d; want %d, 100", limit, pct, int64(math.MaxInt64))
	}

	env["GOGC"] = "50" // the runtime read it at start; Apply leaves it
	restore = Apply(getenv)
	if limit, pct := current(); limit != DefaultMemoryLimit || pct != 100 {
		t.Fatalf("with GOGC set: limit %d, GOGC %d; want %d, 100", limit, pct, DefaultMemoryLimit)
	}
	restore()
	env["GOMEMLIMIT"] = "1GiB" // with GOGC=50 still set: both the user's
	restore = Apply(getenv)
	if limit, pct := current(); limit != math.MaxInt64 || pct != 100 {
		t.Fatalf("with GOGC and GOMEMLIMIT set: limit %d, GOGC %d; want the runtime's own", limit, pct)
	}
	restore()
	delete(env, "GOGC") // the user's limit, the higher GOGC under it
	restore = Apply(getenv)
	if limit, pct := current(); limit != math.MaxInt64 || pct != DefaultGCPercent {
		t.Fatalf("with GOMEMLIMIT set: limit %d, GOGC %d; want the runtime's limit and %d", limit, pct, DefaultGCPercent)
	}
	restore()
	if limit, pct := current(); limit != math.MaxInt64 || pct != 100 {
		t.Fatalf("after restore: limit %d, GOGC %d; want %d, 100", limit, pct, int64(math.MaxInt64))
	}
	env["GOMEMLIMIT"] = "off"
	restore = Apply(getenv)
	if limit, pct := current(); limit != math.MaxInt64 || pct != 100 {
		t.Fatalf("with GOMEMLIMIT=off: limit %d, GOGC %d; want the runtime's own", limit, pct)
	}
	restore()
}
