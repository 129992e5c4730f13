package functions

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestQueueOrderBoundAndRelease(t *testing.T) {
	q := newQueue()
	for i := range maxQueued {
		if !q.push(Event{ID: fmt.Sprint(i)}) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if q.push(Event{ID: "over"}) {
		t.Fatal("push past maxQueued accepted")
	}
	for i := range maxQueued / 2 {
		e, ok := q.pop()
		if !ok || e.ID != fmt.Sprint(i) {
			t.Fatalf("pop %d = %q, %v; want %d in order", i, e.ID, ok, i)
		}
	}
	// Room again: the pushes after the pops keep the order.
	for i := range 10 {
		if !q.push(Event{ID: fmt.Sprint("late", i)}) {
			t.Fatalf("push after pops refused")
		}
	}
	for i := maxQueued / 2; i < maxQueued; i++ {
		if e, _ := q.pop(); e.ID != fmt.Sprint(i) {
			t.Fatalf("pop = %q, want %d", e.ID, i)
		}
	}
	for i := range 10 {
		if e, _ := q.pop(); e.ID != fmt.Sprint("late", i) {
			t.Fatalf("pop = %q, want late%d", e.ID, i)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty queue")
	}
	if q.items != nil {
		t.Fatalf("drained queue keeps capacity %d", cap(q.items))
	}
}

func TestQueueWorkersTakeEachEventOnce(t *testing.T) {
	q := newQueue()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n, workers = 20000, 4
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				e, ok := q.next(ctx)
				if !ok {
					return
				}
				mu.Lock()
				seen[e.ID]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		q.push(Event{ID: fmt.Sprint(i)})
		if i%1000 == 0 {
			time.Sleep(time.Millisecond) // let workers drain and wait again
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers took %d of %d events", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("event %s taken %d times", id, c)
		}
	}
}
