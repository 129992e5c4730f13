package demo

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// tracker holds the counts the live progress line shows. Its methods are
// safe on a nil tracker (no progress kept).
type tracker struct {
	total                            int64
	sent, acked, from, to, published atomic.Int64
	began                            atomic.Int64 // unix nanoseconds
	live                             atomic.Bool
	// refresh, when set, updates the counts before each draw.
	refresh atomic.Pointer[func()]
}

func (t *tracker) start() {
	if t != nil {
		t.began.Store(time.Now().UnixNano())
	}
}

// line renders the progress: counts, the rate of published records and
// the ETA of the rest.
func (t *tracker) line(now time.Time) string {
	began := t.began.Load()
	elapsed := 0.0
	if began > 0 {
		elapsed = now.Sub(time.Unix(0, began)).Seconds()
	}
	pub := t.published.Load()
	rate, eta := 0.0, "?"
	if elapsed > 0 {
		rate = float64(t.acked.Load()) / elapsed
		if pr := float64(pub) / elapsed; pr > 0 {
			left := float64(t.total-pub) / pr
			eta = (time.Duration(max(0, left)) * time.Second).String()
		}
	}
	pct := 0.0
	if t.total > 0 {
		pct = 100 * float64(pub) / float64(t.total)
	}
	return fmt.Sprintf("sent %d/%d · acked %d · aws %d · azure %d · published %d (%.0f%%) · %.0f rec/s · ETA %s",
		t.sent.Load(), t.total, t.acked.Load(), t.from.Load(), t.to.Load(), pub, pct, rate, eta)
}

// liveWriter keeps one progress line at the bottom of a terminal: every
// line written through it is printed above the progress line, which is
// redrawn in place every 200 ms.
type liveWriter struct {
	w  io.Writer
	tr *tracker
	mu sync.Mutex
	// last is the progress line on screen ("" when none).
	last string
}

// clear is carriage return and erase-to-end-of-line.
const clear = "\r\x1b[K"

func (l *liveWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last != "" {
		_, _ = io.WriteString(l.w, clear)
	}
	n, err := l.w.Write(p)
	if l.last != "" {
		_, _ = io.WriteString(l.w, l.last)
	}
	return n, err
}

func (l *liveWriter) draw() {
	if f := l.tr.refresh.Load(); f != nil {
		(*f)()
	}
	line := l.tr.line(time.Now())
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = line
	_, _ = io.WriteString(l.w, clear+line)
}

// run redraws the line until stop, which leaves the last one on screen.
func (l *liveWriter) run() (stop func()) {
	l.tr.live.Store(true)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if l.tr.began.Load() > 0 {
					l.draw()
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		l.draw()
		l.mu.Lock()
		l.last = ""
		_, _ = io.WriteString(l.w, "\n")
		l.mu.Unlock()
	}
}
