package publish

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/intercloud/intercloud/replicate"
)

// Once processes the change batches pending now and returns: one publish
// pass, for a host that invokes the function on a schedule (an Azure
// Functions timer trigger) instead of running it. Like Run, its first
// pass publishes everything already in the table.
func (p *Publisher) Once(ctx context.Context) error {
	p.pass.Lock()
	p.held = held{}
	p.pass.Unlock()
	src, pos, err := p.open(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := p.retryDue(ctx, time.Now()); err != nil {
		return err
	}
	end, err := src.Current(ctx)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if pos == end {
		return nil
	}
	// Stream until the position reaches the end seen above, or the source
	// stays idle for a while (positions of some sources never compare
	// equal to Current).
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu   sync.Mutex
		busy bool
		last = time.Now()
		done bool
	)
	idle := max(time.Second, 10*p.cfg.Poll)
	go func() {
		t := time.NewTicker(p.cfg.Poll)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				mu.Lock()
				quit := !busy && (done || time.Since(last) > idle)
				mu.Unlock()
				if quit {
					stop()
					return
				}
			}
		}
	}()
	err = src.Stream(sctx, pos, p.streamOptions(),
		func(_ context.Context, b replicate.Batch) error {
			mu.Lock()
			busy = true
			mu.Unlock()
			defer func() {
				mu.Lock()
				busy, last = false, time.Now()
				done = done || b.Position == end
				mu.Unlock()
			}()
			// The pass's own context, not the stream's: stopping after
			// the end must not abort a batch half-applied.
			return p.handle(ctx, b)
		})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && sctx.Err() == nil {
		return fmt.Errorf("publish: %w", err)
	}
	// Nothing stays held past the pass.
	p.pass.Lock()
	defer p.pass.Unlock()
	return p.flush(ctx)
}
