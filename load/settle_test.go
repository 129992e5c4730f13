package load

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/intercloud/intercloud/ingest"
)

// v7Key names a raw object in partition part as the API does: a UUIDv7
// of time at, n its counter.
func v7Key(part string, at time.Time, n int) string {
	return part + ingest.DerivedID("k", at, n) + ".ndjson"
}

// TestSettled: a key is settled once the UUIDv7 time in its name is
// SettleAfter old; a name without one always is.
func TestSettled(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		key  string
		want bool
	}{
		{v7Key("raw/2026/12/01/10/", now.Add(-SettleAfter-time.Second), 1), true},
		{v7Key("raw/2026/12/01/10/", now.Add(-SettleAfter+time.Second), 1), false},
		{v7Key("raw/2026/12/01/10/", now, 1), false},
		{"raw/2026/12/01/10/" + uuid.NewString() + ".ndjson", true}, // version 4
		{"raw/2026/12/01/10/0001.ndjson", true},
		{"raw/2026/12/01/10/.ndjson", true},
	} {
		if got := settled(c.key, now); got != c.want {
			t.Errorf("settled(%s) = %v, want %v", c.key, got, c.want)
		}
	}
}

// TestPendingForgetsSettledKeys: what passes of Pending keep of a
// partition's loaded keys is bounded by the last SettleAfter, not the
// hour: 300 loaded keys named 10 minutes ago are held as one key (the
// last of them), 5 named now one by one until they settle, and neither
// is asked about again. A key that appears later under a settled name
// before it is found by the next full pass (and by its notification).
func TestPendingForgetsSettledKeys(t *testing.T) {
	l, b, _ := setup(t)
	part := PartitionOf(time.Now())
	old := time.Now().Add(-10 * time.Minute)
	put := func(key string, load bool) { t.Helper(); putRaw(t, l, b, key, load) }
	for i := range 300 {
		put(v7Key(part, old.Add(time.Duration(i)*time.Millisecond), i), true)
	}
	for i := range 5 {
		put(v7Key(part, time.Now(), i), true)
	}
	pass := func(full bool) ([]string, int64) { t.Helper(); return pendingPass(t, l, full) }
	if got, asked := pass(false); len(got) != 0 || asked != 305 {
		t.Fatalf("first pass: submitted %v, asked about %d keys, want none and 305", got, asked)
	}
	k := l.known[part]
	if want := v7Key(part, old.Add(299*time.Millisecond), 299); k.upTo != want || len(k.loaded) != 5 {
		t.Fatalf("known: up to %s and %d keys one by one, want up to %s and 5", k.upTo, len(k.loaded), want)
	}
	if got, asked := pass(false); len(got) != 0 || asked != 0 {
		t.Fatalf("second pass: submitted %v, asked about %d keys, want none and 0", got, asked)
	}
	late := v7Key(part, old.Add(150*time.Millisecond), 1000)
	put(late, false)
	if got, asked := pass(false); len(got) != 0 || asked != 0 {
		t.Fatalf("a settled late key: submitted %v, asked about %d keys, want none and 0", got, asked)
	}
	if got, _ := pass(true); fmt.Sprint(got) != fmt.Sprint([]string{late}) {
		t.Fatalf("full pass: submitted %v, want %s", got, late)
	}
}
