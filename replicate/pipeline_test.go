package replicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestPipeline: batches are applied in the order sent, one at a time;
// Send waits while one is applied and another waits, and stamps each
// batch's ReadAt; Wait waits for a count of applied batches; the
// applier's error stops it, and Send, Wait and Close return it.
func TestPipeline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errApply := errors.New("refused")
	release := make(chan struct{})
	started := make(chan Position, 10)
	var got []Position
	readAt := map[Position]time.Time{}
	p := NewPipeline(ctx, func(ctx context.Context, b Batch) error {
		readAt[b.Position] = b.ReadAt
		started <- b.Position
		<-release
		got = append(got, b.Position)
		if b.Position == "fail" {
			return errApply
		}
		return nil
	})
	for _, pos := range []Position{"1", "2"} {
		if err := p.Send(ctx, Batch{Position: pos}); err != nil {
			t.Fatal(err)
		}
	}
	if pos := <-started; pos != "1" {
		t.Fatalf("applied %q first, want 1", pos)
	}
	if n := p.Pending(); n != 2 {
		t.Fatalf("pending %d with one applied and one waiting, want 2", n)
	}
	// A third waits for room.
	sent := make(chan error, 1)
	go func() { sent <- p.Send(ctx, Batch{Position: "3"}) }()
	select {
	case err := <-sent:
		t.Fatalf("a third batch was taken (%v) while one was applied and one waited", err)
	case <-time.After(100 * time.Millisecond):
	}
	released := time.Now()
	release <- struct{}{}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx, 1); err != nil || p.Applied() != 1 {
		t.Fatalf("Wait(1): %v, applied %d", err, p.Applied())
	}
	waited := make(chan error, 1)
	go func() { waited <- p.Wait(ctx, 3) }()
	<-started
	release <- struct{}{}
	<-started
	select {
	case err := <-waited:
		t.Fatalf("Wait(3) returned (%v) with 2 applied", err)
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	if err := <-waited; err != nil || !p.Idle() {
		t.Fatalf("Wait(3): %v, idle %v", err, p.Idle())
	}
	if err := p.Send(ctx, Batch{Position: "fail"}); err != nil {
		t.Fatal(err)
	}
	<-started
	release <- struct{}{}
	if err := p.Wait(ctx, 4); !errors.Is(err, errApply) {
		t.Fatalf("Wait after the applier failed: %v, want %v", err, errApply)
	}
	if err := p.Send(ctx, Batch{Position: "5"}); !errors.Is(err, errApply) {
		t.Fatalf("Send after the applier failed: %v, want %v", err, errApply)
	}
	if err := p.Close(errors.New("source's")); !errors.Is(err, errApply) {
		t.Fatalf("Close: %v, want the applier's error", err)
	}
	if want := []Position{"1", "2", "3", "fail"}; !slices.Equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	// A batch is stamped when it is sent, not when its turn comes.
	if at := readAt["2"]; at.IsZero() || !at.Before(released) {
		t.Fatalf("batch 2 read at %v, want when it was sent (before batch 1 was released at %v)", at, released)
	}
}

// TestPipelineCloseFinishesWork: Close lets the applier apply what it was
// given and returns the source's error when the applier had none; a
// batch's ReadAt the source set is kept.
func TestPipelineCloseFinishesWork(t *testing.T) {
	var got []Position
	var kept []time.Time
	p := NewPipeline(context.Background(), func(ctx context.Context, b Batch) error {
		time.Sleep(20 * time.Millisecond)
		got = append(got, b.Position)
		kept = append(kept, b.ReadAt)
		return nil
	})
	stamped := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, pos := range []Position{"1", "2"} {
		if err := p.Send(context.Background(), Batch{Position: pos, ReadAt: stamped}); err != nil {
			t.Fatal(err)
		}
	}
	errSource := errors.New("source ended")
	if err := p.Close(errSource); err != errSource {
		t.Fatalf("Close: %v, want %v", err, errSource)
	}
	if want := []Position{"1", "2"}; !slices.Equal(got, want) {
		t.Fatalf("applied %v before Close returned, want %v", got, want)
	}
	// A time the source set is kept.
	if !slices.Equal(kept, []time.Time{stamped, stamped}) {
		t.Fatalf("read at %v, want the source's %v", kept, stamped)
	}
}

// TestPoll: a polling source's loop reads its next batch while fn applies
// the last one; after a busy batch, what fn's turn wrote is read as soon
// as that batch was applied, not a poll later; fn's error ends the loop.
func TestPoll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var (
		mu     sync.Mutex
		log    = []int{1, 2, 3, 4, 5, 6}
		cursor int
		reads  int
	)
	read := func(ctx context.Context) (Batch, bool, bool, error) {
		mu.Lock()
		defer mu.Unlock()
		reads++
		n := min(4, len(log)-cursor)
		if n == 0 {
			return Batch{}, false, false, nil
		}
		var b Batch
		for _, v := range log[cursor : cursor+n] {
			b.Changes = append(b.Changes, Change{Key: []any{v}})
		}
		cursor += n
		b.Position = SeqPosition(int64(cursor))
		return b, true, n == 4, nil
	}
	readsNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return reads
	}
	errStop := errors.New("stop here")
	var got []Position
	start := time.Now()
	err := Poll(ctx, nil, 10*time.Second, func(ctx context.Context, b Batch) error {
		got = append(got, b.Position)
		switch len(got) {
		case 1:
			// The second batch is read while this one is applied.
			for readsNow() < 2 {
				if ctx.Err() != nil || time.Since(start) > 5*time.Second {
					return fmt.Errorf("the next batch was not read while the first was applied (%d reads)", readsNow())
				}
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			log = append(log, 7) // written while the busy batch is applied
			mu.Unlock()
		case 3:
			return errStop
		}
		return nil
	}, read)
	if !errors.Is(err, errStop) {
		t.Fatalf("Poll ended with %v, want fn's error", err)
	}
	if want := []Position{"4", "6", "7"}; !slices.Equal(got, want) {
		t.Fatalf("batches up to %v, want %v", got, want)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the change written during the busy batch arrived after %s, want at once (poll 10s)", el)
	}
}
