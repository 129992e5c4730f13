package edge

import (
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/edge/cachecontrol"
)

// Pseudonym names the edge in Via and Cache-Status.
const Pseudonym = "intercloud-edge"

// meta is a response without its body: what the cache stores next to the
// body, and what it derives from it. The exported fields are persisted by
// the disk tier; the rest is derived by derive. A meta is immutable once
// derived: a 304 update makes a new one.
type meta struct {
	Key      string      `json:"key"`  // primary cache key: path?query
	Vary     string      `json:"vary"` // secondary key of the request that stored it
	Status   int         `json:"status"`
	Proto    string      `json:"proto"` // protocol the response came with, for Via ("1.1")
	Header   http.Header `json:"header"`
	ReqTime  time.Time   `json:"request_time"`
	RespTime time.Time   `json:"response_time"`
	Size     int64       `json:"size"` // body bytes; -1 while unknown

	cc         cachecontrol.Directives // effective: the targeted field's, else Cache-Control
	targeted   bool                    // cc came from a targeted field
	explicit   bool                    // explicit freshness (or public) makes it storable
	lifetime   time.Duration           // freshness_lifetime
	initialAge time.Duration           // corrected_initial_age
	date       time.Time
	etag       string
	lastMod    string
	lastModT   time.Time
	varyNames  []string // canonical field names nominated by Vary
	varyStar   bool
	noStale    bool // stale use is forbidden
	tags       []string
	via        []string // the Via value sent downstream
	cacheBytes int64    // memory accounted for the header
	clen       []string // Content-Length value for a body of clenSize bytes
	clenSize   int64
}

// hopHeaders are removed when forwarding (RFC 9110 §7.6.1), with the
// proxy-specific fields a cache must not store (RFC 9111 §3.1).
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authentication-Info", "Proxy-Authorization",
}

// removeHop deletes hop-by-hop fields, including those Connection names.
func removeHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// heuristicStatus are the status codes heuristically cacheable by default
// (RFC 9110 §15.1).
var heuristicStatus = map[int]bool{200: true, 203: true, 204: true, 206: true, 300: true, 301: true, 308: true,
	404: true, 405: true, 410: true, 414: true, 501: true}

// understood reports whether the edge implements the caching requirements
// of a status code (for must-understand, RFC 9111 §5.2.2.3): the final
// codes of RFC 9110 except 206 and 304, which the edge never stores.
func understood(status int) bool {
	switch {
	case status >= 200 && status <= 205, status >= 300 && status <= 303, status == 307, status == 308,
		status >= 400 && status <= 417, status == 421, status == 422, status == 426,
		status >= 500 && status <= 505:
		return true
	}
	return false
}

// derive computes the derived fields; targeted lists the targeted fields
// the edge obeys and heuristicMax bounds heuristic freshness.
func (m *meta) derive(targeted []string, heuristicMax time.Duration) {
	h := m.Header
	m.targeted = false
	for _, f := range targeted {
		if d, ok := cachecontrol.ParseTargeted(h[f]); ok {
			m.cc, m.targeted = d, true
			break
		}
	}
	if !m.targeted {
		m.cc = cachecontrol.Parse(h)
	}
	cc := &m.cc

	m.date = m.RespTime
	if ds := h["Date"]; len(ds) > 0 {
		if t, err := http.ParseTime(ds[0]); err == nil {
			m.date = t
		}
	}
	var ageValue time.Duration
	if as := h["Age"]; len(as) > 0 {
		first, _, _ := strings.Cut(as[0], ",")
		if n, err := strconv.ParseInt(textproto.TrimString(first), 10, 64); err == nil && n >= 0 {
			ageValue = time.Duration(min(n, cachecontrol.MaxDelta)) * time.Second
		}
	}
	// RFC 9111 §4.2.3.
	apparent := max(0, m.RespTime.Sub(m.date))
	delay := max(0, m.RespTime.Sub(m.ReqTime))
	m.initialAge = max(apparent, ageValue+delay)

	m.etag = h.Get("Etag")
	m.lastMod = h.Get("Last-Modified")
	m.lastModT = time.Time{}
	if m.lastMod != "" {
		if t, err := http.ParseTime(m.lastMod); err == nil {
			m.lastModT = t
		}
	}

	// RFC 9111 §4.2.1: s-maxage, max-age, Expires - Date, heuristic. An
	// invalid or conflicting value makes the response stale.
	sec := func(s cachecontrol.Seconds) time.Duration { return time.Duration(s.Value) * time.Second }
	expires, hasExpires := h["Expires"], !m.targeted && len(h["Expires"]) > 0
	m.explicit = cc.Public || cc.MaxAge.Present || cc.SMaxAge.Present || hasExpires
	switch {
	case cc.SMaxAge.Present:
		m.lifetime = sec(cc.SMaxAge)
	case cc.MaxAge.Present:
		m.lifetime = sec(cc.MaxAge)
	case hasExpires:
		m.lifetime = 0
		if allSame(expires) {
			// An invalid date, such as "0", is in the past (RFC 9111 §5.3).
			if t, ok := parseHTTPDate(expires[0]); ok {
				m.lifetime = max(0, t.Sub(m.date))
			}
		}
	default:
		m.lifetime = 0
		if (heuristicStatus[m.Status] || cc.Public) && !m.lastModT.IsZero() && m.lastModT.Before(m.date) {
			m.lifetime = min(m.date.Sub(m.lastModT)/10, heuristicMax)
		}
	}

	m.varyNames, m.varyStar = nil, false
	for _, v := range h["Vary"] {
		for f := range strings.SplitSeq(v, ",") {
			switch f = textproto.TrimString(f); f {
			case "":
			case "*":
				m.varyStar = true
			default:
				m.varyNames = append(m.varyNames, http.CanonicalHeaderKey(f))
			}
		}
	}
	// RFC 9111 §4.2.4: these forbid serving stale.
	m.noStale = (cc.NoCache && len(cc.NoCacheFields) == 0) || cc.MustRevalidate || cc.ProxyRevalidate || cc.SMaxAge.Present

	m.tags = m.tags[:0]
	for _, v := range h["Surrogate-Key"] {
		m.tags = append(m.tags, strings.Fields(v)...)
	}
	for _, v := range h["Cache-Tag"] {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				m.tags = append(m.tags, t)
			}
		}
	}
	proto := m.Proto
	if proto == "" {
		proto = "1.1"
	}
	switch prev := h["Via"]; {
	case len(prev) > 0:
		m.via = []string{strings.Join(prev, ", ") + ", " + proto + " " + Pseudonym}
	case proto == "1.1":
		m.via = viaHTTP11
	default:
		m.via = []string{proto + " " + Pseudonym}
	}
	m.setLength()
	m.cacheBytes = 512 + int64(len(m.Key)+len(m.Vary))
	for k, vs := range h {
		for _, v := range vs {
			m.cacheBytes += int64(len(k) + len(v) + 32)
		}
	}
}

// setLength formats the Content-Length value of a body of m.Size bytes
// once, for every response served from m (and the metas a validation
// makes from it).
func (m *meta) setLength() {
	if m.clen != nil && m.clenSize == m.Size {
		return
	}
	m.clen, m.clenSize = nil, m.Size
	if m.Size >= 0 {
		m.clen = []string{strconv.FormatInt(m.Size, 10)}
	}
}

// lengthValue is the Content-Length value for a body of size bytes.
func (m *meta) lengthValue(size int64) []string {
	if size == m.clenSize && m.clen != nil {
		return m.clen
	}
	return []string{strconv.FormatInt(size, 10)}
}

// httpDateLayouts are the HTTP-date forms (RFC 9110 §5.6.7): IMF-fixdate
// and the obsolete RFC 850 and asctime forms, in GMT.
var httpDateLayouts = []string{
	"Mon, 02 Jan 2006 15:04:05 GMT",
	"Monday, 02-Jan-06 15:04:05 GMT",
	"Mon Jan _2 15:04:05 2006",
}

// parseHTTPDate parses an HTTP-date strictly: the value must be exactly
// one of the three forms (a single space between parts, two-digit hours,
// a four-digit year in IMF-fixdate), which time.Parse alone does not
// check. Letter case is not significant, as recipients commonly accept.
func parseHTTPDate(s string) (time.Time, bool) {
	if n := len(s) - 3; n > 0 && strings.EqualFold(s[n:], "GMT") {
		s = s[:n] + "GMT"
	}
	for _, layout := range httpDateLayouts {
		t, err := time.Parse(layout, s)
		if err == nil && strings.EqualFold(t.Format(layout), s) {
			return t, true
		}
	}
	return time.Time{}, false
}

func allSame(vs []string) bool {
	for _, v := range vs[1:] {
		if v != vs[0] {
			return false
		}
	}
	return true
}

// currentAge is RFC 9111 §4.2.3's current_age at now.
func (m *meta) currentAge(now time.Time) time.Duration {
	return m.initialAge + max(0, now.Sub(m.RespTime))
}

// storable reports whether a response to a GET may be stored by a shared
// cache (RFC 9111 §3, §3.5), given the request's header and directives.
func (m *meta) storable(req http.Header, rcc *cachecontrol.Directives) bool {
	cc := &m.cc
	switch {
	case m.Status < 200 || m.Status == http.StatusPartialContent || m.Status == http.StatusNotModified:
		return false
	case cc.MustUnderstand && !understood(m.Status):
		return false
	case cc.NoStore && !(cc.MustUnderstand && understood(m.Status)):
		return false
	case rcc.NoStore:
		return false
	case cc.Private && len(cc.PrivateFields) == 0:
		return false
	case len(req["Authorization"]) > 0 && !(cc.Public || cc.SMaxAge.Present || cc.MustRevalidate):
		return false
	case m.varyStar:
		return false // never matches a later request (RFC 9111 §4.1)
	case !m.explicit && !heuristicStatus[m.Status]:
		return false
	case m.lifetime <= 0 && m.etag == "" && m.lastMod == "" && !cc.StaleIfError.OK() && !cc.StaleWhileRevalidate.OK():
		return false // nothing to gain: stale at once and cannot be validated
	}
	return true
}

// storedHeader is the response header as stored: hop-by-hop fields,
// framing and the fields a qualified private or no-cache names are left
// out (RFC 9111 §3.1, §5.2.2.4, §5.2.2.7).
func (m *meta) stripForStorage() {
	h := m.Header
	delete(h, "Content-Length")
	for _, f := range m.cc.PrivateFields {
		delete(h, http.CanonicalHeaderKey(f))
	}
	for _, f := range m.cc.NoCacheFields {
		delete(h, http.CanonicalHeaderKey(f))
	}
}

// secondaryKey is the request's values of the fields names nominates,
// normalised (RFC 9111 §4.1): lines combined, whitespace around list
// commas removed; an absent field differs from an empty one.
func secondaryKey(names []string, req http.Header) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		vs, ok := req[n]
		if !ok {
			b.WriteString("\x00\n")
			continue
		}
		b.WriteByte(':')
		for i, v := range vs {
			if i > 0 {
				b.WriteByte(',')
			}
			for j, part := range strings.Split(v, ",") {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(textproto.TrimString(part))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// matches reports whether a stored response may answer a request with
// header req as far as Vary goes.
func (m *meta) matches(req http.Header) bool {
	return !m.varyStar && secondaryKey(m.varyNames, req) == m.Vary
}

// updated returns a copy of m with the header fields of a 304 (or HEAD)
// response merged in (RFC 9111 §3.2), timed by the new exchange.
func (m *meta) updated(h http.Header, reqTime, respTime time.Time, targeted []string, heuristicMax time.Duration) *meta {
	n := *m
	// A new map; the value slices are shared with m's (stored headers are
	// never modified).
	n.Header = make(http.Header, len(m.Header)+len(h))
	for k, v := range m.Header {
		n.Header[k] = v
	}
	for k, v := range h {
		switch k {
		case "Content-Length", "Content-Range", "Content-Encoding", "Content-Type", "Transfer-Encoding":
			// The stored body depends on these; a 304 does not describe
			// it (and Go's 304s drop some of them).
			if k != "Content-Type" || len(v) == 0 {
				continue
			}
		}
		n.Header[k] = v
	}
	removeHop(n.Header)
	n.ReqTime, n.RespTime = reqTime, respTime
	n.tags = nil
	n.derive(targeted, heuristicMax)
	n.stripForStorage()
	return &n
}
