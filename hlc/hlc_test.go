package hlc_test

import (
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/hlc"
)

// manual is a physical clock a test sets.
type manual struct {
	mu sync.Mutex
	t  time.Time
}

func (m *manual) now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t
}

func (m *manual) set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.t = t
}

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func TestClock(t *testing.T) {
	tests := []struct {
		name string
		// steps: "now" (advance physical time to at, then Now), or
		// "observe" (Observe at); want is what Now returns.
		steps []step
	}{
		{"physical time leads", []step{{op: "now", at: t0, want: t0}, {op: "now", at: t0.Add(time.Second), want: t0.Add(time.Second)}}},
		{"same microsecond twice", []step{{op: "now", at: t0, want: t0}, {op: "now", at: t0.Add(500 * time.Nanosecond), want: t0.Add(time.Microsecond)}}},
		{"physical clock steps back", []step{{op: "now", at: t0, want: t0}, {op: "now", at: t0.Add(-time.Hour), want: t0.Add(time.Microsecond)}}},
		{"observed timestamp ahead: its lead is kept", []step{
			{op: "now", at: t0, want: t0},
			{op: "observe", at: t0.Add(5 * time.Second)},
			{op: "now", at: t0, want: t0.Add(5*time.Second + time.Microsecond)},
			{op: "now", at: t0.Add(time.Millisecond), want: t0.Add(5*time.Second + time.Millisecond)},
			{op: "now", at: t0.Add(time.Millisecond), want: t0.Add(5*time.Second + time.Millisecond + time.Microsecond)},
			{op: "now", at: t0.Add(6 * time.Second), want: t0.Add(11 * time.Second)},
		}},
		{"observed timestamp behind changes nothing", []step{
			{op: "now", at: t0, want: t0},
			{op: "observe", at: t0.Add(-time.Second)},
			{op: "now", at: t0.Add(time.Millisecond), want: t0.Add(time.Millisecond)},
		}},
		{"observed sub-microsecond timestamp", []step{
			{op: "observe", at: t0.Add(1500 * time.Nanosecond)},
			{op: "now", at: t0, want: t0.Add(2 * time.Microsecond)},
		}},
		{"observed zero time", []step{{op: "observe"}, {op: "now", at: t0, want: t0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &manual{t: t0}
			c := hlc.New(m.now)
			for i, s := range tc.steps {
				switch s.op {
				case "observe":
					c.Observe(s.at)
				case "now":
					m.set(s.at)
					if got := c.Now(); !got.Equal(s.want) || got.Location() != time.UTC {
						t.Fatalf("step %d: Now() = %v, want %v (UTC)", i, got, s.want)
					}
				}
			}
		})
	}
}

type step struct {
	op       string
	at, want time.Time
}

func TestAheadAndLast(t *testing.T) {
	m := &manual{t: t0}
	c := hlc.New(m.now)
	if a := c.Ahead(); a != 0 {
		t.Fatalf("fresh clock ahead by %v", a)
	}
	c.Observe(t0.Add(3 * time.Second))
	if a, l := c.Ahead(), c.Last(); a != 3*time.Second || !l.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("ahead by %v, last %v after observing +3s, want 3s and that time", a, l)
	}
	m.set(t0.Add(10 * time.Second))
	if a := c.Ahead(); a != 3*time.Second {
		t.Fatalf("ahead by %v as physical time goes on, want the 3s lead kept", a)
	}
	if got := c.Now(); !got.Equal(t0.Add(13*time.Second)) || !c.Last().Equal(got) {
		t.Fatalf("Now() = %v, Last() = %v, want %v", got, c.Last(), t0.Add(13*time.Second))
	}
}

// TestObserversStayInOrder: two clocks that saw the same timestamp from a
// clock an hour ahead go on stamping in real-time order.
func TestObserversStayInOrder(t *testing.T) {
	m := &manual{t: t0}
	a, b := hlc.New(m.now), hlc.New(m.now)
	ahead := t0.Add(time.Hour)
	a.Observe(ahead)
	b.Observe(ahead)
	var prev time.Time
	for i := range 10 {
		m.set(t0.Add(time.Duration(i+1) * time.Millisecond))
		c := a
		if i%2 == 1 {
			c = b
		}
		ts := c.Now()
		if !ts.After(prev) || !ts.After(ahead) {
			t.Fatalf("stamp %d: %v after %v (seen %v)", i, ts, prev, ahead)
		}
		prev = ts
	}
}

// TestConcurrentNowIncreases: timestamps given at once by many goroutines
// are distinct, and each goroutine sees them increase.
func TestConcurrentNowIncreases(t *testing.T) {
	c := hlc.New(func() time.Time { return t0 }) // a stopped physical clock
	const goroutines, each = 8, 1000
	var mu sync.Mutex
	seen := map[time.Time]bool{}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prev time.Time
			got := make([]time.Time, 0, each)
			for range each {
				ts := c.Now()
				if !ts.After(prev) {
					t.Errorf("Now went from %v to %v", prev, ts)
					return
				}
				prev = ts
				got = append(got, ts)
			}
			mu.Lock()
			for _, ts := range got {
				seen[ts] = true
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct timestamps, want %d", len(seen), goroutines*each)
	}
}

// TestFarFutureIsCapped: a timestamp from the far future (a peer's clock
// badly wrong) raises the clock only MaxLead ahead, and is counted.
func TestFarFutureIsCapped(t *testing.T) {
	m := &manual{t: t0}
	c := hlc.New(m.now)
	c.Observe(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
	if got, want := c.Now(), t0.Add(hlc.MaxLead+time.Microsecond); !got.Equal(want) {
		t.Fatalf("Now after a far-future version: %v, want %v", got, want)
	}
	if c.Capped() != 1 {
		t.Fatalf("Capped: %d, want 1", c.Capped())
	}
	c.Observe(t0.Add(time.Hour)) // within the bound: not counted
	if c.Capped() != 1 || c.Ahead() > hlc.MaxLead+time.Second {
		t.Fatalf("Capped %d, Ahead %v", c.Capped(), c.Ahead())
	}
}
