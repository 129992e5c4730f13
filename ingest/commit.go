package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/objects"
)

// pending is one validated request waiting for its object.
type pending struct {
	lines   []byte // NDJSON: the shared line, then a line per record
	records int
	answer  []byte // the 202 body: the records' ids in request order
	trace   string
	at      time.Time // when it was queued
	// ingested is the ingest time stamped into the records.
	ingested time.Time
	done     chan result
	acked    bool // answered 202 (set by the request's handler)
}

// result is the outcome of the write that held a request.
type result struct {
	key string
	err error
}

// batch is the requests of one object.
type batch struct {
	reqs []*pending
	size int
}

func (b *batch) add(p *pending) {
	b.reqs = append(b.reqs, p)
	b.size += len(p.lines)
}

// commitLoop is the committer: it gathers queued requests into batches and
// hands each to a writer. It ends once stopCh is closed, which happens only
// when no request is in flight, so the queue is empty then.
func (a *API) commitLoop() {
	defer close(a.loopDone)
	var carry *pending
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-a.queue:
			case <-a.stopCh:
				a.writers.Wait()
				return
			}
		}
		b := &batch{}
		b.add(first)
		deadline := first.at.Add(a.cfg.Limits.BatchWait.D())
		// Behind a write in flight, then for a free writer: meanwhile
		// requests queue up and join this batch.
		carry = a.gather(b, deadline)
		a.sem <- struct{}{}
		if carry == nil {
			carry = a.collect(b, deadline)
		}
		a.writers.Add(1)
		a.writing.Add(1)
		go func() {
			defer a.writers.Done()
			defer func() { <-a.sem }()
			a.write(b)
			a.writing.Add(-1)
			select {
			case a.wrote <- struct{}{}:
			default:
			}
		}()
	}
}

// collect adds queued requests to b, once a writer is free, until it
// holds BatchBytes, no other request is being prepared (none could join),
// the deadline has passed, or the API is closing, whichever comes first.
// It returns a request that did not fit, which starts the next batch.
func (a *API) collect(b *batch, deadline time.Time) *pending {
	return a.fill(b, deadline, func() bool { return a.preparing.Load() > 0 }, a.prepared)
}

// gather adds queued requests to b while another object is being written,
// until no write is in flight, b holds BatchBytes, the deadline has passed
// or the API is closing, whichever comes first: one object then takes
// every request that queued during a write, instead of each starting a
// write (a file and its fsyncs) of its own beside it. It does not wait
// when writes have lately taken longer than BatchWait (a slow or busy
// store), where waiting would only delay every request. It returns a
// request that did not fit, which starts the next batch.
func (a *API) gather(b *batch, deadline time.Time) *pending {
	if time.Duration(a.writeTime.Load()) > a.cfg.Limits.BatchWait.D() {
		// Writes take longer than a request may wait: waiting for one
		// would only add to every request's time.
		return nil
	}
	return a.fill(b, deadline, func() bool { return a.writing.Load() > 0 }, a.wrote)
}

// fill adds queued requests to b until it holds BatchBytes. What is
// queued joins at once; when nothing is, it waits for more only while
// the deadline has not passed, the API is not closing and worth reports
// that a request may still come (wake signals that worth may have turned
// false). It returns a request that did not fit, which starts the next
// batch.
func (a *API) fill(b *batch, deadline time.Time, worth func() bool, wake <-chan struct{}) *pending {
	limit := a.cfg.Limits.BatchBytes
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for b.size < limit {
		var p *pending
		select { // what is already queued joins at once
		case p = <-a.queue:
		default:
		}
		if p == nil {
			wait := time.Until(deadline)
			if wait <= 0 || isClosed(a.closingCh) || !worth() {
				return nil
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			}
			select {
			case p = <-a.queue:
			case <-timer.C:
				deadline = time.Time{}
				continue
			case <-a.closingCh:
				continue
			case <-wake: // look again: maybe none is left
				continue
			}
		}
		if b.size+len(p.lines) > limit {
			return p
		}
		b.add(p)
	}
	return nil
}

// noteWrite folds the duration of a written object into writeTime, a
// moving average (weight 1/8) that gather goes by. Writers finish
// concurrently: the swap keeps every write's share.
func (a *API) noteWrite(d time.Duration) {
	for {
		old := a.writeTime.Load()
		if a.writeTime.CompareAndSwap(old, old+(int64(d)-old)/8) {
			return
		}
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// write writes one batch as one object and answers its requests.
func (a *API) write(b *batch) {
	start := time.Now()
	// The object is the requests' lines in order, written as they are
	// (not joined into one buffer first).
	data := make([][]byte, len(b.reqs))
	var traces []string
	seen := map[string]bool{}
	records := 0
	for i, p := range b.reqs {
		data[i] = p.lines
		records += p.records
		if len(traces) < 16 && !seen[p.trace] {
			seen[p.trace] = true
			traces = append(traces, p.trace)
		}
	}
	opts := &objects.PutOptions{
		ContentType: MediaNDJSON,
		IfNotExist:  true,
		Metadata: map[string]string{
			"origin":    a.cfg.Cloud,
			"records":   strconv.Itoa(records),
			"trace-ids": strings.Join(traces, ","),
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.WriteTimeout)
	defer cancel()
	key, err := a.newKey()
	if err == nil {
		key, err = a.put(ctx, key, data, opts)
	}
	if err == nil {
		a.objects.Add(1)
		a.noteWrite(time.Since(start))
		a.bytes.Add(int64(b.size))
		if a.cfg.OnCommit != nil {
			a.cfg.OnCommit(records, len(b.reqs), b.size, time.Since(start))
		}
		a.log.Info("object written", "key", key, "records", records, "requests", len(b.reqs),
			"bytes", b.size, "duration", time.Since(start), "trace_id", strings.Join(traces, " "))
		// Written: nothing refers to the object's bytes any more. (After
		// a failed write the store's client might, so they are left to
		// the garbage collector.)
		for _, p := range b.reqs {
			a.bufs.put(p.lines)
			p.lines = nil
		}
	} else {
		a.log.Error("object not written", "key", key, "records", records, "requests", len(b.reqs),
			"duration", time.Since(start), "trace_id", strings.Join(traces, " "), "err", err)
	}
	for _, p := range b.reqs {
		p.done <- result{key: key, err: err}
	}
}

// put writes data under key, retrying failed attempts under the same key:
// IfNotExist keeps a retry from overwriting anything, and an existing
// object that holds exactly data is an earlier attempt of ours that
// succeeded without saying so. An existing object with other bytes is not
// ours: the write moves to a new key. It returns the key written.
func (a *API) put(ctx context.Context, key string, data [][]byte, opts *objects.PutOptions) (string, error) {
	var err error
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err = a.cfg.Bucket.PutBuffers(ctx, key, data, opts)
		if err == nil {
			return key, nil
		}
		if errors.Is(err, objects.ErrExists) {
			got, _, gerr := a.cfg.Bucket.Get(ctx, key)
			if gerr == nil && equalJoined(got, data) {
				return key, nil
			}
			// Someone else's object: never ours to overwrite. Take a new key.
			if key, err = a.newKey(); err != nil {
				return "", err
			}
			err = fmt.Errorf("ingest: key taken by another object")
		}
		if attempt >= putAttempts || ctx.Err() != nil {
			return key, fmt.Errorf("ingest: write %s after %d attempts: %w", key, attempt, err)
		}
		a.log.Warn("object write failed, retrying", "key", key, "attempt", attempt, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return key, fmt.Errorf("ingest: write %s after %d attempts: %w", key, attempt, err)
		}
		backoff *= 2
	}
}

// equalJoined reports whether b holds the slices' bytes in order.
func equalJoined(b []byte, bufs [][]byte) bool {
	for _, p := range bufs {
		if len(p) > len(b) || !bytes.Equal(b[:len(p)], p) {
			return false
		}
		b = b[len(p):]
	}
	return len(b) == 0
}

// newKey names a raw object: raw/YYYY/MM/DD/HH/<uuidv7>.ndjson in the UTC
// hour of the write; the UUIDv7 sorts keys by time within the hour.
func (a *API) newKey() (string, error) {
	id, err := newID()
	if err != nil {
		return "", err
	}
	return RawPrefix + a.cfg.Now().UTC().Format("2006/01/02/15/") + id + ".ndjson", nil
}
