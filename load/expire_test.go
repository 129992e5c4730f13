package load

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/intercloud/intercloud/functions"
)

// TestExpireDeletesOnlyLoadedOldObjects: a loaded raw object older than
// the cutoff goes; one not loaded yet, a dead letter, and anything of the
// cutoff's hour stay; a redelivered event for a deleted object changes
// nothing; the records stay in the database.
func TestExpireDeletesOnlyLoadedOldObjects(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	loaded := []string{"raw/2026/11/01/10/a.ndjson", "raw/2026/11/02/23/b.ndjson"}
	unloaded := "raw/2026/11/01/10/c.ndjson"
	malformed := "raw/2026/11/01/11/d.ndjson"
	now := time.Now()
	recent := PartitionOf(now) + "e.ndjson"
	for i, k := range append(append([]string{}, loaded...), recent) {
		if err := b.Put(ctx, k, rawObject(t, "id-"+k[len(k)-8:len(k)-7], "x"+string(rune('a'+i))), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Load(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, unloaded, rawObject(t, "pending"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, malformed, []byte("not json\n"), nil); err != nil {
		t.Fatal(err)
	}
	_, lerr := l.Load(ctx, malformed)
	if err := l.DeadLetter()(ctx, functions.Event{ID: malformed, Attempt: 1}, lerr); err != nil {
		t.Fatal(err)
	}
	rows := count(t, db)

	// A cutoff before everything deletes nothing.
	if got, err := l.Expire(ctx, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)); err != nil || got.Objects != 0 {
		t.Fatalf("early cutoff: %+v, %v", got, err)
	}
	got, err := l.Expire(ctx, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got.Objects != 2 || got.Kept != 1 || got.Bytes == 0 {
		t.Fatalf("expired %+v, want 2 objects deleted and 1 kept", got)
	}
	for _, k := range loaded {
		if ok, _ := b.Exists(ctx, k); ok {
			t.Errorf("%s still there", k)
		}
	}
	for _, k := range []string{unloaded, recent, DeadPrefix + malformed} {
		if ok, _ := b.Exists(ctx, k); !ok {
			t.Errorf("%s was deleted", k)
		}
	}
	if n := count(t, db); n != rows {
		t.Fatalf("records %d → %d", rows, n)
	}
	// A late redelivery of a deleted object's event is a no-op.
	res, err := l.Load(ctx, loaded[0])
	if err != nil || !res.Skipped {
		t.Fatalf("redelivered load: %+v, %v", res, err)
	}
	if errors.Is(err, functions.ErrPermanent) {
		t.Fatal("permanent")
	}
	// Again: nothing more to do.
	if got, err := l.Expire(ctx, now.Add(time.Second)); err != nil || got.Objects != 0 || got.Kept != 1 {
		t.Fatalf("second pass: %+v, %v", got, err)
	}
}
