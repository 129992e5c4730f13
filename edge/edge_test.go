package edge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/origin"
)

// Routes: longest prefix wins, the origin URL's path is kept as a prefix,
// origins are tried in order.
func TestRoutes(t *testing.T) {
	c := newClock()
	static := newTestOrigin(t, c)
	site := newTestOrigin(t, c)
	static.static("/base/static/a.css", 200, "css", "Cache-Control: max-age=60")
	site.static("/page", 200, "page", "Cache-Control: max-age=60")
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	e := newTestEdge(t, Config{Routes: []Route{
		{Prefix: "/", Origins: []string{down.URL, site.srv.URL}},
		{Prefix: "/static/", Origins: []string{static.srv.URL + "/base/"}},
	}}, c)
	e.get(t, "/static/a.css").want(t, 200, "css", Miss)
	e.get(t, "/page").want(t, 200, "page", Miss) // the first origin is down: the second answers
	e.get(t, "/page").want(t, 200, "page", Hit)
	static.want(t, "/base/static/a.css", 1)
	site.want(t, "/page", 1)
	if n := e.Stats().OriginErrors; n != 1 {
		t.Errorf("origin errors = %d", n)
	}

	// A 5xx moves on to the next origin; the last answer is passed on.
	a, b := newTestOrigin(t, c), newTestOrigin(t, c)
	a.static("/x", 503, "a down")
	b.static("/x", 200, "from b", "Cache-Control: max-age=60")
	e2 := newTestEdge(t, Config{}, c, a, b)
	e2.get(t, "/x").want(t, 200, "from b", Miss)
	b.static("/y", 502, "b down")
	a.static("/y", 500, "a down")
	e2.get(t, "/y").want(t, 502, "b down", Pass)
	// A POST is not retried on another origin once sent.
	a.static("/p", 503, "a down")
	e2.do(t, "POST", "/p", "body").want(t, 503, "a down", Pass)
	b.want(t, "/p", 0)
}

func TestNoRouteAndBadPaths(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	e := newTestEdge(t, Config{Routes: []Route{{Prefix: "/results/", Origins: []string{o.srv.URL}}}}, c)
	r := e.get(t, "/elsewhere")
	if r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("no route: %d %q", r.status, r.body)
	}
	for _, p := range []string{"/results/%2e%2e/x", "/results//a", "/results/a%00"} {
		r := e.get(t, p)
		if r.status != 400 || r.errCode(t) != "malformed" {
			t.Errorf("%s: %d %q", p, r.status, r.body)
		}
	}
	if len(o.hits) != 0 {
		t.Fatalf("bad requests reached the origin: %v", o.hits)
	}
}

func TestNewConfig(t *testing.T) {
	bad := []Config{
		{},
		{Routes: []Route{{Prefix: "x", Origins: []string{"http://a"}}}},
		{Routes: []Route{{Prefix: "/", Origins: nil}}},
		{Routes: []Route{{Prefix: "/", Origins: []string{"ftp://a"}}}},
		{Routes: []Route{{Prefix: "/", Origins: []string{"http://"}}}},
		{Routes: []Route{{Prefix: "/", Origins: []string{"http://a"}}, {Prefix: "/", Origins: []string{"http://b"}}}},
		{Routes: []Route{{Prefix: "/", Origins: []string{"http://a"}}}, TTL: -1},
		{Routes: []Route{{Prefix: "/", Origins: []string{"http://a"}}}, TargetedFields: []string{"Bad Field"}},
		{Routes: []Route{{Prefix: "/", Origins: []string{"http://a"}}}, MemoryBytes: -1},
	}
	for i, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	e, err := New(Config{Routes: []Route{{Prefix: "/", Origins: []string{"http://user:pw@a"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if e.cfg.TTL != DefaultTTL || e.cfg.StaleIfError != DefaultStaleIfError || e.cfg.MemoryBytes != DefaultMemoryBytes || e.cfg.TargetedFields[0] != "Cdn-Cache-Control" {
		t.Fatalf("defaults %+v", e.cfg)
	}
	_ = e.Close()
}

// Concurrent misses for one URL share one origin request, and all get the
// body while it streams.
func TestCollapsedMisses(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	release := make(chan struct{})
	o.handle("/x", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "01234")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "56789")
	})
	e := newTestEdge(t, Config{}, c, o)
	var wg sync.WaitGroup
	results := make([]result, 8)
	for i := range results {
		wg.Go(func() { results[i] = e.get(t, "/x") })
	}
	waitFor(t, "the fill", func() bool { return o.count("/x") == 1 })
	time.Sleep(50 * time.Millisecond) // let the others join
	close(release)
	wg.Wait()
	for i, r := range results {
		if r.status != 200 || r.body != "0123456789" {
			t.Fatalf("request %d: %d %q", i, r.status, r.body)
		}
	}
	o.want(t, "/x", 1)
	// A response the followers cannot use (not storable) sends each of
	// them to the origin.
	o.static("/private", 200, "mine", "Cache-Control: private")
	for range 3 {
		wg.Go(func() { e.get(t, "/private").want(t, 200, "mine", Pass) })
	}
	wg.Wait()
	o.want(t, "/private", 3)
}

// Bodies stream: the client has the first bytes before the origin has
// sent the last, on a miss (stored) and on a pass.
func TestStreaming(t *testing.T) {
	for _, cc := range []string{"max-age=60", "no-store"} {
		t.Run(cc, func(t *testing.T) {
			c := newClock()
			o := newTestOrigin(t, c)
			release := make(chan struct{})
			o.handle("/x", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", cc)
				io.WriteString(w, "first")
				w.(http.Flusher).Flush()
				<-release
				io.WriteString(w, "last")
			})
			e := newTestEdge(t, Config{}, c, o)
			resp, err := http.Get(e.srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			buf := make([]byte, 5)
			if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
				t.Fatalf("first bytes %q %v", buf, err)
			}
			close(release)
			rest, _ := io.ReadAll(resp.Body)
			if string(rest) != "last" {
				t.Fatalf("rest %q", rest)
			}
		})
	}
}

// A body cut by the origin is not stored, and the client sees the cut.
func TestTruncatedBody(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	o.handle("/x", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "short")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	e := newTestEdge(t, Config{}, c, o)
	resp, err := http.Get(e.srv.URL + "/x")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a cut body looked whole")
	}
	o.static("/x", 200, "whole", "Cache-Control: max-age=60")
	e.get(t, "/x").want(t, 200, "whole", Miss)
}

// Range: served from a stored response; on a miss forwarded as is.
func TestRange(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	body := "0123456789abcdefghij"
	lm := c.Now().Add(-time.Hour).Format(http.TimeFormat)
	o.handle("/x", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"r1"`)
		w.Header().Set("Content-Type", "text/plain")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(body))
	})
	e := newTestEdge(t, Config{}, c, o)
	// A miss forwards the Range: the origin answers 206 and nothing is
	// stored.
	r := e.get(t, "/x", "Range: bytes=2-4")
	r.want(t, 206, "234", Pass)
	if o.lastRequest("/x").Header.Get("Range") != "bytes=2-4" {
		t.Fatal("Range not forwarded on a miss")
	}
	e.get(t, "/x").want(t, 200, body, Miss)
	cases := []struct {
		fields []string
		status int
		body   string
		crange string
	}{
		{[]string{"Range: bytes=2-4"}, 206, "234", "bytes 2-4/20"},
		{[]string{"Range: bytes=15-"}, 206, "fghij", "bytes 15-19/20"},
		{[]string{"Range: bytes=-3"}, 206, "hij", "bytes 17-19/20"},
		{[]string{"Range: bytes=18-100"}, 206, "ij", "bytes 18-19/20"},
		{[]string{"Range: BYTES=0-0"}, 206, "0", "bytes 0-0/20"},
		{[]string{"Range: bytes=20-"}, 416, "*", "bytes */20"},
		{[]string{"Range: bytes=5-2"}, 200, body, ""}, // invalid: ignored
		{[]string{"Range: items=0-1"}, 200, body, ""}, // unknown unit: ignored
		{[]string{"Range: bytes=0-0", `If-Range: "r1"`}, 206, "0", "bytes 0-0/20"},
		{[]string{"Range: bytes=0-0", `If-Range: "r2"`}, 200, body, ""},
		{[]string{"Range: bytes=0-0", "If-Range: " + lm}, 200, body, ""}, // no Last-Modified stored
	}
	for _, tc := range cases {
		r := e.get(t, "/x", tc.fields...)
		if r.status != tc.status || (tc.body != "*" && r.body != tc.body) || r.header.Get("Content-Range") != tc.crange || r.cache() != Hit {
			t.Errorf("%q: %d %q %q %s", tc.fields, r.status, r.body, r.header.Get("Content-Range"), r.cache())
		}
		if tc.status == 416 && r.errCode(t) != "range_not_satisfiable" {
			t.Errorf("416 body %q", r.body)
		}
	}
	r = e.get(t, "/x", "Range: bytes=0-1,5-6")
	if r.status != 206 || !strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges") ||
		!strings.Contains(r.body, "Content-Range: bytes 0-1/20\r\nContent-Type: text/plain\r\n\r\n01") || !strings.Contains(r.body, "\r\n\r\n56\r\n") {
		t.Errorf("multipart: %d %v %q", r.status, r.header, r.body)
	}
	o.want(t, "/x", 2)
}

// Purge by path, prefix and tag (Surrogate-Key, Cache-Tag), authenticated.
func TestPurge(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	o.static("/a", 200, "a", "Cache-Control: max-age=600", "Surrogate-Key: red blue")
	o.static("/b", 200, "b", "Cache-Control: max-age=600", "Cache-Tag: blue,green")
	o.static("/c/1", 200, "c1", "Cache-Control: max-age=600")
	o.static("/c/2", 200, "c2", "Cache-Control: max-age=600")
	e := newTestEdge(t, Config{PurgeKey: "k"}, c, o)
	fill := func() {
		for _, p := range []string{"/a", "/b", "/c/1", "/c/2", "/a?q=1"} {
			e.get(t, p)
		}
	}
	purge := func(body string, key string) result {
		t.Helper()
		if key == "" {
			return e.do(t, "POST", "/purge", body)
		}
		return e.do(t, "POST", "/purge", body, "Authorization: Bearer "+key)
	}
	stored := func(p string) bool { return e.get(t, p, "Cache-Control: only-if-cached").status == 200 }
	fill()
	if r := purge(`{"tags":["red"]}`, ""); r.status != 401 || r.errCode(t) != "unauthenticated" {
		t.Fatalf("no key: %d %q", r.status, r.body)
	}
	if r := purge(`{"tags":["red"]}`, "wrong"); r.status != 401 {
		t.Fatalf("wrong key: %d", r.status)
	}
	if r := purge(`{"tags":["red"]}`, "k"); r.status != 200 || r.body != "{\"purged\":2}\n" {
		t.Fatalf("purge red: %d %q", r.status, r.body)
	}
	if stored("/a") || !stored("/b") || stored("/a?q=1") {
		t.Fatal("tag red")
	}
	fill()
	purge(`{"tags":["blue"]}`, "k")
	if stored("/a") || stored("/b") || !stored("/c/1") {
		t.Fatal("tag blue (Surrogate-Key and Cache-Tag)")
	}
	fill()
	purge(`{"paths":["/a"]}`, "k")
	if stored("/a") || stored("/a?q=1") || !stored("/b") {
		t.Fatal("path /a with its query strings")
	}
	fill()
	purge(`{"paths":["/c/*"]}`, "k")
	if stored("/c/1") || stored("/c/2") || !stored("/a") {
		t.Fatal("prefix /c/*")
	}
	purge(`{"paths":["/*"]}`, "k")
	if n := e.Stats().Entries; n != 0 {
		t.Fatalf("%d entries after purging everything", n)
	}
	for _, body := range []string{``, `{}`, `{"paths":[]}`, `{"tags":[""]}`, `{"tags":["a b"]}`, `{"tags":["a,b"]}`, `{"paths":["/a*b"]}`,
		`{"paths":["x"]}`, `{"paths":["/../x"]}`, `{"paths":["/a"],"x":1}`, `{"paths":["/a"]} {}`, `[]`, `{"tags":[1]}`} {
		if r := purge(body, "k"); r.status != 400 || r.errCode(t) != "malformed" {
			t.Errorf("%q: %d %q", body, r.status, r.body)
		}
	}
	if r := purge(`{"tags":["`+strings.Repeat("a", maxPurgeBody)+`"]}`, "k"); r.status != 413 {
		t.Errorf("oversize: %d", r.status)
	}
	if r := e.get(t, "/purge"); r.status != 405 {
		t.Errorf("GET /purge: %d", r.status)
	}
}

// A purge while a response is still arriving keeps it from being stored.
func TestPurgeDuringFill(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	release := make(chan struct{})
	o.handle("/x", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Surrogate-Key", "t")
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "b")
	})
	e := newTestEdge(t, Config{}, c, o)
	done := make(chan result)
	go func() { done <- e.get(t, "/x") }()
	waitFor(t, "the fill", func() bool { return o.count("/x") == 1 })
	time.Sleep(20 * time.Millisecond)
	e.Purge(PurgeRequest{Tags: []string{"t"}})
	close(release)
	(<-done).want(t, 200, "ab", Miss)
	if e.Stats().Entries != 0 {
		t.Fatal("stored despite the purge")
	}
}

// The memory tier is bounded: least recently used bodies go first.
func TestMemoryLRU(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	for i := range 5 {
		o.static(fmt.Sprintf("/%d", i), 200, strings.Repeat("x", 1000), "Cache-Control: max-age=600")
	}
	e := newTestEdge(t, Config{MemoryBytes: 4000, MemoryObjectBytes: 1500}, c, o)
	for i := range 5 {
		e.get(t, fmt.Sprintf("/%d", i))
		e.get(t, "/0") // keep /0 recently used
	}
	st := e.Stats()
	if st.MemoryBytes > 4000 || st.Evictions == 0 {
		t.Fatalf("stats %+v", st)
	}
	e.get(t, "/0").want(t, 200, "*", Hit)
	e.get(t, "/1").want(t, 200, "*", Miss)
	// Too big for the memory tier, no disk tier: passed on, not stored.
	o.static("/big", 200, strings.Repeat("y", 2000), "Cache-Control: max-age=600")
	e.get(t, "/big").want(t, 200, "*", Pass)
	e.get(t, "/big").want(t, 200, "*", Pass)
}

// The disk tier holds what does not fit in memory, is bounded (LRU) and
// survives a restart.
func TestDiskTier(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	dir := t.TempDir()
	big := strings.Repeat("b", 5000)
	o.static("/big", 200, big, "Cache-Control: max-age=600", "Surrogate-Key: big")
	o.static("/small", 200, "s", "Cache-Control: max-age=600", `ETag: "s1"`)
	cfg := Config{MemoryBytes: 10000, MemoryObjectBytes: 1000, DiskDir: dir, DiskBytes: 12000}
	e := newTestEdge(t, cfg, c, o)
	e.get(t, "/big").want(t, 200, big, Miss)
	e.get(t, "/big").want(t, 200, big, Hit)
	e.get(t, "/small").want(t, 200, "s", Miss)
	st := e.Stats()
	if st.DiskBytes != 5001 || st.Entries != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A restart finds both on disk.
	srv := e.srv
	srv.Close()
	_ = e.Close()
	e2 := newTestEdge(t, cfg, c, o)
	e2.get(t, "/big").want(t, 200, big, Hit)
	r := e2.get(t, "/small", "Range: bytes=0-0")
	r.want(t, 206, "s", Hit)
	o.want(t, "/big", 1)
	o.want(t, "/small", 1)
	// Tags survive too.
	e2.Purge(PurgeRequest{Tags: []string{"big"}})
	e2.get(t, "/big").want(t, 200, big, Miss)
	// A 304 rewrites the stored meta: a restart sees the new freshness.
	c.Add(700 * time.Second)
	e2.get(t, "/small").want(t, 200, "s", Revalidated)
	_ = e2.Close()
	e3 := newTestEdge(t, cfg, c, o)
	e3.get(t, "/small").want(t, 200, "s", Hit)
	// Bounded: a third 5000-byte object evicts the least recently used.
	o.static("/big2", 200, big, "Cache-Control: max-age=600")
	o.static("/big3", 200, big, "Cache-Control: max-age=600")
	e3.get(t, "/big2")
	e3.get(t, "/big3")
	if st := e3.Stats(); st.DiskBytes > 12000 {
		t.Fatalf("disk tier over its bound: %+v", st)
	}
	e3.get(t, "/big").want(t, 200, big, Miss) // the oldest went
}

// The default route: the edge in front of the result origin, as the
// topology wires it.
func TestResultOrigin(t *testing.T) {
	b, err := objects.Open(context.Background(), "file://"+t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	md := map[string]string{origin.MetadataSurrogateKey: "results metric:cpu"}
	if err := b.Put(context.Background(), "results/a.json", []byte(`{"a":1}`), &objects.PutOptions{ContentType: "application/json", Metadata: md}); err != nil {
		t.Fatal(err)
	}
	osrv := httptest.NewServer(origin.New(origin.Config{Bucket: b, Prefix: "results/", Logger: quiet}))
	defer osrv.Close()
	c := newClock()
	e := newTestEdge(t, Config{Routes: []Route{{Prefix: "/results/", Origins: []string{osrv.URL}}}}, c)
	e.get(t, "/results/a.json").want(t, 200, `{"a":1}`, Miss)
	r := e.get(t, "/results/a.json")
	r.want(t, 200, `{"a":1}`, Hit)
	if r.header.Get("Surrogate-Key") != "results metric:cpu" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("header %v", r.header)
	}
	if e.Purge(PurgeRequest{Tags: []string{"metric:cpu"}}) != 1 {
		t.Fatal("tag purge")
	}
	r = e.get(t, "/results/missing.json")
	if r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("missing: %d %q", r.status, r.body)
	}
	if !bytes.Contains([]byte(r.header.Get("Via")), []byte(Pseudonym)) {
		t.Fatalf("Via %q", r.header.Get("Via"))
	}
}

// TestResultOriginHostileNames publishes a result file for metric names
// meant to break the mapping between URL paths and object keys, and
// fetches each through the edge and the result origin at its key's path,
// escaped once, as a client sends it: every name whose decoded path the
// edge accepts is served (the metric "a/b" at ".../a%2Fb/..."), in any
// spelling of its escapes; a name whose decoded path has a dot segment or
// a control character is refused with a JSON 400 (the edge refuses those
// for every origin), and nothing is served from outside the prefix.
func TestResultOriginHostileNames(t *testing.T) {
	lowerHex := regexp.MustCompile(`%[0-9A-F]{2}`)
	b, err := objects.Open(context.Background(), "file://"+t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Put(context.Background(), "private/x.json", []byte(`"private"`), nil); err != nil {
		t.Fatal(err)
	}
	osrv := httptest.NewServer(origin.New(origin.Config{Bucket: b, Prefix: "results/", Logger: quiet}))
	defer osrv.Close()
	e := newTestEdge(t, Config{Routes: []Route{{Prefix: "/results/", Origins: []string{osrv.URL}}}}, newClock())
	// The first servable names must be served; the others are names the
	// edge refuses (dot or empty segments, control characters or invalid
	// UTF-8 once decoded).
	const servable = 14
	names := []string{"cpu", "a/b", "a/b/c", "x y", "é", "%2F", "%252F", "C:\\win.ini", "?q=1", "#frag", "a;b", "a+b", "~u", "a%b",
		"\xff", "/", "//", "..", ".", "../../private", "a/../b", "a\x00b", "a\nb", ""}
	for i, name := range names {
		key := "results/hourly/" + objects.KeySegment(name) + "/2026-11-24T10.json"
		body := fmt.Sprintf(`{"n":%d}`, i)
		if err := b.Put(context.Background(), key, []byte(body), &objects.PutOptions{ContentType: "application/json"}); err != nil {
			t.Fatalf("%q: put %s: %v", name, key, err)
		}
		u, err := url.Parse(e.srv.URL + "/" + key)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		accept := CheckPath(u.Path) == nil
		if accept != (i < servable) {
			t.Errorf("%q: the edge accepts its decoded path %q: %v", name, u.Path, accept)
		}
		for _, spelling := range []string{u.String(), e.srv.URL + "/" + lowerHex.ReplaceAllStringFunc(key, strings.ToLower)} {
			resp, err := e.client.Get(spelling)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case strings.Contains(string(got), "private"):
				t.Fatalf("%q: %s served %s", name, spelling, got)
			case accept && (resp.StatusCode != 200 || string(got) != body):
				t.Errorf("%q: GET %s = %d %s, want 200 %s", name, spelling, resp.StatusCode, got, body)
			case !accept && (resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json"):
				t.Errorf("%q: GET %s = %d %s, want a JSON 400", name, spelling, resp.StatusCode, got)
			}
		}
	}
}
