package topology

import (
	"math"
	"sort"
	"sync"
	"time"
)

// freshness tracks how far the published results are behind what the
// APIs of this process acknowledged: the age of the oldest acknowledged
// record whose aggregates are not published yet.
//
// The APIs report the ingest time of every acknowledged request (what is
// stamped into its records); the publisher reports the latest ingest time
// among the records it published. The ingest times acknowledged after
// that are still to be published, and the oldest of them says how far
// behind the results are. Ingest times are kept at granularity gran, at
// most maxEntries of them (past that, later ones are dropped, which only
// hides newer acknowledgements while the oldest keeps aging), so the
// memory is bounded whatever the rate. Records published out of order
// by less than the reordering of the pipeline may be counted published
// early: the figure can be low by that much, never high.
//
// It needs the publisher in the same process: known is false otherwise.
type freshness struct {
	known bool

	mu        sync.Mutex
	published func() time.Time // newest ingest time published; nil: none yet
	acks      []int64          // ascending Unix nanoseconds, one per gran
}

// setPublisher says where the newest published ingest time comes from.
func (f *freshness) setPublisher(newest func() time.Time) {
	f.mu.Lock()
	f.published = newest
	f.mu.Unlock()
}

const (
	freshnessGran       = int64(10 * time.Millisecond)
	freshnessMaxEntries = 1 << 18
)

// acked records that records ingested at at were acknowledged.
func (f *freshness) acked(at time.Time) {
	if f == nil || !f.known {
		return
	}
	// Databases keep microseconds: compare what they will give back.
	ns := at.Truncate(time.Microsecond).UnixNano()
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.acks); n > 0 && ns < f.acks[n-1]+freshnessGran {
		return // covered by a recent entry
	}
	if len(f.acks) >= freshnessMaxEntries {
		return
	}
	f.acks = append(f.acks, ns)
}

// age returns how long the oldest acknowledged record not yet published
// has waited (0 when none waits) and when it was ingested.
func (f *freshness) age(now time.Time) (age time.Duration, oldest time.Time, known bool) {
	if f == nil || !f.known {
		return 0, time.Time{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pub := int64(math.MinInt64)
	if f.published != nil {
		if t := f.published(); !t.IsZero() {
			pub = t.UnixNano()
		}
	}
	i := sort.Search(len(f.acks), func(i int) bool { return f.acks[i] > pub })
	if i > 0 {
		f.acks = f.acks[i:]
		if cap(f.acks) > 1024 && len(f.acks) < cap(f.acks)/4 {
			f.acks = append([]int64(nil), f.acks...) // give the memory back
		}
	}
	if len(f.acks) == 0 {
		return 0, time.Time{}, true
	}
	oldest = time.Unix(0, f.acks[0]).UTC()
	return max(now.Sub(oldest), 0), oldest, true
}
