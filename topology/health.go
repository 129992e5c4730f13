package topology

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/ingest"
	"github.com/intercloud/intercloud/lease"
)

// How often a cloud checks what it depends on, and how long one check may
// take. Dead letters are counted less often: it lists the store.
const (
	healthEvery   = time.Second
	healthTimeout = 2 * time.Second
	deadEvery     = 10 * time.Second
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
	keys     []string // what last's problems are about (see checkHealth)
	// announcedAt is when the cloud's problems were last announced.
	announcedAt time.Time
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
	if c.API != nil {
		c.ackRate.sample(time.Now(), c.API.Stats().RecordsAcked)
	}
	if st, ok := c.DB.WriteLock(); ok {
		c.writeLock.sample(time.Now(), st)
	}
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
	if age, oldest, ok := c.fresh.age(time.Now()); ok && age > t.degradedBacklog() {
		rep.Problems = append(rep.Problems, fmt.Sprintf("published results behind by more than ingest.degraded_backlog (%s): a record acknowledged at %s is not published yet",
			t.degradedBacklog(), oldest.Format(time.RFC3339)))
	}
	// The stages' problems come last (see keys below).
	stages, stageKeys := t.stageProblems(c, time.Now())
	rep.Problems = append(rep.Problems, stages...)
	if rep.Status == ingest.HealthOK && len(rep.Problems) > 0 {
		rep.Status = ingest.HealthDegraded
	}
	prev, prevKeys := h.last, h.keys
	// A stage's problem keeps its key while its text (how long, the last
	// error) changes: a change of keys is announced at once, the same
	// problems again every alertEvery while they last, with their text
	// of the moment.
	keys := append(rep.Problems[:len(rep.Problems)-len(stages):len(rep.Problems)-len(stages)], stageKeys...)
	now := time.Now()
	changed := prev.Status != rep.Status || !slices.Equal(prevKeys, keys)
	again := !changed && rep.Status != ingest.HealthOK && now.Sub(h.announcedAt) >= t.alertEvery()
	if changed || again {
		h.announcedAt = now
	}
	h.last, h.keys = rep, keys
	h.mu.Unlock()

	log := t.logger(c.Name, "health")
	switch {
	case !changed && !again:
	case rep.Status == ingest.HealthOK:
		if prev.Status != "" {
			log.Info(c.Name+" healthy again", "was", prev.Status)
			t.alert("%s healthy again", c.Name)
		}
	default:
		// One line a person reads (the text format shows the message
		// first), at ERROR while a stage fails or the cloud is unhealthy.
		still := ""
		if again {
			still = "still "
		}
		msg := fmt.Sprintf("%s %s%s: %s", c.Name, still, rep.Status, strings.Join(rep.Problems, "; "))
		if len(stageKeys) > 0 || rep.Status == ingest.HealthUnhealthy {
			log.Error(msg, "status", rep.Status, "failing", strings.Join(keys, "; "))
		} else {
			log.Warn(msg, "status", rep.Status, "failing", strings.Join(keys, "; "))
		}
		t.alert("%s", msg)
	}
}

// DefaultAlertEvery is how often a problem that lasts is announced again
// (see Options.AlertEvery).
const DefaultAlertEvery = 15 * time.Second

func (t *Topology) alertEvery() time.Duration {
	if t.opts.AlertEvery > 0 {
		return t.opts.AlertEvery
	}
	return DefaultAlertEvery
}

// stageFailingFor is how long a stage fails before its cloud reports it:
// long enough to pass over one retried blip, short enough to be seen
// within seconds.
const stageFailingFor = 5 * time.Second

// stageProblems names the stages of a cloud that keep failing at run time:
// the load function, the replication streams into the cloud, publish, and
// the log shipping of this process. keys names the same stages in words
// that stay the same while they fail. The caller holds c.health.mu.
func (t *Topology) stageProblems(c *Cloud, now time.Time) (problems, keys []string) {
	add := func(key, format string, a ...any) {
		problems = append(problems, key+" "+fmt.Sprintf(format, a...))
		keys = append(keys, key)
	}
	since := func(at time.Time) string {
		return fmt.Sprintf("since %s (%s)", at.UTC().Format(time.TimeOnly), now.Sub(at).Round(time.Second))
	}
	if c.Load != nil && c.health != nil {
		h := c.health // its mu is held by checkHealth
		ls := c.Load.Stats()
		if ls.Failing == 0 {
			h.loadFailingSince = time.Time{}
		} else if h.loadFailingSince.IsZero() {
			h.loadFailingSince = now
		}
		since0 := h.loadFailingSince
		if ls.Failing > 0 && now.Sub(since0) >= stageFailingFor {
			add("load failing", "%s: %d objects waiting to retry: %s", since(since0), ls.Failing, shorten(ls.LastError))
		}
	}
	ttl := cmp.Or(t.cfg.Leases.TTL.D(), lease.DefaultTTL)
	for _, s := range c.Streams {
		st, lostSince := c.streamStatus(s)
		switch {
		case !lostSince.IsZero():
			// A new holder takes over about one TTL after the lease was
			// lost: only a stream that runs nowhere for longer is a problem.
			if now.Sub(lostSince) >= ttl+stageFailingFor {
				add("replication "+st.Name+" runs in no process", "%s: %s", since(lostSince), shorten(st.State))
			}
		case st.Phase == "stopped":
			add("replication "+st.Name+" stopped:", "%s", shorten(st.LastError))
		case !st.ReconnectingSince.IsZero() && now.Sub(st.ReconnectingSince) >= stageFailingFor:
			add("replication "+st.Name+" failing", "%s: %s", since(st.ReconnectingSince), shorten(st.State+": "+st.LastError))
		}
	}
	if c.Publish != nil {
		ps := c.Publish.Stats()
		if !ps.FailingSince.IsZero() && now.Sub(ps.FailingSince) >= stageFailingFor {
			add("publish failing", "%s: %s", since(ps.FailingSince), shorten(ps.LastError))
		}
		if n := len(ps.Failing); n > 0 {
			f := ps.Failing[0]
			add("publish: buckets not published:", "%d, first %s %s: %s", n, f.Bucket, since(f.Since), shorten(f.Error))
		}
	}
	for _, sh := range t.shippers {
		if ss := sh.Stats(); !ss.FailingSince.IsZero() && now.Sub(ss.FailingSince) >= stageFailingFor {
			add("log shipping to the "+sh.name+" failing", "%s, %d lines waiting: %s", since(ss.FailingSince), ss.Buffered, shorten(ss.LastError))
		}
	}
	return problems, keys
}

// alert writes one plain line to Options.Alerts.
func (t *Topology) alert(format string, a ...any) {
	if t.opts.Alerts == nil {
		return
	}
	t.alertMu.Lock()
	defer t.alertMu.Unlock()
	fmt.Fprintf(t.opts.Alerts, "intercloud: "+format+"\n", a...)
}

// shorten is oneLine for a message.
func shorten(s string) string {
	if s == "" {
		return "no error recorded"
	}
	return oneLine(errors.New(s))
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
