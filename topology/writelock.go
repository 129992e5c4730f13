package topology

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// WriteLockStatus says how the writers of this process shared the write
// lock of a cloud's database that takes one writer at a time (the
// embedded SQLite): how busy it is, who keeps it busy and who waits. A
// lock busy most of the time is the database at its limit: whatever
// writes more waits its turn.
type WriteLockStatus struct {
	// Busy is the share of the last seconds (rateWindow) the lock was
	// held, 0 to 1.
	Busy float64 `json:"busy"`
	// Waiting counts the writers queued for it now.
	Waiting int `json:"waiting"`
	// Writers are each writer's totals since the database was opened
	// and its recent share, by name (sqldb.WithWriter).
	Writers []WriteLockWriter `json:"writers"`
	// LogSyncs counts the syncs of the database's log that made commits
	// durable since it was opened: they run after the lock is free, and
	// commits that end together share one.
	LogSyncs int64 `json:"log_syncs"`
}

// WriteLockWriter is one writer's share of a database's write lock.
type WriteLockWriter struct {
	// Writer is the component that writes: "load", "publish",
	// "replicate:<stream>", "lease", "prune", "clock", or "other".
	Writer string `json:"writer"`
	// Writes counts its write transactions and statements.
	Writes int64 `json:"writes"`
	// WaitSeconds and HeldSeconds are the time they queued for the lock
	// and held it.
	WaitSeconds float64 `json:"wait_seconds"`
	HeldSeconds float64 `json:"held_seconds"`
	// Busy is the share of the last seconds this writer held the lock.
	Busy float64 `json:"busy"`
	// Bypassed counts writes that queued as long as the database's busy
	// timeout and went on to its own locking.
	Bypassed int64 `json:"bypassed,omitempty"`
}

// writeLockMeter turns the writers' held times into recent shares,
// sampled by the health loop.
type writeLockMeter struct {
	mu   sync.Mutex
	held map[string]*rateMeter // writer → held nanoseconds
}

// sample records the writers' held totals at now.
func (m *writeLockMeter) sample(now time.Time, st sqldb.WriteLockStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held == nil {
		m.held = map[string]*rateMeter{}
	}
	for _, w := range st.Writers {
		r := m.held[w.Writer]
		if r == nil {
			r = &rateMeter{}
			m.held[w.Writer] = r
		}
		r.sample(now, int64(w.Held))
	}
}

// busy returns the share of the recent seconds writer held the lock.
func (m *writeLockMeter) busy(writer string) float64 {
	m.mu.Lock()
	r := m.held[writer]
	m.mu.Unlock()
	if r == nil {
		return 0
	}
	return min(1, r.rate()/float64(time.Second))
}

// writeLockStatus is the status of db's write lock, nil for a database
// without one.
func (c *Cloud) writeLockStatus() *WriteLockStatus {
	if c.DB == nil {
		return nil
	}
	st, ok := c.DB.WriteLock()
	if !ok {
		return nil
	}
	out := &WriteLockStatus{Waiting: st.Waiting, Writers: make([]WriteLockWriter, 0, len(st.Writers)), LogSyncs: st.Syncs}
	for _, w := range st.Writers {
		b := c.writeLock.busy(w.Writer)
		out.Busy += b
		out.Writers = append(out.Writers, WriteLockWriter{Writer: w.Writer, Writes: w.Writes, WaitSeconds: w.Wait.Seconds(),
			HeldSeconds: w.Held.Seconds(), Busy: b, Bypassed: w.Bypassed})
	}
	out.Busy = min(1, out.Busy)
	// The busiest first.
	slices.SortStableFunc(out.Writers, func(a, b WriteLockWriter) int { return cmp.Compare(b.Busy, a.Busy) })
	return out
}
