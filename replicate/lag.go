package replicate

import (
	"context"
	"time"
)

// lagEvery is how often a Lagger source's backlog is polled.
const lagEvery = 5 * time.Second

// watchLag keeps Status.SourceBacklogBytes up to date, polling a source
// that implements Lagger at once and then every lagEvery, in its own
// goroutine (never on the apply path), until the returned stop is called.
func (s *Stream) watchLag(ctx context.Context, src Source) (stop func()) {
	l, ok := src.(Lagger)
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lagEvery)
		defer t.Stop()
		for {
			pctx, pcancel := context.WithTimeout(ctx, lagEvery)
			n, err := l.Lag(pctx)
			pcancel()
			switch {
			case err == nil:
				s.mu.Lock()
				s.status.SourceBacklogBytes = n
				s.mu.Unlock()
			case ctx.Err() == nil:
				s.log.Debug("source backlog", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
