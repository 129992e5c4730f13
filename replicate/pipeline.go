package replicate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// Pipeline applies a source's batches on a goroutine of its own, in the
// order sent, one at a time, with at most one more waiting, so a source
// reads or decodes its next batch while the consumer applies the last
// one. A source that uses it still gives the consumer every batch in
// order and stops at the consumer's first error; what it no longer does
// is wait for fn before reading on, which is safe because a consumer's
// position is its own checkpoint (a source that confirms positions to
// its server confirms StreamOptions.Durable, not what it delivered).
//
// A Pipeline is used by the one goroutine that runs Source.Stream.
type Pipeline struct {
	ch      chan Batch
	sent    atomic.Int64  // batches handed to the applier
	applied atomic.Int64  // batches it applied
	free    chan struct{} // signalled when a batch was applied
	done    chan struct{} // closed when the applier stopped
	err     error         // why it stopped (set before done closes)
}

// NewPipeline starts the applier: fn is called with each batch Send
// hands it, with ctx.
func NewPipeline(ctx context.Context, fn func(context.Context, Batch) error) *Pipeline {
	p := &Pipeline{ch: make(chan Batch, 1), free: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for b := range p.ch {
			if err := fn(ctx, b); err != nil {
				p.err = err
				return
			}
			p.applied.Add(1)
			select {
			case p.free <- struct{}{}:
			default:
			}
		}
	}()
	return p
}

// Sent is how many batches Send handed to the applier.
func (p *Pipeline) Sent() int64 { return p.sent.Load() }

// Applied is how many batches the applier applied.
func (p *Pipeline) Applied() int64 { return p.applied.Load() }

// Pending is how many batches were sent and not applied yet: 0 when the
// applier is idle, 2 when one is applied and one waits.
func (p *Pipeline) Pending() int64 { return p.Sent() - p.Applied() }

// Idle reports whether every batch sent was applied.
func (p *Pipeline) Idle() bool { return p.Pending() == 0 }

// Free is signalled after a batch was applied (at most one signal waits).
func (p *Pipeline) Free() <-chan struct{} { return p.free }

// Done is closed when the applier stopped: on an error (Err), or after
// Close.
func (p *Pipeline) Done() <-chan struct{} { return p.done }

// Err is why the applier stopped; call it once Done is closed.
func (p *Pipeline) Err() error { return p.err }

// Send hands a batch to the applier, waiting while one is applied and
// another waits; it fails with the applier's error once the applier
// stopped, or with ctx's. (A batch sent as the applier stops is not
// applied; the next call returns the error.) It sets the batch's ReadAt
// when the source did not, so the consumer's lag figures do not count
// the wait for the batch before it.
func (p *Pipeline) Send(ctx context.Context, b Batch) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	if b.ReadAt.IsZero() {
		b.ReadAt = time.Now()
	}
	p.sent.Add(1) // before the applier can count it applied
	select {
	case p.ch <- b:
		return nil
	case <-p.done:
		p.sent.Add(-1)
		return p.err
	case <-ctx.Done():
		p.sent.Add(-1)
		return ctx.Err()
	}
}

// Wait waits until n batches were applied; it fails with the applier's
// error once the applier stopped short of them, or with ctx's.
func (p *Pipeline) Wait(ctx context.Context, n int64) error {
	for p.Applied() < n {
		select {
		case <-p.free:
		case <-p.done:
			if p.Applied() < n {
				return cmp.Or(p.err, errPipelineClosed)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// errPipelineClosed: Wait was called after Close.
var errPipelineClosed = errors.New("replicate: pipeline closed")

// Close lets the applier finish what it was given and returns its error,
// or err when it had none. Call it once, when the source stops sending.
func (p *Pipeline) Close(err error) error {
	close(p.ch)
	<-p.done
	if p.err != nil {
		return p.err
	}
	return err
}

// Poll runs the loop of a source that polls its change log, through a
// Pipeline: read returns the next batch after the last one it returned,
// with ok false when nothing new was logged, and busy when more is
// likely waiting already (a batch cut at MaxBatch, or a large one; see
// StreamOptions.Busy). read moves the source's own cursor past each
// batch it returns; Poll hands the batch to fn and reads again while fn
// applies it. After a busy batch it reads again at once, and once more
// when that batch was applied, so what was written meanwhile does not
// wait for the next poll; otherwise it waits poll. A batch read from db
// is handed on only once what it read is durable there (db.WaitDurable:
// an embedded SQLite commit is visible a moment before its sync ends;
// elsewhere a no-op; nil: nothing to wait for), so what the target gets
// lasts on the source. It returns fn's error, read's, or ctx's.
func Poll(ctx context.Context, db *sqldb.DB, poll time.Duration, fn func(context.Context, Batch) error, read func(context.Context) (b Batch, ok, busy bool, err error)) (err error) {
	p := NewPipeline(ctx, fn)
	defer func() { err = p.Close(err) }()
	timer := time.NewTimer(poll)
	defer timer.Stop()
	// busy is the number (Sent) of the last busy batch.
	var busy int64
	for {
		// One batch read ahead at most: while one is applied and the
		// next waits, what arrives goes into the batch after them.
		if err := p.Wait(ctx, p.Sent()-1); err != nil {
			return err
		}
		before := p.Applied()
		b, ok, more, err := read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if ok {
			if err := waitDurable(ctx, db); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("replicate: read changes: %w", err)
			}
			if err := p.Send(ctx, b); err != nil {
				return err
			}
			if more {
				busy = p.Sent() // read again at once: more is waiting
				continue
			}
		}
		if before < busy {
			// This read ran while the busy batch was applied: read again
			// once it is.
			if err := p.Wait(ctx, busy); err != nil {
				return err
			}
			continue
		}
		timer.Reset(poll)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.Done():
			return p.Err()
		case <-timer.C:
		}
	}
}

// waitDurable is db.WaitDurable, nothing for a nil db.
func waitDurable(ctx context.Context, db *sqldb.DB) error {
	if db == nil {
		return nil
	}
	return db.WaitDurable(ctx)
}
