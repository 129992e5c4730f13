// Package functions is intercloud's function host: it runs a handler for
// every event of a trigger with at-least-once delivery, bounded concurrency,
// retries with capped exponential backoff and jitter, dead letters, and a
// reconciler that re-submits work a lost event left undone.
//
// # Retries
//
// A failure is retried for as long as it takes, bounded only by MaxAge:
// a dependency that is down for an hour delays the work by an hour and
// dead-letters nothing. Only a failure wrapping ErrPermanent (an object
// that cannot be parsed, a row the database rejects for its content) is
// dead-lettered at once, and a failure still happening MaxAge after the
// event first failed is dead-lettered with its last error. When
// MaxAttempts is set, it bounds the deliveries of an event whose failures
// are not recognised as transient (see retry.Transient); transient ones
// (connection refused, timeouts, a database shutting down, deadlocks,
// throttling, 5xx) never count against it.
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
	"github.com/intercloud/intercloud/retry"
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
	// FailingSince is when the first delivery failed; zero until one did.
	FailingSince time.Time
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

// Defaults for zero Config fields.
const (
	DefaultConcurrency = 4
	DefaultBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultMaxAge      = 24 * time.Hour
	DefaultTimeout     = 5 * time.Minute
)

// Config configures a Function. Zero fields take the defaults above.
type Config struct {
	Name       string
	Handler    Handler
	DeadLetter DeadLetter
	// Concurrency bounds the invocations running at once.
	Concurrency int
	// Backoff is the nominal delay before the first retry; it doubles per
	// retry up to MaxBackoff, and each delay is jittered (see retry.Policy).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxAge is how long an event is retried after its first failure
	// before it is dead-lettered (default 24h).
	MaxAge time.Duration
	// MaxAttempts, when positive, dead-letters an event after this many
	// deliveries whose failures are not transient (retry.Transient); 0
	// bounds nothing but MaxAge.
	MaxAttempts int
	// Timeout bounds one invocation.
	Timeout time.Duration
	// ErrorAfter is how long an event fails before its retries are logged
	// at ERROR rather than WARN (default DefaultErrorAfter): a blip is a
	// warning, a failure that lasts an error naming the event.
	ErrorAfter time.Duration
	Logger     *slog.Logger
}

// DefaultErrorAfter is Config.ErrorAfter's default.
const DefaultErrorAfter = 5 * time.Second

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Name == "" || c.Handler == nil:
		return errors.New("functions: a name and a handler are required")
	case c.Concurrency < 0 || c.Backoff < 0 || c.MaxBackoff < 0 || c.MaxAge < 0 || c.MaxAttempts < 0 || c.Timeout < 0 || c.ErrorAfter < 0:
		return fmt.Errorf("functions: %s: concurrency, backoff, max_backoff, max_age, max_attempts, timeout and error_after must not be negative", c.Name)
	case c.MaxBackoff > 0 && c.Backoff > c.MaxBackoff:
		return fmt.Errorf("functions: %s: backoff %s is above max_backoff %s", c.Name, c.Backoff, c.MaxBackoff)
	}
	return nil
}

// Stats counts a function's work.
type Stats struct {
	Succeeded, Failed, Retried, DeadLettered, Pending int64
	// Failing counts events whose last delivery failed and that wait for
	// their next one.
	Failing int64 `json:"failing"`
	// LastError is the last failure, LastErrorAt when it happened.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Function is a hosted function. Submit events, and Run it to process them.
type Function struct {
	cfg    Config
	policy retry.Policy
	log    *slog.Logger
	queue  *queue
	mu     sync.Mutex
	known  map[string]bool // queued, waiting for retry, or running
	retry  map[string]*time.Timer
	// lastErr and lastErrAt are the last failure.
	lastErr   string
	lastErrAt time.Time

	succeeded, failed, retried, dead atomic.Int64
}

// New returns a function; it starts nothing.
func New(cfg Config) (*Function, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.Backoff)
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ErrorAfter == 0 {
		cfg.ErrorAfter = DefaultErrorAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Function{
		cfg:    cfg,
		policy: retry.Policy{Base: cfg.Backoff, Max: cfg.MaxBackoff},
		log:    cfg.Logger.With("function", cfg.Name),
		queue:  newQueue(),
		known:  map[string]bool{},
		retry:  map[string]*time.Timer{},
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
	if !f.queue.push(e) {
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
				e, ok := f.queue.next(ctx)
				if !ok {
					return
				}
				f.invoke(ctx, e)
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
	now := time.Now()
	if e.FailingSince.IsZero() {
		e.FailingSince = now
	}
	f.mu.Lock()
	f.lastErr, f.lastErrAt = err.Error(), now
	f.mu.Unlock()
	transient := retry.Transient(err)
	switch age := now.Sub(e.FailingSince); {
	case errors.Is(err, ErrPermanent):
		f.deadLetter(ctx, e, err)
		return
	case age >= f.cfg.MaxAge:
		f.deadLetter(ctx, e, fmt.Errorf("still failing after %s and %d attempts: %w", age.Round(time.Second), e.Attempt, err))
		return
	case !transient && f.cfg.MaxAttempts > 0 && e.Attempt >= f.cfg.MaxAttempts:
		f.deadLetter(ctx, e, fmt.Errorf("failed %d attempts: %w", e.Attempt, err))
		return
	}
	delay := f.policy.Delay(e.Attempt)
	f.retried.Add(1)
	level := slog.LevelWarn
	if now.Sub(e.FailingSince) >= f.cfg.ErrorAfter {
		level = slog.LevelError
	}
	f.log.Log(ctx, level, "invocation failed; will retry", "id", e.ID, "attempt", e.Attempt, "transient", transient,
		"failing_for", now.Sub(e.FailingSince).Round(time.Millisecond).String(), "retry_in", delay.Round(time.Millisecond).String(), "err", err)
	next := e
	next.Attempt++
	f.mu.Lock()
	f.retry[e.ID] = time.AfterFunc(delay, func() {
		if !f.queue.push(next) {
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
	st := Stats{Pending: int64(len(f.known)), Failing: int64(len(f.retry)), LastError: f.lastErr, LastErrorAt: f.lastErrAt}
	f.mu.Unlock()
	st.Succeeded, st.Failed, st.Retried, st.DeadLettered = f.succeeded.Load(), f.failed.Load(), f.retried.Load(), f.dead.Load()
	return st
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
