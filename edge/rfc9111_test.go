package edge

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests named after the section of RFC 9111 (or RFC 9110, 5861, 9213) they
// check. Each scripts a real origin's answer, sends requests through the
// edge, and checks what the client got and how many requests reached the
// origin.

// storeCase: the origin answers with fields; after two requests, the
// origin saw `origin` requests.
type storeCase struct {
	name   string
	status int
	fields []string
	req    []string // request fields
	origin int
}

func runStoreCases(t *testing.T, cases []storeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			o := newTestOrigin(t, c)
			status := tc.status
			if status == 0 {
				status = http.StatusOK
			}
			o.static("/x", status, "body", tc.fields...)
			e := newTestEdge(t, Config{}, c, o)
			for range 2 {
				r := e.get(t, "/x", tc.req...)
				if r.status != status {
					t.Fatalf("status %d, want %d", r.status, status)
				}
			}
			o.want(t, "/x", tc.origin)
		})
	}
}

// RFC 9111 §3: when a response may be stored.
func TestRFC9111_3_StoringResponses(t *testing.T) {
	runStoreCases(t, []storeCase{
		{name: "max-age stored", fields: []string{"Cache-Control: max-age=60"}, origin: 1},
		{name: "no-store not stored", fields: []string{"Cache-Control: max-age=60, no-store"}, origin: 2},
		{name: "private not stored", fields: []string{"Cache-Control: private, max-age=60"}, origin: 2},
		{name: "public without freshness: heuristic from Last-Modified", fields: []string{"Cache-Control: public", "Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT"}, origin: 1},
		{name: "Expires stored", fields: []string{"Expires: " + time.Now().Add(2*time.Hour).UTC().Format(http.TimeFormat)}, origin: 1},
		{name: "302 without freshness not stored", status: 302, fields: []string{"Location: /y", "Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT"}, origin: 2},
		{name: "302 with max-age stored", status: 302, fields: []string{"Location: /y", "Cache-Control: max-age=60"}, origin: 1},
		{name: "404 with max-age stored", status: 404, fields: []string{"Cache-Control: max-age=60"}, origin: 1},
		{name: "404 heuristic", status: 404, fields: []string{"Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT"}, origin: 1},
		{name: "410 heuristic", status: 410, fields: []string{"Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT"}, origin: 1},
		{name: "no freshness, no validator: nothing to reuse", fields: nil, origin: 2},
		{name: "request no-store", fields: []string{"Cache-Control: max-age=60"}, req: []string{"Cache-Control: no-store"}, origin: 2},
		{name: "must-understand lets a known status ignore no-store", fields: []string{"Cache-Control: max-age=60, no-store, must-understand"}, origin: 1},
		{name: "must-understand with an unknown status", status: 299, fields: []string{"Cache-Control: max-age=60, no-store, must-understand"}, origin: 2},
		{name: "unknown status with max-age stored", status: 299, fields: []string{"Cache-Control: max-age=60"}, origin: 1},
		{name: "Vary * not stored", fields: []string{"Cache-Control: max-age=60", "Vary: *"}, origin: 2},
	})
}

// RFC 9111 §3.5: responses to requests with Authorization.
func TestRFC9111_3_5_Authorization(t *testing.T) {
	auth := []string{"Authorization: Bearer secret"}
	runStoreCases(t, []storeCase{
		{name: "max-age alone not stored", fields: []string{"Cache-Control: max-age=60"}, req: auth, origin: 2},
		{name: "public stored", fields: []string{"Cache-Control: public, max-age=60"}, req: auth, origin: 1},
		{name: "s-maxage stored", fields: []string{"Cache-Control: s-maxage=60"}, req: auth, origin: 1},
		{name: "must-revalidate stored", fields: []string{"Cache-Control: max-age=60, must-revalidate"}, req: auth, origin: 1},
	})
}

// RFC 9111 §3.1 and RFC 9110 §7.6.1: hop-by-hop fields are neither stored
// nor forwarded; private= and no-cache= field names are not stored; every
// other field passes through unchanged.
func TestRFC9111_3_1_StoredFields(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	expires := c.Now().Add(time.Hour).Format(http.TimeFormat)
	o.static("/x", 200, "body",
		`Cache-Control: max-age=60, private="X-Secret", no-cache="Set-Cookie"`,
		"Connection: X-Hop", "X-Hop: gone", "Keep-Alive: timeout=5", "Proxy-Authenticate: Basic",
		"X-Secret: s3cr3t", "Set-Cookie: a=1", "Set-Cookie: b=2", "Expires: "+expires,
		"Content-Encoding: identity", "Content-Language: de", "X-Multi: 1", "X-Multi: 2", "Link: </a>; rel=preload",
		"Vary: Accept-Language", "Content-Type: application/x-test")
	e := newTestEdge(t, Config{}, c, o)
	miss := e.get(t, "/x")
	miss.want(t, 200, "body", Miss)
	hit := e.get(t, "/x")
	hit.want(t, 200, "body", Hit)
	for _, r := range []result{miss, hit} {
		h := r.header
		for _, k := range []string{"X-Hop", "Keep-Alive", "Proxy-Authenticate", "Connection"} {
			if h[k] != nil {
				t.Errorf("hop-by-hop %s forwarded: %q", k, h[k])
			}
		}
		for k, want := range map[string]string{
			"Expires": expires, "Content-Encoding": "identity", "Content-Language": "de",
			"X-Multi": "1,2", "Link": "</a>; rel=preload", "Vary": "Accept-Language", "Content-Type": "application/x-test",
			"Cache-Control": `max-age=60, private="X-Secret", no-cache="Set-Cookie"`,
		} {
			if got := strings.Join(h[k], ","); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	}
	if miss.header.Get("X-Secret") != "s3cr3t" || strings.Join(miss.header["Set-Cookie"], ",") != "a=1,b=2" {
		t.Errorf("the origin's own answer lost fields: %v", miss.header)
	}
	if hit.header["X-Secret"] != nil || hit.header["Set-Cookie"] != nil {
		t.Errorf("stored response kept private=/no-cache= fields: %v", hit.header)
	}
}

// RFC 9110 §8.3: a response the origin sent without Content-Type reaches
// the client without one (the edge does not guess a media type), whether
// stored, served from the cache or passed on.
func TestRFC9110_8_3_NoContentType(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	const body = "<html><body>no type</body></html>"
	o.static("/stored", 200, body, "Cache-Control: max-age=60", "Content-Type:")
	o.static("/passed", 200, body, "Cache-Control: no-store", "Content-Type:")
	e := newTestEdge(t, Config{}, c, o)
	for _, tt := range []struct{ path, xcache string }{
		{"/stored", Miss}, {"/stored", Hit}, {"/passed", Pass},
	} {
		r := e.get(t, tt.path)
		r.want(t, 200, body, tt.xcache)
		if ct, ok := r.header["Content-Type"]; ok {
			t.Errorf("%s (%s): Content-Type %q added", tt.path, tt.xcache, ct)
		}
	}
}

// RFC 9110 §7.6 (Via, hop-by-hop), §6.6.1 (Date): what is forwarded in
// both directions.
func TestRFC9110_7_6_Forwarding(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	o.handle("/x", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header()["Date"] = nil // no Date: the edge adds one
		fmt.Fprint(w, "ok")
	})
	e := newTestEdge(t, Config{}, c, o)
	r := e.get(t, "/x?b=2&a=1", "Cookie: s=1", "Authorization: Basic eA==", "X-Custom: v", "Connection: X-Drop", "X-Drop: 1",
		"TE: trailers", "Via: 1.0 client-proxy", "User-Agent: test-agent")
	if r.status != 200 || r.header.Get("Date") == "" {
		t.Fatalf("%d, Date %q", r.status, r.header.Get("Date"))
	}
	if via := r.header.Get("Via"); via != "1.1 "+Pseudonym {
		t.Errorf("response Via = %q", via)
	}
	req := o.lastRequest("/x")
	if req.URL.RawQuery != "b=2&a=1" {
		t.Errorf("query = %q", req.URL.RawQuery)
	}
	for k, want := range map[string]string{"Cookie": "s=1", "Authorization": "Basic eA==", "X-Custom": "v",
		"Via": "1.0 client-proxy, 1.1 " + Pseudonym, "User-Agent": "test-agent", "X-Drop": "", "Te": ""} {
		if got := req.Header.Get(k); got != want {
			t.Errorf("origin got %s = %q, want %q", k, got, want)
		}
	}
	if req.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", req.Header.Get("X-Forwarded-For"))
	}
	// The query string is part of the cache key.
	e.get(t, "/x?b=2&a=1").want(t, 200, "ok", Hit)
	e.get(t, "/x?a=1&b=2").want(t, 200, "ok", Miss)
	o.want(t, "/x", 2)
	// Statuses and bodies pass through (no rewriting of an origin's 404).
	o.static("/gone", 404, "custom not found page", "Content-Type: text/html")
	r = e.get(t, "/gone")
	r.want(t, 404, "custom not found page", Pass)
	if r.header.Get("Content-Type") != "text/html" {
		t.Errorf("404 Content-Type = %q", r.header.Get("Content-Type"))
	}
	o.static("/teapot", 418, "short and stout")
	e.get(t, "/teapot").want(t, 418, "short and stout", Pass)
}

// RFC 9111 §4.2.1: freshness lifetime.
func TestRFC9111_4_2_1_FreshnessLifetime(t *testing.T) {
	tests := []struct {
		name   string
		fields func(now time.Time) []string
		fresh  time.Duration // fresh just before, stale just after
	}{
		{"max-age", func(time.Time) []string { return []string{"Cache-Control: max-age=100"} }, 100 * time.Second},
		{"s-maxage over max-age", func(time.Time) []string { return []string{"Cache-Control: max-age=10, s-maxage=100"} }, 100 * time.Second},
		{"max-age over Expires", func(n time.Time) []string {
			return []string{"Cache-Control: max-age=100", "Expires: " + n.Add(time.Hour).Format(http.TimeFormat), "ETag: \"e\""}
		}, 100 * time.Second},
		{"Expires minus Date", func(n time.Time) []string {
			return []string{"Expires: " + n.Add(50*time.Second).Format(http.TimeFormat), "ETag: \"e\""}
		}, 50 * time.Second},
		{"Expires relative to the origin's Date, not the edge's clock", func(n time.Time) []string {
			return []string{"Date: " + n.Add(-time.Hour).Format(http.TimeFormat), "Expires: " + n.Add(-time.Hour+50*time.Second).Format(http.TimeFormat), "ETag: \"e\""}
		}, 0},
		{"quoted max-age accepted", func(time.Time) []string { return []string{`Cache-Control: max-age="100"`} }, 100 * time.Second},
		{"several Cache-Control lines", func(time.Time) []string { return []string{"Cache-Control: public", "Cache-Control: max-age=100"} }, 100 * time.Second},
		{"heuristic: 10% of the time since Last-Modified", func(n time.Time) []string {
			return []string{"Last-Modified: " + n.Add(-500*time.Second).Format(http.TimeFormat)}
		}, 50 * time.Second},
		{"heuristic capped by the edge's TTL", func(n time.Time) []string {
			return []string{"Last-Modified: " + n.Add(-100*24*time.Hour).Format(http.TimeFormat)}
		}, 60 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			o := newTestOrigin(t, c)
			fields := tc.fields(c.Now())
			if !strings.Contains(strings.Join(fields, "\n"), "Date:") {
				fields = append(fields, "Date: "+c.Now().Format(http.TimeFormat))
			}
			o.handle("/x", func(w http.ResponseWriter, r *http.Request) {
				for _, f := range fields {
					k, v, _ := strings.Cut(f, ":")
					w.Header().Add(k, strings.TrimSpace(v))
				}
				fmt.Fprint(w, "v")
			})
			e := newTestEdge(t, Config{TTL: 60 * time.Second}, c, o)
			e.get(t, "/x")
			if tc.fresh > 0 {
				c.Add(tc.fresh - time.Second)
				e.get(t, "/x").want(t, 200, "v", Hit)
				o.want(t, "/x", 1)
			}
			c.Add(2 * time.Second)
			if r := e.get(t, "/x"); r.cache() == Hit {
				t.Fatalf("still fresh after %v", tc.fresh+time.Second)
			}
		})
	}
}

// RFC 9111 §4.2.1 and §5.3: invalid, conflicting and past freshness
// information makes a response stale (it is validated on every use).
func TestRFC9111_4_2_1_InvalidFreshness(t *testing.T) {
	runStoreCases(t, []storeCase{
		{name: "max-age not an integer", fields: []string{"Cache-Control: max-age=abc", "ETag: \"e\""}, origin: 2},
		{name: "negative max-age", fields: []string{"Cache-Control: max-age=-5", "ETag: \"e\""}, origin: 2},
		{name: "conflicting max-age", fields: []string{"Cache-Control: max-age=60", "Cache-Control: max-age=120", "ETag: \"e\""}, origin: 2},
		{name: "same max-age twice is fine", fields: []string{"Cache-Control: max-age=60, max-age=60", "ETag: \"e\""}, origin: 1},
		{name: "invalid s-maxage, valid max-age", fields: []string{"Cache-Control: s-maxage=x, max-age=60", "ETag: \"e\""}, origin: 2},
		{name: "Expires 0", fields: []string{"Expires: 0", "ETag: \"e\""}, origin: 2},
		{name: "Expires in the past", fields: []string{"Expires: Mon, 01 Jan 2024 00:00:00 GMT", "ETag: \"e\""}, origin: 2},
		{name: "two different Expires", fields: []string{"Expires: " + time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), "Expires: " + time.Now().Add(2*time.Hour).UTC().Format(http.TimeFormat), "ETag: \"e\""}, origin: 2},
		{name: "huge max-age is 2^31", fields: []string{"Cache-Control: max-age=99999999999999999999"}, origin: 1},
		{name: "no-cache with max-age", fields: []string{"Cache-Control: max-age=60, no-cache", "ETag: \"e\""}, origin: 2},
	})
}

// RFC 9111 §4.2.3: Age calculation and the Age field sent.
func TestRFC9111_4_2_3_Age(t *testing.T) {
	t.Run("origin Age counts", func(t *testing.T) {
		c := newClock()
		o := newTestOrigin(t, c)
		o.static("/x", 200, "v", "Cache-Control: max-age=60", "Age: 50")
		e := newTestEdge(t, Config{}, c, o)
		if r := e.get(t, "/x"); r.header.Get("Age") != "50" {
			t.Errorf("miss Age = %q, want the origin's 50", r.header.Get("Age"))
		}
		c.Add(5 * time.Second)
		if r := e.get(t, "/x"); r.cache() != Hit || r.header.Get("Age") != "55" {
			t.Fatalf("%s Age %q, want HIT 55", r.cache(), r.header.Get("Age"))
		}
		c.Add(6 * time.Second)
		if r := e.get(t, "/x"); r.cache() == Hit {
			t.Fatal("fresh past max-age minus the origin's Age")
		}
	})
	t.Run("apparent age from an old Date", func(t *testing.T) {
		c := newClock()
		o := newTestOrigin(t, c)
		o.static("/x", 200, "v", "Cache-Control: max-age=60", "Date:", "Date: "+c.Now().Add(-30*time.Second).Format(http.TimeFormat))
		e := newTestEdge(t, Config{}, c, o)
		e.get(t, "/x")
		if r := e.get(t, "/x"); r.header.Get("Age") != "30" {
			t.Fatalf("Age = %q, want 30", r.header.Get("Age"))
		}
	})
	t.Run("response delay is added", func(t *testing.T) {
		c := newClock()
		o := newTestOrigin(t, c)
		o.handle("/x", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", c.Now().Format(http.TimeFormat))
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Age", "10")
			c.Add(7 * time.Second) // the origin (or the path to it) is slow
			fmt.Fprint(w, "v")
		})
		e := newTestEdge(t, Config{}, c, o)
		e.get(t, "/x")
		if r := e.get(t, "/x"); r.header.Get("Age") != "17" {
			t.Fatalf("Age = %q, want 10 + 7", r.header.Get("Age"))
		}
	})
	t.Run("invalid and list Age", func(t *testing.T) {
		c := newClock()
		o := newTestOrigin(t, c)
		o.static("/bad", 200, "v", "Cache-Control: max-age=60", "Age: abc")
		o.static("/list", 200, "v", "Cache-Control: max-age=60", "Age: 20, 30")
		e := newTestEdge(t, Config{}, c, o)
		e.get(t, "/bad")
		if r := e.get(t, "/bad"); r.header.Get("Age") != "0" {
			t.Errorf("invalid Age: %q, want 0", r.header.Get("Age"))
		}
		e.get(t, "/list")
		if r := e.get(t, "/list"); r.header.Get("Age") != "20" {
			t.Errorf("list Age: %q, want the first member 20", r.header.Get("Age"))
		}
	})
}

// RFC 9111 §4.1: Vary and secondary keys.
func TestRFC9111_4_1_Vary(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	o.handle("/x", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding, X-Variant")
		fmt.Fprintf(w, "enc=%s variant=%s", r.Header.Get("Accept-Encoding"), r.Header.Get("X-Variant"))
	})
	e := newTestEdge(t, Config{}, c, o)
	e.get(t, "/x", "Accept-Encoding: gzip").want(t, 200, "enc=gzip variant=", Miss)
	e.get(t, "/x", "Accept-Encoding: br").want(t, 200, "enc=br variant=", Miss)
	e.get(t, "/x", "Accept-Encoding: gzip").want(t, 200, "enc=gzip variant=", Hit)
	e.get(t, "/x", "Accept-Encoding: br").want(t, 200, "enc=br variant=", Hit)
	o.want(t, "/x", 2)
	// Absent differs from empty.
	e.get(t, "/x", "Accept-Encoding: gzip", "X-Variant: ").want(t, 200, "enc=gzip variant=", Miss)
	e.get(t, "/x", "Accept-Encoding: gzip").want(t, 200, "enc=gzip variant=", Hit)
	// Whitespace and line combination are normalised.
	e.get(t, "/x", "Accept-Encoding: gzip, br").want(t, 200, "enc=gzip, br variant=", Miss)
	e.get(t, "/x", "Accept-Encoding: gzip,br").want(t, 200, "enc=gzip, br variant=", Hit)
	e.get(t, "/x", "Accept-Encoding: gzip", "Accept-Encoding: br").want(t, 200, "enc=gzip, br variant=", Hit)
	// Field names are case-insensitive.
	o.handle("/y", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "x-variant")
		fmt.Fprintf(w, "variant=%s", r.Header.Get("X-Variant"))
	})
	e.get(t, "/y", "X-Variant: a").want(t, 200, "variant=a", Miss)
	e.get(t, "/y", "x-variant: a").want(t, 200, "variant=a", Hit)
	e.get(t, "/y", "X-Variant: b").want(t, 200, "variant=b", Miss)
	// Vary: * never matches.
	o.static("/star", 200, "v", "Cache-Control: max-age=60", "Vary: *")
	e.get(t, "/star").want(t, 200, "v", Pass)
	e.get(t, "/star").want(t, 200, "v", Pass)
	o.want(t, "/star", 2)
}

// RFC 9111 §4.3.1, §4.3.3, §4.3.4: validation requests and 304 updates.
func TestRFC9111_4_3_Validation(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	lm := c.Now().Add(-time.Hour).Format(http.TimeFormat)
	o.static("/both", 200, "body", "Cache-Control: max-age=10", `ETag: "v1"`, "Last-Modified: "+lm, "X-Version: 1")
	o.static("/etag", 200, "body", "Cache-Control: max-age=10", `ETag: W/"w1"`)
	o.static("/lm", 200, "body", "Cache-Control: max-age=10", "Last-Modified: "+lm)
	e := newTestEdge(t, Config{}, c, o)
	for _, p := range []string{"/both", "/etag", "/lm"} {
		e.get(t, p).want(t, 200, "body", Miss)
	}
	c.Add(11 * time.Second)
	for _, p := range []string{"/both", "/etag", "/lm"} {
		e.get(t, p).want(t, 200, "body", Revalidated)
	}
	check := func(path, inm, ims string) {
		t.Helper()
		req := o.lastRequest(path)
		if req.Header.Get("If-None-Match") != inm || req.Header.Get("If-Modified-Since") != ims {
			t.Errorf("%s: validation sent If-None-Match %q If-Modified-Since %q, want %q %q", path,
				req.Header.Get("If-None-Match"), req.Header.Get("If-Modified-Since"), inm, ims)
		}
	}
	check("/both", `"v1"`, lm)
	check("/etag", `W/"w1"`, "")
	check("/lm", "", lm)
	// The 304 refreshed the stored response: fresh again for 10s.
	e.get(t, "/both").want(t, 200, "body", Hit)
	o.want(t, "/both", 2)

	// A 304 updates stored header fields (§3.2), but not the body's.
	o.handle("/both", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") != `"v1"` {
			t.Errorf("If-None-Match = %q", r.Header.Get("If-None-Match"))
		}
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("X-Version", "2")
		w.Header().Set("Date", c.Now().Format(http.TimeFormat))
		w.WriteHeader(http.StatusNotModified)
	})
	c.Add(11 * time.Second)
	r := e.get(t, "/both")
	r.want(t, 200, "body", Revalidated)
	if r.header.Get("X-Version") != "2" || r.header.Get("Cache-Control") != "max-age=100" || r.header.Get("Content-Length") != "4" {
		t.Fatalf("304 did not update the stored header: %v", r.header)
	}
	c.Add(50 * time.Second)
	e.get(t, "/both").want(t, 200, "body", Hit) // max-age=100 from the 304
	// A full response to a validation replaces what is stored.
	o.static("/both", 200, "new body", "Cache-Control: max-age=100", `ETag: "v2"`)
	c.Add(100 * time.Second)
	e.get(t, "/both").want(t, 200, "new body", Miss)
	e.get(t, "/both").want(t, 200, "new body", Hit)
	// A 304 whose validator does not match what is stored is not used:
	// the edge fetches the response whole.
	n := o.count("/x304")
	o.handle("/x304", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"other"`)
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "whole")
	})
	e.get(t, "/x304").want(t, 200, "whole", Miss)
	o.handle("/x304", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v9"`)
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "refetched")
	})
	c.Add(11 * time.Second)
	e.get(t, "/x304").want(t, 200, "refetched", Miss)
	if got := o.count("/x304") - n; got != 3 {
		t.Fatalf("origin requests %d, want miss + mismatched 304 + refetch", got)
	}
}

// RFC 9111 §4.3.2: the edge answers the client's own preconditions from
// what it stores.
func TestRFC9111_4_3_2_ClientConditionals(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	lm := c.Now().Add(-time.Hour)
	o.static("/x", 200, "body", "Cache-Control: max-age=60", `ETag: "v1"`, "Last-Modified: "+lm.Format(http.TimeFormat), "Content-Type: text/plain")
	o.static("/nolm", 200, "body", "Cache-Control: max-age=60")
	e := newTestEdge(t, Config{}, c, o)
	// A miss with a precondition: the edge fetches the whole response to
	// store it and answers the precondition itself.
	r := e.get(t, "/x", `If-None-Match: "v1"`)
	r.want(t, http.StatusNotModified, "", Miss)
	if req := o.lastRequest("/x"); req.Header.Get("If-None-Match") != "" {
		t.Fatal("the client's precondition was forwarded on a fill")
	}
	cases := []struct {
		fields []string
		status int
	}{
		{[]string{`If-None-Match: "v1"`}, 304},
		{[]string{`If-None-Match: W/"v1"`}, 304}, // weak comparison
		{[]string{`If-None-Match: "a", "v1"`}, 304},
		{[]string{`If-None-Match: *`}, 304},
		{[]string{`If-None-Match: "v2"`}, 200},
		{[]string{"If-Modified-Since: " + lm.Format(http.TimeFormat)}, 304},
		{[]string{"If-Modified-Since: " + lm.Add(-time.Second).Format(http.TimeFormat)}, 200},
		{[]string{`If-None-Match: "v2"`, "If-Modified-Since: " + lm.Format(http.TimeFormat)}, 200}, // If-None-Match wins
		{[]string{"If-Modified-Since: garbage"}, 200},
	}
	for _, tc := range cases {
		r := e.get(t, "/x", tc.fields...)
		if r.status != tc.status || r.cache() != Hit {
			t.Errorf("%q: %d %s, want %d HIT", tc.fields, r.status, r.cache(), tc.status)
		}
		if r.status == 304 && (r.header.Get("ETag") != `"v1"` || r.header.Get("Content-Type") != "" || r.body != "") {
			t.Errorf("%q: 304 header %v body %q", tc.fields, r.header, r.body)
		}
	}
	// Without Last-Modified, Date is the validator.
	e.get(t, "/nolm")
	e.get(t, "/nolm", "If-Modified-Since: "+c.Now().Format(http.TimeFormat)).want(t, 304, "", Hit)
	o.want(t, "/x", 1)
}

// RFC 9111 §4.3.5: HEAD.
func TestRFC9111_4_3_5_Head(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	o.static("/x", 200, "body", "Cache-Control: max-age=60", `ETag: "v1"`)
	e := newTestEdge(t, Config{}, c, o)
	// A HEAD miss is forwarded as a HEAD.
	r := e.do(t, "HEAD", "/x", "")
	r.want(t, 200, "", Pass)
	if o.lastRequest("/x").Method != "HEAD" {
		t.Fatal("HEAD miss not forwarded as HEAD")
	}
	e.get(t, "/x").want(t, 200, "body", Miss)
	// A HEAD is answered from the stored GET response.
	r = e.do(t, "HEAD", "/x", "")
	r.want(t, 200, "", Hit)
	if r.header.Get("Content-Length") != "4" {
		t.Errorf("HEAD Content-Length = %q", r.header.Get("Content-Length"))
	}
	o.want(t, "/x", 2)
	// A HEAD forwarded (the client wants validation) whose validator
	// differs marks the stored GET response stale.
	o.static("/x", 200, "new body", "Cache-Control: max-age=60", `ETag: "v2"`)
	e.do(t, "HEAD", "/x", "", "Cache-Control: no-cache").want(t, 200, "", Pass)
	e.get(t, "/x").want(t, 200, "new body", Miss)
	// One whose validator matches updates its header fields.
	o.static("/x", 200, "new body", "Cache-Control: max-age=60", `ETag: "v2"`, "X-New: 1")
	e.do(t, "HEAD", "/x", "", "Cache-Control: no-cache").want(t, 200, "", Pass)
	r = e.get(t, "/x")
	r.want(t, 200, "new body", Hit)
	if r.header.Get("X-New") != "1" {
		t.Fatalf("HEAD did not update the stored response: %v", r.header)
	}
	o.want(t, "/x", 5)
}

// RFC 9111 §4.4: unsafe methods are forwarded and invalidate.
func TestRFC9111_4_4_Invalidation(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	for _, p := range []string{"/x", "/loc", "/cloc", "/other"} {
		o.static(p, 200, "v", "Cache-Control: max-age=600")
	}
	var gotBody string
	o.handle("/x/post", func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 100)
		n, _ := r.Body.Read(b)
		gotBody = string(b[:n])
		w.Header().Set("Location", "/loc")
		w.Header().Set("Content-Location", "http://"+r.Host+"/cloc")
		w.WriteHeader(http.StatusCreated)
	})
	e := newTestEdge(t, Config{}, c, o)
	fill := func() {
		for _, p := range []string{"/x", "/x/post", "/loc", "/cloc", "/other"} {
			e.get(t, p)
		}
	}
	fill()
	e.get(t, "/x").want(t, 200, "v", Hit)
	// OPTIONS is safe: forwarded, invalidates nothing.
	e.do(t, "OPTIONS", "/x", "").want(t, 200, "v", Pass)
	e.get(t, "/x").want(t, 200, "v", Hit)
	for _, m := range []string{"PUT", "DELETE", "PATCH", "FOOBAR"} {
		e.do(t, m, "/x", "data").want(t, 200, "v", Pass)
		e.get(t, "/x").want(t, 200, "v", Miss)
	}
	// POST: the target, its Location and Content-Location (same origin).
	fill()
	o.handle("/x/post", func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 100)
		n, _ := r.Body.Read(b)
		gotBody = string(b[:n])
		w.Header().Set("Location", "/loc")
		w.Header().Set("Content-Location", e.srv.URL+"/cloc")
		w.WriteHeader(http.StatusCreated)
	})
	e.do(t, "POST", "/x/post", "payload").want(t, 201, "", Pass)
	if gotBody != "payload" {
		t.Errorf("origin got body %q", gotBody)
	}
	e.get(t, "/loc").want(t, 200, "v", Miss)
	e.get(t, "/cloc").want(t, 200, "v", Miss)
	e.get(t, "/other").want(t, 200, "v", Hit)
	// Another origin's URL is not invalidated; an error status does not
	// invalidate.
	o.handle("/x/post", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://elsewhere.example/other")
		w.WriteHeader(http.StatusOK)
	})
	e.do(t, "POST", "/x/post", "p").want(t, 200, "", Pass)
	e.get(t, "/other").want(t, 200, "v", Hit)
	e.get(t, "/x").want(t, 200, "v", Hit)
	e.do(t, "DELETE", "/x", "").want(t, 200, "v", Pass)
	e.get(t, "/x").want(t, 200, "v", Miss)
	o.static("/x", 500, "boom")
	e.do(t, "DELETE", "/x", "").want(t, 500, "boom", Pass)
	o.static("/x", 200, "v", "Cache-Control: max-age=600")
	e.get(t, "/x").want(t, 200, "v", Hit)
}

// RFC 9111 §5.2.1: request directives, and Pragma (RFC 7234 §5.4).
func TestRFC9111_5_2_1_RequestDirectives(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	o.static("/x", 200, "v", "Cache-Control: max-age=100", `ETag: "e"`)
	e := newTestEdge(t, Config{}, c, o)
	e.get(t, "/x").want(t, 200, "v", Miss)
	c.Add(50 * time.Second)
	steps := []struct {
		fields []string
		xcache string
	}{
		{nil, Hit},
		{[]string{"Cache-Control: no-cache"}, Revalidated},
		{[]string{"Pragma: no-cache"}, Revalidated},
		{[]string{"Pragma: no-cache", "Cache-Control: max-stale"}, Hit}, // Cache-Control present: Pragma ignored
		{[]string{"Cache-Control: max-age=0"}, Revalidated},
		{[]string{"Cache-Control: max-age=60"}, Hit},
		{[]string{"Cache-Control: max-age=abc"}, Revalidated},
		{[]string{"Cache-Control: min-fresh=90"}, Revalidated},
		{[]string{"Cache-Control: min-fresh=10"}, Hit},
		{[]string{"Cache-Control: only-if-cached"}, Hit},
		{[]string{"Cache-Control: no-store"}, Hit},
	}
	for _, s := range steps {
		before := o.count("/x")
		r := e.get(t, "/x", s.fields...)
		if r.status != 200 || r.cache() != s.xcache {
			t.Errorf("%q: %d %s, want 200 %s", s.fields, r.status, r.cache(), s.xcache)
		}
		if want := map[bool]int{true: 1, false: 0}[s.xcache == Revalidated]; o.count("/x")-before != want {
			t.Errorf("%q: %d origin requests", s.fields, o.count("/x")-before)
		}
		if s.xcache == Revalidated {
			c.Add(50 * time.Second) // back to age 50
		}
	}
	c.Add(60 * time.Second) // stale by 10s
	e.get(t, "/x", "Cache-Control: max-stale=20").want(t, 200, "v", Stale)
	e.get(t, "/x", "Cache-Control: max-stale").want(t, 200, "v", Stale)
	e.get(t, "/x", "Cache-Control: max-stale=5").want(t, 200, "v", Revalidated)
	// only-if-cached without a usable response: 504.
	r := e.get(t, "/nothing", "Cache-Control: only-if-cached")
	if r.status != http.StatusGatewayTimeout || r.errCode(t) != "not_cached" {
		t.Fatalf("only-if-cached miss: %d %q", r.status, r.body)
	}
	o.want(t, "/nothing", 0)
	// must-revalidate beats max-stale.
	o.static("/mr", 200, "v", "Cache-Control: max-age=10, must-revalidate", `ETag: "e"`)
	e.get(t, "/mr")
	c.Add(20 * time.Second)
	e.get(t, "/mr", "Cache-Control: max-stale=100").want(t, 200, "v", Revalidated)
}

// RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10 and RFC 5861 §4:
// serving stale when the origin fails, and when that is forbidden.
func TestRFC9111_4_2_4_StaleIfError(t *testing.T) {
	tests := []struct {
		name   string
		cc     string
		cfg    time.Duration // the edge's StaleIfError (0: default 24h; -1: off)
		age    time.Duration // how long after storing the origin fails
		status int           // what the client gets while the origin answers 503
	}{
		{"plain max-age: the edge's setting allows stale", "max-age=10", 0, time.Hour, 200},
		{"beyond the edge's setting", "max-age=10", 30 * time.Second, time.Hour, 503},
		{"setting off", "max-age=10", -1, time.Hour, 503},
		{"stale-if-error extends beyond the setting", "max-age=10, stale-if-error=7200", 30 * time.Second, time.Hour, 200},
		{"stale-if-error past its window", "max-age=10, stale-if-error=60", -1, time.Hour, 503},
		{"must-revalidate: 504", "max-age=10, must-revalidate", 0, time.Hour, 504},
		{"proxy-revalidate: 504", "max-age=10, proxy-revalidate", 0, time.Hour, 504},
		{"s-maxage: 504", "s-maxage=10", 0, time.Hour, 504},
		{"no-cache: never served stale", "max-age=10, no-cache", 0, time.Hour, 504},
		{"fresh is served even with must-revalidate", "max-age=7200, must-revalidate", 0, time.Hour, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			o := newTestOrigin(t, c)
			o.static("/x", 200, "good", "Cache-Control: "+tc.cc, `ETag: "e"`)
			e := newTestEdge(t, Config{StaleIfError: tc.cfg}, c, o)
			e.get(t, "/x").want(t, 200, "good", "")
			o.static("/x", 503, "down", "Retry-After: 1")
			c.Add(tc.age)
			r := e.get(t, "/x", "Cache-Control: no-cache")
			if tc.cc != "max-age=7200, must-revalidate" {
				r = e.get(t, "/x")
			}
			if r.status != tc.status {
				t.Fatalf("got %d %q %s, want %d", r.status, r.body, r.cache(), tc.status)
			}
			switch tc.status {
			case 200:
				if r.body != "good" {
					t.Fatalf("body %q", r.body)
				}
			case 503:
				if r.body != "down" || r.header.Get("Retry-After") != "1" {
					t.Fatalf("the origin's 503 was not passed on: %q %v", r.body, r.header)
				}
			case 504:
				if r.errCode(t) != "revalidation_failed" {
					t.Fatalf("504 body %q", r.body)
				}
			}
		})
	}
	t.Run("origin unreachable", func(t *testing.T) {
		c := newClock()
		o := newTestOrigin(t, c)
		o.static("/x", 200, "good", "Cache-Control: max-age=10")
		e := newTestEdge(t, Config{}, c, o)
		e.get(t, "/x")
		o.srv.Close()
		c.Add(time.Minute)
		e.get(t, "/x").want(t, 200, "good", Stale)
		// The failure is remembered for a moment: no new attempt.
		before := e.Stats().OriginRequests
		e.get(t, "/x").want(t, 200, "good", Stale)
		if e.Stats().OriginRequests != before {
			t.Fatal("origins asked again right after failing")
		}
		r := e.get(t, "/never-stored")
		if r.status != http.StatusBadGateway || r.errCode(t) != "bad_gateway" {
			t.Fatalf("nothing stored, origin down: %d %q", r.status, r.body)
		}
	})
	t.Run("request stale-if-error", func(t *testing.T) {
		c := newClock()
		o := newTestOrigin(t, c)
		o.static("/x", 200, "good", "Cache-Control: max-age=10")
		e := newTestEdge(t, Config{StaleIfError: -1}, c, o)
		e.get(t, "/x")
		o.static("/x", 500, "err")
		c.Add(time.Minute)
		e.get(t, "/x", "Cache-Control: stale-if-error=3600").want(t, 200, "good", Stale)
	})
}

// RFC 5861 §3: stale-while-revalidate.
func TestRFC5861_3_StaleWhileRevalidate(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	o.static("/x", 200, "v1", "Cache-Control: max-age=10, stale-while-revalidate=60", `ETag: "1"`)
	e := newTestEdge(t, Config{}, c, o)
	e.get(t, "/x").want(t, 200, "v1", Miss)
	o.static("/x", 200, "v2", "Cache-Control: max-age=10, stale-while-revalidate=60", `ETag: "2"`)
	c.Add(30 * time.Second)
	e.get(t, "/x").want(t, 200, "v1", Stale) // served at once, refreshed behind
	waitFor(t, "the background revalidation", func() bool { return o.count("/x") == 2 && e.get(t, "/x").body == "v2" })
	e.get(t, "/x").want(t, 200, "v2", Hit)
	// Past the window: validated before use.
	c.Add(100 * time.Second)
	o.static("/x", 200, "v3", "Cache-Control: max-age=10, stale-while-revalidate=60", `ETag: "3"`)
	e.get(t, "/x").want(t, 200, "v3", Miss)
	// must-revalidate forbids it.
	o.static("/mr", 200, "v1", "Cache-Control: max-age=10, stale-while-revalidate=60, must-revalidate", `ETag: "1"`)
	e.get(t, "/mr")
	c.Add(20 * time.Second)
	e.get(t, "/mr").want(t, 200, "v1", Revalidated)
}

// RFC 9213: CDN-Cache-Control, and a configurable targeted field.
func TestRFC9213_TargetedCacheControl(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	past := c.Now().Add(-time.Hour).Format(http.TimeFormat)
	o.static("/cdn-over-cc", 200, "v", "Cache-Control: no-store", "CDN-Cache-Control: max-age=60")
	o.static("/cdn-no-store", 200, "v", "Cache-Control: max-age=60", "CDN-Cache-Control: no-store")
	o.static("/cdn-invalid", 200, "v", "Cache-Control: max-age=60", "CDN-Cache-Control: max-age=60,") // parse error: ignored
	o.static("/cdn-empty", 200, "v", "Cache-Control: no-store", "CDN-Cache-Control: ")
	o.static("/cdn-expires", 200, "v", "Expires: "+past, "CDN-Cache-Control: max-age=60")
	o.static("/cdn-private", 200, "v", "Cache-Control: public, max-age=60", "CDN-Cache-Control: private")
	o.static("/cdn-swr", 200, "v", "Cache-Control: no-cache", "CDN-Cache-Control: max-age=10, stale-while-revalidate=100", `ETag: "e"`)
	e := newTestEdge(t, Config{}, c, o)
	for path, origin := range map[string]int{"/cdn-over-cc": 1, "/cdn-no-store": 2, "/cdn-invalid": 1, "/cdn-empty": 2, "/cdn-expires": 1, "/cdn-private": 2} {
		e.get(t, path)
		r := e.get(t, path)
		if got := o.count(path); got != origin {
			t.Errorf("%s: origin saw %d, want %d", path, got, origin)
		}
		if path == "/cdn-over-cc" && (r.header.Get("CDN-Cache-Control") != "max-age=60" || r.header.Get("Cache-Control") != "no-store") {
			t.Errorf("targeted and Cache-Control fields not passed on: %v", r.header)
		}
	}
	e.get(t, "/cdn-swr")
	c.Add(20 * time.Second)
	e.get(t, "/cdn-swr").want(t, 200, "v", Stale)

	// A configured field replaces CDN-Cache-Control, which is then passed
	// through without effect.
	o.static("/own", 200, "v", "Cache-Control: no-store", "CDN-Cache-Control: max-age=60", "Intercloud-Cache-Control: no-store")
	o.static("/own2", 200, "v", "Cache-Control: no-store", "CDN-Cache-Control: no-store", "Intercloud-Cache-Control: max-age=60")
	e2 := newTestEdge(t, Config{TargetedFields: []string{"Intercloud-Cache-Control"}}, c, o)
	for path, origin := range map[string]int{"/own": 2, "/own2": 1} {
		e2.get(t, path)
		e2.get(t, path)
		if got := o.count(path); got != origin {
			t.Errorf("%s: origin saw %d, want %d", path, got, origin)
		}
	}
}

// Age values sent are whole seconds, capped at 2^31 (RFC 9111 §1.2.2).
func TestAgeValue(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0", 1500 * time.Millisecond: "1", 700 * time.Second: "700", 1 << 62: strconv.Itoa(1 << 31)} {
		if got := ageValue(d)[0]; got != want {
			t.Errorf("ageValue(%v) = %q, want %q", d, got, want)
		}
	}
}
