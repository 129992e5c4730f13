package replicate

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// lagEvery is how often a source's backlog is polled while the stream
// runs; checkTimeout bounds one check of either side.
const (
	lagEvery     = 5 * time.Second
	checkTimeout = 2 * time.Second
)

// honestLag completes a status snapshot at now: while the stream is
// reconnecting, the lags grow with the outage (a lag frozen at its last
// value would claim the target is fresh while nothing arrives), and State
// says what the stream does.
func honestLag(st *Status, now time.Time) {
	if !st.ReconnectingSince.IsZero() {
		out := max(0, now.Sub(st.ReconnectingSince))
		// The last read happened when the stream was lost: the source lag
		// is the age of that read while the source does not answer.
		if strings.Contains(st.Unreachable, "source") {
			st.SourceLag += out
		}
		// Nothing is applied while the stream is out, unless nothing is
		// pending.
		if st.PendingChanges != 0 {
			st.TargetLag = max(st.TargetLag+out, st.SourceLag)
		}
	}
	st.State = describe(*st)
	if n := len(st.StoppedTables); n > 0 && st.Phase != "stopped" {
		names := make([]string, n)
		for i, te := range st.StoppedTables {
			names[i] = te.Table
		}
		st.State += fmt.Sprintf("; %d table(s) stopped by an error: %s", n, strings.Join(names, ", "))
	}
	if st.Schema != nil && len(st.Schema.NotConverted) > 0 {
		st.State += fmt.Sprintf("; %d schema object(s) not converted (see schema)", len(st.Schema.NotConverted))
	}
}

// describe renders a status as its State.
func describe(st Status) string {
	switch {
	case !st.ReconnectingSince.IsZero() && st.Phase != "stopped":
		var b strings.Builder
		fmt.Fprintf(&b, "reconnecting since %s", st.ReconnectingSince.UTC().Format(time.RFC3339))
		switch {
		case st.PendingChanges >= 0:
			fmt.Fprintf(&b, ", %d changes pending", st.PendingChanges)
		case st.SourceBacklogBytes > 0:
			fmt.Fprintf(&b, ", %s of change log pending", bytesText(st.SourceBacklogBytes))
		}
		if st.Unreachable != "" {
			fmt.Fprintf(&b, " (%s unreachable)", st.Unreachable)
		}
		return b.String()
	case st.Phase == "stopped" && st.LastError != "":
		return "stopped: " + st.LastError
	case st.Phase == PhaseSnapshot:
		return "full load of " + st.Table
	case st.Phase == PhaseCDC:
		return "streaming"
	}
	return st.Phase
}

// bytesText renders a byte count: 512 B, 3.1 MB.
func bytesText(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// connectedLocked records that the stream runs again (s.mu held).
func (s *Stream) connectedLocked() {
	s.status.ReconnectingSince = time.Time{}
	s.status.Unreachable = ""
}

// checkSides finds out, after a failure, which database does not answer,
// and how much the source holds for the stream when it does.
func (s *Stream) checkSides(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var srcErr, dstErr error
	var wg sync.WaitGroup
	wg.Go(func() { srcErr = s.cfg.Source.PingContext(ctx) })
	wg.Go(func() { dstErr = s.cfg.Target.PingContext(ctx) })
	wg.Wait()
	var down []string
	if srcErr != nil {
		down = append(down, "source")
	}
	if dstErr != nil {
		down = append(down, "target")
	}
	s.mu.Lock()
	s.status.Unreachable = strings.Join(down, " and ")
	if srcErr != nil {
		s.status.PendingChanges = -1 // the source cannot say
	}
	pos := s.status.Position
	s.mu.Unlock()
	if srcErr == nil {
		s.pollBacklog(ctx, pos)
	}
}

// pollBacklog asks the source how much it holds after pos for the stream:
// changes through the driver's Backlogger when it has one.
func (s *Stream) pollBacklog(ctx context.Context, pos Position) {
	d, err := driverFor(s.cfg.Source, s.cfg.SourceMode)
	if err != nil {
		return
	}
	bl, ok := d.(Backlogger)
	if !ok {
		return
	}
	changes, bytes, err := bl.Backlog(ctx, s.cfg.Source, s.cfg.Name, pos)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug("source backlog", "err", err)
		}
		return
	}
	s.mu.Lock()
	s.status.PendingChanges = changes
	if bytes >= 0 {
		s.status.SourceBacklogBytes = bytes
	}
	s.mu.Unlock()
}

// watchLag keeps the backlog in Status up to date while the stream runs,
// polling at once and then every lagEvery, in its own goroutine (never on
// the apply path), until the returned stop is called: the source's
// Backlogger driver (changes, bytes), else a Lagger source (bytes).
func (s *Stream) watchLag(ctx context.Context, src Source) (stop func()) {
	l, isLagger := src.(Lagger)
	d, _ := driverFor(s.cfg.Source, s.cfg.SourceMode)
	_, isBacklogger := d.(Backlogger)
	if !isLagger && !isBacklogger {
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
			if isBacklogger {
				s.mu.Lock()
				pos := s.status.Position
				s.mu.Unlock()
				s.pollBacklog(pctx, pos)
			} else {
				n, err := l.Lag(pctx)
				switch {
				case err == nil:
					s.mu.Lock()
					s.status.SourceBacklogBytes = n
					s.mu.Unlock()
				case ctx.Err() == nil:
					s.log.Debug("source backlog", "err", err)
				}
			}
			pcancel()
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
