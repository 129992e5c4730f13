package ingest

import (
	"math/bits"
	"sync"
)

// bufPool recycles the large byte slices of a request: its body, its
// object's lines and its 202 answer (about 80, 125 and 40 KB for 1,000
// records), which would otherwise each be a fresh large allocation,
// zeroed, collected and returned to the operating system at a few hundred
// requests a second. Slices are kept by capacity, one pool per power of
// two from 4 KiB to 16 MiB; smaller and larger ones are left to the
// garbage collector. The zero value is ready.
//
// A sync.Pool holds pointers: a slice goes in behind a *[]byte. The
// pointers a get empties are kept (boxes) and a put fills one of them, so
// that neither allocates once the pool is warm (a put of &b would
// allocate a slice header on every call).
//
// A slice must be put back only once nothing refers to it any more, and
// then by exactly one owner.
type bufPool struct {
	classes [bufMaxShift - bufMinShift + 1]sync.Pool
	boxes   sync.Pool // empty *[]byte, for put
}

const (
	bufMinShift = 12 // 4 KiB
	bufMaxShift = 24 // 16 MiB
)

// get returns an empty slice with a capacity of at least n.
func (p *bufPool) get(n int) []byte {
	if n <= 1<<bufMinShift>>1 || n > 1<<bufMaxShift {
		return make([]byte, 0, n)
	}
	shift := bits.Len(uint(n - 1)) // the smallest power of two >= n
	shift = max(shift, bufMinShift)
	if bp, ok := p.classes[shift-bufMinShift].Get().(*[]byte); ok {
		b := *bp
		*bp = nil // the box keeps nothing alive
		p.boxes.Put(bp)
		return b[:0]
	}
	return make([]byte, 0, 1<<shift)
}

// put takes b back for a later get; b must not be used after.
func (p *bufPool) put(b []byte) {
	c := cap(b)
	if c < 1<<bufMinShift || c > 1<<bufMaxShift {
		return
	}
	shift := bits.Len(uint(c)) - 1 // the largest power of two <= cap
	bp, ok := p.boxes.Get().(*[]byte)
	if !ok {
		bp = new([]byte)
	}
	*bp = b[:0]
	p.classes[shift-bufMinShift].Put(bp)
}
