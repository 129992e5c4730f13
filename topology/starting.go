package topology

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/ingest"
	"github.com/intercloud/intercloud/retry"
)

// startPolicy is the backoff between attempts at a start step whose
// dependency does not answer yet.
var startPolicy = retry.Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second}

// gate is a cloud API's handler from the moment Start begins: while the
// cloud's part starts (its database may not answer yet), /healthz answers
// 503 unhealthy naming what start waits for, /v1/status says the same, and
// every other request is refused with 503, so that a front door sends
// writes elsewhere; once the cloud has started, every request goes to its
// API.
type gate struct {
	t     *Topology
	cloud string
	open  atomic.Pointer[http.Handler]

	mu       sync.Mutex
	waiting  string // what start waits for and why; "" before any failure
	attempts int
	since    time.Time
}

// startGates listens on the API address of every cloud of this process,
// answering with its gate.
func (t *Topology) startGates() error {
	for _, name := range t.cfg.CloudNames() {
		if !t.has(name) {
			continue
		}
		g := &gate{t: t, cloud: name, since: time.Now().UTC()}
		srv, err := t.serve(name+"-api", t.cfg.Clouds[name].API, g)
		if err != nil {
			return err
		}
		t.gates[name] = &gateServer{gate: g, srv: srv}
	}
	return nil
}

// gateServer is a cloud API's listener and its gate.
type gateServer struct {
	gate *gate
	srv  *server
}

// problem is the line /healthz and /v1/status show while starting.
func (g *gate) problem() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting == "" {
		return "starting"
	}
	return fmt.Sprintf("starting: %s (attempt %d, retrying since %s)", g.waiting, g.attempts, g.since.Format(time.RFC3339))
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := g.open.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	health := ingest.Health{Status: ingest.HealthUnhealthy, Problems: []string{g.problem()}}
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == ingest.PathHealth:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(struct {
			Cloud    string   `json:"cloud"`
			Status   string   `json:"status"`
			Problems []string `json:"problems,omitempty"`
		}{g.cloud, health.Status, health.Problems})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/status":
		if !g.t.authorized(w, r) {
			return
		}
		writeJSON(w, CloudStatus{Cloud: g.cloud, Health: health, Starting: health.Problems[0], Time: time.Now().UTC()})
	default:
		w.Header().Set("Retry-After", "1")
		apierr.Write(w, apierr.New(http.StatusServiceUnavailable, apierr.CodeUnavailable, "cloud %s is %s", g.cloud, health.Problems[0]))
	}
}

// startRetrying runs one step of Start, again and again with backoff while
// it fails because a dependency does not answer (retry.Transient: a
// database that is down, starting or drops the connection), saying so in
// the log and in every cloud gate of the process; it returns nil once the
// step succeeded, the step's error when it failed for good, and its last
// error when ctx ends first: the last one a dependency answered with, since
// an attempt cut short by ctx blames every dependency it had not finished
// asking (on a loaded machine, healthy databases next to the one that is
// down; CheckStores marks those checks).
func (t *Topology) startRetrying(ctx context.Context, what string, step func(ctx context.Context) error) error {
	var answered error // the last error of an attempt ctx's end did not cut short
	for attempt := 1; ; attempt++ {
		err := step(ctx)
		if err != nil && !onlyCut(err) {
			answered = err
		}
		if err == nil {
			if attempt > 1 {
				t.log.Info("start: "+what+" succeeded", "attempts", attempt)
				t.alert("start: %s succeeded after %d attempts", what, attempt)
			}
			t.setWaiting("", 0)
			return nil
		}
		if ctx.Err() != nil {
			return cmp.Or(answered, err)
		}
		if !startTransient(err) {
			return err
		}
		t.setWaiting(what+": "+oneLine(err), attempt)
		t.log.Warn("start: "+what+" failed; retrying", "attempt", attempt, "err", oneLine(err))
		if attempt == 1 {
			t.alert("start: %s failed; retrying until it answers: %s", what, oneLine(err))
		}
		if startPolicy.Sleep(ctx, attempt) != nil {
			return err // ctx was still alive after this attempt: it ran to its end
		}
	}
}

// setWaiting tells every gate what start waits for.
func (t *Topology) setWaiting(why string, attempts int) {
	for _, gs := range t.gates {
		gs.gate.mu.Lock()
		gs.gate.waiting, gs.gate.attempts = why, attempts
		gs.gate.mu.Unlock()
	}
}

// startTransient reports whether a start step failed only because a
// dependency did not answer: every one of the joined errors (the start
// checks of several stores) is transient.
func startTransient(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		for _, e := range errs {
			if !startTransient(e) {
				return false
			}
		}
		return len(errs) > 0
	}
	var se *StartError
	if errors.As(err, &se) {
		if se.Err == nil {
			return false
		}
		err = se.Err
	}
	return retry.Transient(err) || unreachable(err)
}

// onlyCut reports whether every one of the joined errors is a store's
// check that the caller's context cut short (CheckStores).
func onlyCut(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		return len(errs) > 0 && !slices.ContainsFunc(errs, func(e error) bool { return !onlyCut(e) })
	}
	return errors.Is(err, errCheckCut)
}
