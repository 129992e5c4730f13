// Package hlc is the hybrid logical clock that versions records: the
// acknowledgement time (_ingested_at) by which the same id written on two
// clouds converges, last writer wins (Kulkarni et al., "Logical Physical
// Clocks", 2014).
//
// A timestamp is the physical clock in whole microseconds (what every
// database keeps), raised past every timestamp the clock gave or saw: the
// logical part of a classic HLC is folded into the microseconds, so a
// version stays one portable timestamp column. The two rules:
//
//   - send (Now): max(physical time + lead, last + 1µs); strictly
//     increasing.
//   - receive (Observe): after a replicated row with version v is applied,
//     last = max(last, v), so every later local version is greater than v;
//     and lead = max(lead, v − physical time).
//
// A cloud whose physical clock is behind the other's therefore cannot
// acknowledge a write that loses to one it has already seen. Unlike a
// classic HLC, whose logical counter alone orders what follows a
// timestamp from ahead, the clock keeps the lead it learned and goes on
// advancing with physical time: processes that saw the same timestamp
// (replicas of one cloud) keep stamping in real-time order, about the
// fastest clock they heard of. Ahead reports the lead.
//
// A timestamp further ahead of the physical clock than MaxLead (a peer
// whose clock is badly wrong, a version from the far future) raises the
// clock only to MaxLead ahead, so that one bad clock cannot drag every
// later version of both clouds into the future for good; Capped counts
// such timestamps. Writes concurrent within more skew than that are
// still ordered deterministically, just not by real time.
package hlc

import (
	"sync"
	"time"
)

// MaxLead is the furthest ahead of the physical clock an observed
// timestamp raises the clock.
const MaxLead = 24 * time.Hour

// Clock is a hybrid logical clock. It is safe for concurrent use.
type Clock struct {
	now func() time.Time

	mu     sync.Mutex
	last   time.Time     // the greatest timestamp given or observed
	lead   time.Duration // how far observed timestamps ran ahead of physical time
	capped int64         // observed timestamps beyond MaxLead
}

// New returns a clock over the physical clock now (time.Now when nil).
func New(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Now returns a new timestamp (UTC, whole microseconds): the physical time
// plus the lead learned from observed timestamps, or, when that is not
// after every timestamp given or observed so far, one microsecond after
// the greatest of them.
func (c *Clock) Now() time.Time {
	now := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	now = now.Add(c.lead)
	if !now.After(c.last) {
		now = c.last.Add(time.Microsecond)
	}
	c.last = now
	return now
}

// Observe raises the clock to a timestamp seen in a replicated row (or
// shared by another process of the same cloud): every later Now is after
// t, and the clock keeps t's lead over physical time. The zero time
// changes nothing; a timestamp more than MaxLead ahead counts as MaxLead
// ahead (see Capped).
func (c *Clock) Observe(t time.Time) {
	if t.IsZero() {
		return
	}
	t = t.UTC().Truncate(time.Microsecond)
	now := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Sub(now) > MaxLead {
		c.capped++
		t = now.Add(MaxLead)
	}
	if t.After(c.last) {
		c.last = t
	}
	if d := t.Sub(now); d > c.lead {
		c.lead = d
	}
}

// Capped counts the observed timestamps that were more than MaxLead ahead
// of the physical clock (and raised it only by MaxLead).
func (c *Clock) Capped() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.capped
}

// Last returns the greatest timestamp the clock gave or observed.
func (c *Clock) Last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Ahead is how far the clock runs ahead of the physical clock: 0 while
// the physical clock leads, else the lead learned from a peer's clock
// that is ahead of this one (or of timestamps given faster than one per
// microsecond).
func (c *Clock) Ahead() time.Duration {
	now := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(0, c.lead, c.last.Sub(now))
}

func (c *Clock) physical() time.Time {
	return c.now().UTC().Truncate(time.Microsecond)
}
