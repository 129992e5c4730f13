package edge

import (
	"context"
	"io"
	"net/http"
	"os"
	"sync"
)

// body is the content of a response being served: a stored body or one
// still arriving from the origin.
type body interface {
	// size is the body length, or -1 while it is not known.
	size() int64
	// writeTo writes bytes [off, off+n) to w; n < 0 means to the end.
	writeTo(ctx context.Context, w io.Writer, off, n int64) error
}

// memBody is a body held in memory. A stored one is made once, so that
// serving it hands out a pointer (no allocation per request).
type memBody struct{ b []byte }

func (m *memBody) size() int64 { return int64(len(m.b)) }

func (m *memBody) writeTo(_ context.Context, w io.Writer, off, n int64) error {
	end := int64(len(m.b))
	if n >= 0 {
		end = off + n
	}
	_, err := w.Write(m.b[off:end])
	return err
}

// fileBody is a body in a file of the disk tier. Writing it to a network
// connection uses sendfile(2) when w allows.
type fileBody struct {
	f *os.File
	n int64
}

func (b *fileBody) size() int64 { return b.n }

func (b *fileBody) writeTo(_ context.Context, w io.Writer, off, n int64) error {
	if n < 0 {
		n = b.n - off
	}
	if _, err := b.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, io.LimitReader(b.f, n))
	return err
}

// growBuf is a body arriving from an origin: one writer appends, any
// number of readers follow it concurrently from the start. It lives in
// memory while small and in a file otherwise, so a large body never sits
// in memory. Readers block until the bytes they want arrive.
type growBuf struct {
	memMax int64 // beyond this the body moves to a file
	tmpDir string

	mu     sync.Mutex
	wake   chan struct{} // closed and replaced on every change
	mem    []byte        // the body while it is in memory
	file   *os.File      // the body once it is in a file
	n      int64         // bytes available
	total  int64         // expected length, -1 if unknown
	done   bool
	err    error
	refs   int // the writer and every reader
	closed bool
}

func newGrowBuf(total, memMax int64, tmpDir string) *growBuf {
	g := &growBuf{memMax: memMax, tmpDir: tmpDir, wake: make(chan struct{}), total: total, refs: 1}
	if total >= 0 && total <= memMax {
		g.mem = make([]byte, 0, total)
	}
	return g
}

func (g *growBuf) size() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done && g.err == nil {
		return g.n
	}
	return g.total
}

// acquire registers a reader, which must release it; it fails once the
// last reference is gone.
func (g *growBuf) acquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refs == 0 {
		return false
	}
	g.refs++
	return true
}

// release drops a reference; the file is closed with the last one.
func (g *growBuf) release() {
	g.mu.Lock()
	g.refs--
	var f *os.File
	if g.refs == 0 && g.file != nil && !g.closed {
		g.closed, f = true, g.file
	}
	g.mu.Unlock()
	if f != nil {
		_ = f.Close()
	}
}

// write appends p. A body that outgrows memMax moves to a file in tmpDir
// (created on demand).
func (g *growBuf) write(p []byte) error {
	g.mu.Lock()
	f, inMem := g.file, g.file == nil
	g.mu.Unlock()
	// A body known to be too large goes to a file from its first byte.
	if inMem && (g.total > g.memMax || int64(len(g.mem)+len(p)) > g.memMax) {
		nf, err := os.CreateTemp(g.tmpDir, "fill-*")
		if err != nil {
			return err
		}
		if _, err := nf.Write(g.mem); err != nil {
			_ = nf.Close()
			_ = os.Remove(nf.Name())
			return err
		}
		f, inMem = nf, false
		g.mu.Lock()
		g.file, g.mem = nf, nil
		g.mu.Unlock()
	}
	if inMem {
		mem := append(g.mem, p...)
		g.mu.Lock()
		g.mem = mem
		g.n += int64(len(p))
		g.signal()
		g.mu.Unlock()
		return nil
	}
	if _, err := f.Write(p); err != nil {
		return err
	}
	g.mu.Lock()
	g.n += int64(len(p))
	g.signal()
	g.mu.Unlock()
	return nil
}

// signal wakes the readers; g.mu must be held.
func (g *growBuf) signal() {
	close(g.wake)
	g.wake = make(chan struct{})
}

// finish marks the body complete (err nil) or failed.
func (g *growBuf) finish(err error) {
	g.mu.Lock()
	g.done, g.err = true, err
	g.signal()
	g.mu.Unlock()
}

// fileName is the name of the body's file, or "" while it is in memory.
func (g *growBuf) fileName() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.file == nil {
		return ""
	}
	return g.file.Name()
}

// bytes returns the whole body when it is complete and in memory.
func (g *growBuf) bytes() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mem
}

// readAt reads at off, waiting for data; it returns io.EOF at the end and
// the fill's error if it failed.
func (g *growBuf) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	for {
		g.mu.Lock()
		if off < g.n {
			mem, f, n := g.mem, g.file, g.n
			g.mu.Unlock()
			p = p[:min(int64(len(p)), n-off)]
			if f == nil {
				return copy(p, mem[off:]), nil
			}
			return f.ReadAt(p, off)
		}
		if g.done {
			err := g.err
			g.mu.Unlock()
			if err == nil {
				err = io.EOF
			}
			return 0, err
		}
		wake := g.wake
		g.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// waiting reports whether a read at off would wait for the writer.
func (g *growBuf) waiting(off int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return off >= g.n && !g.done
}

// writeTo copies as the body arrives; what was written is flushed to the
// client before waiting for more.
func (g *growBuf) writeTo(ctx context.Context, w io.Writer, off, n int64) error {
	buf := make([]byte, 32<<10)
	flusher, _ := w.(http.Flusher)
	for n != 0 {
		// Flush before waiting, unless only the end is awaited: then the
		// client gets the last bytes once the fill has been stored.
		if flusher != nil && g.waiting(off) && (g.total < 0 || off < g.total) {
			flusher.Flush()
		}
		p := buf
		if n > 0 && n < int64(len(p)) {
			p = p[:n]
		}
		k, err := g.readAt(ctx, p, off)
		if k > 0 {
			if _, werr := w.Write(p[:k]); werr != nil {
				return werr
			}
			off += int64(k)
			if n > 0 {
				n -= int64(k)
			}
		}
		if err == io.EOF {
			if n > 0 {
				return io.ErrUnexpectedEOF
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
