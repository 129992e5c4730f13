// Package functions is intercloud's function host: it runs a handler for
// every event of a trigger with at-least-once delivery, bounded concurrency,
// retries with exponential backoff and dead letters, and a reconciler that
// re-submits work a lost event left undone.
//
// Handlers must be idempotent: an event may be delivered more than once
// (a retry after an ambiguous failure, a reconciler pass racing the event).
// The host keeps at most one delivery of a given event id queued or
// running at a time.
package functions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intercloud/intercloud/internal/permanent"
)

// Event is one invocation's input.
type Event struct {
	// ID identifies the work; events with the same ID are the same work
	// (for object triggers, the object key).
	ID string
	// Metadata carries trigger details (object metadata, trace context).
	Metadata map[string]string
	// Source says who raised it: "put", "notification", "reconcile".
	Source string
	// Attempt counts deliveries, from 1.
	Attempt int
}

// Handler does the function's work. A nil error acknowledges the event.
// Returning an error wrapping ErrPermanent dead-letters at once.
type Handler func(ctx context.Context, e Event) error

// ErrPermanent marks an error that no retry can fix (a malformed object).
// It is the same value as replicate.ErrPermanent (package
// internal/permanent).
var ErrPermanent = permanent.Err

// DeadLetter receives an event that failed for good, with its last error.
// If it fails, the event is retried later like any failure.
type DeadLetter func(ctx context.Context, e Event, cause error) error

// Config configures a Function.
type Config struct {
	Name        string
	Handler     Handler
	DeadLetter  DeadLetter
	Concurrency int           // invocations at once (default 4)
	MaxAttempts int           // deliveries before dead-lettering (default 5)
	Backoff     time.Duration // first retry delay, doubled per attempt (default 100ms), capped at MaxBackoff
	MaxBackoff  time.Duration // default 30s
	Timeout     time.Duration // per invocation (default 5m)
	Logger      *slog.Logger
}

// Stats counts a function's work.
type Stats struct {
	Succeeded, Failed, Retried, DeadLettered, Pending int64
}

// Function is a hosted function. Submit events, and Run it to process them.
type Function struct {
	cfg   Config
	log   *slog.Logger
	queue chan Event
	mu    sync.Mutex
	known map[string]bool // queued, waiting for retry, or running
	retry map[string]*time.Timer

	succeeded, failed, retried, dead atomic.Int64
}

// New returns a function; it starts nothing.
func New(cfg Config) (*Function, error) {
	if cfg.Name == "" || cfg.Handler == nil {
		return nil, errors.New("functions: a name and a handler are required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Function{
		cfg:   cfg,
		log:   cfg.Logger.With("function", cfg.Name),
		queue: make(chan Event, 1<<16),
		known: map[string]bool{},
		retry: map[string]*time.Timer{},
	}, nil
}

// Submit enqueues an event unless the same work is already queued or
// running. It never blocks: when the queue is full the event is dropped and
// the reconciler finds the work later.
func (f *Function) Submit(e Event) {
	if e.Attempt == 0 {
		e.Attempt = 1
	}
	f.mu.Lock()
	if f.known[e.ID] {
		f.mu.Unlock()
		return
	}
	f.known[e.ID] = true
	f.mu.Unlock()
	select {
	case f.queue <- e:
	default:
		f.forget(e.ID)
		f.log.Warn("queue full; event left to the reconciler", "id", e.ID)
	}
}

func (f *Function) forget(id string) {
	f.mu.Lock()
	delete(f.known, id)
	delete(f.retry, id)
	f.mu.Unlock()
}

// Run processes events with Concurrency workers until ctx is cancelled,
// then waits for running invocations to finish.
func (f *Function) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < f.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case e := <-f.queue:
					f.invoke(ctx, e)
				}
			}
		}()
	}
	wg.Wait()
	f.mu.Lock()
	for _, t := range f.retry {
		t.Stop()
	}
	f.mu.Unlock()
	return nil
}

func (f *Function) invoke(ctx context.Context, e Event) {
	ictx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err := f.call(ictx, e)
	if err == nil {
		f.succeeded.Add(1)
		f.forget(e.ID)
		f.log.Debug("invocation succeeded", "id", e.ID, "attempt", e.Attempt, "ms", time.Since(start).Milliseconds())
		return
	}
	if ctx.Err() != nil { // shutting down: the reconciler redoes it after restart
		f.forget(e.ID)
		return
	}
	f.failed.Add(1)
	if errors.Is(err, ErrPermanent) || e.Attempt >= f.cfg.MaxAttempts {
		f.deadLetter(ctx, e, err)
		return
	}
	delay := f.cfg.Backoff << (e.Attempt - 1)
	if delay > f.cfg.MaxBackoff || delay <= 0 {
		delay = f.cfg.MaxBackoff
	}
	f.retried.Add(1)
	f.log.Warn("invocation failed; will retry", "id", e.ID, "attempt", e.Attempt, "retry_in", delay.String(), "err", err)
	next := e
	next.Attempt++
	f.mu.Lock()
	f.retry[e.ID] = time.AfterFunc(delay, func() {
		select {
		case f.queue <- next:
		default:
			f.forget(e.ID)
		}
	})
	f.mu.Unlock()
}

// call runs the handler, turning a panic into an error.
func (f *Function) call(ctx context.Context, e Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("functions: %s panicked: %v", f.cfg.Name, r)
		}
	}()
	return f.cfg.Handler(ctx, e)
}

func (f *Function) deadLetter(ctx context.Context, e Event, cause error) {
	f.log.Error("invocation failed for good; dead-lettering", "id", e.ID, "attempt", e.Attempt, "err", cause)
	if f.cfg.DeadLetter != nil {
		if err := f.cfg.DeadLetter(ctx, e, cause); err != nil {
			f.log.Error("dead letter failed; left to the reconciler", "id", e.ID, "err", err)
			f.forget(e.ID)
			return
		}
	}
	f.dead.Add(1)
	f.forget(e.ID)
}

// Stats returns the counters.
func (f *Function) Stats() Stats {
	f.mu.Lock()
	pending := int64(len(f.known))
	f.mu.Unlock()
	return Stats{Succeeded: f.succeeded.Load(), Failed: f.failed.Load(), Retried: f.retried.Load(), DeadLettered: f.dead.Load(), Pending: pending}
}

// Reconciler periodically lists work that is not done yet and submits it,
// so a lost event delays work but never loses it.
type Reconciler struct {
	// List calls submit for every piece of unfinished work.
	List     func(ctx context.Context, submit func(Event)) error
	Target   *Function
	Interval time.Duration // default 30s
	Logger   *slog.Logger
}

// Run lists once at start, then every Interval, until ctx is cancelled.
func (r *Reconciler) Run(ctx context.Context) error {
	if r.Interval <= 0 {
		r.Interval = 30 * time.Second
	}
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		n := 0
		err := r.List(ctx, func(e Event) {
			e.Source = "reconcile"
			n++
			r.Target.Submit(e)
		})
		if err != nil && ctx.Err() == nil {
			log.Warn("reconcile failed", "function", r.Target.cfg.Name, "err", err)
		} else if n > 0 {
			log.Info("reconcile found unfinished work", "function", r.Target.cfg.Name, "events", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
