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
	if fh == nil || fh.m != m {
		// The first answer from this stored response (a revalidated one
		// included): rendered once for it and the hits that follow.
		fh = renderFast(m)
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
	w.Head = part.appendTo(w.Head, ageSeconds(m.currentAge(now)), xc)
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
// (they outlive the call of ServeFast) into one allocation, its field
// values into one array.
func fastHTTPRequest(r *serve.FastRequest) *http.Request {
	n := len(r.Path) + len(r.RawQuery) + len(r.Target)
	for _, f := range r.Header {
		n += len(f.Name) + len(f.Value)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, f := range r.Header {
		sb.WriteString(f.Name)
		sb.WriteString(f.Value)
	}
	sb.WriteString(r.Path)
	sb.WriteString(r.RawQuery)
	sb.WriteString(r.Target)
	all, off := sb.String(), 0
	next := func(k int) string {
		off += k
		return all[off-k : off]
	}
	h := make(http.Header, len(r.Header)+1)
	values := make([]string, len(r.Header))
	for i, f := range r.Header {
		k := http.CanonicalHeaderKey(next(len(f.Name)))
		values[i] = next(len(f.Value))
		if vs, ok := h[k]; ok {
			h[k] = append(vs, values[i])
		} else {
			h[k] = values[i : i+1 : i+1]
		}
	}
	if r.Close {
		h["Connection"] = []string{"close"}
	}
	path, query, target := next(len(r.Path)), next(len(r.RawQuery)), next(len(r.Target))
	return &http.Request{Method: r.Method, URL: &url.URL{Path: path, RawQuery: query},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, RemoteAddr: r.RemoteAddr,
		RequestURI: target}
}

// fastHead is the header of a stored 200 as net/http writes it for
// respond, rendered once per stored response for every label (a hit, a
// revalidated answer): see headParts.
type fastHead struct {
	m                 *meta
	ok                bool // every field is written as stored
	full, notModified headParts
	date              bool // no Date field: net/http adds one
}

// headParts is a rendered header cut before the values that change from
// one answer to the next: parts[0], the Age value, parts[1], the
// Cache-Status value, parts[2], the X-Cache value, parts[3] (the order
// of the names sorted).
type headParts [len(fastHoles) + 1][]byte

// fastHoles are the fields whose values headParts leaves out, sorted.
var fastHoles = [...]string{"Age", "Cache-Status", "X-Cache"}

// appendTo appends the header of an answer labelled xc at age seconds.
func (p *headParts) appendTo(b []byte, age int64, xc string) []byte {
	b = append(b, p[0]...)
	b = strconv.AppendInt(b, age, 10)
	b = append(b, p[1]...)
	b = append(b, cacheStatus[xc][0]...)
	b = append(b, p[2]...)
	b = append(b, xc...)
	return append(b, p[3]...)
}

// renderFast renders the answers of m: the status line and the fields
// sorted by name (net/http's order), cut at the values headParts leaves
// out. A field net/http would drop or rewrite (an invalid name, a value
// with CR, LF or surrounding whitespace) leaves it unrendered.
func renderFast(m *meta) *fastHead {
	fh := &fastHead{m: m, ok: true}
	h := make(http.Header, len(m.Header)+6)
	responseHeader(h, m, Hit, []string{""})
	h["Content-Length"] = m.lengthValue(m.Size)
	_, hasDate := h["Date"]
	fh.date = !hasDate
	keys := make([]string, 0, len(h))
	size := len("HTTP/1.1 200 OK\r\n") + len("HTTP/1.1 304 Not Modified\r\n")
	for k, vs := range h {
		keys = append(keys, k)
		for _, v := range vs {
			size += 2 * (len(k) + len(v) + 4) // at most twice: 200 and 304
		}
	}
	slices.Sort(keys)
	buf := make([]byte, 0, size)
	buf, fh.full = renderHead(buf, h, keys, "HTTP/1.1 200 OK\r\n", &fh.ok)
	dropForNotModified(h)
	delete(h, "Content-Length")
	_, fh.notModified = renderHead(buf, h, keys, "HTTP/1.1 304 Not Modified\r\n", &fh.ok)
	return fh
}

// renderHead renders the fields of h named in keys (sorted) after status,
// appending to buf (the parts share its array), and returns buf grown.
func renderHead(buf []byte, h http.Header, keys []string, status string, ok *bool) ([]byte, headParts) {
	var p headParts
	hole, start := 0, len(buf)
	buf = append(buf, status...)
	for _, k := range keys {
		vs, present := h[k]
		if !present {
			continue
		}
		if hole < len(fastHoles) && k == fastHoles[hole] {
			buf = append(buf, k...)
			buf = append(buf, ": "...)
			p[hole], start = buf[start:len(buf):len(buf)], len(buf)
			buf = append(buf, "\r\n"...)
			hole++
			continue
		}
		if !serve.IsToken(k) {
			*ok = false
		}
		for _, v := range vs {
			if strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0 || strings.TrimSpace(v) != v {
				*ok = false
			}
			buf = append(buf, k...)
			buf = append(buf, ": "...)
			buf = append(buf, v...)
			buf = append(buf, "\r\n"...)
		}
	}
	if hole != len(fastHoles) {
		*ok = false // cannot happen: responseHeader sets them all
	}
	p[hole] = buf[start:len(buf):len(buf)]
	return buf, p
}
