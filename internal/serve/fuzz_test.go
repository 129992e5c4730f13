package serve

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// FuzzParseFastRequest: whatever the fast path's parser accepts, net/http
// reads as the same request (method, target, Host, fields, whether the
// connection closes) without a body; it never accepts more than the
// head, and the head's scan ends where it does.
func FuzzParseFastRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: wrk\r\nIf-None-Match: \"x\"\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: [::1]:80\r\nConnection: keep-alive, close\r\nX-A:\tb \r\n\r\n",
		"GET /x HTTP/1.1\r\nhost: a\r\nHost: b\r\n\r\n",
		"GET /x HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET /%41 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET /x?%zz HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		var r FastRequest
		size := scanHead(head)
		if err := ParseFastRequest(head, &r); err != nil {
			return
		}
		if size != len(head) {
			t.Fatalf("%q: the head scan ends at %d of %d", head, size, len(head))
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("fast path accepts %q, net/http does not: %v", head, err)
		}
		if req.Method != r.Method || req.RequestURI != r.Target || req.URL.Path != r.Path || req.URL.RawQuery != r.RawQuery {
			t.Fatalf("%q: net/http reads %s %s (path %q query %q), the fast path %s %s (%q %q)",
				head, req.Method, req.RequestURI, req.URL.Path, req.URL.RawQuery, r.Method, r.Target, r.Path, r.RawQuery)
		}
		if req.URL.RawPath != "" && req.URL.RawPath != r.Path {
			t.Fatalf("%q: raw path %q", head, req.URL.RawPath)
		}
		if req.ContentLength != 0 || req.Body != http.NoBody || len(req.TransferEncoding) > 0 {
			t.Fatalf("%q: net/http sees a body", head)
		}
		if req.Close != r.Close || req.ProtoMinor != 1 {
			t.Fatalf("%q: close %v, fast path %v; HTTP/1.%d", head, req.Close, r.Close, req.ProtoMinor)
		}
		if req.Host == "" {
			t.Fatalf("%q: no Host", head)
		}
		want := req.Header.Clone()
		delete(want, "Connection")
		got := http.Header{}
		for _, fl := range r.Header {
			got.Add(textproto.CanonicalMIMEHeaderKey(fl.Name), fl.Value)
		}
		for k, vs := range want {
			if strings.Join(got[k], "\n") != strings.Join(vs, "\n") {
				t.Fatalf("%q: field %s is %q to net/http, %q to the fast path", head, k, vs, got[k])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%q: fields %v, net/http %v", head, got, want)
		}
	})
}
