package load

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/sqldb"
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

// TestLoadLastWriterWins: of two writes of one id the later acknowledged
// stays, whatever the order they are loaded in, and within one object the
// last line counts; a tie in time goes to the greater cloud name.
func TestLoadLastWriterWins(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	obj := func(recs ...record.Record) []byte {
		var out []byte
		for _, r := range recs {
			line, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			out = append(append(out, line...), '\n')
		}
		return out
	}
	rec := func(id, origin string, v float64, at time.Time) record.Record {
		return record.Record{ID: id, Origin: origin, TraceID: "t", IngestedAt: at, Fields: map[string]any{
			"device": "d", "metric": "m", "value": v, "ts": t0}}
	}
	put := func(key string, data []byte) {
		if err := b.Put(ctx, key, data, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Load(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	put("raw/2026/11/30/10/1.ndjson", obj(rec("x", "aws", 2, t0.Add(2*time.Microsecond)), rec("y", "aws", 1, t0), rec("y", "aws", 9, t0.Add(time.Second))))
	put("raw/2026/11/30/10/2.ndjson", obj(rec("x", "azure", 1, t0.Add(time.Microsecond)), rec("z", "aws", 1, t0)))
	put("raw/2026/11/30/10/3.ndjson", obj(rec("z", "azure", 5, t0)))
	value := func(id string) (v float64, origin string) {
		if err := db.QueryRow("SELECT value, _origin FROM records WHERE id = ?", id).Scan(&v, &origin); err != nil {
			t.Fatal(err)
		}
		return v, origin
	}
	for id, want := range map[string]float64{"x": 2, "y": 9, "z": 5} {
		if v, o := value(id); v != want {
			t.Errorf("%s = %v (from %s), want %v", id, v, o, want)
		}
	}
}

// TestExpireWaitsForDurableLoads: a raw object is deleted only once its
// load lasts, and a commit is visible a moment before the sync that makes
// it durable ends (sqldb.DB.WaitDurable). Here the load committed through
// another opener of the database (another process), whose syncs this one
// cannot see, so Expire syncs the log itself before it deletes.
func TestExpireWaitsForDurableLoads(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	other, err := sqldb.Open(ctx, db.URL().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	loader := New(b, other, config.Default(t.TempDir()).Schema, nil)
	key := "raw/2026/11/01/10/a.ndjson"
	if err := b.Put(ctx, key, rawObject(t, "a"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := loader.Load(ctx, key); err != nil {
		t.Fatal(err)
	}
	syncs := func() int64 {
		st, ok := db.WriteLock()
		if !ok {
			t.Fatal("no write lock figures")
		}
		return st.Syncs
	}
	before := syncs()
	got, err := l.Expire(ctx, time.Now())
	if err != nil || got.Objects != 1 {
		t.Fatalf("expired %+v, %v; want the loaded object deleted", got, err)
	}
	if after := syncs(); after <= before {
		t.Errorf("syncs of the log: %d before Expire, %d after; want one more before the delete", before, after)
	}
}
