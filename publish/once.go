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
	db := p.cfg.DB
	src, err := replicate.OpenSource(ctx, db, replicate.SourceConfig{Name: StreamName, Tables: []string{p.table.Name}, Logger: p.log})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer src.Close()
	cp, err := replicate.LoadCheckpoint(ctx, db, db.Dialect, StreamName)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	end, err := src.Current(ctx)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	pos := cp.Position
	if pos == "" {
		if err := p.Rebuild(ctx); err != nil {
			return err
		}
		return p.saveCheckpoint(ctx, end)
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
	err = src.Stream(sctx, pos, replicate.StreamOptions{Tables: []string{p.table.Name}, MaxBatch: p.cfg.BatchSize, Poll: p.cfg.Poll},
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
			if err := p.apply(ctx, b); err != nil {
				return err
			}
			return p.saveCheckpoint(ctx, b.Position)
		})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if sctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}
