// Package wan is a TCP proxy that behaves like a wide-area link: every
// chunk of bytes is delivered a latency plus a random jitter after it was
// read, in order, and now and then a chunk is held back as long as a
// retransmission would take (TCP's view of a lost packet). The chaos suite
// puts it on the hops between the clouds, where the kernel's netem qdisc
// is not available.
package wan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Link describes the link's behaviour; the zero Link forwards at once.
type Link struct {
	// Delay is the one-way latency added to every chunk.
	Delay time.Duration
	// Jitter is the most that is added to or taken from Delay, uniformly.
	Jitter time.Duration
	// Loss is the probability (0..1) that a chunk is held back another
	// Retransmit, as if a packet of it had been lost and sent again.
	Loss float64
	// Retransmit is the extra delay of a "lost" chunk (default 200ms, the
	// usual minimum TCP retransmission timeout).
	Retransmit time.Duration
	// Seed makes the jitter and loss of a run replayable.
	Seed uint64
}

// Validate checks the link.
func (l Link) Validate() error {
	switch {
	case l.Delay < 0 || l.Jitter < 0 || l.Retransmit < 0:
		return errors.New("wan: delay, jitter and retransmit must not be negative")
	case l.Jitter > l.Delay:
		return fmt.Errorf("wan: jitter %v exceeds the delay %v", l.Jitter, l.Delay)
	case l.Loss < 0 || l.Loss >= 1:
		return fmt.Errorf("wan: loss %v is not in [0, 1)", l.Loss)
	}
	return nil
}

// Proxy forwards the connections of a listener to a target over a Link.
type Proxy struct {
	link   Link
	target string
	mu     sync.Mutex
	rng    *rand.Rand
	conns  map[net.Conn]struct{}
}

// New returns a proxy to target (host:port).
func New(target string, link Link) (*Proxy, error) {
	if err := link.Validate(); err != nil {
		return nil, err
	}
	if link.Retransmit == 0 {
		link.Retransmit = 200 * time.Millisecond
	}
	return &Proxy{link: link, target: target, rng: rand.New(rand.NewPCG(link.Seed, link.Seed^0x9e3779b97f4a7c15)), conns: map[net.Conn]struct{}{}}, nil
}

// Serve accepts connections until ctx ends or ln fails, then closes every
// connection it opened.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wan: accept: %w", err)
		}
		go p.handle(ctx, c)
	}
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) handle(ctx context.Context, in net.Conn) {
	p.track(in, true)
	defer p.track(in, false)
	defer in.Close()
	d := net.Dialer{Timeout: 10 * time.Second}
	out, err := d.DialContext(ctx, "tcp", p.target)
	if err != nil {
		return
	}
	p.track(out, true)
	defer p.track(out, false)
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { p.pump(out, in); done <- struct{}{} }()
	go func() { p.pump(in, out); done <- struct{}{} }()
	<-done
	// One direction ended: end the other too (a half-closed proxy would
	// keep dead connections around).
	in.Close()
	out.Close()
	<-done
}

// chunk is bytes read and the time they may be written.
type chunk struct {
	b  []byte
	at time.Time
}

// delay returns a chunk's delay: Delay ± Jitter, plus Retransmit with
// probability Loss.
func (p *Proxy) delay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.link.Delay
	if p.link.Jitter > 0 {
		d += time.Duration(p.rng.Int64N(int64(2*p.link.Jitter)+1)) - p.link.Jitter
	}
	if p.link.Loss > 0 && p.rng.Float64() < p.link.Loss {
		d += p.link.Retransmit
	}
	return d
}

// pump copies src to dst, each chunk delayed, in order.
func (p *Proxy) pump(dst io.WriteCloser, src io.Reader) {
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		var last time.Time
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				at := time.Now().Add(p.delay())
				if at.Before(last) { // in order, as TCP delivers
					at = last
				}
				last = at
				q <- chunk{buf[:n], at}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		if d := time.Until(c.at); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.b); err != nil {
			for range q { // drain so the reader ends
			}
			return
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
