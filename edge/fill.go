package edge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/edge/cachecontrol"
)

type fillKind int

const (
	fillFailed    fillKind = iota // no usable answer: every origin failed
	fillValidated                 // the origin answered 304: obj is refreshed
	fillBody                      // a storable response: its body streams into buf
	fillPass                      // an unstorable response: only the leader may use resp
)

// fill is one origin request that concurrent requests for the same URL
// (or the same stored response, when validating) share (RFC 9111 §4,
// "collapsed requests"). Its fields are set before ready is closed.
type fill struct {
	key   string // primary cache key
	fkey  string // its key among the fills
	ready chan struct{}

	kind fillKind
	meta *meta          // as stored (and served to the requests that join)
	sent *meta          // fillBody: as the origin sent it, for the leader
	buf  *growBuf       // fillBody
	obj  *object        // fillValidated
	resp *http.Response // fillPass, for the leader

	failErr  error  // fillFailed without an origin answer
	failBody []byte // fillFailed with an origin's 5xx (meta is set)

	purged atomic.Bool // a purge matched: do not store the result
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// joinFill returns the fill in flight under fkey, or registers a new one
// whose leader the caller is. After an unstorable response for the URL,
// requests do not wait for one another for a while.
func (e *Edge) joinFill(fkey, key string) (*fill, bool) {
	e.fillMu.Lock()
	defer e.fillMu.Unlock()
	if f, ok := e.fills[fkey]; ok {
		return f, false
	}
	f := &fill{key: key, fkey: fkey, ready: make(chan struct{})}
	if len(e.passUntil) > maxPassMarks {
		now := e.now()
		for k, until := range e.passUntil {
			if now.After(until) {
				delete(e.passUntil, k)
			}
		}
	}
	if until, ok := e.passUntil[key]; ok {
		if e.now().Before(until) {
			return f, true // not registered: nobody joins it
		}
		delete(e.passUntil, key)
	}
	e.fills[fkey] = f
	return f, true
}

// endFill unregisters f.
func (e *Edge) endFill(f *fill) {
	e.fillMu.Lock()
	if e.fills[f.fkey] == f {
		delete(e.fills, f.fkey)
	}
	e.fillMu.Unlock()
}

// maxPassMarks is how many "do not wait for one another" marks are kept
// before expired ones are swept.
const maxPassMarks = 4096

// fetchAndServe answers a GET from the origins, sharing the fetch with
// concurrent requests for the same URL, revalidating stale when given.
func (e *Edge) fetchAndServe(w http.ResponseWriter, r *http.Request, rt *route, key string, rcc *cachecontrol.Directives, stale *object) {
	fkey := "m\x00" + key
	if stale != nil {
		fkey = "v\x00" + stale.id
	}
	f, leader := e.joinFill(fkey, key)
	if leader {
		e.runFill(w, f, r, rt, key, rcc, stale)
	} else {
		select {
		case <-f.ready:
		case <-r.Context().Done():
			return
		}
	}
	now := e.now()
	switch f.kind {
	case fillPass:
		if leader {
			e.passes.Add(1)
			e.writeUpstream(w, r, f.resp, Pass)
			return
		}
		e.forward(w, r, rt)
	case fillFailed:
		if stale != nil {
			m := stale.meta.Load()
			if e.staleOnError(m, rcc, now) {
				stale.errUntil.Store(now.Add(errorBackoff).UnixNano())
				if st, ok := e.store.snapshot(stale); ok {
					e.staleServed.Add(1)
					e.serveStored(w, r, rt, st, Stale)
					return
				}
			}
			if m.noStale {
				// RFC 9111 §5.2.2.2: an error rather than the stale response.
				writeError(w, apierr.New(http.StatusGatewayTimeout, "revalidation_failed", "the stored response for %s must be revalidated and no origin answered", r.URL.Path))
				return
			}
		}
		if f.meta != nil {
			// Every origin answered with an error: pass the last answer on.
			e.passes.Add(1)
			e.respond(w, r, f.meta, &memBody{f.failBody}, Pass, false)
			return
		}
		writeError(w, originError(r, f.failErr))
	case fillValidated:
		st, ok := e.store.snapshot(f.obj)
		if !ok {
			e.forward(w, r, rt)
			return
		}
		e.hits.Add(1)
		e.serveStored(w, r, rt, st, Revalidated)
	case fillBody:
		if !leader && secondaryKey(f.meta.varyNames, r.Header) != f.meta.Vary {
			// The shared response varies on a field this request differs in.
			e.forward(w, r, rt)
			return
		}
		if !leader && !f.buf.acquire() {
			// The fill has finished and let go of its body: look again.
			if st, ok := e.store.lookup(key, r.Header); ok {
				e.hits.Add(1)
				e.serveStored(w, r, rt, st, Hit)
			} else {
				e.forward(w, r, rt)
			}
			return
		}
		defer f.buf.release()
		if leader {
			e.misses.Add(1)
			e.respond(w, r, f.sent, f.buf, Miss, false)
		} else {
			e.hits.Add(1)
			e.respond(w, r, f.meta, f.buf, Hit, true)
		}
	}
}

// originError is the edge's error when no origin answered.
func originError(r *http.Request, err error) *apierr.Error {
	var ne interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return apierr.New(http.StatusGatewayTimeout, "gateway_timeout", "no origin answered in time for %s", r.URL.Path)
	}
	return apierr.New(http.StatusBadGateway, apierr.CodeBadGateway, "no origin is reachable for %s", r.URL.Path)
}

// runFill is the leader's part of a fill: it asks the origins (with the
// validators of stale, if any) and sets the fill's outcome. A storable
// body goes on streaming into f.buf in the background; f.buf then holds a
// reference for the leader, which it must release. w (may be nil)
// receives the origin's informational responses.
func (e *Edge) runFill(w http.ResponseWriter, f *fill, r *http.Request, rt *route, key string, rcc *cachecontrol.Directives, stale *object) {
	defer close(f.ready)
	ctx := e.bg
	var tr http.RoundTripper = e.transport
	if w != nil {
		ctx = withInformational(ctx, w)
	} else if e.h1 != nil {
		tr = e.h1 // no client waits for informational responses
	}
	var validators *meta
	if stale != nil {
		validators = stale.meta.Load()
	}
	for {
		reqTime := e.now()
		resp, err := e.roundTrip(tr, rt, r.URL.Path, func(o *route, i int) (*http.Request, error) {
			return e.outRequest(ctx, r, o.origins[i], http.MethodGet, nil, true, validators), nil
		}, true)
		respTime := e.now()
		if err != nil {
			f.kind, f.failErr = fillFailed, err
			e.endFill(f)
			return
		}
		if isServerError(resp.StatusCode) {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			_ = resp.Body.Close()
			m := e.newMeta(key, r, resp, reqTime, respTime)
			m.Size = int64(len(b))
			f.kind, f.meta, f.failBody = fillFailed, m, b
			e.endFill(f)
			return
		}
		if resp.StatusCode == http.StatusNotModified && validators != nil {
			if resp.Body != http.NoBody {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			}
			_ = resp.Body.Close()
			if !validatorsMatch(validators, resp.Header) {
				// Not a 304 for what is stored (RFC 9111 §4.3.4): fetch it whole.
				validators = nil
				continue
			}
			nm := validators.updated(resp.Header, reqTime, respTime, e.cfg.TargetedFields, e.cfg.TTL)
			e.store.update(stale, nm)
			e.revalidations.Add(1)
			f.kind, f.meta, f.obj = fillValidated, nm, stale
			e.endFill(f)
			return
		}
		m := e.newMeta(key, r, resp, reqTime, respTime)
		if stale != nil || resp.StatusCode == http.StatusNotModified {
			// What was stored for this request is superseded, whether or
			// not the new response can be stored.
			e.store.remove(e.store.variants(key, r.Header)...)
		}
		total := resp.ContentLength
		maxSize := e.cfg.MemoryObjectBytes
		if e.store.dir != "" {
			maxSize = max(maxSize, e.cfg.DiskBytes)
		}
		if !m.storable(r.Header, rcc) || total > maxSize || f.purged.Load() {
			f.kind, f.meta, f.resp = fillPass, m, resp
			e.fillMu.Lock()
			e.passUntil[key] = e.now().Add(passBackoff)
			e.fillMu.Unlock()
			e.endFill(f)
			return
		}
		sm := *m
		sm.Header = m.Header.Clone()
		sm.stripForStorage()
		f.kind, f.meta, f.sent = fillBody, &sm, m
		f.buf = newGrowBuf(total, e.cfg.MemoryObjectBytes, e.tmpDir)
		f.buf.acquire() // the leader's
		e.bgWG.Add(1)
		go e.copyFill(f, resp, r.Header.Clone(), maxSize)
		return
	}
}

// copyFill streams a storable body into the fill's buffer, then stores
// it unless it failed, grew too large or was purged meanwhile.
func (e *Edge) copyFill(f *fill, resp *http.Response, req http.Header, maxSize int64) {
	defer e.bgWG.Done()
	defer f.buf.release() // the writer's
	bp := copyBufs.Get().(*[]byte)
	var n int64
	var err error
	for {
		k, rerr := resp.Body.Read(*bp)
		if k > 0 {
			if err = f.buf.write((*bp)[:k]); err != nil {
				break
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	copyBufs.Put(bp)
	_ = resp.Body.Close()
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	// Store before the readers see the end, so that once a client has the
	// whole body the next request finds it stored.
	tmp := f.buf.fileName()
	m := f.meta
	switch {
	case err != nil:
		e.log.Warn("origin body failed; not stored", "path", m.Key, "bytes", n, "err", err)
	case f.purged.Load() || n > maxSize:
	default:
		sm := *m
		sm.Size = n
		id := newObjectID(sm.Key, sm.Vary)
		disk := false
		if e.store.dir != "" && n <= e.cfg.DiskBytes {
			if perr := e.store.persist(id, &sm, tmp, f.buf.bytes()); perr != nil {
				e.log.Warn("disk tier: store failed", "path", sm.Key, "err", perr)
			} else {
				disk, tmp = true, ""
			}
		}
		if !f.purged.Load() {
			e.store.insert(id, &sm, req, f.buf.bytes(), disk)
		} else if disk {
			e.store.removeFiles([]string{id})
		}
	}
	e.endFill(f)
	f.buf.finish(err)
	if tmp != "" {
		_ = os.Remove(tmp) // readers keep their open file
	}
}

// validatorsMatch reports whether a 304 may update stored (RFC 9111
// §4.3.4): its entity tag, else its Last-Modified, must be the stored
// one's; a 304 without validators answers the one conditional request
// the edge sent.
func validatorsMatch(stored *meta, h http.Header) bool {
	if et := h.Get("Etag"); et != "" {
		if isWeak(et) || isWeak(stored.etag) {
			return weakEqual(et, stored.etag)
		}
		return et == stored.etag
	}
	if lm := h.Get("Last-Modified"); lm != "" {
		return stored.lastMod != "" && sameTime(lm, stored.lastMod)
	}
	return true
}

func sameTime(a, b string) bool {
	ta, err1 := http.ParseTime(a)
	tb, err2 := http.ParseTime(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return ta.Equal(tb)
}

// newMeta builds the meta of an origin response to r.
func (e *Edge) newMeta(key string, r *http.Request, resp *http.Response, reqTime, respTime time.Time) *meta {
	h := resp.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	removeHop(h)
	if _, ok := h["Date"]; !ok {
		// RFC 9110 §6.6.1: a cache or proxy adds the Date it received it.
		h["Date"] = []string{respTime.UTC().Format(http.TimeFormat)}
	}
	m := &meta{Key: key, Status: resp.StatusCode, Header: h, ReqTime: reqTime, RespTime: respTime,
		Size: resp.ContentLength, Proto: protoVersion(resp.ProtoMajor, resp.ProtoMinor)}
	m.derive(e.cfg.TargetedFields, e.cfg.TTL)
	m.Vary = secondaryKey(m.varyNames, r.Header)
	return m
}

// snapshot returns a consistent view of a stored object, if it is still
// stored.
func (s *store) snapshot(o *object) (stored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.removed {
		return stored{}, false
	}
	return stored{obj: o, meta: o.meta.Load(), mem: o.mem, disk: o.disk}, true
}
