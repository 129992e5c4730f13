package ingest

import (
	"crypto/sha256"
	"sync"
	"time"
)

// CodeIdempotencyKeyReused is the apierr code of the 422 answered when an
// Idempotency-Key comes back with a different request.
const CodeIdempotencyKeyReused = "idempotency_key_reused"

// Defaults of the idempotency window (Config.IdempotencyWindow,
// Config.IdempotencyKeys).
const (
	// DefaultIdempotencyWindow is how long a key is remembered: 24 hours,
	// the window payment APIs keep theirs.
	DefaultIdempotencyWindow = 24 * time.Hour
	// DefaultIdempotencyKeys bounds the keys remembered at once (about
	// 25 MB); past it the oldest are forgotten first.
	DefaultIdempotencyKeys = 1 << 18
)

// idemStore remembers, per Idempotency-Key, the hash of the request that
// was first accepted with it, for a window. Keys and hashes are kept as
// the first 128 bits of their SHA-256 digests, so a key costs the same
// whatever its length, and the bindings hold no pointer: at a few hundred
// requests a second the store holds tens of thousands of them, which the
// garbage collector does not scan (about 100 bytes a key, against about
// 220 as a list of pointers, all scanned). It is safe for concurrent use.
type idemStore struct {
	window time.Duration
	max    int
	now    func() time.Time
	// base is when the store was made; a binding's time is kept as the
	// time since base, which time.Now's monotonic reading makes immune to
	// steps of the wall clock (a step forward must not expire keys early).
	base time.Time

	mu sync.Mutex
	// ring holds the bindings in the order they were made, used slots
	// from head on (wrapping), oldest first; a binding dropped before its
	// turn (its request failed) leaves a hole until it reaches the head.
	ring       []idemEntry
	head, used int
	live       int                  // bindings in ring (used minus the holes)
	seq        int64                // numbers the bindings
	byKey      map[idemDigest]int32 // key → its binding's slot
}

// idemDigest is the first 128 bits of a SHA-256 digest.
type idemDigest [16]byte

type idemEntry struct {
	key      idemDigest
	req      idemDigest
	at       int64 // when it was made: nanoseconds since the store's base
	seq      int64 // 0: a hole
	inflight int32 // requests holding the binding
	acked    bool  // a request with it was acknowledged: kept for the window
}

// idemMinSlots is the ring's first size; it doubles as bindings come.
const idemMinSlots = 64

func newIdemStore(window time.Duration, max int, now func() time.Time) *idemStore {
	return &idemStore{window: window, max: max, now: now, base: now(), byKey: map[idemDigest]int32{}}
}

// requestHash is the hash an Idempotency-Key is bound to: the media type
// and the body.
func requestHash(media string, body []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(media))
	h.Write([]byte{0})
	h.Write(body)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// reserve binds key to req. It returns false when key is bound, within the
// window, to another request. On true, the caller must call done with
// whether the request was acknowledged: a request that was not releases a
// binding it made, so the key can be used again.
func (s *idemStore) reserve(key string, req [sha256.Size]byte) (ok bool, done func(acked bool)) {
	h := sha256.Sum256([]byte(key))
	k := idemDigest(h[:16])
	r := idemDigest(req[:16])
	now := int64(s.now().Sub(s.base))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if i, found := s.byKey[k]; found {
		e := &s.ring[i]
		if e.req != r {
			return false, nil
		}
		e.inflight++
		seq := e.seq
		return true, func(acked bool) { s.release(k, seq, acked) }
	}
	for s.live >= s.max {
		s.pop()
	}
	if s.used == len(s.ring) {
		s.makeRoom()
	}
	s.seq++
	i := (s.head + s.used) % len(s.ring)
	s.ring[i] = idemEntry{key: k, req: r, at: now, seq: s.seq, inflight: 1}
	s.used++
	s.live++
	s.byKey[k] = int32(i)
	seq := s.seq
	return true, func(acked bool) { s.release(k, seq, acked) }
}

// release ends a reservation of the binding seq of key. A binding no
// acknowledged request holds is dropped when its last request in flight
// ends; one already forgotten (past the bound) is left alone.
func (s *idemStore) release(key idemDigest, seq int64, acked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.byKey[key]
	if !found || s.ring[i].seq != seq {
		return
	}
	e := &s.ring[i]
	e.inflight--
	e.acked = e.acked || acked
	if !e.acked && e.inflight == 0 {
		delete(s.byKey, key)
		*e = idemEntry{} // a hole
		s.live--
	}
}

// expire forgets the keys older than the window, and the holes before
// them.
func (s *idemStore) expire(now int64) {
	for s.used > 0 {
		e := &s.ring[s.head]
		if e.seq != 0 && now-e.at < int64(s.window) {
			return
		}
		s.pop()
	}
}

// pop forgets the oldest slot: a binding or a hole.
func (s *idemStore) pop() {
	e := &s.ring[s.head]
	if e.seq != 0 {
		delete(s.byKey, e.key)
		s.live--
	}
	*e = idemEntry{}
	s.head = (s.head + 1) % len(s.ring)
	s.used--
}

// makeRoom makes a free slot in a full ring: it drops the holes when they
// are a quarter of it, else doubles it. Either way the bindings move to
// the start, in order.
func (s *idemStore) makeRoom() {
	size := max(idemMinSlots, 2*len(s.ring))
	if s.used-s.live >= len(s.ring)/4 && s.used > 0 {
		size = len(s.ring)
	}
	ring := make([]idemEntry, size)
	n := 0
	for j := range s.used {
		e := s.ring[(s.head+j)%len(s.ring)]
		if e.seq == 0 {
			continue
		}
		ring[n] = e
		s.byKey[e.key] = int32(n)
		n++
	}
	s.ring, s.head, s.used = ring, 0, n
}

// len returns the keys remembered.
func (s *idemStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}
