package ingest

import "testing"

// TestBufPool: get gives an empty slice of at least the capacity asked
// for, also when it hands back one that was put; slices outside the
// pooled sizes are not kept.
func TestBufPool(t *testing.T) {
	var p bufPool
	for _, n := range []int{0, 1, 2048, 2049, 4095, 4096, 4097, 100_000, 1 << 24, 1<<24 + 1} {
		b := p.get(n)
		if len(b) != 0 || cap(b) < n {
			t.Errorf("get(%d): len %d cap %d", n, len(b), cap(b))
		}
		p.put(append(b, 'x'))
		if b := p.get(n); len(b) != 0 || cap(b) < n {
			t.Errorf("get(%d) after put: len %d cap %d", n, len(b), cap(b))
		}
	}
	// A slice of an odd capacity goes to the class below it: it must
	// never be handed out for a request above its capacity.
	for range 100 {
		p.put(make([]byte, 0, 6000))
		if b := p.get(8192); cap(b) < 8192 {
			t.Fatalf("get(8192) gave capacity %d", cap(b))
		}
		if b := p.get(4096); cap(b) < 4096 {
			t.Fatalf("get(4096) gave capacity %d", cap(b))
		}
	}
}

// TestBufPoolPutAllocatesNothing: once warm, a get and a put of a pooled
// size allocate nothing (the slice's box is reused, not made anew by
// every put).
func TestBufPoolPutAllocatesNothing(t *testing.T) {
	var p bufPool
	for _, n := range []int{4096, 100_000} {
		p.put(p.get(n)) // warm: one box, one slice
		if avg := testing.AllocsPerRun(1000, func() { p.put(p.get(n)) }); avg != 0 {
			t.Errorf("get(%d) and put: %v allocations, want 0", n, avg)
		}
		b := p.get(n)
		if avg := testing.AllocsPerRun(1000, func() { p.put(b); b = p.get(n) }); avg != 0 {
			t.Errorf("put and get(%d): %v allocations, want 0", n, avg)
		}
	}
}
