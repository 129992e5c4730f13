package edge

import (
	"net/http"
	"testing"
)

func TestSmoke(t *testing.T) {
	c := newClock()
	o := newTestOrigin(t, c)
	o.static("/a", 200, "hello", "Cache-Control: max-age=60", "ETag: \"v1\"", "X-Custom: yes")
	e := newTestEdge(t, Config{}, c, o)
	e.get(t, "/a").want(t, 200, "hello", Miss)
	r := e.get(t, "/a")
	r.want(t, 200, "hello", Hit)
	t.Log(r.header)
	o.want(t, "/a", 1)
	c.Add(61e9)
	e.get(t, "/a").want(t, 200, "hello", Revalidated)
	o.want(t, "/a", 2)
	e.get(t, "/a", "If-None-Match: \"v1\"").want(t, http.StatusNotModified, "", Hit)
}
