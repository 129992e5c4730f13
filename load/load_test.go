package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func setup(t *testing.T) (*Loader, *objects.Bucket, *sqldb.DB) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	b, err := objects.Open(ctx, "file://"+filepath.Join(dir, "objects"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(dir, "sql.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); db.Close() })
	l := New(b, db, config.Default(dir).Schema, nil)
	if err := l.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	return l, b, db
}

func rawObject(t *testing.T, ids ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	for i, id := range ids {
		r := record.Record{ID: id, Origin: "aws", TraceID: "trace-1", IngestedAt: time.Now(), Fields: map[string]any{
			"device": "d1", "metric": "cpu", "value": float64(i) + 0.5, "ts": time.Date(2026, 11, 24, 10, i, 0, 0, time.UTC),
		}}
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func count(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM records").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLoadIsIdempotent(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	key := "raw/2026/11/24/10/a.ndjson"
	if err := b.Put(ctx, key, rawObject(t, "r1", "r2", "r3"), nil); err != nil {
		t.Fatal(err)
	}
	res, err := l.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 3 || res.Inserted != 3 || res.Skipped {
		t.Fatalf("first load: %+v", res)
	}
	res, err = l.Load(ctx, key)
	if err != nil || !res.Skipped {
		t.Fatalf("second load: %+v %v", res, err)
	}
	// Another object repeating a record (a retried request, acknowledged
	// later) overwrites it (last writer wins) and adds the new one.
	key2 := "raw/2026/11/24/10/b.ndjson"
	if err := b.Put(ctx, key2, rawObject(t, "r3", "r4"), nil); err != nil {
		t.Fatal(err)
	}
	if res, err = l.Load(ctx, key2); err != nil || res.Inserted != 2 {
		t.Fatalf("overlapping load: %+v %v", res, err)
	}
	if n := count(t, db); n != 4 {
		t.Fatalf("rows = %d, want 4", n)
	}
	var ts, device string
	var value float64
	if err := db.QueryRow("SELECT ts, device, value FROM records WHERE id = 'r2'").Scan(&ts, &device, &value); err != nil {
		t.Fatal(err)
	}
	if ts != "2026-11-24T10:01:00.000000Z" || device != "d1" || value != 1.5 {
		t.Fatalf("row r2 = %s %s %v", ts, device, value)
	}
}

func TestMalformedIsPermanentAndDeadLettered(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	for name, body := range map[string]string{
		"garbage":       "not json\n",
		"missing field": `{"id":"x","_origin":"aws","_trace_id":"t","_ingested_at":"2026-11-24T10:00:00Z","device":"d"}` + "\n",
		"bad time":      `{"id":"x","_origin":"aws","_trace_id":"t","_ingested_at":"yesterday","device":"d","metric":"m","value":1,"ts":"2026-11-24T10:00:00Z"}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			key := "raw/2026/11/24/10/" + name + ".ndjson"
			good := rawObject(t, "ok-"+name)
			if err := b.Put(ctx, key, append(good, body...), nil); err != nil {
				t.Fatal(err)
			}
			_, err := l.Load(ctx, key)
			if !errors.Is(err, functions.ErrPermanent) {
				t.Fatalf("err = %v, want permanent", err)
			}
			if err := l.DeadLetter()(ctx, functions.Event{ID: key, Attempt: 1}, err); err != nil {
				t.Fatal(err)
			}
			if ok, _ := b.Exists(ctx, key); ok {
				t.Fatal("raw object still there after dead-lettering")
			}
			a, err := b.Attributes(ctx, DeadPrefix+key)
			if err != nil {
				t.Fatal(err)
			}
			if a.Metadata["error"] == "" {
				t.Fatal("dead letter lacks its error")
			}
		})
	}
	if n := count(t, db); n != 0 {
		t.Fatalf("a malformed object wrote %d rows", n)
	}
}

func TestPendingFindsUnloadedAndAdvancesWatermark(t *testing.T) {
	ctx := context.Background()
	l, b, _ := setup(t)
	old := time.Now().Add(-30 * time.Hour)
	oldKey := PartitionOf(old) + "old.ndjson"
	newKey := PartitionOf(time.Now()) + "new.ndjson"
	for i, k := range []string{oldKey, newKey} {
		if err := b.Put(ctx, k, rawObject(t, fmt.Sprint("p", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	pending := func() []string {
		var got []string
		if err := l.Pending(ctx, func(e functions.Event) { got = append(got, e.ID) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := pending(); len(got) != 2 {
		t.Fatalf("pending = %v, want both", got)
	}
	if _, err := l.Load(ctx, oldKey); err != nil {
		t.Fatal(err)
	}
	if got := pending(); len(got) != 1 || got[0] != newKey {
		t.Fatalf("pending = %v, want only %s", got, newKey)
	}
	w, ok, err := l.watermark(ctx)
	if err != nil || !ok || w != PartitionOf(old) {
		t.Fatalf("watermark = %q %v %v, want %s", w, ok, err, PartitionOf(old))
	}
	// An object planted before the watermark is not listed by the cheap
	// passes, but by the next full one: an object that is neither loaded
	// nor dead is work, whatever its age.
	lateKey := PartitionOf(old.Add(-24*time.Hour)) + "late.ndjson"
	if err := b.Put(ctx, lateKey, rawObject(t, "late"), nil); err != nil {
		t.Fatal(err)
	}
	if got := pending(); len(got) != 1 {
		t.Fatalf("pending = %v, want the partitions before the watermark skipped", got)
	}
	l.mu.Lock()
	l.lastFull = time.Now().Add(-FullScanEvery)
	l.mu.Unlock()
	if got := pending(); len(got) != 2 || got[0] != lateKey {
		t.Fatalf("full pass: pending = %v, want %s and %s", got, lateKey, newKey)
	}
	unloaded, err := l.Unloaded(ctx)
	if err != nil || len(unloaded) != 2 {
		t.Fatalf("Unloaded = %v, %v", unloaded, err)
	}
}

// TestPendingAsksOnlyAboutNewKeys: a pass of Pending asks the database
// only about the keys of the current hour it has not yet seen loaded, so
// its cost follows the new objects, not the hour's (at 20,000 records/s
// late in an hour each pass looked up tens of thousands of keys). An
// object that failed to load, or was never notified, is still found on
// every pass, a dead-lettered one is not, and a full pass asks again
// about every key.
func TestPendingAsksOnlyAboutNewKeys(t *testing.T) {
	ctx := context.Background()
	l, b, _ := setup(t)
	part := PartitionOf(time.Now())
	const n = 200
	for i := range n {
		key := fmt.Sprintf("%s%04d.ndjson", part, i)
		if err := b.Put(ctx, key, rawObject(t, fmt.Sprint("k", i)), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Load(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	pass := func(full bool) ([]string, int64) { t.Helper(); return pendingPass(t, l, full) }
	if got, asked := pass(false); len(got) != 0 || asked != n {
		t.Fatalf("first pass: submitted %v, asked about %d keys, want none and %d", got, asked, n)
	}
	if got, asked := pass(false); len(got) != 0 || asked != 0 {
		t.Fatalf("second pass: submitted %v, asked about %d keys, want none and 0", got, asked)
	}
	loaded, failed, dead := part+"n-loaded.ndjson", part+"n-failed.ndjson", part+"n-dead.ndjson"
	for _, k := range []string{loaded, failed, dead} {
		if err := b.Put(ctx, k, rawObject(t, k), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Load(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	if err := l.DeadLetter()(ctx, functions.Event{ID: dead, Attempt: 1}, errors.New("bad")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		want := int64(2)
		if i > 0 {
			want = 1 // the failed one, asked about again
		}
		if got, asked := pass(false); len(got) != 1 || got[0] != failed || asked != want {
			t.Fatalf("pass %d after new objects: submitted %v, asked about %d keys, want %s and %d", i, got, asked, failed, want)
		}
	}
	if _, err := l.Load(ctx, failed); err != nil {
		t.Fatal(err)
	}
	if got, asked := pass(false); len(got) != 0 || asked != 1 {
		t.Fatalf("after loading it: submitted %v, asked about %d keys, want none and 1", got, asked)
	}
	if got, asked := pass(false); len(got) != 0 || asked != 0 {
		t.Fatalf("then: submitted %v, asked about %d keys, want none and 0", got, asked)
	}
	if got, asked := pass(true); len(got) != 0 || asked != n+2 {
		t.Fatalf("full pass: submitted %v, asked about %d keys, want none and %d", got, asked, n+2)
	}
}

// TestPendingListsDeadLettersOnlyForUnloadedKeys: a partition's dead
// letters are listed only when some of its listed keys are not loaded
// (to tell a dead letter from work); a partition whose keys are all
// loaded, the common case on every pass, costs no listing of them.
func TestPendingListsDeadLettersOnlyForUnloadedKeys(t *testing.T) {
	ctx := context.Background()
	l, b, _ := setup(t)
	part := PartitionOf(time.Now())
	put := func(key string, load bool) { t.Helper(); putRaw(t, l, b, key, load) }
	pass := func() (submitted []string, deadListings int64) {
		t.Helper()
		before := l.deadListed.Load()
		if err := l.PendingAll(ctx, func(e functions.Event) { submitted = append(submitted, e.ID) }); err != nil {
			t.Fatal(err)
		}
		return submitted, l.deadListed.Load() - before
	}
	put(part+"a.ndjson", true)
	put(part+"b.ndjson", true)
	if got, listed := pass(); len(got) != 0 || listed != 0 {
		t.Fatalf("every key loaded: submitted %v, dead letters listed %d times, want none and 0", got, listed)
	}
	dead := part + "c.ndjson"
	put(dead, false)
	if err := l.DeadLetter()(ctx, functions.Event{ID: dead, Attempt: 1}, errors.New("bad")); err != nil {
		t.Fatal(err)
	}
	unloaded := part + "d.ndjson"
	put(unloaded, false)
	if got, listed := pass(); len(got) != 1 || got[0] != unloaded || listed != 1 {
		t.Fatalf("a key not loaded: submitted %v, dead letters listed %d times, want %s and 1", got, listed, unloaded)
	}
	if _, err := l.Load(ctx, unloaded); err != nil {
		t.Fatal(err)
	}
	if got, listed := pass(); len(got) != 0 || listed != 0 {
		t.Fatalf("loaded again: submitted %v, dead letters listed %d times, want none and 0", got, listed)
	}
}

// TestLostMarkerIsWork: an object whose load marker is gone is pending
// again, and loading it again restores the marker without new rows.
func TestLostMarkerIsWork(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	key := PartitionOf(time.Now().Add(-72*time.Hour)) + "m.ndjson"
	if err := b.Put(ctx, key, rawObject(t, "m1", "m2"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := l.PendingAll(ctx, func(e functions.Event) { t.Fatalf("loaded object pending: %s", e.ID) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM "_ic_loaded" WHERE "key" = ?`, key); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := l.PendingAll(ctx, func(e functions.Event) { got = append(got, e.ID) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != key {
		t.Fatalf("pending = %v, want %s", got, key)
	}
	res, err := l.Load(ctx, key)
	if err != nil || res.Skipped || res.Inserted != 0 || res.Records != 2 {
		t.Fatalf("reload = %+v, %v", res, err)
	}
	if n := count(t, db); n != 2 {
		t.Fatalf("%d rows", n)
	}
}

// TestDeadLettersListedAndReplayed: dead letters are listed with their
// error and records; a replay loads one whose cause is gone, and sends one
// that still cannot load back under dead/ with the new error. A dead
// letter is not pending.
func TestDeadLettersListedAndReplayed(t *testing.T) {
	ctx := context.Background()
	l, b, db := setup(t)
	part := PartitionOf(time.Now())
	good, bad := part+"good.ndjson", part+"bad.ndjson"
	if err := b.Put(ctx, good, rawObject(t, "g1", "g2", "g3"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, bad, []byte("not json\n"), nil); err != nil {
		t.Fatal(err)
	}
	// As an older version did after a database outage.
	since := time.Now().Add(-time.Minute)
	if err := l.DeadLetter()(ctx, functions.Event{ID: good, Attempt: 5, FailingSince: since}, errors.New("dial tcp: connection refused")); err != nil {
		t.Fatal(err)
	}
	_, lerr := l.Load(ctx, bad)
	if err := l.DeadLetter()(ctx, functions.Event{ID: bad, Attempt: 1}, lerr); err != nil {
		t.Fatal(err)
	}
	if err := l.PendingAll(ctx, func(e functions.Event) { t.Errorf("dead letter pending: %s", e.ID) }); err != nil {
		t.Fatal(err)
	}
	dead, err := l.DeadLetters(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].Key != bad || dead[1].Key != good {
		t.Fatalf("dead letters %+v", dead)
	}
	if d := dead[1]; d.Records != 3 || d.Attempts != 5 || !strings.Contains(d.Error, "connection refused") || time.Since(d.At) > time.Minute {
		t.Fatalf("dead letter %+v", d)
	}
	if n, err := l.CountDead(ctx); err != nil || n != 2 {
		t.Fatalf("CountDead = %d, %v", n, err)
	}

	res, err := l.Replay(ctx, DeadPrefix+good)
	if err != nil || res.Inserted != 3 {
		t.Fatalf("replay good = %+v, %v", res, err)
	}
	a, err := b.Attributes(ctx, good)
	if err != nil || a.Metadata[MetaError] != "" || a.Metadata[MetaAttempts] != "" {
		t.Fatalf("replayed object %+v, %v: the dead letter's metadata stays", a, err)
	}
	if _, err := l.Replay(ctx, bad); !errors.Is(err, functions.ErrPermanent) {
		t.Fatalf("replay bad = %v, want permanent", err)
	}
	dead, err = l.DeadLetters(ctx, false)
	if err != nil || len(dead) != 1 || dead[0].Key != bad || !strings.Contains(dead[0].Error, "line 1") || dead[0].Records != -1 {
		t.Fatalf("after replays: %+v, %v", dead, err)
	}
	if _, err := l.Replay(ctx, "results/x.json"); err == nil {
		t.Fatal("replay of a non-raw key accepted")
	}
	// Replaying twice (an operator's retry, a crash mid-replay) is a no-op.
	if res, err := l.Replay(ctx, good); err != nil || !res.Skipped {
		t.Fatalf("replay again = %+v, %v", res, err)
	}
	if _, err := l.Replay(ctx, part+"never.ndjson"); !errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("replay of an object that never was: %v", err)
	}
	if n := count(t, db); n != 3 {
		t.Fatalf("%d rows", n)
	}
}

func TestNotARawKey(t *testing.T) {
	l, _, _ := setup(t)
	if _, err := l.Load(context.Background(), "results/x.json"); !errors.Is(err, functions.ErrPermanent) {
		t.Fatalf("err = %v", err)
	}
}

// pendingPass runs one pass of Pending (PendingAll when full) and returns
// what it submitted and how many keys it asked the database about.
func pendingPass(t *testing.T, l *Loader, full bool) (submitted []string, asked int64) {
	t.Helper()
	before := l.lookedUp.Load()
	submit := func(e functions.Event) { submitted = append(submitted, e.ID) }
	var err error
	if full {
		err = l.PendingAll(context.Background(), submit)
	} else {
		err = l.Pending(context.Background(), submit)
	}
	if err != nil {
		t.Fatal(err)
	}
	return submitted, l.lookedUp.Load() - before
}

// putRaw puts a raw object of one record under key, and loads it when
// load is set.
func putRaw(t *testing.T, l *Loader, b *objects.Bucket, key string, load bool) {
	t.Helper()
	ctx := context.Background()
	if err := b.Put(ctx, key, rawObject(t, key), nil); err != nil {
		t.Fatal(err)
	}
	if load {
		if _, err := l.Load(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
}
