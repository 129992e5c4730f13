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
	method string // default GET
	path   string // default /t
	req    []string
	// status and resp are the origin's answer to this request; resp nil:
	// the previous step's fields. A value "@N" is the test clock + N
	// seconds as an HTTP-date; Date is the clock's unless given ("Date:"
	// alone omits it). A 200 whose validators match the request's
	// preconditions is answered 304 with the same fields.
	status     int
	resp       []string
	body       string
	disconnect bool // the origin closes the connection without answering
	pause      bool // the clock moves 3 s after the request

	want       string // ctCached, ctNotCached, ...; "": not checked
	wantStatus int    // default the origin's status (200); -1: not checked
	wantHdr    []string
	missing    []string
	wantReq    []string // fields the origin saw ("Name" or "Name: value")
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

func runCacheTest(t *testing.T, tc ctCase) {
	c := newClock()
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
		for _, f := range resps[i] {
			k, v, _ := strings.Cut(f, ":")
			v = strings.TrimSpace(v)
			if strings.EqualFold(k, "Date") {
				h.Del("Date")
			}
			if v == "" {
				continue
			}
			if n, err := strconv.Atoi(strings.TrimPrefix(v, "@")); err == nil && strings.HasPrefix(v, "@") {
				v = c.Now().Add(time.Duration(n) * time.Second).Format(http.TimeFormat)
			}
			h.Add(k, v)
		}
		status := s.status
		if status == 0 {
			status = http.StatusOK
		}
		if status == http.StatusOK && notModifiedAtOrigin(r, h) {
			w.WriteHeader(http.StatusNotModified)
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
		path := s.path
		if path == "" {
			path = "/t"
		}
		o.handle(path, handler)
		method := s.method
		if method == "" {
			method = http.MethodGet
		}
		before := o.count(path)
		r := e.do(t, method, path, "", s.req...)
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
		for _, f := range s.wantHdr {
			k, v, hasValue := strings.Cut(f, ":")
			got, present := r.header[http.CanonicalHeaderKey(k)]
			if !present || (hasValue && strings.Join(got, ", ") != strings.TrimSpace(v)) {
				fail("want %s", f)
			}
		}
		for _, k := range s.missing {
			if _, present := r.header[http.CanonicalHeaderKey(k)]; present {
				fail("want no %s", k)
			}
		}
		for _, f := range s.wantReq {
			k, v, hasValue := strings.Cut(f, ":")
			lr := o.lastRequest(path)
			if !seen || lr == nil {
				fail("want %s at the origin, it saw no request", f)
			}
			got, present := lr.Header[http.CanonicalHeaderKey(k)]
			if !present || (hasValue && strings.Join(got, ", ") != strings.TrimSpace(v)) {
				fail("origin got %v, want %s", lr.Header, f)
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
