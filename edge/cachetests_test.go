package edge

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The shared-cache scenarios of the public HTTP cache test suite
// (github.com/http-tests/cache-tests, cache-tests.fyi), expressed against
// the edge: each row is named after the suite's test id and runs its
// requests in order against a real origin the test starts. docs/edge.md
// lists what is covered and where the edge's answer differs from the
// suite's expectation.

// Expected outcomes of a suite request.
const (
	ctCached      = "cached"         // the origin saw no request
	ctNotCached   = "not_cached"     // the origin saw the request
	ctETagValid   = "etag_validated" // the origin saw If-None-Match; the stored response was used
	ctLMValidated = "lm_validated"   // the origin saw If-Modified-Since; the stored response was used
)

// Kinds of suite tests: a required one checks a MUST of the RFCs, an
// optimal one what a good cache does, a check one gathers behaviour where
// the RFCs leave room.
const (
	ctRequired = "required"
	ctOptimal  = "optimal"
	ctCheck    = "check"
)

// seqField numbers the origin's answers to a path, so that a client can
// tell the origin's answer to its request from a stored one.
const seqField = "X-Origin-Seq"

// ctStep is one request of a suite test.
type ctStep struct {
	method  string // default GET
	path    string // default /t; may carry a query
	req     []string
	reqBody string
	// status and resp are the origin's answer to this request; resp nil:
	// the previous step's fields. Date is the clock's unless given
	// ("Date:" alone omits it). A 200 whose validators match the
	// request's preconditions is answered 304 with the same fields.
	// Field values (here, in req and in wantHdr) may be times: "@N" is the
	// clock + N seconds when the message is made, "@@N" the clock at the
	// start of the test + N seconds, as an IMF-fixdate; "rfc850 @N" the
	// same in the RFC 850 form.
	status     int
	resp       []string
	body       string // default the test id
	disconnect bool   // the origin closes the connection without answering
	pause      bool   // the clock moves 3 s after the request

	want       string // ctCached, ctNotCached, ...; "": not checked
	wantStatus int    // default the origin's status (200); -1: not checked
	wantBody   *string
	// wantHdr are "Name" (present), "Name: value" or "Name > n" (a
	// number above n).
	wantHdr        []string
	missing        []string
	wantReq        []string // fields the origin saw ("Name" or "Name: value")
	wantReqMissing []string
}

// ctCase is one suite test.
type ctCase struct {
	id    string
	kind  string
	steps []ctStep
	// differs says why the edge's answer, which the steps pin, is not the
	// one the suite expects; empty when the edge passes.
	differs string
}

func runCacheTests(t *testing.T, cases []ctCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) { runCacheTest(t, tc) })
	}
}

// writeRaw304 sends a 304 with every field of h, as origins other than
// net/http's (which drops Content-Type from a 304) may.
func writeRaw304(w http.ResponseWriter, h http.Header) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	h.Set("Connection", "close")
	_, _ = buf.WriteString("HTTP/1.1 304 Not Modified\r\n")
	_ = h.Write(buf)
	_, _ = buf.WriteString("\r\n")
	_ = buf.Flush()
}

// ctTime resolves the time forms of a field value (see ctStep).
func ctTime(v string, start, now time.Time) string {
	layout := http.TimeFormat
	if rest, ok := strings.CutPrefix(v, "rfc850 "); ok {
		v, layout = rest, "Monday, 02-Jan-06 15:04:05 GMT"
	}
	base := now
	n, ok := strings.CutPrefix(v, "@")
	if !ok {
		return v
	}
	if rest, ok := strings.CutPrefix(n, "@"); ok {
		n, base = rest, start
	}
	d, err := strconv.Atoi(n)
	if err != nil {
		return v
	}
	return base.Add(time.Duration(d) * time.Second).UTC().Format(layout)
}

// ctFields splits "Name: value" lines, resolving times.
func ctFields(fields []string, start, now time.Time) [][2]string {
	var out [][2]string
	for _, f := range fields {
		k, v, _ := strings.Cut(f, ":")
		out = append(out, [2]string{k, ctTime(strings.TrimSpace(v), start, now)})
	}
	return out
}

func runCacheTest(t *testing.T, tc ctCase) {
	c := newClock()
	start := c.Now()
	o := newTestOrigin(t, c)
	var cur atomic.Int32
	var resps [][]string
	var last []string
	for _, s := range tc.steps {
		if s.resp != nil {
			last = s.resp
		}
		resps = append(resps, last)
	}
	handler := func(w http.ResponseWriter, r *http.Request) {
		i := int(cur.Load())
		s := tc.steps[i]
		if s.disconnect {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		h := w.Header()
		h.Set("Date", c.Now().Format(http.TimeFormat))
		h.Set(seqField, strconv.Itoa(o.count(r.URL.Path)))
		for _, kv := range ctFields(resps[i], start, c.Now()) {
			if strings.EqualFold(kv[0], "Date") {
				h.Del("Date")
			}
			if kv[1] != "" {
				h.Add(kv[0], kv[1])
			}
		}
		status := s.status
		if status == 0 {
			status = http.StatusOK
		}
		if status == http.StatusOK && notModifiedAtOrigin(r, h) {
			writeRaw304(w, h)
			return
		}
		w.WriteHeader(status)
		body := s.body
		if body == "" && status != http.StatusNoContent && status != http.StatusNotModified {
			body = tc.id
		}
		_, _ = fmt.Fprint(w, body)
	}
	e := newTestEdge(t, Config{}, c, o)
	for i, s := range tc.steps {
		cur.Store(int32(i))
		target := s.path
		if target == "" {
			target = "/t"
		}
		path, _, _ := strings.Cut(target, "?")
		o.handle(path, handler)
		method := s.method
		if method == "" {
			method = http.MethodGet
		}
		before := o.count(path)
		var req []string
		for _, kv := range ctFields(s.req, start, c.Now()) {
			req = append(req, kv[0]+": "+kv[1])
		}
		r := e.do(t, method, target, s.reqBody, req...)
		seen := o.count(path) > before
		// A response is the origin's answer to this request when it
		// carries this request's sequence number.
		fresh := seen && r.header.Get(seqField) == strconv.Itoa(o.count(path))
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("%s (%s) request %d: %s; got %d X-Cache %q header %v", tc.id, tc.kind, i+1, fmt.Sprintf(format, args...), r.status, r.cache(), r.header)
		}
		switch s.want {
		case ctCached:
			if fresh {
				fail("want served from the cache, got the origin's answer")
			}
		case ctNotCached:
			if !fresh {
				fail("want the origin's answer, it was served from the cache")
			}
		case ctETagValid, ctLMValidated:
			field := "If-None-Match"
			if s.want == ctLMValidated {
				field = "If-Modified-Since"
			}
			if !seen || o.lastRequest(path).Header.Get(field) == "" {
				fail("want a validation with %s", field)
			}
		}
		want := s.wantStatus
		if want == 0 {
			want = s.status
		}
		if want == 0 {
			want = http.StatusOK
		}
		if want > 0 && r.status != want {
			fail("status %d, want %d", r.status, want)
		}
		if s.wantBody != nil && r.body != *s.wantBody {
			fail("body %q, want %q", r.body, *s.wantBody)
		}
		for _, f := range s.wantHdr {
			if k, n, ok := strings.Cut(f, " > "); ok {
				got, err1 := strconv.Atoi(r.header.Get(k))
				min, err2 := strconv.Atoi(n)
				if err1 != nil || err2 != nil || got <= min {
					fail("want %s", f)
				}
				continue
			}
			k, _, hasValue := strings.Cut(f, ":")
			v := ctFields([]string{f}, start, c.Now())[0][1]
			got, present := r.header[http.CanonicalHeaderKey(k)]
			if !present || (hasValue && strings.Join(got, ", ") != v) {
				fail("want %s: %s", k, v)
			}
		}
		for _, k := range s.missing {
			if _, present := r.header[http.CanonicalHeaderKey(k)]; present {
				fail("want no %s", k)
			}
		}
		lr := o.lastRequest(path)
		for _, f := range s.wantReq {
			k, v, hasValue := strings.Cut(f, ":")
			if !seen || lr == nil {
				fail("want %s at the origin, it saw no request", f)
			}
			got, present := lr.Header[http.CanonicalHeaderKey(k)]
			if !present || (hasValue && strings.Join(got, ", ") != strings.TrimSpace(v)) {
				fail("origin got %v, want %s", lr.Header, f)
			}
		}
		for _, k := range s.wantReqMissing {
			if seen && lr != nil && lr.Header.Get(k) != "" {
				fail("origin got %v, want no %s", lr.Header, k)
			}
		}
		if s.pause {
			c.Add(3 * time.Second)
		}
	}
}

// firstThen is the common first request: the origin answers with fields,
// and the clock moves on.
func firstThen(fields ...string) ctStep { return ctStep{resp: fields, pause: true} }

// storedNow is firstThen without the pause.
func storedNow(fields ...string) ctStep { return ctStep{resp: fields} }

// then is a later request expecting want.
func then(want string, req ...string) ctStep { return ctStep{want: want, req: req} }

// twoSteps is a suite test of one stored response and one request.
func twoSteps(id, kind, want string, fields ...string) ctCase {
	return ctCase{id: id, kind: kind, steps: []ctStep{firstThen(fields...), then(want)}}
}

// becomeStale is the suite's template of a response that is stale after
// the pause.
func becomeStale() ctStep { return firstThen("Cache-Control: max-age=2", "Template-A: 1") }

// suite: cc-freshness.mjs (browser-only rows about private caches skipped).
func TestCacheTests_Freshness(t *testing.T) {
	runCacheTests(t, []ctCase{
		twoSteps("freshness-none", ctCheck, ctNotCached),
		twoSteps("freshness-max-age", ctOptimal, ctCached, "Cache-Control: max-age=3600"),
		{id: "freshness-max-age-stale", kind: ctRequired, steps: []ctStep{becomeStale(), then(ctNotCached)}},
		twoSteps("freshness-max-age-0", ctRequired, ctNotCached, "Cache-Control: max-age=0"),
		twoSteps("freshness-max-age-max-minus-1", ctOptimal, ctCached, "Cache-Control: max-age=2147483647"),
		twoSteps("freshness-max-age-max", ctOptimal, ctCached, "Cache-Control: max-age=2147483648"),
		twoSteps("freshness-max-age-max-plus-1", ctOptimal, ctCached, "Cache-Control: max-age=2147483649"),
		twoSteps("freshness-max-age-max-plus", ctOptimal, ctCached, "Cache-Control: max-age=99999999999"),
		twoSteps("freshness-max-age-age", ctRequired, ctNotCached, "Date: @0", "Cache-Control: max-age=3600", "Age: 7200"),
		twoSteps("freshness-max-age-date", ctCheck, ctNotCached, "Date: @-7200", "Cache-Control: max-age=3600"),
		twoSteps("freshness-max-age-expires", ctOptimal, ctCached, "Cache-Control: max-age=3600", "Expires: @-7200", "Date: @0"),
		twoSteps("freshness-max-age-expires-invalid", ctOptimal, ctCached, "Cache-Control: max-age=3600", "Expires: 0", "Date: @0"),
		twoSteps("freshness-max-age-0-expires", ctRequired, ctNotCached, "Expires: @3600", "Cache-Control: max-age=0", "Date: @0"),
		twoSteps("freshness-max-age-extension", ctOptimal, ctCached, "Cache-Control: foobar, max-age=3600"),
		twoSteps("freshness-max-age-case-insenstive", ctOptimal, ctCached, "Cache-Control: MaX-aGe=3600"),
		twoSteps("freshness-max-age-negative", ctRequired, ctNotCached, "Cache-Control: max-age=-3600"),
		twoSteps("freshness-s-maxage-shared", ctRequired, ctCached, "Cache-Control: s-maxage=3600"),
		twoSteps("freshness-max-age-s-maxage-shared-longer", ctRequired, ctNotCached, "Cache-Control: max-age=3600, s-maxage=1"),
		twoSteps("freshness-max-age-s-maxage-shared-longer-reversed", ctRequired, ctNotCached, "Cache-Control: s-maxage=1, max-age=3600"),
		twoSteps("freshness-max-age-s-maxage-shared-longer-multiple", ctRequired, ctNotCached, "Cache-Control: max-age=3600", "Cache-Control: s-maxage=1"),
		twoSteps("freshness-max-age-s-maxage-shared-shorter", ctOptimal, ctCached, "Cache-Control: max-age=1, s-maxage=3600"),
		twoSteps("freshness-max-age-s-maxage-shared-shorter-expires", ctOptimal, ctCached, "Expires: @-10", "Cache-Control: max-age=0, s-maxage=3600"),
	})
}

// suite: age-parse.mjs (all "check": error handling of Age is not
// specified).
func TestCacheTests_AgeParse(t *testing.T) {
	aged := func(id string, ages ...string) ctCase {
		f := []string{"Date: @0", "Cache-Control: max-age=3600"}
		for _, a := range ages {
			f = append(f, "Age: "+a)
		}
		return twoSteps(id, ctCheck, ctCached, f...)
	}
	// An Age list is read as its first value: the edge's answer differs
	// where that value is the old one.
	first := func(id string, ages ...string) ctCase {
		c := aged(id, ages...)
		c.steps[1].want = ctNotCached
		c.differs = "an Age with several values is read as its first value (RFC 9111 §4.2.3 defines one delta-seconds; the larger age errs on the side of staleness)"
		return c
	}
	runCacheTests(t, []ctCase{
		aged("age-parse-nonnumeric", "abc"),
		aged("age-parse-negative", "-7200"),
		aged("age-parse-float", "7200.0"),
		first("age-parse-suffix", "7200,0"),
		first("age-parse-suffix-twoline", "7200", "0"),
		aged("age-parse-prefix", "0,7200"),
		aged("age-parse-prefix-twoline", "0", "7200"),
		aged("age-parse-dup-0", "0, 0"),
		aged("age-parse-dup-0-twoline", "0", "0"),
		first("age-parse-dup-old", "7200, 7200"),
		first("age-parse-dup-old-twoline", "7200", "7200"),
	})
}

// suite: cc-parse.mjs.
func TestCacheTests_CacheControlParse(t *testing.T) {
	runCacheTests(t, []ctCase{
		{id: "freshness-max-age-two-fresh-stale-sameline", kind: ctCheck, differs: "conflicting duplicate directives make the response stale (RFC 9111 §4.2.1 leaves the choice to the cache)", steps: []ctStep{firstThen("Cache-Control: max-age=1800, max-age=1"), then(ctNotCached)}},
		{id: "freshness-max-age-two-fresh-stale-sepline", kind: ctCheck, differs: "conflicting duplicate directives make the response stale (RFC 9111 §4.2.1 leaves the choice to the cache)", steps: []ctStep{firstThen("Cache-Control: max-age=1800", "Cache-Control: max-age=1"), then(ctNotCached)}},
		{id: "freshness-max-age-two-stale-fresh-sameline", kind: ctCheck, differs: "conflicting duplicate directives make the response stale (RFC 9111 §4.2.1 leaves the choice to the cache)", steps: []ctStep{firstThen("Cache-Control: max-age=1, max-age=1800"), then(ctNotCached)}},
		{id: "freshness-max-age-two-stale-fresh-sepline", kind: ctCheck, differs: "conflicting duplicate directives make the response stale (RFC 9111 §4.2.1 leaves the choice to the cache)", steps: []ctStep{firstThen("Cache-Control: max-age=1", "Cache-Control: max-age=1800"), then(ctNotCached)}},
		twoSteps("freshness-max-age-ignore-quoted", ctRequired, ctNotCached, `Cache-Control: extension="max-age=3600", max-age=1`),
		twoSteps("freshness-max-age-ignore-quoted-rev", ctRequired, ctNotCached, `Cache-Control: max-age=1, extension="max-age=3600"`),
		twoSteps("freshness-max-age-quoted", ctCheck, ctCached, `Cache-Control: max-age="3600"`),
		twoSteps("freshness-max-age-space-before-equals", ctCheck, ctNotCached, "Cache-Control: max-age =3600"),
		twoSteps("freshness-max-age-space-after-equals", ctCheck, ctNotCached, "Cache-Control: max-age= 3600"),
		twoSteps("freshness-max-age-leading-zero", ctRequired, ctCached, "Cache-Control: max-age=003600"),
		twoSteps("freshness-max-age-single-quoted", ctRequired, ctNotCached, "Cache-Control: max-age='3600'"),
		{id: "freshness-max-age-decimal-zero", kind: ctCheck, differs: "an invalid max-age value makes the response stale (RFC 9111 §4.2.1: caches are encouraged to consider it stale)", steps: []ctStep{firstThen("Cache-Control: max-age=3600.0"), then(ctNotCached)}},
		{id: "freshness-max-age-decimal-five", kind: ctCheck, differs: "an invalid max-age value makes the response stale (RFC 9111 §4.2.1: caches are encouraged to consider it stale)", steps: []ctStep{firstThen("Cache-Control: max-age=3600.5"), then(ctNotCached)}},
		{id: "freshness-max-age-a100", kind: ctCheck, differs: "an invalid max-age value makes the response stale (RFC 9111 §4.2.1: caches are encouraged to consider it stale)", steps: []ctStep{firstThen("Cache-Control: max-age=a3600"), then(ctNotCached)}},
		{id: "freshness-max-age-100a", kind: ctCheck, differs: "an invalid max-age value makes the response stale (RFC 9111 §4.2.1: caches are encouraged to consider it stale)", steps: []ctStep{firstThen("Cache-Control: max-age=3600a"), then(ctNotCached)}},
	})
}

// suite: expires-freshness.mjs and expires-parse.mjs (the same ids; the
// latter asks as "check" what the former requires).
func TestCacheTests_Expires(t *testing.T) {
	exp := func(id, kind, want, value string) ctCase {
		return twoSteps(id, kind, want, "Expires: "+value, "Date: @0")
	}
	runCacheTests(t, []ctCase{
		twoSteps("freshness-expires-none", ctOptimal, ctNotCached),
		exp("freshness-expires-future", ctOptimal, ctCached, "@2592000"),
		exp("freshness-expires-past", ctRequired, ctNotCached, "@-2592000"),
		{id: "freshness-expires-present", kind: ctRequired, steps: []ctStep{storedNow("Expires: @0", "Date: @0"), then(ctNotCached)}},
		twoSteps("freshness-expires-old-date", ctRequired, ctNotCached, "Expires: @300", "Date: @400"),
		exp("freshness-expires-wrong-case-weekday", ctOptimal, ctCached, "THU, 18 Aug 2050 02:01:18 GMT"),
		exp("freshness-expires-wrong-case-month", ctOptimal, ctCached, "Thu, 18 AUG 2050 02:01:18 GMT"),
		exp("freshness-expires-wrong-case-tz", ctOptimal, ctCached, "Thu, 18 Aug 2050 02:01:18 gMT"),
		exp("freshness-expires-invalid", ctRequired, ctNotCached, "0"),
		exp("freshness-expires-invalid-utc", ctRequired, ctNotCached, "Thu, 18 Aug 2050 02:01:18 UTC"),
		exp("freshness-expires-invalid-2-digit-year", ctRequired, ctNotCached, "Thu, 18 Aug 50 02:01:18 GMT"),
		exp("freshness-expires-invalid-no-comma", ctRequired, ctNotCached, "Thu 18 Aug 2050 02:01:18 GMT"),
		exp("freshness-expires-invalid-multiple-spaces", ctRequired, ctNotCached, "Thu, 18  Aug  2050 02:01:18 GMT"),
		exp("freshness-expires-invalid-date-dashes", ctRequired, ctNotCached, "Thu, 18-Aug-2050 02:01:18 GMT"),
		exp("freshness-expires-invalid-time-periods", ctRequired, ctNotCached, "Thu, 18 Aug 2050 02.01.18 GMT"),
		exp("freshness-expires-invalid-1-digit-hour", ctRequired, ctNotCached, "Thu, 18 Aug 2050 2:01:18 GMT"),
		{id: "freshness-expires-invalid-date", kind: ctOptimal, steps: []ctStep{storedNow("Date: foo", "Expires: @10"), then(ctCached)}},
		{id: "freshness-expires-age-slow-date", kind: ctRequired, steps: []ctStep{storedNow("Date: @-10", "Expires: @10", "Age: 25"), then(ctNotCached)}},
		{id: "freshness-expires-age-fast-date", kind: ctRequired, steps: []ctStep{storedNow("Date: @10", "Expires: @20", "Age: 15"), then(ctNotCached)}},
	})
}

// suite: cc-response.mjs (browser-only rows: private caches, immutable,
// skipped).
func TestCacheTests_ResponseDirectives(t *testing.T) {
	runCacheTests(t, []ctCase{
		{id: "cc-resp-private-shared", kind: ctRequired, steps: []ctStep{storedNow("Cache-Control: private, max-age=3600"), then(ctNotCached)}},
		{id: "cc-resp-no-store", kind: ctRequired, steps: []ctStep{storedNow("Cache-Control: no-store"), then(ctNotCached)}},
		{id: "cc-resp-no-store-case-insensitive", kind: ctRequired, steps: []ctStep{storedNow("Cache-Control: No-StOrE"), then(ctNotCached)}},
		{id: "cc-resp-no-store-fresh", kind: ctRequired, steps: []ctStep{storedNow("Cache-Control: max-age=10000, no-store", "Expires: @10000", "Date: @0"), then(ctNotCached)}},
		{id: "cc-resp-no-store-old-new", kind: ctCheck, steps: []ctStep{
			firstThen("Cache-Control: max-age=10000", "Expires: @10000", "Date: @0", "A: 1"),
			{resp: []string{"Cache-Control: no-store", "Date: @0", "A: 2"}, pause: true},
			{want: ctCached, wantHdr: []string{"A: 1"}},
		}},
		{id: "cc-resp-no-store-old-max-age", kind: ctCheck, steps: []ctStep{
			firstThen("Cache-Control: max-age=10000", "Expires: @10000", "Date: @0", "A: 1"),
			{resp: []string{"Cache-Control: no-store, max-age=0", "Date: @0", "A: 2"}, pause: true},
			{want: ctCached, wantHdr: []string{"A: 1"}},
		}},
		{id: "cc-resp-no-cache", kind: ctRequired, steps: []ctStep{storedNow("Cache-Control: max-age=10000, no-cache", "Expires: @10000", "Date: @0"), then(ctNotCached)}},
		{id: "cc-resp-no-cache-case-insensitive", kind: ctRequired, steps: []ctStep{storedNow("Cache-Control: max-age=10000, No-CaChE", "Expires: @10000", "Date: @0"), then(ctNotCached)}},
		{id: "cc-resp-no-cache-revalidate", kind: ctOptimal, steps: []ctStep{storedNow("Cache-Control: no-cache", `ETag: "abcd"`), then(ctETagValid)}},
		{id: "cc-resp-no-cache-revalidate-fresh", kind: ctOptimal, steps: []ctStep{storedNow("Cache-Control: max-age=10000, no-cache", "Expires: @10000", "Date: @0", `ETag: "abcd"`), then(ctETagValid)}},
		{id: "headers-omit-headers-listed-in-Cache-Control-no-cache-single", kind: ctCheck, steps: []ctStep{
			firstThen(`Cache-Control: no-cache="a"`, "a: 1", "b: 2", "Cache-Control: max-age=3600", "Date: @0"),
			{want: ctCached, wantHdr: []string{"b: 2"}, missing: []string{"a"}},
		}},
		{id: "headers-omit-headers-listed-in-Cache-Control-no-cache", kind: ctCheck, steps: []ctStep{
			firstThen(`Cache-Control: no-cache="a, b"`, "a: 1", "b: 2", "c: 3", "Cache-Control: max-age=3600", "Date: @0"),
			{want: ctCached, wantHdr: []string{"c: 3"}, missing: []string{"a", "b"}},
		}},
		{id: "cc-resp-must-revalidate-fresh", kind: ctOptimal, steps: []ctStep{storedNow("Cache-Control: max-age=10000, must-revalidate", `ETag: "abcd"`), then(ctCached)}},
		{id: "cc-resp-must-revalidate-stale", kind: ctRequired, steps: []ctStep{
			storedNow("Cache-Control: max-age=2, must-revalidate", `ETag: "abcd"`),
			{want: ctCached, pause: true},
			then(ctETagValid),
		}},
	})
}

// suite: cdn-cache-control.mjs (RFC 9213; the edge's targeted field is
// CDN-Cache-Control by default).
func TestCacheTests_CDNCacheControl(t *testing.T) {
	runCacheTests(t, []ctCase{
		twoSteps("cdn-max-age", ctOptimal, ctCached, "CDN-Cache-Control: max-age=3600"),
		twoSteps("cdn-max-age-max", ctOptimal, ctCached, "CDN-Cache-Control: max-age=2147483648"),
		twoSteps("cdn-max-age-max-plus", ctOptimal, ctCached, "CDN-Cache-Control: max-age=99999999999"),
		twoSteps("cdn-max-age-age", ctRequired, ctNotCached, "Date: @0", "CDN-Cache-Control: max-age=3600", "Age: 7200"),
		twoSteps("cdn-max-age-space-before-equals", ctCheck, ctNotCached, "Cache-Control: max-age=1", "CDN-Cache-Control: max-age =100"),
		twoSteps("cdn-max-age-space-after-equals", ctCheck, ctNotCached, "Cache-Control: max-age=1", "CDN-Cache-Control: max-age= 100"),
		twoSteps("cdn-max-age-0", ctRequired, ctNotCached, "CDN-Cache-Control: max-age=0"),
		twoSteps("cdn-max-age-extension", ctOptimal, ctCached, "CDN-Cache-Control: foobar, max-age=3600"),
		{id: "cdn-max-age-case-insensitive", kind: ctCheck, differs: "CDN-Cache-Control is a Structured Field dictionary (RFC 9213 §2, RFC 8941 §3.2): keys are lowercase, so the field is invalid and ignored", steps: []ctStep{firstThen("CDN-Cache-Control: MaX-aGe=3600"), then(ctNotCached)}},
		twoSteps("cdn-max-age-expires", ctOptimal, ctCached, "CDN-Cache-Control: max-age=3600", "Expires: @-10000", "Date: @0"),
		twoSteps("cdn-max-age-cc-max-age-invalid-expires", ctOptimal, ctCached, "CDN-Cache-Control: max-age=3600", "Expires: 0", "Date: @0"),
		twoSteps("cdn-max-age-0-expires", ctRequired, ctNotCached, "CDN-Cache-Control: max-age=0", "Expires: @10000", "Date: @0"),
		twoSteps("cdn-max-age-short-cc-max-age", ctOptimal, ctCached, "Cache-Control: max-age=1", "CDN-Cache-Control: max-age=3600"),
		twoSteps("cdn-max-age-long-cc-max-age", ctRequired, ctNotCached, "Cache-Control: max-age=3600", "CDN-Cache-Control: max-age=1"),
		{id: "cdn-private", kind: ctRequired, steps: []ctStep{storedNow("CDN-Cache-Control: private", "Cache-Control: max-age=10000", "Expires: @10000", "Date: @0"), then(ctNotCached)}},
		{id: "cdn-no-cache", kind: ctRequired, steps: []ctStep{storedNow("CDN-Cache-Control: no-cache", "Cache-Control: max-age=10000", "Expires: @10000", "Date: @0"), then(ctNotCached)}},
		twoSteps("cdn-no-store-cc-fresh", ctRequired, ctNotCached, "Cache-Control: max-age=10000", "CDN-Cache-Control: no-store", "Expires: @10000", "Date: @0"),
		twoSteps("cdn-fresh-cc-nostore", ctRequired, ctCached, "Cache-Control: no-store", "CDN-Cache-Control: max-age=10000"),
		twoSteps("cdn-cc-invalid-sh-type-unknown", ctRequired, ctNotCached, "CDN-Cache-Control: max-age=10000, &&&&&", "Cache-Control: no-store"),
		twoSteps("cdn-cc-invalid-sh-type-wrong", ctRequired, ctNotCached, `CDN-Cache-Control: max-age="10000"`, "Cache-Control: no-store"),
		{id: "cdn-remove-header", kind: ctCheck, steps: []ctStep{{
			resp:    []string{"Cache-Control: max-age=10000", "CDN-Cache-Control: foo", "Expires: @10000", "Date: @0"},
			wantHdr: []string{"CDN-Cache-Control: foo"},
		}}},
	})
}

// suite: stale.mjs. The origin failing is a closed connection or a 503.
func TestCacheTests_Stale(t *testing.T) {
	closed := ctStep{disconnect: true, want: ctCached}
	prohibited := func(cc string) ctCase {
		return ctCase{id: "stale-close-" + cc, kind: ctRequired, steps: []ctStep{
			firstThen("Cache-Control: max-age=2, " + cc),
			{disconnect: true, wantStatus: http.StatusGatewayTimeout},
		}}
	}
	runCacheTests(t, []ctCase{
		{id: "stale-close", kind: ctCheck, steps: []ctStep{becomeStale(), closed}},
		{id: "stale-503", kind: ctCheck, steps: []ctStep{becomeStale(), {status: 503, wantStatus: 200, want: ctCached}}},
		{id: "stale-sie-close", kind: ctCheck, steps: []ctStep{firstThen("Cache-Control: max-age=2, stale-if-error=60"), closed}},
		{id: "stale-sie-503", kind: ctCheck, steps: []ctStep{firstThen("Cache-Control: max-age=2, stale-if-error=60"), closed}},
		prohibited("must-revalidate"),
		prohibited("proxy-revalidate"),
		prohibited("no-cache"),
		prohibited("s-maxage=2"),
		{id: "stale-warning-stored", kind: ctCheck, differs: "Warning is obsolete (RFC 9111 §5.5): not generated", steps: []ctStep{
			storedNow("Expires: @-5000", "Last-Modified: @-100000", "Date: @0"),
			{disconnect: true, want: ctCached, missing: []string{"Warning"}},
		}},
		{id: "stale-warning-become", kind: ctCheck, differs: "Warning is obsolete (RFC 9111 §5.5): not generated", steps: []ctStep{
			becomeStale(),
			{disconnect: true, want: ctCached, missing: []string{"Warning"}},
		}},
	})
}

// suite: heuristic-freshness.mjs: statuses with Last-Modified a day ago
// and no explicit freshness.
func TestCacheTests_Heuristic(t *testing.T) {
	status := func(code int, kind, want string, extra ...string) ctCase {
		f := append([]string{"Last-Modified: @-86400", "Date: @0"}, extra...)
		body := fmt.Sprintf("%d body", code)
		if code == http.StatusNoContent {
			body = ""
		}
		return ctCase{id: fmt.Sprintf("heuristic-%d-%s", code, want), kind: kind, steps: []ctStep{
			{status: code, resp: f, body: body},
			{status: code, body: body, want: want},
		}}
	}
	delta := func(d int) ctCase {
		return ctCase{id: fmt.Sprintf("heuristic-delta-%d", d), kind: ctCheck, steps: []ctStep{
			storedNow(fmt.Sprintf("Last-Modified: @-%d", d), "Date: @0"), then(ctCached),
		}}
	}
	cases := []ctCase{
		status(200, ctOptimal, ctCached),
		status(201, ctRequired, ctNotCached),
		status(202, ctRequired, ctNotCached),
		status(203, ctOptimal, ctCached),
		status(204, ctOptimal, ctCached),
		status(403, ctRequired, ctNotCached),
		status(404, ctOptimal, ctCached),
		status(405, ctOptimal, ctCached),
		status(410, ctOptimal, ctCached),
		status(414, ctOptimal, ctCached),
		status(501, ctOptimal, ctCached),
		status(502, ctRequired, ctNotCached),
		status(503, ctRequired, ctNotCached),
		status(504, ctRequired, ctNotCached),
		status(599, ctRequired, ctNotCached),
	}
	public := status(599, ctOptimal, ctCached, "Cache-Control: public")
	public.id += "-public"
	cases = append(cases, public)
	for _, d := range []int{5, 10, 30, 60, 300, 600, 1200, 1800, 3600, 3600 * 12, 3600 * 24} {
		cases = append(cases, delta(d))
	}
	runCacheTests(t, cases)
}

// suite: cc-request.mjs (all "check": RFC 9111 lets a cache ignore
// request directives; the edge honours them).
func TestCacheTests_RequestDirectives(t *testing.T) {
	fresh := firstThen("Expires: @100000", "Cache-Control: max-age=100000", "Last-Modified: @0", "Date: @0")
	runCacheTests(t, []ctCase{
		{id: "ccreq-ma0", kind: ctCheck, steps: []ctStep{fresh, then(ctNotCached, "Cache-Control: max-age=0")}},
		{id: "ccreq-ma1", kind: ctCheck, steps: []ctStep{fresh, then(ctNotCached, "Cache-Control: max-age=1")}},
		{id: "ccreq-magreaterage", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=3600", "Age: 1800"), then(ctNotCached, "Cache-Control: max-age=600")}},
		{id: "ccreq-max-stale", kind: ctCheck, steps: []ctStep{firstThen("Cache-Control: max-age=1"), then(ctCached, "Cache-Control: max-stale=1000")}},
		{id: "ccreq-max-stale-age", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=1500", "Age: 2000"), then(ctCached, "Cache-Control: max-stale=1000")}},
		{id: "ccreq-min-fresh", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=1500"), then(ctNotCached, "Cache-Control: min-fresh=2000")}},
		{id: "ccreq-min-fresh-age", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=1500", "Age: 1000"), then(ctNotCached, "Cache-Control: min-fresh=1000")}},
		{id: "ccreq-no-cache", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=3600"), then(ctNotCached, "Cache-Control: no-cache")}},
		{id: "ccreq-no-cache-lm", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=3600", "Last-Modified: @-10000", "Date: @0"), then(ctLMValidated, "Cache-Control: no-cache")}},
		{id: "ccreq-no-cache-etag", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=3600", `ETag: "abc"`), then(ctETagValid, "Cache-Control: no-cache")}},
		{id: "ccreq-no-store", kind: ctCheck, differs: "a request's no-store forbids storing its response (RFC 9111 §5.2.1.5), not answering it from a stored one", steps: []ctStep{storedNow("Cache-Control: max-age=3600"), then(ctCached, "Cache-Control: no-store")}},
		{id: "ccreq-oic", kind: ctCheck, steps: []ctStep{{req: []string{"Cache-Control: only-if-cached"}, wantStatus: http.StatusGatewayTimeout}}},
	})
}

// suite: pragma.mjs (all "check").
func TestCacheTests_Pragma(t *testing.T) {
	runCacheTests(t, []ctCase{
		{id: "pragma-request-no-cache", kind: ctCheck, differs: "a request's Pragma: no-cache without Cache-Control is honoured as no-cache (RFC 7234 §5.4; RFC 9111 §5.4 leaves it to the cache)", steps: []ctStep{
			storedNow("Cache-Control: max-age=3600"), then(ctNotCached, "Pragma: no-cache"),
		}},
		{id: "pragma-request-extension", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=3600"), then(ctCached, "Pragma: unrecognised-extension")}},
		{id: "pragma-response-no-cache", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=3600", "Pragma: no-cache"), then(ctCached)}},
		{id: "pragma-response-no-cache-heuristic", kind: ctCheck, differs: "Go's HTTP client reads a response's Pragma: no-cache without Cache-Control as Cache-Control: no-cache (RFC 7234 §5.4 compatibility), so the edge validates it on each use", steps: []ctStep{storedNow("Last-Modified: @-10000", "Pragma: no-cache"), then(ctLMValidated)}},
		{id: "pragma-response-extension", kind: ctCheck, steps: []ctStep{storedNow("Cache-Control: max-age=3600", "Pragma: unrecognised-extension"), then(ctCached)}},
	})
}

// suite: authorization.mjs (shared caches only).
func TestCacheTests_Authorization(t *testing.T) {
	auth := func(id, kind, want string, fields ...string) ctCase {
		return ctCase{id: id, kind: kind, steps: []ctStep{
			{req: []string{"Authorization: FOO"}, wantReq: []string{"Authorization: FOO"}, resp: fields, pause: true},
			then(want),
		}}
	}
	runCacheTests(t, []ctCase{
		auth("other-authorization", ctRequired, ctNotCached, "Expires: @2592000", "Date: @0"),
		auth("other-authorization-public", ctOptimal, ctCached, "Cache-Control: max-age=3600, public", "Date: @0"),
		auth("other-authorization-must-revalidate", ctOptimal, ctCached, "Cache-Control: max-age=3600, must-revalidate", "Date: @0"),
		auth("other-authorization-smaxage", ctOptimal, ctCached, "Cache-Control: s-maxage=3600", "Date: @0"),
	})
}

// suite: vary.mjs.
func TestCacheTests_Vary(t *testing.T) {
	varied := func(vary string, req ...string) ctStep {
		return ctStep{req: req, resp: []string{"Expires: @5000", "Last-Modified: @-3000", "Date: @0", "Vary: " + vary}}
	}
	runCacheTests(t, []ctCase{
		{id: "vary-match", kind: ctOptimal, steps: []ctStep{varied("Foo", "Foo: 1"), then(ctCached, "Foo: 1")}},
		{id: "vary-no-match", kind: ctRequired, steps: []ctStep{varied("Foo", "Foo: 1"), then(ctNotCached, "Foo: 2")}},
		{id: "vary-omit", kind: ctRequired, steps: []ctStep{varied("Foo", "Foo: 1"), then(ctNotCached)}},
		{id: "vary-invalidate", kind: ctOptimal, steps: []ctStep{
			{req: []string{"Foo: 1"}, resp: varied("Foo").resp, body: "foo_1"},
			{req: []string{"Foo: 2"}, resp: varied("Foo").resp, body: "foo_2", want: ctNotCached},
			{req: []string{"Foo: 1"}, want: ctCached, wantBody: ptr("foo_1")},
		}},
		{id: "vary-cache-key", kind: ctOptimal, steps: []ctStep{varied("Foo", "Foo: 1", "Other: 2"), then(ctCached, "Foo: 1", "Other: 3")}},
		{id: "vary-2-match", kind: ctOptimal, steps: []ctStep{varied("Foo, Bar", "Foo: 1", "Bar: abc"), then(ctCached, "Foo: 1", "Bar: abc")}},
		{id: "vary-2-no-match", kind: ctRequired, steps: []ctStep{varied("Foo, Bar", "Foo: 1", "Bar: abc"), then(ctNotCached, "Foo: 2", "Bar: abc")}},
		{id: "vary-2-match-omit", kind: ctRequired, steps: []ctStep{varied("Foo, Bar", "Foo: 1"), then(ctNotCached)}},
		{id: "vary-3-match", kind: ctOptimal, steps: []ctStep{varied("Foo, Bar, Baz", "Foo: 1", "Bar: abc", "Baz: 789"), then(ctCached, "Foo: 1", "Bar: abc", "Baz: 789")}},
		{id: "vary-3-no-match", kind: ctRequired, steps: []ctStep{varied("Foo, Bar, Baz", "Foo: 1", "Bar: abc", "Baz: 789"), then(ctNotCached, "Foo: 2", "Bar: abc", "Baz: 789")}},
		{id: "vary-3-order", kind: ctRequired, steps: []ctStep{varied("Foo, Bar, Baz", "Foo: 1", "Bar: abc4", "Baz: 789"), then(ctNotCached, "Foo: 1", "Bar: abc", "Baz: 789")}},
		{id: "vary-3-omit", kind: ctOptimal, steps: []ctStep{varied("Foo, Bar, Baz", "Foo: 1", "Baz: 789"), then(ctCached, "Foo: 1", "Baz: 789")}},
		{id: "vary-star", kind: ctRequired, steps: []ctStep{varied("*", "Foo: 1", "Baz: 789"), then(ctNotCached, "*: 1", "Baz: 789")}},
		{id: "vary-normalise-space", kind: ctOptimal, steps: []ctStep{varied("Foo", "Foo: 1,2"), then(ctCached, "Foo:  1, 2 ")}},
		{id: "vary-normalise-combine", kind: ctOptimal, steps: []ctStep{varied("Foo", "Foo: 1, 2"), then(ctCached, "Foo: 1", "Foo: 2")}},
		{id: "vary-normalise-lang-order", kind: ctOptimal, differs: "selecting fields are normalised for whitespace and field lines only, not by each field's semantics (RFC 9111 §4.1 allows, does not require, more)", steps: []ctStep{
			varied("Accept-Language", "Accept-Language: en, de"), then(ctNotCached, "Accept-Language: de, en"),
		}},
	})
}

func ptr[T any](v T) *T { return &v }

// fresh is the suite's template of a fresh response.
func freshStep(extra ...string) ctStep {
	return ctStep{resp: append([]string{"Expires: @100000", "Cache-Control: max-age=100000", "Last-Modified: @0", "Date: @0"}, extra...)}
}

// suite: conditional-etag.mjs and conditional-lm.mjs.
func TestCacheTests_Conditional(t *testing.T) {
	inm := func(id, kind, etag, inm string, extra ...string) ctCase {
		return ctCase{id: id, kind: kind, steps: []ctStep{
			freshStep("ETag: " + etag),
			{req: []string{"If-None-Match: " + inm}, want: ctCached, wantStatus: http.StatusNotModified, wantHdr: extra},
		}}
	}
	stale := func(id, kind, etag, sent string) ctCase {
		return ctCase{id: id, kind: kind, steps: []ctStep{
			firstThen("Cache-Control: max-age=2", "Template-A: 1", "ETag: "+etag),
			{want: ctETagValid, wantReq: []string{"If-None-Match: " + sent}},
		}}
	}
	lm := func(id, kind, cc, lastMod, ims string, want string, status int) ctCase {
		f := []string{"Cache-Control: " + cc, "Date: @0"}
		if lastMod != "" {
			f = append(f, "Last-Modified: "+lastMod)
		}
		return ctCase{id: id, kind: kind, steps: []ctStep{
			firstThen(f...),
			{req: []string{"If-Modified-Since: " + ims}, want: want, wantStatus: status},
		}}
	}
	// malformed pins the edge's answer where the suite's tags are not
	// entity-tags.
	malformed := func(id, etag, tags string) ctCase {
		c := inm(id, ctCheck, etag, tags)
		c.steps[1].wantStatus = http.StatusOK
		c.differs = "a malformed entity-tag (RFC 9110 §8.8.3: unquoted, w/ or a W without /) in If-None-Match matches nothing; the stored response is sent in full"
		return c
	}
	unquoted := "an If-None-Match entity-tag must be quoted (RFC 9110 §8.8.3); an unquoted one matches nothing, and the request is answered in full"
	runCacheTests(t, []ctCase{
		inm("conditional-etag-strong-respond", ctOptimal, `"abcdef"`, `"abcdef"`),
		inm("conditional-304-etag", ctRequired, `"abcdef"`, `"abcdef"`, `ETag: "abcdef"`),
		{id: "conditional-etag-precedence", kind: ctRequired, steps: []ctStep{
			freshStep("Last-Modified: @-5000", `ETag: "abcdef"`),
			{req: []string{`If-None-Match: "abcdef"`, "If-Modified-Since: @-5001"}, want: ctCached, wantStatus: http.StatusNotModified},
		}},
		inm("conditional-etag-strong-respond-obs-text", ctCheck, "\"abcdef\xfc\"", "\"abcdef\xfc\""),
		{id: "conditional-etag-quoted-respond-unquoted", kind: ctCheck, differs: unquoted, steps: []ctStep{
			freshStep(`ETag: "abcdef"`), {req: []string{"If-None-Match: abcdef"}, want: ctCached},
		}},
		malformed("conditional-etag-unquoted-respond-unquoted", "abcdef", "abcdef"),
		{id: "conditional-etag-unquoted-respond-quoted", kind: ctCheck, differs: unquoted, steps: []ctStep{
			freshStep("ETag: abcdef"), {req: []string{`If-None-Match: "abcdef"`}, want: ctCached},
		}},
		inm("conditional-etag-weak-respond", ctOptimal, `W/"abcdef"`, `W/"abcdef"`),
		malformed("conditional-etag-weak-respond-lowercase", `w/"abcdef"`, `w/"abcdef"`),
		malformed("conditional-etag-weak-respond-backslash", `W\"abcdef"`, `W\"abcdef"`),
		malformed("conditional-etag-weak-respond-omit-slash", `W"abcdef"`, `W"abcdef"`),
		inm("conditional-etag-strong-respond-multiple-first", ctOptimal, `"abcdef"`, `"abcdef", "1234", "5678"`),
		inm("conditional-etag-strong-respond-multiple-second", ctOptimal, `"abcdef"`, `"1234", "abcdef", "5678"`),
		inm("conditional-etag-strong-respond-multiple-last", ctOptimal, `"abcdef"`, `"1234", "5678", "abcdef"`),
		{id: "conditional-etag-vary-headers", kind: ctRequired, steps: []ctStep{
			{req: []string{"Abc: 123"}, resp: []string{"Expires: @1", `ETag: "abcdef"`, "Date: @0", "Vary: Abc"}, pause: true},
			{req: []string{"Abc: 123"}, want: ctETagValid, wantReq: []string{"Abc: 123"}},
		}},
		{id: "conditional-etag-vary-headers-mismatch", kind: ctCheck, steps: []ctStep{
			{req: []string{"Abc: 123"}, resp: []string{"Expires: @10000", `ETag: "abcdef"`, "Date: @0", "Vary: Abc"}, pause: true},
			{req: []string{"Abc: 456"}, wantReqMissing: []string{"If-None-Match"}},
		}},
		stale("conditional-etag-strong-generate", ctOptimal, `"abcdef"`, `"abcdef"`),
		stale("conditional-etag-weak-generate-weak", ctOptimal, `W/"abcdef"`, `W/"abcdef"`),
		{id: "conditional-etag-strong-generate-unquoted", kind: ctCheck, differs: "a stored ETag is sent back as the origin gave it (RFC 9111 §4.3.1), not repaired", steps: []ctStep{
			firstThen("Cache-Control: max-age=2", "Template-A: 1", "ETag: abcdef"),
			{want: ctETagValid, wantReq: []string{"If-None-Match: abcdef"}},
		}},
		{id: "conditional-etag-forward", kind: ctCheck, differs: "a miss is fetched whole, without the client's preconditions, so that it can be stored; the edge answers the preconditions itself (RFC 9111 §4.3.2)", steps: []ctStep{{req: []string{`If-None-Match: "abcdef"`}, wantReqMissing: []string{"If-None-Match"}}}},
		{id: "conditional-etag-forward-unquoted", kind: ctCheck, differs: "a miss is fetched whole, without the client's preconditions, so that it can be stored; the edge answers the preconditions itself (RFC 9111 §4.3.2)", steps: []ctStep{
			{req: []string{"If-None-Match: abcdef"}, wantReqMissing: []string{"If-None-Match"}},
		}},
		lm("conditional-lm-fresh", ctOptimal, "max-age=100000", "@-3000", "@-3000", ctCached, http.StatusNotModified),
		lm("conditional-lm-fresh-earlier", ctOptimal, "max-age=100000", "@-3000", "@-2000", ctCached, http.StatusNotModified),
		lm("conditional-lm-stale", ctOptimal, "max-age=2", "@@-3000", "@@-3000", ctLMValidated, http.StatusNotModified),
		func() ctCase {
			c := lm("conditional-lm-fresh-no-lm", ctOptimal, "max-age=10000", "", "@-3000", ctCached, http.StatusOK)
			c.differs = "without Last-Modified the stored response's Date stands in for it (RFC 9110 §13.1.3); it is later than If-Modified-Since, so the response is sent in full"
			return c
		}(),
		lm("conditional-lm-fresh-rfc850", ctOptimal, "max-age=10000", "@-3000", "rfc850 @-3000", ctCached, http.StatusNotModified),
	})
}

// suite: invalidation.mjs. Location and Content-Location are same-origin
// paths.
func TestCacheTests_Invalidation(t *testing.T) {
	var cases []ctCase
	for _, m := range []string{"POST", "PUT", "DELETE", "M-SEARCH"} {
		unsafe := ctStep{method: m, reqBody: "abc", resp: []string{"Location: /l", "Content-Location: /cl"}}
		failed := unsafe
		failed.status = http.StatusInternalServerError
		target := func(path string) ctStep {
			s := freshStep()
			s.path = path
			return s
		}
		again := func(path string) ctStep {
			s := target(path)
			s.want = ctNotCached
			return s
		}
		cached := ctStep{want: ctCached}
		cases = append(cases,
			ctCase{id: "invalidate-" + m, kind: ctRequired, steps: []ctStep{target("/t"), unsafe, again("/t")}},
			ctCase{id: "invalidate-" + m + "-failed", kind: ctOptimal, steps: []ctStep{target("/t"), failed, cached}},
			ctCase{id: "invalidate-" + m + "-location", kind: ctRequired, steps: []ctStep{target("/l"), unsafe, again("/l")}},
			ctCase{id: "invalidate-" + m + "-cl", kind: ctRequired, steps: []ctStep{target("/cl"), unsafe, again("/cl")}},
		)
	}
	runCacheTests(t, cases)
}

// suite: update304.mjs: fields of a stored response a 304 must update.
func TestCacheTests_Update304(t *testing.T) {
	const lm1 = "@@-86400"
	cases := []ctCase{{id: "304-lm-use-stored-Test-Header", kind: ctRequired, steps: []ctStep{
		firstThen("Cache-Control: max-age=1", "Last-Modified: "+lm1, "Date: @0", "Test-Header: A"),
		{resp: []string{"Cache-Control: max-age=3600", "Last-Modified: " + lm1, "Date: @0"}, want: ctLMValidated, wantHdr: []string{"Test-Header: A"}},
	}}}
	for _, h := range [][3]string{
		{"Test-Header", "A", "B"},
		{"X-Test-Header", "A", "B"},
		{"Content-Foo", "A", "B"},
		{"X-Content-Foo", "A", "B"},
		{"Content-Type", "text/plain", "text/plain;charset=utf-8"},
		{"Content-MD5", "rL0Y20zC+Fzt72VPzMSk2A==", "N7UdGUp1E+RbVvZSTy1R8g=="},
		{"Content-Location", "/foo", "/bar"},
		{"Content-Security-Policy", "default-src 'self'", "default-src 'self' cdn.example.com"},
		{"X-Frame-Options", "deny", "sameorigin"},
		{"X-XSS-Protection", "1", "1; mode=block"},
		{"Cache-Control", "max-age=1", "max-age=3600"},
		{"Expires", "@@1", "@@3600"},
		{"Clear-Site-Data", "cache", "cookies"},
		{"Public-Key-Pins", "A", "B"},
		{"Set-Cookie", "a=b", "a=c"},
		{"Set-Cookie2", "a=b", "a=c"},
	} {
		name, a, b := h[0], h[1], h[2]
		resp := func(validator, value string, lifetime int) []string {
			cc := fmt.Sprintf("Cache-Control: max-age=%d", lifetime)
			if name == "Cache-Control" {
				cc = "a: b"
			}
			return []string{cc, "Date: @0", validator + ": " + value, name + ": " + map[int]string{1: a, 3600: b}[lifetime]}
		}
		for _, v := range [][3]string{{"lm", "Last-Modified", lm1}, {"etag", "ETag", `"etag-1"`}} {
			want := ctLMValidated
			if v[0] == "etag" {
				want = ctETagValid
			}
			cases = append(cases,
				ctCase{id: fmt.Sprintf("304-%s-update-response-%s", v[0], name), kind: ctRequired, steps: []ctStep{
					{resp: resp(v[1], v[2], 1), pause: true},
					{resp: resp(v[1], v[2], 3600), want: want, wantHdr: []string{name + ": " + b}},
				}},
				ctCase{id: fmt.Sprintf("304-%s-update-stored-%s", v[0], name), kind: ctRequired, steps: []ctStep{
					{resp: resp(v[1], v[2], 1), pause: true},
					{resp: resp(v[1], v[2], 3600), want: want, pause: true},
					{want: ctCached, wantHdr: []string{name + ": " + b}},
				}},
			)
		}
	}
	runCacheTests(t, cases)
}

// suite: headers.mjs: which fields a stored response keeps.
func TestCacheTests_Headers(t *testing.T) {
	store := func(name, value string) ctCase {
		return ctCase{id: "headers-store-" + name, kind: ctCheck, steps: []ctStep{
			firstThen(name+": "+value, "Cache-Control: max-age=3600", "Date: @0"),
			{want: ctCached, wantHdr: []string{name + ": " + value}},
		}}
	}
	hop := func(name string) ctCase {
		c := store(name, name+"-store-value")
		c.steps[1].wantHdr = nil
		c.steps[1].missing = []string{name}
		c.differs = "a hop-by-hop field (RFC 9110 §7.6.1) is neither stored nor forwarded"
		return c
	}
	runCacheTests(t, []ctCase{
		store("Test-Header", "Test-Header-store-value"),
		store("X-Test-Header", "X-Test-Header-store-value"),
		store("Content-Type", "text/plain"),
		store("X-Frame-Options", "deny"),
		store("X-XSS-Protection", "1"),
		store("Clear-Site-Data", "cookies"),
		hop("Connection"),
		func() ctCase {
			c := hop("Proxy-Authenticate")
			c.differs = "fields specific to the proxy (Proxy-Authenticate) are not stored (RFC 9111 §3.1)"
			return c
		}(),
		hop("Proxy-Connection"),
		store("Public-Key-Pins", "Public-Key-Pins-store-value"),
		store("Set-Cookie", "a=b"),
		store("Set-Cookie2", "a=b"),
		store("Strict-Transport-Security", "Strict-Transport-Security-store-value"),
		store("Strict-Transport-Security2", "Strict-Transport-Security2-store-value"),
		hop("Upgrade"),
		store("WWW-Authenticate", "WWW-Authenticate-store-value"),
		{id: "headers-omit-headers-listed-in-Connection", kind: ctRequired, steps: []ctStep{
			firstThen("Connection: a, b", "a: 1", "b: 2", "c: 3", "Cache-Control: max-age=3600", "Date: @0"),
			{want: ctCached, wantHdr: []string{"c: 3"}, missing: []string{"Connection", "a", "b"}},
		}},
	})
}

// suite: status.mjs: statuses with explicit freshness.
func TestCacheTests_Status(t *testing.T) {
	var cases []ctCase
	for _, code := range []int{200, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 502, 503, 504, 599} {
		body := fmt.Sprintf("%d body", code)
		if code == http.StatusNoContent {
			body = ""
		}
		stale := ctStep{status: code, body: body, resp: []string{"Expires: @-5000", "Last-Modified: @-100000", "Date: @0"}}
		fresh := freshStep()
		fresh.status, fresh.body = code, body
		again := ctStep{status: code, body: body, want: ctNotCached}
		cases = append(cases, ctCase{id: fmt.Sprintf("status-%d-stale", code), kind: ctRequired, steps: []ctStep{stale, again}})
		reuse := ctCase{id: fmt.Sprintf("status-%d-fresh", code), kind: ctOptimal, steps: []ctStep{fresh, {status: code, body: body, want: ctCached}}}
		if code >= 500 && code <= 504 {
			reuse.differs = "500, 502, 503 and 504 are never stored: they trigger failover and stale-if-error"
			reuse.steps[1].want = ctNotCached
		}
		cases = append(cases, reuse)
	}
	runCacheTests(t, cases)
}

// suite: other.mjs.
func TestCacheTests_Other(t *testing.T) {
	far := []string{"Expires: @2592000", "Date: @0"}
	runCacheTests(t, []ctCase{
		{id: "other-age-gen", kind: ctRequired, steps: []ctStep{firstThen(far...), {want: ctCached, wantHdr: []string{"Age > 2"}}}},
		{id: "other-age-update-expires", kind: ctRequired, steps: []ctStep{firstThen(append(far, "Age: 30")...), {want: ctCached, wantHdr: []string{"Age > 32"}}}},
		{id: "other-age-update-max-age", kind: ctRequired, steps: []ctStep{firstThen("Cache-Control: max-age=600", "Date: @0", "Age: 30"), {want: ctCached, wantHdr: []string{"Age > 32"}}}},
		{id: "other-date-update", kind: ctRequired, steps: []ctStep{firstThen(far...), {want: ctCached, wantHdr: []string{"Date: @@0"}}}},
		{id: "query-args-different", kind: ctRequired, steps: []ctStep{
			{path: "/t?test=1", resp: freshStep().resp}, {path: "/t?test=2", want: ctNotCached},
		}},
		{id: "query-args-same", kind: ctOptimal, steps: []ctStep{
			{path: "/t?test=1", resp: freshStep().resp}, {path: "/t?test=1", want: ctCached},
		}},
		{id: "other-heuristic-content-disposition-attachment", kind: ctCheck, steps: []ctStep{
			storedNow("Last-Modified: @-100000", "Date: @0", "Content-Disposition: attachment; filename=example.txt"), then(ctCached),
		}},
		{id: "other-fresh-content-disposition-attachment", kind: ctCheck, steps: []ctStep{
			storedNow("Cache-Control: max-age=3600", "Content-Disposition: attachment; filename=example.txt"), then(ctCached),
		}},
		{id: "other-set-cookie", kind: ctOptimal, steps: []ctStep{storedNow("Cache-Control: max-age=3600", "Set-Cookie: a=b"), then(ctCached)}},
		{id: "other-cookie", kind: ctOptimal, steps: []ctStep{storedNow("Cache-Control: max-age=3600"), then(ctCached, "Cookie: a=b")}},
		{id: "other-warning", kind: ctCheck, differs: "Warning is obsolete (RFC 9111 §5.5): not generated", steps: []ctStep{
			storedNow("Expires: @-5000", "Last-Modified: @-100000", "Date: @0"), {missing: []string{"Warning"}},
		}},
	})
}

// suite: partial.mjs (all "optimal").
func TestCacheTests_Partial(t *testing.T) {
	const noPartial = "206 responses are not stored and partial responses are not combined (RFC 9111 §3.3, §3.4 allow it); a Range miss is forwarded as is"
	partial := ctStep{req: []string{"Range: bytes=-5"}, status: http.StatusPartialContent, resp: []string{"Cache-Control: max-age=3600", "Content-Range: bytes 4-9/10"}, body: "01234", wantReq: []string{"Range: bytes=-5"}}
	fromPartial := func(id, rng string) ctCase {
		return ctCase{id: id, kind: ctOptimal, differs: noPartial, steps: []ctStep{
			partial, {req: []string{"Range: " + rng}, status: http.StatusPartialContent, want: ctNotCached},
		}}
	}
	complete := func(id, body, rng, want string) ctCase {
		return ctCase{id: id, kind: ctOptimal, steps: []ctStep{
			{resp: []string{"Cache-Control: max-age=3600"}, body: body},
			{req: []string{"Range: " + rng}, want: ctCached, wantStatus: http.StatusPartialContent, wantBody: ptr(want)},
		}}
	}
	completed := partial
	completed.resp = []string{"Cache-Control: max-age=3600", "Content-Range: bytes 0-4/10"}
	runCacheTests(t, []ctCase{
		fromPartial("partial-store-partial-reuse-partial", "bytes=-5"),
		complete("partial-store-complete-reuse-partial", "01234567890", "bytes=0-1", "01"),
		complete("partial-store-complete-reuse-partial-no-last", "01234567890", "bytes=1-", "1234567890"),
		complete("partial-store-complete-reuse-partial-suffix", "0123456789A", "bytes=-1", "A"),
		fromPartial("partial-store-partial-reuse-partial-byterange", "bytes=6-8"),
		fromPartial("partial-store-partial-reuse-partial-absent", "bytes=6-"),
		fromPartial("partial-store-partial-reuse-partial-suffix", "bytes=-1"),
		{id: "partial-store-partial-complete", kind: ctOptimal, differs: noPartial, steps: []ctStep{
			completed, {wantReqMissing: []string{"Range"}},
		}},
	})
}

// suite: vary-parse.mjs. An empty field line cannot be sent by the test
// origin, so vary-syntax-empty-star-lines sends "*" alone.
func TestCacheTests_VaryParse(t *testing.T) {
	star := func(id string, vary ...string) ctCase {
		f := []string{"Cache-Control: max-age=5000", "Last-Modified: @-3000", "Date: @0"}
		for _, v := range vary {
			f = append(f, "Vary: "+v)
		}
		return ctCase{id: id, kind: ctRequired, steps: []ctStep{
			{req: []string{"Foo: 1", "Baz: 789"}, resp: f},
			then(ctNotCached, "Foo: 1", "Baz: 789"),
		}}
	}
	runCacheTests(t, []ctCase{
		star("vary-syntax-star", "*"),
		star("vary-syntax-star-star", "*, *"),
		star("vary-syntax-star-star-lines", "*", "*"),
		star("vary-syntax-empty-star", ", *"),
		star("vary-syntax-empty-star-lines", "*"),
		star("vary-syntax-star-foo", "*, Foo"),
		star("vary-syntax-foo-star", "Foo, *"),
	})
}

// suite: method.mjs.
func TestCacheTests_Method(t *testing.T) {
	runCacheTests(t, []ctCase{
		{id: "method-POST", kind: ctOptimal, differs: "responses to POST are not stored (RFC 9111 §3 allows it only with explicit freshness and a matching Content-Location; the edge forwards every unsafe method)", steps: []ctStep{
			{method: http.MethodPost, reqBody: "12345", req: []string{"Content-Type: text/plain"}, resp: []string{"Expires: @2592000", "Content-Location: /t", "Date: @0"}, pause: true},
			then(ctNotCached),
		}},
	})
}
