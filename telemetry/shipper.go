package telemetry

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Sink receives batches of log lines, each one JSON object without its
// trailing newline. Write returns when the batch was delivered or failed; a
// failure wrapping ErrRejected means resending the same batch cannot
// succeed. A Sink must not modify or retain entries after Write returns.
// Implementations must be safe for concurrent use.
type Sink interface {
	Write(entries [][]byte) error
}

// ContextSink is an optional interface of a Sink whose writes can be
// bounded by a context; the Shipper uses it when present.
type ContextSink interface {
	Sink
	WriteContext(ctx context.Context, entries [][]byte) error
}

// ErrRejected marks a batch the receiver refused for good (malformed, too
// large, not allowed): the Shipper drops it instead of retrying.
var ErrRejected = errors.New("telemetry: batch rejected")

// ShipperOptions tunes a Shipper; zero values take the defaults.
type ShipperOptions struct {
	// BufferSize is the most lines held while waiting to ship (default
	// 10000). Lines written when it is full are dropped and counted.
	BufferSize int
	// BatchSize is the most lines per Sink write (default 500); a full
	// batch is shipped at once, a partial one every FlushInterval.
	BatchSize int
	// FlushInterval is how often buffered lines are shipped (default 200ms).
	FlushInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries of a failed
	// batch (defaults 100ms and 5s; doubling).
	MinBackoff, MaxBackoff time.Duration
	// FinalFlushTimeout bounds the last flush when Run's context is
	// cancelled (default 2s).
	FinalFlushTimeout time.Duration
	// Dir, when set, keeps the buffer on disk in this directory (see
	// NewDiskShipper) instead of in memory: lines survive a long sink
	// outage and a restart of the process.
	Dir string
	// MaxBytes bounds the disk buffer (default 256 MiB); lines past it
	// are dropped and counted. BufferSize does not apply to it.
	MaxBytes int64
}

func (o *ShipperOptions) defaults() {
	if o.BufferSize <= 0 {
		o.BufferSize = 10000
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.BatchSize > o.BufferSize {
		o.BatchSize = o.BufferSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = 5 * time.Second
		if o.MaxBackoff < o.MinBackoff {
			o.MaxBackoff = o.MinBackoff
		}
	}
	if o.FinalFlushTimeout <= 0 {
		o.FinalFlushTimeout = 2 * time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
}

// ShipperStats counts what a Shipper did.
type ShipperStats struct {
	Shipped       int64 // lines delivered
	Dropped       int64 // lines dropped: buffer full, or batch rejected for good
	FailedBatches int64 // Sink writes that failed (retried or dropped)
	Buffered      int   // lines waiting now
	// FailingSince is when deliveries started to fail; zero while they
	// work. LastError is the last failure.
	FailingSince time.Time
	LastError    string
}

// Shipper buffers log lines and ships them to a Sink in batches from Run.
// It is itself a Sink whose Write never blocks on I/O: give it to
// Options.Sink. Lines stay buffered (in order) while the sink is down and
// are delivered when it comes back; when the buffer is full new lines are
// dropped. A Shipper is safe for concurrent use.
type Shipper struct {
	sink Sink
	opts ShipperOptions
	kick chan struct{}

	disk *diskQueue // the buffer when on disk; buf otherwise

	mu      sync.Mutex
	buf     [][]byte
	shipped int64
	dropped int64
	failed  int64
	// failingSince and lastErr: see ShipperStats.
	failingSince time.Time
	lastErr      string
}

var _ Sink = (*Shipper)(nil)

// NewShipper returns a Shipper for sink; nothing is shipped until Run.
func NewShipper(sink Sink, opts ShipperOptions) *Shipper {
	opts.defaults()
	return &Shipper{sink: sink, opts: opts, kick: make(chan struct{}, 1)}
}

// NewDiskShipper returns a Shipper whose buffer is a directory of
// segment files (opts.Dir): lines are appended as they are logged and
// shipped oldest first, bounded by opts.MaxBytes. A cursor file records
// what the sink has taken, so a sink outage of any length (within the
// bound) loses nothing, a restart on the same directory ships what the
// last run left, and a batch the sink took is not sent again (a batch the
// sink took but whose answer was lost, or one taken just before a crash,
// is sent again: delivery is at least once). Only one Shipper may use a
// directory at a time.
func NewDiskShipper(sink Sink, opts ShipperOptions) (*Shipper, error) {
	if opts.Dir == "" {
		return nil, errors.New("telemetry: a disk shipper needs a directory")
	}
	s := NewShipper(sink, opts)
	q, err := openDiskQueue(opts.Dir, s.opts.MaxBytes, min(s.opts.MaxBytes/8, 8<<20))
	if err != nil {
		return nil, err
	}
	s.disk = q
	return s, nil
}

// Write queues entries for shipping; it keeps the slices (callers must not
// modify them) and never blocks on the sink. It returns nil even when lines
// are dropped; Stats counts them.
func (s *Shipper) Write(entries [][]byte) error {
	if s.disk != nil {
		dropped, err := s.disk.append(entries)
		s.mu.Lock()
		s.dropped += int64(dropped)
		if err != nil {
			s.lastErr = err.Error()
		}
		s.mu.Unlock()
		if s.disk.len() >= s.opts.BatchSize {
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
		return nil
	}
	s.mu.Lock()
	room := s.opts.BufferSize - len(s.buf)
	n := min(max(room, 0), len(entries))
	s.buf = append(s.buf, entries[:n]...)
	s.dropped += int64(len(entries) - n)
	full := len(s.buf) >= s.opts.BatchSize
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Stats returns the counters so far.
func (s *Shipper) Stats() ShipperStats {
	buffered := s.buffered()
	s.mu.Lock()
	defer s.mu.Unlock()
	return ShipperStats{Shipped: s.shipped, Dropped: s.dropped, FailedBatches: s.failed, Buffered: buffered,
		FailingSince: s.failingSince, LastError: s.lastErr}
}

// buffered returns the lines waiting to be shipped.
func (s *Shipper) buffered() int {
	if s.disk != nil {
		return s.disk.len()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf)
}

// Run ships buffered lines every FlushInterval, or as soon as a batch is
// full, retrying failed batches with exponential backoff. When ctx is
// cancelled it makes a last flush bounded by FinalFlushTimeout and returns
// nil.
func (s *Shipper) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	var (
		backoff time.Duration
		retry   <-chan time.Time // set while waiting to retry a failed batch
	)
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), s.opts.FinalFlushTimeout)
			s.finalFlush(fctx)
			cancel()
			return nil
		case <-retry:
			retry = nil
		case <-t.C:
			if retry != nil {
				continue
			}
		case <-s.kick:
			if retry != nil {
				continue
			}
		}
		if err := s.flush(ctx, false); err != nil {
			backoff = min(max(backoff*2, s.opts.MinBackoff), s.opts.MaxBackoff)
			retry = time.After(backoff)
		} else {
			backoff = 0
		}
	}
}

// flush ships the lines buffered when it starts and then whole batches,
// until a write fails; with all, until the buffer is empty. Lines that
// come while it ships wait for a full batch or the next flush: shipping
// them at once would make every flush a train of ever smaller batches
// (under a steady flow of lines, several sink writes every
// FlushInterval, each its own request and commit in the log store).
func (s *Shipper) flush(ctx context.Context, all bool) error {
	owed := s.buffered()
	if s.disk != nil {
		return s.flushDisk(ctx, all, owed)
	}
	for {
		s.mu.Lock()
		n := min(len(s.buf), s.opts.BatchSize)
		batch := s.buf[:n:n]
		s.mu.Unlock()
		if n == 0 || (!all && owed <= 0 && n < s.opts.BatchSize) {
			return nil
		}
		owed -= n
		err := s.write(ctx, batch)
		s.mu.Lock()
		switch {
		case err == nil:
			s.shipped += int64(n)
			s.buf = s.drop(n)
			s.failingSince = time.Time{}
		case errors.Is(err, ErrRejected):
			s.failed++
			s.dropped += int64(n)
			s.buf = s.drop(n)
			s.lastErr = err.Error()
		default:
			s.failed++
			s.lastErr = err.Error()
			if s.failingSince.IsZero() {
				s.failingSince = time.Now()
			}
		}
		s.mu.Unlock()
		if err != nil && !errors.Is(err, ErrRejected) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// flushDisk is flush for the disk buffer: a batch is marked delivered
// only once the sink took it.
func (s *Shipper) flushDisk(ctx context.Context, all bool, owed int) error {
	for {
		if !all && owed <= 0 && s.disk.len() < s.opts.BatchSize {
			return nil
		}
		batch, used, key, err := s.disk.peek(s.opts.BatchSize)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		owed -= len(batch)
		// Sent again (a lost answer, a restart), a batch has the same key.
		err = s.write(WithBatchKey(ctx, key), batch)
		s.mu.Lock()
		switch {
		case err == nil:
			s.shipped += int64(len(batch))
			s.failingSince = time.Time{}
		case errors.Is(err, ErrRejected):
			s.failed++
			s.dropped += int64(len(batch))
			s.lastErr = err.Error()
		default:
			s.failed++
			s.lastErr = err.Error()
			if s.failingSince.IsZero() {
				s.failingSince = time.Now()
			}
		}
		s.mu.Unlock()
		if err != nil && !errors.Is(err, ErrRejected) {
			return err
		}
		if aerr := s.disk.advance(len(batch), used); aerr != nil {
			return aerr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// Close releases the disk buffer's file; call it after Run returned.
func (s *Shipper) Close() error {
	if s.disk != nil {
		return s.disk.close()
	}
	return nil
}

// drop removes the first n lines; called with mu held. Only Run removes
// lines, so the first n are still the batch that was written.
func (s *Shipper) drop(n int) [][]byte {
	rest := s.buf[n:]
	if len(rest) == 0 {
		return nil
	}
	if cap(rest) < s.opts.BufferSize/2 {
		return append(make([][]byte, 0, len(rest)+s.opts.BatchSize), rest...)
	}
	return rest
}

func (s *Shipper) finalFlush(ctx context.Context) {
	backoff := s.opts.MinBackoff
	for ctx.Err() == nil {
		if s.flush(ctx, true) == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.opts.MaxBackoff)
	}
}

// write calls the sink, bounded by ctx when the sink supports it.
func (s *Shipper) write(ctx context.Context, batch [][]byte) error {
	if cs, ok := s.sink.(ContextSink); ok {
		return cs.WriteContext(ctx, batch)
	}
	return s.sink.Write(batch)
}

// Tee returns a Sink that hands every batch to each of sinks in turn (for
// shipping one process's logs to several stores). Its error joins theirs.
func Tee(sinks ...Sink) Sink {
	if len(sinks) == 1 {
		return sinks[0]
	}
	return SinkFunc(func(entries [][]byte) error {
		var errs []error
		for _, s := range sinks {
			if err := s.Write(entries); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}
