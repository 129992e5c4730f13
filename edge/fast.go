package edge

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/edge/cachecontrol"
	"github.com/intercloud/intercloud/internal/serve"
)

var _ serve.FastHandler = (*Edge)(nil)

// fastDeclined are the request fields that change how a stored response
// answers; a request with one goes to ServeHTTP. If-None-Match is
// evaluated on the fast path.
var fastDeclined = []string{"Cache-Control", "Pragma", "Range", "If-Range", "If-Match", "If-Modified-Since", "If-Unmodified-Since"}

// ServeFast answers a GET or HEAD that is a fresh hit of a 200 stored in
// the memory tier, without Vary, for a request without a field that
// changes the answer (Cache-Control, Pragma, Range, conditionals other
// than one If-None-Match): exactly what ServeHTTP answers, from a header
// rendered once per stored response with Age (and Date, when the
// response has none) filled in per hit. A GET of such a response that
// must be validated first is validated as ServeHTTP does (see
// revalidateFast) and, when the origin confirms it, answered the same
// way. Everything else it declines.
func (e *Edge) ServeFast(w *serve.FastResponse, r *serve.FastRequest) bool {
	if r.Path == PurgePath || CheckPath(r.Path) != nil {
		return false
	}
	rt := e.match(r.Path)
	if rt == nil {
		return false
	}
	inm, hasINM := "", false
	for _, f := range r.Header {
		if strings.EqualFold(f.Name, "If-None-Match") {
			if hasINM {
				return false
			}
			inm, hasINM = f.Value, true
			continue
		}
		for _, d := range fastDeclined {
			if len(f.Name) == len(d) && strings.EqualFold(f.Name, d) {
				return false
			}
		}
	}
	key := r.Path
	if r.RawQuery != "" {
		key = r.Target
	}
	st, ok := e.store.lookupMemory(key)
	if !ok || !fastServable(st) {
		return false
	}
	now := e.now()
	xc := Hit
	switch decide(st.meta, &cachecontrol.Directives{}, now, st.obj.invalid.Load()) {
	case useFresh:
	case useValidate:
		if r.Method != http.MethodGet || now.UnixNano() < st.obj.errUntil.Load() {
			return false
		}
		if st, ok = e.revalidateFast(r, rt, key, st.obj); !ok || !fastServable(st) {
			return false
		}
		xc, now = Revalidated, e.now()
	default:
		return false
	}
	m := st.meta
	fh := st.obj.fast.Load()
	if xc != Hit {
		fh = renderFast(m, xc)
	} else if fh == nil || fh.m != m {
		fh = renderFast(m, xc)
		st.obj.fast.Store(fh)
	}
	if !fh.ok {
		return false
	}
	e.hits.Add(1)
	part := &fh.full
	w.Status = http.StatusOK
	if hasINM && m.etag != "" && etagListMatch([]string{inm}, m.etag, false) {
		part, w.Status = &fh.notModified, http.StatusNotModified
	}
	w.Head = append(w.Head, part.pre...)
	w.Head = strconv.AppendInt(w.Head, ageSeconds(m.currentAge(now)), 10)
	w.Head = append(w.Head, part.post...)
	if fh.date {
		w.Head = append(w.Head, "Date: "...)
		w.Head = time.Now().UTC().AppendFormat(w.Head, http.TimeFormat)
		w.Head = append(w.Head, "\r\n"...)
	}
	if w.Status == http.StatusOK && r.Method == http.MethodGet {
		w.Body = st.mem.b
	}
	return true
}

// fastServable reports whether st is a 200 whose whole body is in the
// memory tier.
func fastServable(st stored) bool {
	return st.mem != nil && st.meta.Status == http.StatusOK && st.mem.size() == st.meta.Size
}

// revalidateFast validates stale for a GET on the fast path as
// fetchAndServe does, sharing the validation with concurrent requests for
// the same response, and returns the refreshed response when the origin
// confirmed it (304). Any other outcome (a new or unstorable response, no
// origin answering) returns false and leaves the request to ServeHTTP,
// which asks the origin again. The origin's informational responses are
// not passed on.
func (e *Edge) revalidateFast(r *serve.FastRequest, rt *route, key string, stale *object) (stored, bool) {
	f, leader := e.joinFill("v\x00"+stale.id, key)
	if leader {
		e.runFill(nil, f, fastHTTPRequest(r), rt, key, &cachecontrol.Directives{}, stale)
		e.dropFill(f)
	} else {
		<-f.ready
	}
	if f.kind != fillValidated {
		return stored{}, false
	}
	return e.store.snapshot(f.obj)
}

// fastHTTPRequest is r as net/http would parse it, its strings copied
// (they outlive the call of ServeFast).
func fastHTTPRequest(r *serve.FastRequest) *http.Request {
	h := make(http.Header, len(r.Header)+1)
	for _, f := range r.Header {
		k := http.CanonicalHeaderKey(strings.Clone(f.Name))
		h[k] = append(h[k], strings.Clone(f.Value))
	}
	if r.Close {
		h["Connection"] = []string{"close"}
	}
	return &http.Request{Method: r.Method, URL: &url.URL{Path: strings.Clone(r.Path), RawQuery: strings.Clone(r.RawQuery)},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, RemoteAddr: r.RemoteAddr,
		RequestURI: strings.Clone(r.Target)}
}

// fastHead is the header of a stored 200 as net/http writes it for
// respond, rendered once: each answer is pre, the Age value, post.
type fastHead struct {
	m                 *meta
	ok                bool // every field is written as stored
	full, notModified headParts
	date              bool // no Date field: net/http adds one
}

type headParts struct{ pre, post []byte }

// renderFast renders the answers of m, labelled xc: the status line and the fields
// sorted by name (net/http's order) up to "Age: ", then the rest. A field
// net/http would drop or rewrite (an invalid name, a value with CR, LF or
// surrounding whitespace) leaves it unrendered.
func renderFast(m *meta, xc string) *fastHead {
	fh := &fastHead{m: m, ok: true}
	h := http.Header{}
	responseHeader(h, m, xc, []string{""})
	h["Content-Length"] = m.lengthValue(m.Size)
	_, hasDate := h["Date"]
	fh.date = !hasDate
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fh.full = renderHead(h, keys, "HTTP/1.1 200 OK\r\n", &fh.ok)
	dropForNotModified(h)
	delete(h, "Content-Length")
	fh.notModified = renderHead(h, keys, "HTTP/1.1 304 Not Modified\r\n", &fh.ok)
	return fh
}

// renderHead renders the fields of h named in keys (sorted), in two parts
// split at the Age value.
func renderHead(h http.Header, keys []string, status string, ok *bool) headParts {
	var p headParts
	b := append(make([]byte, 0, 512), status...)
	for _, k := range keys {
		vs, present := h[k]
		if k == "Age" {
			p.pre = append(b, "Age: "...)
			b = append(make([]byte, 0, 512), "\r\n"...)
			continue
		}
		if present && !serve.IsToken(k) {
			*ok = false
		}
		for _, v := range vs {
			if strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0 || strings.TrimSpace(v) != v {
				*ok = false
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	p.post = b
	return p
}
