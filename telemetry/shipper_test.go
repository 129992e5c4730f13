package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runShipper(t *testing.T, s *Shipper) (cancel func()) {
	t.Helper()
	ctx, cancelCtx := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	cancel = func() {
		once.Do(func() {
			cancelCtx()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(cancel)
	return cancel
}

func TestShipperBatchesInOrder(t *testing.T) {
	sink := &memSink{}
	s := NewShipper(sink, ShipperOptions{BatchSize: 10, FlushInterval: time.Hour})
	runShipper(t, s)
	for i := range 25 {
		s.Write([][]byte{[]byte(fmt.Sprint(i))})
	}
	// Full batches go at once, without waiting for the interval.
	waitFor(t, 5*time.Second, "two full batches", func() bool { return s.Stats().Shipped >= 20 })
	got := sink.lines()
	for i, l := range got {
		if l != fmt.Sprint(i) {
			t.Fatalf("line %d = %q", i, l)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, b := range sink.batches {
		if len(b) > 10 {
			t.Fatalf("batch of %d", len(b))
		}
	}
}

func TestShipperFlushInterval(t *testing.T) {
	sink := &memSink{}
	s := NewShipper(sink, ShipperOptions{FlushInterval: 20 * time.Millisecond})
	runShipper(t, s)
	s.Write([][]byte{[]byte("a"), []byte("b")})
	waitFor(t, 5*time.Second, "interval flush", func() bool { return s.Stats().Shipped == 2 })
}

func TestShipperFinalFlushOnCancel(t *testing.T) {
	sink := &memSink{}
	s := NewShipper(sink, ShipperOptions{FlushInterval: time.Hour})
	cancel := runShipper(t, s)
	s.Write([][]byte{[]byte("last words")})
	cancel()
	if st := s.Stats(); st.Shipped != 1 || st.Buffered != 0 {
		t.Fatalf("after cancel: %+v", st)
	}
}

// blockingSink never answers until released or its context ends.
type blockingSink struct{ release chan struct{} }

func (b blockingSink) Write(entries [][]byte) error {
	<-b.release
	return errors.New("down")
}

func (b blockingSink) WriteContext(ctx context.Context, entries [][]byte) error {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return errors.New("down")
}

func TestShipperFinalFlushIsBounded(t *testing.T) {
	sink := blockingSink{release: make(chan struct{})}
	defer close(sink.release)
	s := NewShipper(sink, ShipperOptions{FlushInterval: time.Hour, FinalFlushTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.Write([][]byte{[]byte("x")})
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run hangs on a sink that does not answer")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Run took %v to return", d)
	}
	if st := s.Stats(); st.Shipped != 0 || st.Buffered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestShipperRetriesThenDelivers(t *testing.T) {
	sink := &memSink{err: errors.New("temporarily down")}
	s := NewShipper(sink, ShipperOptions{FlushInterval: 5 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	runShipper(t, s)
	s.Write([][]byte{[]byte("a")})
	waitFor(t, 5*time.Second, "failed attempts", func() bool { return s.Stats().FailedBatches >= 3 })
	sink.mu.Lock()
	sink.err = nil
	sink.mu.Unlock()
	waitFor(t, 5*time.Second, "delivery", func() bool { return s.Stats().Shipped == 1 })
	if l := sink.lines(); len(l) != 1 || l[0] != "a" {
		t.Fatalf("lines %q", l)
	}
}

func TestShipperDropsRejectedBatch(t *testing.T) {
	sink := &memSink{err: fmt.Errorf("400 bad: %w", ErrRejected)}
	s := NewShipper(sink, ShipperOptions{FlushInterval: 5 * time.Millisecond})
	runShipper(t, s)
	s.Write([][]byte{[]byte("a"), []byte("b")})
	waitFor(t, 5*time.Second, "drop", func() bool { st := s.Stats(); return st.Dropped == 2 && st.Buffered == 0 })
	if st := s.Stats(); st.FailedBatches != 1 || st.Shipped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestShipperBufferBound(t *testing.T) {
	s := NewShipper(&memSink{}, ShipperOptions{BufferSize: 5})
	s.Write([][]byte{[]byte("1"), []byte("2"), []byte("3")})
	s.Write([][]byte{[]byte("4"), []byte("5"), []byte("6"), []byte("7")})
	if st := s.Stats(); st.Buffered != 5 || st.Dropped != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// slowSink takes a while to answer each write and counts them.
type slowSink struct {
	memSink
	delay time.Duration
}

func (s *slowSink) Write(entries [][]byte) error {
	time.Sleep(s.delay)
	return s.memSink.Write(entries)
}

// TestShipperFlushShipsWhatWasBuffered: under a steady flow of lines a
// flush ships what was buffered when it started and leaves the lines that
// came while it shipped for the next one. Before, it shipped until the
// buffer was empty, so every interval became a train of small batches:
// under this flow (a line a millisecond, a write taking 10 ms) about one
// write per 10 ms instead of one per interval.
func TestShipperFlushShipsWhatWasBuffered(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			sink := &slowSink{delay: 10 * time.Millisecond}
			opts := ShipperOptions{FlushInterval: 50 * time.Millisecond}
			s := NewShipper(sink, opts)
			if disk {
				opts.Dir = t.TempDir()
				var err error
				if s, err = NewDiskShipper(sink, opts); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
			}
			cancel := runShipper(t, s)
			const lines = 600
			start := time.Now()
			for i := range lines {
				s.Write([][]byte{[]byte(fmt.Sprint(i))})
				time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Millisecond)))
			}
			elapsed := time.Since(start)
			cancel()
			got := sink.lines()
			if len(got) != lines {
				t.Fatalf("%d lines shipped, want %d", len(got), lines)
			}
			for i, l := range got {
				if l != fmt.Sprint(i) {
					t.Fatalf("line %d = %q", i, l)
				}
			}
			sink.mu.Lock()
			writes := len(sink.batches)
			sink.mu.Unlock()
			// One write per interval, the final flush's, and some slack
			// for a slow machine's late ticks.
			if most := int(elapsed/opts.FlushInterval) + 4; writes > most {
				t.Errorf("%d writes in %v, want at most %d (one per %v)", writes, elapsed.Round(time.Millisecond), most, opts.FlushInterval)
			}
			t.Logf("%d lines in %d writes over %v", lines, writes, elapsed.Round(time.Millisecond))
		})
	}
}
