package ingest

import (
	"container/list"
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
	// 30 MB); past it the oldest are forgotten first.
	DefaultIdempotencyKeys = 1 << 18
)

// idemStore remembers, per Idempotency-Key, the hash of the request that
// was first accepted with it, for a window. Keys and hashes are kept as
// SHA-256 digests, so a key costs the same whatever its length. It is safe
// for concurrent use.
type idemStore struct {
	window time.Duration
	max    int
	now    func() time.Time

	mu    sync.Mutex
	byKey map[[sha256.Size]byte]*list.Element
	order *list.List // of *idemEntry, oldest first
}

type idemEntry struct {
	key      [sha256.Size]byte
	req      [sha256.Size]byte
	at       time.Time
	inflight int  // requests holding the binding
	acked    bool // a request with it was acknowledged: kept for the window
}

func newIdemStore(window time.Duration, max int, now func() time.Time) *idemStore {
	return &idemStore{window: window, max: max, now: now, byKey: map[[sha256.Size]byte]*list.Element{}, order: list.New()}
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
	k := sha256.Sum256([]byte(key))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if el, found := s.byKey[k]; found {
		e := el.Value.(*idemEntry)
		if e.req != req {
			return false, nil
		}
		e.inflight++
		return true, func(acked bool) { s.release(el, acked) }
	}
	for s.order.Len() >= s.max {
		s.remove(s.order.Front())
	}
	e := &idemEntry{key: k, req: req, at: now, inflight: 1}
	el := s.order.PushBack(e)
	s.byKey[k] = el
	return true, func(acked bool) { s.release(el, acked) }
}

// release ends a reservation. A binding no acknowledged request holds is
// dropped when its last request in flight ends.
func (s *idemStore) release(el *list.Element, acked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := el.Value.(*idemEntry)
	e.inflight--
	e.acked = e.acked || acked
	if !e.acked && e.inflight == 0 {
		s.remove(el)
	}
}

// expire forgets the keys older than the window.
func (s *idemStore) expire(now time.Time) {
	for el := s.order.Front(); el != nil; el = s.order.Front() {
		if now.Sub(el.Value.(*idemEntry).at) < s.window {
			return
		}
		s.remove(el)
	}
}

func (s *idemStore) remove(el *list.Element) {
	e := s.order.Remove(el).(*idemEntry)
	if s.byKey[e.key] == el {
		delete(s.byKey, e.key)
	}
}

// len returns the keys remembered.
func (s *idemStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}
