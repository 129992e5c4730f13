package frontdoor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// errAlreadyRunning is returned by a second concurrent Run.
var errAlreadyRunning = errors.New("frontdoor: run: already running")

// Run checks every backend's health immediately and then every
// HealthInterval until ctx is cancelled. It returns nil after ctx is
// cancelled and every check it started has finished. Only one Run may be
// active at a time.
func (f *FrontDoor) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	defer f.running.Store(false)
	t := time.NewTicker(f.cfg.HealthInterval)
	defer t.Stop()
	for {
		f.checkAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// checkAll runs one health check on every backend in parallel and waits
// for all of them.
func (f *FrontDoor) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, b := range f.backends {
		wg.Go(func() { f.check(ctx, b) })
	}
	wg.Wait()
}

// check runs one health check on b and applies its result.
func (f *FrontDoor) check(ctx context.Context, b *backend) {
	rep, err := f.probe(ctx, b)
	if ctx.Err() != nil {
		return // shutting down: the result says nothing about the backend
	}
	if err == nil && b.setDegraded(rep) {
		if rep.degraded() {
			f.log.Warn("frontdoor: backend degraded; preferring the others", "backend", b.name, "problems", strings.Join(rep.Problems, "; "))
		} else {
			f.log.Info("frontdoor: backend no longer degraded", "backend", b.name)
		}
	}
	if b.observe(time.Now(), err, f.cfg.FailAfter, f.cfg.RiseAfter) {
		healthy := err == nil
		reason := fmt.Sprintf("%d consecutive good health checks", f.cfg.RiseAfter)
		lastErr := ""
		if !healthy {
			reason = fmt.Sprintf("%d consecutive failed health checks", f.cfg.FailAfter)
			lastErr = err.Error()
		}
		f.logChange(b, healthy, reason, lastErr)
	}
}

// healthReport is what a backend's health answer may say beyond its
// status code: {"status": "degraded", "problems": [...]}.
type healthReport struct {
	Status   string   `json:"status"`
	Problems []string `json:"problems"`
}

func (r healthReport) degraded() bool { return r.Status == StatusDegraded }

// probe sends GET <backend><HealthPath>; any 2xx answer is healthy, and
// one whose JSON body says "status": "degraded" is degraded.
func (f *FrontDoor) probe(ctx context.Context, b *backend) (healthReport, error) {
	var rep healthReport
	ctx, cancel := context.WithTimeout(ctx, f.cfg.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.health.String(), nil)
	if err != nil {
		return rep, fmt.Errorf("health check: %w", err)
	}
	req.Header.Set("User-Agent", "intercloud-frontdoor")
	resp, err := f.client.Do(req)
	if err != nil {
		return rep, fmt.Errorf("health check: %s", describeErr(err))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return rep, fmt.Errorf("health check: status %d", resp.StatusCode)
	}
	if json.Unmarshal(body, &rep) != nil {
		rep = healthReport{} // not JSON: plain healthy
	}
	if len(rep.Problems) > 8 {
		rep.Problems = rep.Problems[:8]
	}
	return rep, nil
}
