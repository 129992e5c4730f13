package load

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/intercloud/intercloud/functions"
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
// A pass lists only the keys after the mark.
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
	// A pass lists the keys after the mark only: what it allocates does
	// not grow with the keys before it (listing them all cost about five
	// allocations a key on the file store).
	before := testing.AllocsPerRun(5, func() { pass(false) })
	for i := 300; i < 600; i++ {
		put(v7Key(part, old.Add(time.Duration(i)*time.Millisecond), i), true)
	}
	pass(false)
	if k.upTo != v7Key(part, old.Add(599*time.Millisecond), 599) {
		t.Fatalf("known: up to %s, want the 600th key", k.upTo)
	}
	after := testing.AllocsPerRun(5, func() { pass(false) })
	if after-before >= 150 {
		t.Errorf("a pass allocated %.0f times after 300 settled keys and %.0f after 600, want fewer than 150 more", before, after)
	}
	t.Logf("a pass after 300 settled keys: %.0f allocations, after 600: %.0f", before, after)
	late := v7Key(part, old.Add(150*time.Millisecond), 1000)
	put(late, false)
	if got, asked := pass(false); len(got) != 0 || asked != 0 {
		t.Fatalf("a settled late key: submitted %v, asked about %d keys, want none and 0", got, asked)
	}
	if got, _ := pass(true); fmt.Sprint(got) != fmt.Sprint([]string{late}) {
		t.Fatalf("full pass: submitted %v, want %s", got, late)
	}
}

// TestPendingInChunks: a pass looks the listed keys up a chunk at a time
// (so a full pass over an hour's partition holds a chunk of it, not all
// of it) and finds what a pass over the whole listing finds: the keys
// not loaded, once each, past dead letters listed once; a mark that
// stops at the first key not loaded in one chunk stays there through the
// later ones, and moves on once it is loaded.
func TestPendingInChunks(t *testing.T) {
	for _, chunk := range []int{1, 7, reconcileChunk} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			ctx := t.Context()
			l, b, _ := setup(t)
			l.chunk = chunk
			part := PartitionOf(time.Now())
			old := time.Now().Add(-10 * time.Minute)
			put := func(key string, load bool) { t.Helper(); putRaw(t, l, b, key, load) }
			var settledKeys, fresh []string
			for i := range 30 {
				k := v7Key(part, old.Add(time.Duration(i)*time.Millisecond), i)
				settledKeys = append(settledKeys, k)
				put(k, i != 5 && i != 20 && i != 12)
			}
			if err := l.DeadLetter()(ctx, functions.Event{ID: settledKeys[12], Attempt: 1}, errors.New("bad")); err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				k := v7Key(part, time.Now(), 100+i)
				fresh = append(fresh, k)
				put(k, i != 3)
			}
			deadBefore := l.deadListed.Load()
			got, asked := pendingPass(t, l, true)
			slices.Sort(got)
			want := []string{settledKeys[5], settledKeys[20], fresh[3]}
			slices.Sort(want)
			if !slices.Equal(got, want) || asked != 39 {
				t.Fatalf("full pass: submitted %v, asked about %d keys; want %v and 39", got, asked, want)
			}
			if n := l.deadListed.Load() - deadBefore; n != 1 {
				t.Errorf("dead letters listed %d times, want once", n)
			}
			k := l.known[part]
			if k.upTo != settledKeys[4] || len(k.loaded) != 36-5 {
				t.Fatalf("after the full pass: up to %s and %d keys one by one, want up to %s and %d", k.upTo, len(k.loaded), settledKeys[4], 36-5)
			}
			for _, key := range want {
				if _, err := l.Load(ctx, key); err != nil {
					t.Fatal(err)
				}
			}
			if got, asked := pendingPass(t, l, false); len(got) != 0 || asked != 3 {
				t.Fatalf("then: submitted %v, asked about %d keys, want none and 3", got, asked)
			}
			if k.upTo != settledKeys[29] || len(k.loaded) != 10 {
				t.Fatalf("then: up to %s and %d keys one by one, want up to %s and the 10 fresh ones", k.upTo, len(k.loaded), settledKeys[29])
			}
		})
	}
}
