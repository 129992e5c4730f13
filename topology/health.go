package topology

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/ingest"
)

// How often a cloud checks what it depends on, and how long one check may
// take. Dead letters are counted less often: it lists the store.
const (
	healthEvery   = time.Second
	healthTimeout = 2 * time.Second
	deadEvery     = 10 * time.Second
	// stuckAfter is how long a pipeline stage may fail before /healthz
	// reports the cloud degraded (a blip is retried quietly).
	stuckAfter = 5 * time.Second
)

// health is the last check of what a cloud depends on: its object store
// (without it no write can be acknowledged: unhealthy), its database
// (writes are still durable, but nothing is loaded: degraded) and its dead
// letters (acknowledged records not loaded: degraded).
type health struct {
	mu       sync.Mutex
	objects  error
	database error
	dead     int
	deadErr  error
	deadAt   time.Time
	last     ingest.Health
	// loadFailingSince is when the load function started to have
	// failing events; zero while it has none.
	loadFailingSince time.Time
}

// report returns the last check as /healthz reports it.
func (h *health) report() ingest.Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// deadLetters returns the last count of dead letters.
func (h *health) deadLetters() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dead
}

// up reports whether the object store and the database answered the last
// check.
func (h *health) up() (objects, database bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.objects == nil, h.database == nil
}

// checkHealth checks the cloud's object store, database and (every
// deadEvery) dead letters once, and logs a change of state.
func (t *Topology) checkHealth(ctx context.Context, c *Cloud) {
	h := c.health
	cctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var objErr, dbErr error
	wg.Go(func() {
		// A missing key answers quickly on every store; only an
		// unreachable or failing store errs.
		_, objErr = c.Bucket.Exists(cctx, "healthz/probe")
	})
	wg.Go(func() { dbErr = c.DB.PingContext(cctx) })
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	h.mu.Lock()
	countDead := time.Since(h.deadAt) >= deadEvery && objErr == nil
	h.mu.Unlock()
	var dead int
	var deadErr error
	if countDead {
		dctx, dcancel := context.WithTimeout(ctx, healthTimeout)
		dead, deadErr = c.Loader.CountDead(dctx)
		dcancel()
	}

	h.mu.Lock()
	h.objects, h.database = objErr, dbErr
	if countDead {
		h.deadAt, h.deadErr = time.Now(), deadErr
		if deadErr == nil {
			h.dead = dead
		}
	}
	rep := ingest.Health{Status: ingest.HealthOK}
	if objErr != nil {
		rep.Status = ingest.HealthUnhealthy
		rep.Problems = append(rep.Problems, "object store unreachable: "+oneLine(objErr))
	}
	if dbErr != nil {
		rep.Problems = append(rep.Problems, "database unreachable: "+oneLine(dbErr))
	}
	if h.dead > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d dead-lettered objects (intercloud dead list)", h.dead))
	}
	if ls := c.Load.Stats(); ls.Failing > 0 {
		if h.loadFailingSince.IsZero() {
			h.loadFailingSince = time.Now()
		}
		if time.Since(h.loadFailingSince) > stuckAfter {
			rep.Problems = append(rep.Problems, fmt.Sprintf("load: %d objects failing since %s (retried): %s", ls.Failing, h.loadFailingSince.UTC().Format(time.RFC3339), ls.LastError))
		}
	} else {
		h.loadFailingSince = time.Time{}
	}
	for _, s := range c.Streams {
		if st := s.Status(); !st.ReconnectingSince.IsZero() && time.Since(st.ReconnectingSince) > stuckAfter {
			rep.Problems = append(rep.Problems, "replication "+st.Name+": "+st.State)
		}
	}
	if c.Publish != nil {
		ps := c.Publish.Stats()
		if !ps.FailingSince.IsZero() && time.Since(ps.FailingSince) > stuckAfter {
			rep.Problems = append(rep.Problems, fmt.Sprintf("publish failing since %s: %s", ps.FailingSince.UTC().Format(time.RFC3339), ps.LastError))
		}
		if n := len(ps.Failing); n > 0 {
			f := ps.Failing[0]
			rep.Problems = append(rep.Problems, fmt.Sprintf("publish: %d buckets not published, first %s since %s: %s", n, f.Bucket, f.Since.UTC().Format(time.RFC3339), f.Error))
		}
	}
	if age, oldest, ok := c.fresh.age(time.Now()); ok && age > t.degradedBacklog() {
		rep.Problems = append(rep.Problems, fmt.Sprintf("published results behind by more than ingest.degraded_backlog (%s): a record acknowledged at %s is not published yet",
			t.degradedBacklog(), oldest.Format(time.RFC3339)))
	}
	if rep.Status == ingest.HealthOK && len(rep.Problems) > 0 {
		rep.Status = ingest.HealthDegraded
	}
	prev := h.last
	h.last = rep
	h.mu.Unlock()

	log := t.logger(c.Name, "health")
	switch {
	case prev.Status == rep.Status && slices.Equal(prev.Problems, rep.Problems):
	case rep.Status == ingest.HealthOK:
		if prev.Status != "" {
			log.Info("cloud healthy again", "was", prev.Status)
		}
	default:
		log.Warn("cloud "+rep.Status, "problems", strings.Join(rep.Problems, "; "))
	}
}

// degradedBacklog is how far behind the results may be before /healthz
// says degraded.
func (t *Topology) degradedBacklog() time.Duration {
	if d := t.cfg.Ingest.DegradedBacklog.D(); d > 0 {
		return d
	}
	return ingest.DefaultDegradedBacklog
}

// watchHealth checks the cloud's dependencies every healthEvery until ctx
// is cancelled.
func (t *Topology) watchHealth(ctx context.Context, c *Cloud) {
	tick := time.NewTicker(healthEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.checkHealth(ctx, c)
		}
	}
}

// oneLine shortens an error to one line of at most 300 bytes.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
