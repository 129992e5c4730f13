package publish

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// TestBucketRetrySchedule: a failing bucket's next try waits as long as it
// has been failing, from 1 s up to 5 min, however many attempts (batches
// touching it) there were in between; a bucket that works again is
// forgotten and starts from 1 s when it fails anew; and the schedule goes
// on across a restart from when the bucket first failed.
func TestBucketRetrySchedule(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	newPublisher := func() *Publisher {
		t.Helper()
		p, err := New(Config{DB: e.db, Bucket: e.bucket, Schema: e.schema, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := newPublisher()
	k := bucketKey{"cpu", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	boom := map[bucketKey]error{k: errors.New("boom")}
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	failing := func(p *Publisher) BucketFailure {
		t.Helper()
		f := p.FailingBuckets()
		if len(f) != 1 || f[0].Bucket != "cpu/2026-11-24T10" {
			t.Fatalf("failing buckets %+v, want cpu/2026-11-24T10 alone", f)
		}
		return f[0]
	}
	fail := func(p *Publisher, at time.Time) BucketFailure {
		t.Helper()
		if err := p.noteFailures(ctx, at, boom, nil); err != nil {
			t.Fatal(err)
		}
		return failing(p)
	}

	for _, tt := range []struct {
		after, wait time.Duration
	}{
		{0, time.Second},                                   // first failure: the base
		{300 * time.Millisecond, time.Second},              // failing for less than the base
		{time.Second, time.Second},                         // exactly the base
		{3 * time.Second, 3 * time.Second},                 // as long as it has been failing
		{2 * time.Minute, 2 * time.Minute},                 //
		{5 * time.Minute, 5 * time.Minute},                 // the cap
		{time.Hour, 5 * time.Minute},                       // capped
		{time.Hour + 20*time.Millisecond, 5 * time.Minute}, //
	} {
		at := t0.Add(tt.after)
		f := fail(p, at)
		if !f.Since.Equal(t0) || f.Error != "boom" {
			t.Fatalf("after %v: %+v, want failing since %v with boom", tt.after, f, t0)
		}
		if got := f.NextAt.Sub(at); got != tt.wait {
			t.Errorf("failing for %v: next try in %v, want %v", tt.after, got, tt.wait)
		}
	}
	if f := failing(p); f.Attempts != 8 {
		t.Errorf("attempts %d, want 8", f.Attempts)
	}

	// It works again: forgotten. Under steady traffic it fails again with
	// every batch, 100 batches in 2 s: the wait follows the 2 s, not the
	// 100 attempts.
	t1 := t0.Add(2 * time.Hour)
	if err := p.noteFailures(ctx, t1, nil, []bucketKey{k}); err != nil {
		t.Fatal(err)
	}
	if f := p.FailingBuckets(); len(f) != 0 {
		t.Fatalf("failing after it worked: %+v", f)
	}
	var f BucketFailure
	for i := range 100 {
		at := t1.Add(time.Duration(i) * 20 * time.Millisecond)
		f = fail(p, at)
		if want := max(time.Second, at.Sub(t1)); f.NextAt.Sub(at) != want {
			t.Fatalf("attempt %d, failing for %v: next try in %v, want %v", i+1, at.Sub(t1), f.NextAt.Sub(at), want)
		}
	}
	if !f.Since.Equal(t1) || f.Attempts != 100 {
		t.Fatalf("after 100 failures in 2 s: %+v, want since %v, 100 attempts", f, t1)
	}

	// A restart reads when the bucket began failing: ten minutes on, the
	// next try is the cap away, not the base.
	p2 := newPublisher()
	if f := failing(p2); !f.Since.Equal(t1) || f.Attempts != 100 {
		t.Fatalf("after a restart: %+v, want since %v, 100 attempts", f, t1)
	}
	at := t1.Add(10 * time.Minute)
	if f := fail(p2, at); f.NextAt.Sub(at) != 5*time.Minute || f.Attempts != 101 {
		t.Fatalf("after a restart, failing for 10 min: next try in %v, attempts %d; want 5m0s, 101", f.NextAt.Sub(at), f.Attempts)
	}
}
