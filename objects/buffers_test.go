package objects_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/intercloud/intercloud/objects"
)

// TestBuffers: a Buffers reads, seeks, writes itself and hands its unread
// slices exactly as a bytes.Reader over the slices joined does, whatever
// the slices (empty ones included) and the order of the calls.
func TestBuffers(t *testing.T) {
	for _, bufs := range [][][]byte{
		nil,
		{{}},
		{[]byte("a")},
		{[]byte("hello, "), {}, []byte("object"), {}, []byte("\n")},
		{bytes.Repeat([]byte("x"), 1000), []byte("y"), bytes.Repeat([]byte("z"), 333)},
	} {
		joined := bytes.Join(bufs, nil)
		rng := rand.New(rand.NewPCG(1, uint64(len(joined))))
		for round := range 200 {
			r, want := objects.NewBuffers(bufs), bytes.NewReader(joined)
			for step := range 12 {
				switch rng.IntN(5) {
				case 0, 1:
					p, q := make([]byte, rng.IntN(400)), make([]byte, 0)
					q = append(q, p...)
					n, err := r.Read(p)
					wn, werr := want.Read(q)
					if n != wn || !bytes.Equal(p[:n], q[:wn]) || (err == nil) != (werr == nil) {
						t.Fatalf("%q round %d step %d: Read = %d, %v; want %d, %v", joined, round, step, n, err, wn, werr)
					}
				case 2:
					off, whence := int64(rng.IntN(len(joined)+3))-1, rng.IntN(3)
					pos, err := r.Seek(off, whence)
					wpos, werr := want.Seek(off, whence)
					if pos != wpos || (err == nil) != (werr == nil) {
						t.Fatalf("%q round %d step %d: Seek(%d, %d) = %d, %v; want %d, %v", joined, round, step, off, whence, pos, err, wpos, werr)
					}
				case 3:
					var got, wantOut bytes.Buffer
					n, err := r.WriteTo(&got)
					wn, werr := want.WriteTo(&wantOut)
					if n != wn || err != nil || werr != nil || !bytes.Equal(got.Bytes(), wantOut.Bytes()) {
						t.Fatalf("%q round %d step %d: WriteTo = %d %q, %v; want %d %q", joined, round, step, n, got.Bytes(), err, wn, wantOut.Bytes())
					}
				case 4:
					if r.Len() != int64(want.Len()) {
						t.Fatalf("%q round %d step %d: Len = %d, want %d", joined, round, step, r.Len(), want.Len())
					}
					rest, _ := io.ReadAll(want)
					got := bytes.Join(r.Slices(), nil)
					if !bytes.Equal(got, rest) {
						t.Fatalf("%q round %d step %d: Slices = %q, want %q", joined, round, step, got, rest)
					}
					if r.Len() != 0 {
						t.Fatalf("Len after Slices = %d", r.Len())
					}
				}
			}
		}
	}
}
