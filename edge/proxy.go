package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/internal/redact"
)

// protoVersion renders a protocol version for Via ("1.1", "2").
func protoVersion(major, minor int) string {
	switch {
	case major == 1 && minor == 1:
		return "1.1"
	case major >= 2 && minor == 0:
		return strconv.Itoa(major)
	}
	return strconv.Itoa(major) + "." + strconv.Itoa(minor)
}

// viaHTTP11 is the Via value of an HTTP/1.1 message the edge is the first
// intermediary of; headers share it and never modify it.
var viaHTTP11 = []string{"1.1 " + Pseudonym}

// noUserAgent is a User-Agent value that sends none; headers share it
// and never modify it.
var noUserAgent = []string{""}

// appendVia appends the edge to a message's Via field (RFC 9110 §7.6.3).
func appendVia(h http.Header, major, minor int) {
	prev := h["Via"]
	if len(prev) == 0 && major == 1 && minor == 1 {
		h["Via"] = viaHTTP11
		return
	}
	self := protoVersion(major, minor) + " " + Pseudonym
	if len(prev) > 0 {
		h["Via"] = []string{strings.Join(prev, ", ") + ", " + self}
		return
	}
	h["Via"] = []string{self}
}

// conditionalHeaders are the client's preconditions and range, which the
// edge evaluates itself when it fetches a response to store.
var conditionalHeaders = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"}

// outRequest builds the request to origin o for r: every end-to-end field
// is forwarded; hop-by-hop ones are removed; Via and X-Forwarded-For are
// appended. For a fill, the client's preconditions and range are left
// out and the validators of the stored response to validate (if any) are
// sent instead (RFC 9111 §4.3.1).
func (e *Edge) outRequest(ctx context.Context, r *http.Request, o *url.URL, method string, body io.ReadCloser, fill bool, validators *meta) *http.Request {
	u := *o
	u.Path = o.Path + r.URL.Path
	if o.RawPath != "" || r.URL.RawPath != "" {
		u.RawPath = o.EscapedPath() + r.URL.EscapedPath()
	} else {
		u.RawPath = ""
	}
	switch {
	case o.RawQuery == "":
		u.RawQuery = r.URL.RawQuery
	case r.URL.RawQuery != "":
		u.RawQuery = o.RawQuery + "&" + r.URL.RawQuery
	}
	h := make(http.Header, len(r.Header)+4)
	for k, v := range r.Header {
		h[k] = v
	}
	removeHop(h)
	if fill {
		for _, k := range conditionalHeaders {
			delete(h, k)
		}
		if validators != nil {
			if validators.etag != "" {
				h["If-None-Match"] = []string{validators.etag}
			}
			if validators.lastMod != "" {
				h["If-Modified-Since"] = []string{validators.lastMod}
			}
		}
	}
	appendVia(h, r.ProtoMajor, r.ProtoMinor)
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		h["X-Forwarded-For"] = []string{ip}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent // send none rather than Go's
	}
	req := &http.Request{Method: method, URL: &u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Host: o.Host}
	if body != nil {
		req.Body, req.ContentLength = body, r.ContentLength
		if req.ContentLength == 0 {
			req.ContentLength = -1
		}
	}
	return req.WithContext(ctx)
}

// roundTrip sends a request to the route's origins in order, through tr. It moves on
// after a connection error or timeout, and after a 500, 502, 503 or 504
// when replayable; a request whose body may have been sent is not tried
// again. It returns the first usable response, else the last 5xx, else
// the last error.
func (e *Edge) roundTrip(tr http.RoundTripper, rt *route, path string, build func(rt *route, i int) (*http.Request, error), replayable bool) (*http.Response, error) {
	var lastErr error
	var last5xx *http.Response
	for i, o := range rt.origins {
		req, err := build(rt, i)
		if err != nil {
			return nil, err
		}
		e.originReqs.Add(1)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			e.originErrs.Add(1)
			lastErr = fmt.Errorf("edge: origin %s: %w", redact.URL(o.String()), redact.URLError(err))
			if req.Context().Err() == nil {
				e.log.Warn("origin failed", "origin", redact.URL(o.String()), "path", path, "err", redact.URLError(err))
			}
			if !replayable && !nothingSent(err) {
				break
			}
			continue
		}
		if isServerError(resp.StatusCode) {
			e.originErrs.Add(1)
			e.log.Warn("origin answered an error", "origin", redact.URL(o.String()), "path", path, "status", resp.StatusCode)
			if replayable && i < len(rt.origins)-1 {
				if last5xx != nil {
					_ = last5xx.Body.Close()
				}
				last5xx = resp
				continue
			}
		}
		if last5xx != nil {
			_ = last5xx.Body.Close()
		}
		return resp, nil
	}
	if last5xx != nil {
		return last5xx, nil
	}
	return nil, lastErr
}

// nothingSent reports whether err happened before any of the request was
// sent (the connection could not be made).
func nothingSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// keepBody lets a request body survive a failed attempt, so that it can be
// sent to the next origin when nothing of it was sent.
type keepBody struct {
	io.ReadCloser
	read bool
}

func (b *keepBody) Read(p []byte) (int, error) {
	b.read = true
	return b.ReadCloser.Read(p)
}

func (b *keepBody) Close() error { return nil }

// withInformational forwards the origin's 1xx responses (but 100 and
// 101, which belong to each connection) to w.
func withInformational(ctx context.Context, w http.ResponseWriter) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, header textproto.MIMEHeader) error {
			if code == http.StatusContinue || code == http.StatusSwitchingProtocols {
				return nil
			}
			h := w.Header()
			for k, v := range header {
				h[k] = v
			}
			w.WriteHeader(code)
			for k := range header {
				delete(h, k)
			}
			return nil
		},
	})
}

// safeMethod reports the methods RFC 9110 §9.2.1 defines as safe; every
// other method (unknown ones too) invalidates (RFC 9111 §4.4).
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// forward sends a request to the origins without storing the response:
// other methods, a HEAD or Range miss, and requests a shared response
// could not serve. A successful unsafe request invalidates what is stored
// for its URL and its Location / Content-Location (RFC 9111 §4.4); a 200
// to a HEAD updates or invalidates the stored GET responses (§4.3.5).
func (e *Edge) forward(w http.ResponseWriter, r *http.Request, rt *route) {
	ctx := withInformational(r.Context(), w)
	var body *keepBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &keepBody{ReadCloser: r.Body}
	}
	reqTime := e.now()
	resp, err := e.roundTrip(e.transport, rt, r.URL.Path, func(rt *route, i int) (*http.Request, error) {
		if body != nil && body.read {
			return nil, errors.New("edge: request body already sent")
		}
		var b io.ReadCloser
		if body != nil {
			b = body
		}
		return e.outRequest(ctx, r, rt.origins[i], r.Method, b, false, nil), nil
	}, body == nil && safeMethod(r.Method))
	respTime := e.now()
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		writeError(w, originError(r, err))
		return
	}
	if !safeMethod(r.Method) && resp.StatusCode >= 200 && resp.StatusCode < 400 {
		e.invalidate(r, resp)
	}
	if r.Method == http.MethodHead && resp.StatusCode == http.StatusOK {
		e.freshen(r, resp, reqTime, respTime)
	}
	e.passes.Add(1)
	e.writeUpstream(w, r, resp, Pass)
}

// invalidate removes what is stored for the request's URL and for the
// same-origin URLs in Location and Content-Location.
func (e *Edge) invalidate(r *http.Request, resp *http.Response) {
	keys := []string{cacheKey(r)}
	for _, f := range []string{"Location", "Content-Location"} {
		v := resp.Header.Get(f)
		if v == "" {
			continue
		}
		u, err := r.URL.Parse(v)
		if err != nil || (u.Host != "" && !strings.EqualFold(u.Host, r.Host)) {
			continue // another origin's URL must not be invalidated
		}
		k := u.EscapedPath()
		if u.RawQuery != "" {
			k += "?" + u.RawQuery
		}
		keys = append(keys, k)
	}
	e.store.mu.Lock()
	var victims []*object
	for _, k := range keys {
		victims = append(victims, e.store.index[k]...)
	}
	e.store.mu.Unlock()
	e.store.remove(victims...)
	e.fillMu.Lock()
	for _, f := range e.fills {
		for _, k := range keys {
			if f.key == k {
				f.purged.Store(true)
			}
		}
	}
	e.fillMu.Unlock()
}

// freshen applies a 200 response to a HEAD to the stored GET responses it
// could have selected (RFC 9111 §4.3.5): those whose validators and length
// match are updated, the others must be validated before use.
func (e *Edge) freshen(r *http.Request, resp *http.Response, reqTime, respTime time.Time) {
	objs := e.store.variants(cacheKey(r), r.Header)
	if len(objs) == 0 {
		return
	}
	et, lm := resp.Header.Get("Etag"), resp.Header.Get("Last-Modified")
	for _, o := range objs {
		m := o.meta.Load()
		match := (et != "" || lm != "") &&
			(et == "" || et == m.etag) && (lm == "" || sameTime(lm, m.lastMod)) &&
			(resp.ContentLength < 0 || resp.ContentLength == m.Size)
		if !match {
			o.invalid.Store(true)
			continue
		}
		e.store.update(o, m.updated(resp.Header, reqTime, respTime, e.cfg.TargetedFields, e.cfg.TTL))
	}
}

// writeUpstream sends an origin's response on: end-to-end fields as they
// came, the body streamed (flushed as it arrives when its length is
// unknown), trailers after it.
func (e *Edge) writeUpstream(w http.ResponseWriter, r *http.Request, resp *http.Response, xc string) {
	defer resp.Body.Close()
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	removeHop(h)
	keepNoType(h)
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{e.now().UTC().Format(http.TimeFormat)}
	}
	appendVia(h, resp.ProtoMajor, resp.ProtoMinor)
	h["X-Cache"] = []string{xc}
	h["Cache-Status"] = []string{Pseudonym + "; fwd=uri-miss"}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	var err error
	if resp.ContentLength < 0 {
		err = copyFlushing(w, resp.Body)
	} else {
		bp := copyBufs.Get().(*[]byte)
		_, err = io.CopyBuffer(w, resp.Body, *bp)
		copyBufs.Put(bp)
	}
	if err != nil {
		if r.Context().Err() == nil {
			e.log.Warn("origin body failed", "path", r.URL.Path, "err", redact.URLError(err))
		}
		panic(http.ErrAbortHandler) // the client must not take a cut body as whole
	}
	for k, v := range resp.Trailer {
		h[k] = v
	}
}

// copyFlushing copies src to w, flushing after every read so that a
// stream of unknown length reaches the client as it comes.
func copyFlushing(w http.ResponseWriter, src io.Reader) error {
	rc := http.NewResponseController(w)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	for {
		n, err := src.Read(*bp)
		if n > 0 {
			if _, werr := w.Write((*bp)[:n]); werr != nil {
				return werr
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
