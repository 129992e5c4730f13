package ingest

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// TestIdemStoreHoldsNoPointers: a key costs the heap about 100 bytes and
// nothing the garbage collector scans. The store holds every key of the
// window (up to DefaultIdempotencyKeys): 60,000 after 5 minutes at 200
// requests a second, which as a list of pointers (about 250 bytes a key,
// all scanned) raised the live heap by 13 MB under the process's 64 MiB
// limit and made every collection slower and more frequent.
func TestIdemStoreHoldsNoPointers(t *testing.T) {
	const n = 50000
	now := time.Unix(0, 0)
	s := newIdemStore(time.Hour, DefaultIdempotencyKeys, func() time.Time { return now })
	heap, scan := heapFigures()
	for i := range n {
		key := fmt.Sprintf("01a22d27-775c-7000-806a-%012d", i)
		ok, done := s.reserve(key, requestHash("application/json", []byte(key)))
		if !ok {
			t.Fatalf("reserve %s", key)
		}
		done(true)
	}
	heap2, scan2 := heapFigures()
	if s.len() != n {
		t.Fatalf("%d keys kept, want %d", s.len(), n)
	}
	// Signed: what other tests left behind may be collected meanwhile,
	// so a figure can shrink (unsigned, it wrapped to 3.7e14 a key).
	perKey := float64(int64(heap2)-int64(heap)) / n
	if perKey > 128 {
		t.Errorf("%.0f bytes of heap a key, want at most 128", perKey)
	}
	if scanned := float64(int64(scan2)-int64(scan)) / n; scanned > 4 {
		t.Errorf("%.1f scannable bytes a key, want none", scanned)
	}
	t.Logf("%.0f bytes a key", perKey)
	runtime.KeepAlive(s)
}

// heapFigures returns the live heap and its scannable part after a
// collection.
func heapFigures() (live, scan uint64) {
	runtime.GC()
	m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/heap:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64(), m[1].Value.Uint64()
}

// TestIdemStoreModel runs random reservations, releases (acknowledged or
// not), reuses and clock steps against a plain model of the rules: a key
// is bound to its first request for the window while a request with it was
// acknowledged or is in flight, at most max keys are kept (the oldest
// forgotten first), and a release of a binding already forgotten changes
// nothing. It goes through the ring's growth, holes and compaction.
func TestIdemStoreModel(t *testing.T) {
	for _, max := range []int{1, 3, 50, 1000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(max), 7))
			now := time.Unix(0, 0)
			const window = time.Minute
			s := newIdemStore(window, max, func() time.Time { return now })
			m := &idemModel{window: window, max: max}
			type held struct {
				done func(bool)
				ref  *modelEntry
			}
			var inflight []held
			keys := max * 3
			for step := range 20000 {
				switch op := rng.IntN(10); {
				case op < 5: // reserve
					k := fmt.Sprint("k", rng.IntN(keys))
					body := fmt.Sprint("b", rng.IntN(2))
					ok, done := s.reserve(k, requestHash("application/json", []byte(body)))
					wantOK, ref := m.reserve(k, body, now)
					if ok != wantOK {
						t.Fatalf("step %d: reserve %s %s: %v, model %v", step, k, body, ok, wantOK)
					}
					if ok {
						inflight = append(inflight, held{done: done, ref: ref})
					}
				case op < 9 && len(inflight) > 0: // a request ends
					i := rng.IntN(len(inflight))
					h := inflight[i]
					inflight = append(inflight[:i], inflight[i+1:]...)
					acked := rng.IntN(3) > 0
					h.done(acked)
					m.release(h.ref, acked)
				default:
					now = now.Add(time.Duration(rng.IntN(int(window / 10))))
				}
				if got, want := s.len(), m.len(now); got != want {
					t.Fatalf("step %d: %d keys kept, model %d", step, got, want)
				}
			}
		})
	}
}

// idemModel is the idempotency rules kept the plain way.
type idemModel struct {
	window  time.Duration
	max     int
	entries []*modelEntry // oldest first, bound ones only
}

type modelEntry struct {
	key, body string
	at        time.Time
	inflight  int
	acked     bool
	gone      bool
}

func (m *idemModel) expire(now time.Time) {
	for len(m.entries) > 0 && now.Sub(m.entries[0].at) >= m.window {
		m.entries[0].gone = true
		m.entries = m.entries[1:]
	}
}

func (m *idemModel) reserve(key, body string, now time.Time) (bool, *modelEntry) {
	m.expire(now)
	for _, e := range m.entries {
		if e.key == key {
			if e.body != body {
				return false, nil
			}
			e.inflight++
			return true, e
		}
	}
	for len(m.entries) >= m.max {
		m.entries[0].gone = true
		m.entries = m.entries[1:]
	}
	e := &modelEntry{key: key, body: body, at: now, inflight: 1}
	m.entries = append(m.entries, e)
	return true, e
}

func (m *idemModel) release(e *modelEntry, acked bool) {
	if e.gone {
		return
	}
	e.inflight--
	e.acked = e.acked || acked
	if !e.acked && e.inflight == 0 {
		e.gone = true
		for i, x := range m.entries {
			if x == e {
				m.entries = append(m.entries[:i], m.entries[i+1:]...)
				break
			}
		}
	}
}

// len is the keys kept, as the store counts them after its next expiry
// pass: the store forgets expired keys only when it is next used.
func (m *idemModel) len(time.Time) int { return len(m.entries) }
