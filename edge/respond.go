package edge

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/edge/cachecontrol"
)

// Precomputed header values for the hot path.
var (
	xCacheValues = map[string][]string{Hit: {Hit}, Stale: {Stale}, Revalidated: {Revalidated}, Miss: {Miss}, Pass: {Pass}}
	cacheStatus  = map[string][]string{
		Hit:         {Pseudonym + "; hit"},
		Stale:       {Pseudonym + "; hit; detail=stale"},
		Revalidated: {Pseudonym + "; fwd=stale; fwd-status=304"},
		Miss:        {Pseudonym + "; fwd=uri-miss; stored"},
		Pass:        {Pseudonym + "; fwd=uri-miss"},
	}
	smallAges [600][]string
)

func init() {
	for i := range smallAges {
		smallAges[i] = []string{strconv.Itoa(i)}
	}
}

func ageValue(d time.Duration) []string {
	s := ageSeconds(d)
	if s < int64(len(smallAges)) {
		return smallAges[s]
	}
	return []string{strconv.FormatInt(s, 10)}
}

// ageSeconds is the Age field's value for an age of d.
func ageSeconds(d time.Duration) int64 {
	return min(max(int64(d/time.Second), 0), cachecontrol.MaxDelta)
}

// keepNoType keeps a response the origin sent without Content-Type
// without one: net/http would otherwise add a type it guessed from the
// body (RFC 9110 §8.3 leaves that to the recipient).
func keepNoType(h http.Header) {
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil
	}
}

// bodyless reports statuses that never have content.
func bodyless(status int) bool {
	return status < 200 || status == http.StatusNoContent || status == http.StatusNotModified
}

// responseHeader fills h with the header of a response served from m as
// xc: the stored fields, Age (unless age is nil), Via, X-Cache and
// Cache-Status.
func responseHeader(h http.Header, m *meta, xc string, age []string) {
	for k, v := range m.Header {
		h[k] = v
	}
	if age != nil {
		h["Age"] = age
	}
	keepNoType(h)
	h["Via"] = m.via
	h["X-Cache"] = xCacheValues[xc]
	h["Cache-Status"] = cacheStatus[xc]
}

// dropForNotModified removes the fields a 304 answering a client's
// precondition leaves out.
func dropForNotModified(h http.Header) {
	for _, k := range []string{"Content-Type", "Content-Encoding", "Content-Language", "Content-Range", "Content-Disposition"} {
		delete(h, k)
	}
}

// respond writes a stored (or storing) response: its header as stored,
// Age when served from the cache (setAge), Via, X-Cache and Cache-Status;
// then evaluates the client's preconditions (RFC 9111 §4.3.2) and range
// (RFC 9110 §14) against it.
func (e *Edge) respond(w http.ResponseWriter, r *http.Request, m *meta, b body, xc string, setAge bool) {
	h := w.Header()
	var age []string
	if setAge {
		age = ageValue(m.currentAge(e.now()))
	}
	responseHeader(h, m, xc, age)
	status := m.Status
	if status >= 200 && status < 300 && notModified(r, m) {
		dropForNotModified(h)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	size := b.size()
	if status == http.StatusOK && r.Method == http.MethodGet && size >= 0 {
		if rh, ok := r.Header["Range"]; ok && len(rh) == 1 && ifRange(r, m) {
			ranges, err := parseRange(rh[0], size)
			switch {
			case errors.Is(err, errUnsatisfiable):
				e.writeUnsatisfiable(w, size)
				return
			case err == nil && len(ranges) == 1:
				ra := ranges[0]
				h["Content-Range"] = []string{ra.contentRange(size)}
				h["Content-Length"] = []string{strconv.FormatInt(ra.length, 10)}
				w.WriteHeader(http.StatusPartialContent)
				e.writeBody(w, r, b, ra.start, ra.length)
				return
			case err == nil && len(ranges) > 1:
				e.writeMultipart(w, r, m, b, ranges, size)
				return
			}
			// A malformed Range is ignored: the whole response follows.
		}
	}
	if size >= 0 && !bodyless(status) {
		h["Content-Length"] = m.lengthValue(size)
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead || bodyless(status) {
		return
	}
	e.writeBody(w, r, b, 0, -1)
}

// writeBody writes part of a body; a failure cuts the connection, so the
// client never takes a partial body for a whole one.
func (e *Edge) writeBody(w io.Writer, r *http.Request, b body, off, n int64) {
	if err := b.writeTo(r.Context(), w, off, n); err != nil {
		if r.Context().Err() == nil {
			e.log.Debug("body write failed", "path", r.URL.Path, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

func (e *Edge) writeUnsatisfiable(w http.ResponseWriter, size int64) {
	h := w.Header()
	for _, k := range []string{"Etag", "Last-Modified", "Cache-Control", "Expires", "Age", "Content-Encoding", "Content-Language", "Vary"} {
		delete(h, k)
	}
	h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
	apierr.Write(w, apierr.New(http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable", "the requested range is not satisfiable"))
}

func (e *Edge) writeMultipart(w http.ResponseWriter, r *http.Request, m *meta, b body, ranges []httpRange, size int64) {
	mw := multipart.NewWriter(w)
	ct := m.Header.Get("Content-Type")
	w.Header()["Content-Type"] = []string{"multipart/byteranges; boundary=" + mw.Boundary()}
	w.WriteHeader(http.StatusPartialContent)
	for _, ra := range ranges {
		ph := textproto.MIMEHeader{"Content-Range": {ra.contentRange(size)}}
		if ct != "" {
			ph["Content-Type"] = []string{ct}
		}
		part, err := mw.CreatePart(ph)
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		e.writeBody(part, r, b, ra.start, ra.length)
	}
	_ = mw.Close()
}

// notModified evaluates If-None-Match (weak comparison), else
// If-Modified-Since against Last-Modified, else Date (RFC 9111 §4.3.2).
func notModified(r *http.Request, m *meta) bool {
	if inm, ok := r.Header["If-None-Match"]; ok {
		return m.etag != "" && etagListMatch(inm, m.etag, false)
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" {
		return false
	}
	t, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	lm := m.lastModT
	if lm.IsZero() {
		lm = m.date
	}
	return !lm.After(t)
}

// ifRange reports whether a Range may be honoured: no If-Range, or one
// that matches the stored response strongly (RFC 9110 §13.1.5).
func ifRange(r *http.Request, m *meta) bool {
	ir := r.Header.Get("If-Range")
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		return !isWeak(ir) && !isWeak(m.etag) && ir == m.etag
	}
	return m.lastMod != "" && sameTime(ir, m.lastMod)
}

func isWeak(etag string) bool { return strings.HasPrefix(etag, "W/") }

// weakEqual compares two entity tags ignoring weakness.
func weakEqual(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// etagListMatch reports whether a field's list of entity tags ("*" or
// #entity-tag) holds etag.
func etagListMatch(lines []string, etag string, strong bool) bool {
	for _, line := range lines {
		s := line
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			if s[0] == '*' {
				return true
			}
			start := 0
			if strings.HasPrefix(s, "W/") {
				start = 2
			}
			if len(s) <= start || s[start] != '"' {
				break // malformed: stop reading this line
			}
			end := strings.IndexByte(s[start+1:], '"')
			if end < 0 {
				break
			}
			tag := s[:start+1+end+1]
			s = s[len(tag):]
			if strong {
				if !isWeak(tag) && !isWeak(etag) && tag == etag {
					return true
				}
			} else if weakEqual(tag, etag) {
				return true
			}
		}
	}
	return false
}

// httpRange is a byte range of a body.
type httpRange struct{ start, length int64 }

func (r httpRange) contentRange(size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", r.start, r.start+r.length-1, size)
}

var (
	errBadRange      = errors.New("edge: malformed range")
	errUnsatisfiable = errors.New("edge: range not satisfiable")
)

// maxRanges bounds the ranges of one request; more are ignored.
const maxRanges = 16

// parseRange parses a Range field value against a body of size bytes
// (RFC 9110 §14.1.2). It returns errBadRange for a value to ignore and
// errUnsatisfiable when no range overlaps the body.
func parseRange(s string, size int64) ([]httpRange, error) {
	unit, spec, ok := strings.Cut(s, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return nil, errBadRange
	}
	var out []httpRange
	var total int64
	n := 0
	for part := range strings.SplitSeq(spec, ",") {
		part = textproto.TrimString(part)
		if part == "" {
			continue
		}
		if n++; n > maxRanges {
			return nil, errBadRange
		}
		first, last, ok := strings.Cut(part, "-")
		if !ok {
			return nil, errBadRange
		}
		first, last = textproto.TrimString(first), textproto.TrimString(last)
		var ra httpRange
		if first == "" {
			// suffix-range: the last n bytes.
			k, err := strconv.ParseInt(last, 10, 64)
			if err != nil || k < 0 || !digits(last) {
				return nil, errBadRange
			}
			if k == 0 {
				continue // unsatisfiable
			}
			k = min(k, size)
			ra = httpRange{size - k, k}
		} else {
			a, err := strconv.ParseInt(first, 10, 64)
			if err != nil || !digits(first) {
				return nil, errBadRange
			}
			if last == "" {
				ra = httpRange{a, size - a}
			} else {
				b, err := strconv.ParseInt(last, 10, 64)
				if err != nil || !digits(last) || b < a {
					return nil, errBadRange
				}
				ra = httpRange{a, min(b, size-1) - a + 1}
			}
			if a >= size {
				continue // unsatisfiable
			}
		}
		if ra.length <= 0 {
			continue
		}
		total += ra.length
		out = append(out, ra)
	}
	if n == 0 {
		return nil, errBadRange
	}
	if len(out) == 0 {
		if size == 0 {
			return nil, errBadRange // an empty body is sent whole
		}
		return nil, errUnsatisfiable
	}
	if total > size {
		return nil, errBadRange // overlapping ranges asking for more than the body: send it whole
	}
	return out, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
