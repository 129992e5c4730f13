package objects

import (
	"errors"
	"io"
)

// Buffers is the body PutBuffers hands a driver: one byte sequence held
// in several slices, read in order. To a driver it is an io.Reader,
// io.Seeker (S3 and Azure size a seekable body up front) and io.WriterTo;
// a driver that writes several slices in one call (the file driver:
// writev(2)) takes them as they are with Slices, without joining them.
type Buffers struct {
	bufs [][]byte
	size int64
	pos  int64 // the read position
	i    int   // the slice that holds pos
	off  int   // pos within bufs[i]
}

// NewBuffers returns a Buffers that reads the slices in order. The slices
// must not change until the Put that takes them has returned.
func NewBuffers(bufs [][]byte) *Buffers {
	r := &Buffers{bufs: bufs}
	for _, b := range bufs {
		r.size += int64(len(b))
	}
	return r
}

// Len returns the number of bytes not yet read.
func (r *Buffers) Len() int64 { return max(r.size-r.pos, 0) }

// Slices returns what is not yet read, as slices of the caller's, and
// marks it read: the driver now writes it itself. The slices must not be
// modified.
func (r *Buffers) Slices() [][]byte {
	var out [][]byte
	for i := r.i; i < len(r.bufs); i++ {
		b := r.bufs[i]
		if i == r.i {
			b = b[r.off:]
		}
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	r.pos, r.i, r.off = max(r.pos, r.size), len(r.bufs), 0
	return out
}

// Read reads the next bytes, in order across the slices.
func (r *Buffers) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.i < len(r.bufs) {
		c := copy(p[n:], r.bufs[r.i][r.off:])
		n += c
		r.off += c
		if r.off == len(r.bufs[r.i]) {
			r.i, r.off = r.i+1, 0
		}
	}
	r.pos += int64(n)
	return n, nil
}

// WriteTo writes what is not yet read to w, a slice a call.
func (r *Buffers) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.i < len(r.bufs) {
		b := r.bufs[r.i][r.off:]
		if len(b) > 0 {
			n, err := w.Write(b)
			total += int64(n)
			r.pos += int64(n)
			r.off += n
			if err != nil {
				return total, err
			}
			if n < len(b) {
				return total, io.ErrShortWrite
			}
		}
		r.i, r.off = r.i+1, 0
	}
	return total, nil
}

// Seek sets the read position, as io.Seeker says; past the end reads
// nothing.
func (r *Buffers) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("objects: buffers: seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("objects: buffers: seek to a negative position")
	}
	r.pos, r.i, r.off = offset, len(r.bufs), 0 // past the end: nothing to read
	rest := offset
	for i, b := range r.bufs {
		if rest < int64(len(b)) {
			r.i, r.off = i, int(rest)
			break
		}
		rest -= int64(len(b))
	}
	return offset, nil
}
