package functions

import (
	"context"
	"sync"
)

// maxQueued bounds the events a function holds queued; past it Submit drops
// an event and leaves the work to the reconciler.
const maxQueued = 1 << 16

// shrinkAbove is the capacity past which an emptied queue gives its memory
// back, so that a burst's queue is not kept (and scanned by the garbage
// collector) for the rest of the process's life.
const shrinkAbove = 1 << 10

// queue is a FIFO of events holding at most maxQueued. Unlike a channel of
// that capacity, its memory follows what it holds: an idle function keeps
// none, a burst's queue is released once drained.
type queue struct {
	mu    sync.Mutex
	items []Event
	head  int
	// ready holds a token while events may be waiting, waking one worker.
	ready chan struct{}
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

// push appends e unless the queue is full.
func (q *queue) push(e Event) bool {
	q.mu.Lock()
	if len(q.items)-q.head >= maxQueued {
		q.mu.Unlock()
		return false
	}
	if q.head > 0 && len(q.items) == cap(q.items) && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, e)
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop takes the oldest event, or reports false when there is none.
func (q *queue) pop() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return Event{}, false
	}
	e := q.items[q.head]
	q.items[q.head] = Event{}
	q.head++
	if q.head == len(q.items) {
		if cap(q.items) > shrinkAbove {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
		q.head = 0
	} else {
		q.signal() // more waiting: wake another worker
	}
	return e, true
}

// next waits for the oldest event until ctx is done.
func (q *queue) next(ctx context.Context) (Event, bool) {
	for {
		if e, ok := q.pop(); ok {
			return e, true
		}
		select {
		case <-ctx.Done():
			return Event{}, false
		case <-q.ready:
		}
	}
}
