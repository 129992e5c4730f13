package functions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/syncbuf"
)

func runFn(t *testing.T, cfg Config) *Function {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestDelivery(t *testing.T) {
	tests := []struct {
		name        string
		failures    int   // failures before success
		permanent   bool  // fail with ErrPermanent
		wantCalls   int64 // handler calls
		wantDead    int64
		maxAttempts int
	}{
		{"succeeds first time", 0, false, 1, 0, 3},
		{"retried until success", 2, false, 3, 0, 3},
		{"dead-lettered after max attempts", 10, false, 3, 1, 3},
		{"permanent failure dead-letters at once", 10, true, 1, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			var deadErr error
			var deadMu sync.Mutex
			f := runFn(t, Config{
				Name: "test", MaxAttempts: tt.maxAttempts, Backoff: time.Millisecond,
				Handler: func(ctx context.Context, e Event) error {
					n := calls.Add(1)
					if e.Attempt != int(n) {
						return fmt.Errorf("attempt %d on call %d", e.Attempt, n)
					}
					if int(n) <= tt.failures {
						if tt.permanent {
							return fmt.Errorf("bad object: %w", ErrPermanent)
						}
						return errors.New("handler failed")
					}
					return nil
				},
				DeadLetter: func(ctx context.Context, e Event, cause error) error {
					deadMu.Lock()
					deadErr = cause
					deadMu.Unlock()
					return nil
				},
			})
			f.Submit(Event{ID: "k"})
			eventually(t, "settled", func() bool {
				s := f.Stats()
				return s.Pending == 0 && (s.Succeeded+s.DeadLettered) == 1
			})
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			if got := f.Stats().DeadLettered; got != tt.wantDead {
				t.Errorf("dead = %d, want %d", got, tt.wantDead)
			}
			deadMu.Lock()
			defer deadMu.Unlock()
			if tt.wantDead > 0 && deadErr == nil {
				t.Error("dead letter got no cause")
			}
		})
	}
}

func TestConcurrencyBoundAndDedup(t *testing.T) {
	var running, peak, calls atomic.Int64
	release := make(chan struct{})
	f := runFn(t, Config{Name: "c", Concurrency: 3, Handler: func(ctx context.Context, e Event) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		calls.Add(1)
		<-release
		running.Add(-1)
		return nil
	}})
	for i := 0; i < 10; i++ {
		f.Submit(Event{ID: fmt.Sprint(i)})
		f.Submit(Event{ID: fmt.Sprint(i)}) // duplicate while queued: dropped
	}
	eventually(t, "three running", func() bool { return running.Load() == 3 })
	close(release)
	eventually(t, "all done", func() bool { return f.Stats().Succeeded == 10 })
	if peak.Load() > 3 {
		t.Errorf("peak concurrency %d > 3", peak.Load())
	}
	if calls.Load() != 10 {
		t.Errorf("calls = %d, want 10 (duplicates must be dropped)", calls.Load())
	}
}

func TestPanicIsAFailure(t *testing.T) {
	var calls atomic.Int64
	f := runFn(t, Config{Name: "p", MaxAttempts: 2, Backoff: time.Millisecond, Handler: func(ctx context.Context, e Event) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	}})
	f.Submit(Event{ID: "x"})
	eventually(t, "success after panic", func() bool { return f.Stats().Succeeded == 1 })
}

func TestReconcilerResubmits(t *testing.T) {
	var mu sync.Mutex
	done := map[string]bool{}
	f := runFn(t, Config{Name: "r", Handler: func(ctx context.Context, e Event) error {
		mu.Lock()
		done[e.ID] = true
		mu.Unlock()
		return nil
	}})
	r := &Reconciler{Target: f, Interval: 5 * time.Millisecond, List: func(ctx context.Context, submit func(Event)) error {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range []string{"a", "b", "c"} {
			if !done[id] {
				submit(Event{ID: id})
			}
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	eventually(t, "reconciled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == 3
	})
}

// refused returns a real "connection refused" error.
func refused(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	return fmt.Errorf("load: check raw/x.ndjson: %w", err)
}

// TestTransientNeverDeadLettered: a dependency that is down for many
// attempts delays the work and dead-letters nothing, whatever MaxAttempts
// says; the capped backoff keeps the retries coming.
func TestTransientNeverDeadLettered(t *testing.T) {
	down := refused(t)
	for _, maxAttempts := range []int{0, 3} {
		t.Run(fmt.Sprint("max_attempts=", maxAttempts), func(t *testing.T) {
			var calls atomic.Int64
			var dead atomic.Int64
			f := runFn(t, Config{
				Name: "t", MaxAttempts: maxAttempts, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
				Handler: func(ctx context.Context, e Event) error {
					if calls.Add(1) <= 40 {
						return down
					}
					return nil
				},
				DeadLetter: func(context.Context, Event, error) error { dead.Add(1); return nil },
			})
			f.Submit(Event{ID: "k"})
			eventually(t, "success after 40 failures", func() bool { return f.Stats().Succeeded == 1 })
			if dead.Load() != 0 || calls.Load() != 41 {
				t.Fatalf("dead %d, calls %d; want 0 and 41", dead.Load(), calls.Load())
			}
			if st := f.Stats(); st.Failing != 0 || st.Pending != 0 || st.LastError == "" {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestUnknownFailuresRetriedByDefault: without MaxAttempts, a failure that
// is not known to be transient is retried too, until it succeeds.
func TestUnknownFailuresRetriedByDefault(t *testing.T) {
	var calls atomic.Int64
	f := runFn(t, Config{Name: "u", Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Handler: func(ctx context.Context, e Event) error {
			if calls.Add(1) <= 20 {
				return errors.New("something odd")
			}
			return nil
		}})
	f.Submit(Event{ID: "k"})
	eventually(t, "success after 20 failures", func() bool { return f.Stats().Succeeded == 1 })
}

// TestMaxAgeDeadLetters: a failure still happening MaxAge after the first
// one dead-letters the event, with the last error and how long it failed.
func TestMaxAgeDeadLetters(t *testing.T) {
	down := refused(t)
	var cause atomic.Value
	f := runFn(t, Config{Name: "a", Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxAge: 100 * time.Millisecond,
		Handler: func(ctx context.Context, e Event) error { return down },
		DeadLetter: func(_ context.Context, e Event, err error) error {
			cause.Store(err)
			return nil
		}})
	start := time.Now()
	f.Submit(Event{ID: "k"})
	eventually(t, "dead letter", func() bool { return f.Stats().DeadLettered == 1 })
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("dead-lettered after %v, before MaxAge", el)
	}
	err, _ := cause.Load().(error)
	if err == nil || !strings.Contains(err.Error(), "still failing after") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("cause %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	h := func(context.Context, Event) error { return nil }
	for _, c := range []Config{
		{Name: "", Handler: h},
		{Name: "x"},
		{Name: "x", Handler: h, MaxAge: -1},
		{Name: "x", Handler: h, Backoff: time.Second, MaxBackoff: time.Millisecond},
		{Name: "x", Handler: h, MaxAttempts: -1},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// TestLastingFailureLoggedAtError: an event's retries are logged at WARN
// while it fails for less than ErrorAfter, at ERROR (naming the event)
// once it has failed longer.
func TestLastingFailureLoggedAtError(t *testing.T) {
	down := refused(t)
	var log syncbuf.Buffer
	var calls atomic.Int64
	start := time.Now()
	f := runFn(t, Config{Name: "l", Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, ErrorAfter: 200 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&log, nil)),
		Handler: func(ctx context.Context, e Event) error {
			calls.Add(1)
			if time.Since(start) < 400*time.Millisecond {
				return down
			}
			return nil
		}})
	f.Submit(Event{ID: "raw/2026/11/30/07/x.ndjson"})
	eventually(t, "success after 400 ms of failures", func() bool { return f.Stats().Succeeded == 1 })
	var warns, errs int
	for line := range strings.SplitSeq(log.String(), "\n") {
		if !strings.Contains(line, "invocation failed; will retry") || !strings.Contains(line, `"id":"raw/2026/11/30/07/x.ndjson"`) {
			continue
		}
		switch {
		case strings.Contains(line, `"level":"WARN"`):
			warns++
			if errs > 0 {
				t.Fatalf("a WARN after an ERROR: %s", line)
			}
		case strings.Contains(line, `"level":"ERROR"`):
			errs++
		}
	}
	if warns == 0 || errs == 0 {
		t.Fatalf("%d WARN and %d ERROR retry lines over %d calls, want both", warns, errs, calls.Load())
	}
}
