// Package objectstest is the conformance suite that every objects driver
// passes against a real store: RunConformance checks the portable contract
// of *objects.Bucket (reads, writes, listings, metadata, conditional
// create, large streamed objects, ranges, key encoding, portable errors,
// cancellation, events and Move).
//
// # Portable keys
//
// A key that every driver stores and lists back unchanged, byte for byte:
//
//   - valid UTF-8, 1 to 512 bytes, with no control characters (U+0000 to
//     U+001F, U+007F);
//   - '/'-separated segments, none of them empty, "." or "..", each at most
//     200 bytes; no leading, trailing or doubled '/' (objects.ValidateKey
//     refuses these with objects.ErrInvalidKey on every driver);
//   - any other character, including spaces, unicode letters, emoji and
//   - % # ? = & ; : , @ ! $ ' ( ) [ ] { } ~ *;
//   - not ending in ".attrs" (the file driver keeps attributes beside the
//     object under that suffix);
//   - no key equal to another key's "directory": "a" and "a/b" cannot both
//     exist on the file driver (a file and a directory of one name).
//
// Listings are in key order for keys made of ASCII letters, digits and
// "/-_."; other characters are escaped by some drivers (Azure escapes
// '#', '%', '?', '\\') before the store sorts them, so their relative
// order may differ between drivers (every key is still listed exactly).
//
// A valid key outside the portable set (control characters, very long
// segments, ".attrs") is either stored and read back exactly or refused
// with an error: no driver stores it under another name silently.
// RunConformance checks that too.
package objectstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/objects"
)

// LargeSize is the size of the object streamed by the large-object test
// (skipped with -short).
const LargeSize = 128 << 20

// RunConformance runs the suite. open returns a bucket for the subtest; it
// may return the same store every time (every subtest writes under its own
// fresh prefix) and should register its own cleanup (Close) with t.
func RunConformance(t *testing.T, open func(t *testing.T) *objects.Bucket) {
	t.Helper()
	root := "conformance-" + time.Now().UTC().Format("20060102T150405") + "-" + randHex(4) + "/"
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"PutGet", testPutGet},
		{"PutBuffers", testPutBuffers},
		{"Overwrite", testOverwrite},
		{"Exists", testExists},
		{"List", testList},
		{"ListKeysAfter", testListKeysAfter},
		{"ListDirs", testListDirs},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"Metadata", testMetadata},
		{"ContentType", testContentType},
		{"IfNotExist", testIfNotExist},
		{"IfNotExistRace", testIfNotExistRace},
		{"IfNotExistStream", testIfNotExistStream},
		{"RangeReader", testRangeReader},
		{"PortableKeys", testPortableKeys},
		{"OtherKeys", testOtherKeys},
		{"Cancelled", testCancelled},
		{"ReaderError", testReaderError},
		{"OnCreate", testOnCreate},
		{"Move", testMove},
		{"Concurrent", testConcurrent},
		{"Large", testLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			h := &harness{b: b, prefix: root + tc.name + "/"}
			tc.fn(t, h)
		})
	}
}

// harness is one subtest's bucket and key prefix.
type harness struct {
	b      *objects.Bucket
	prefix string
}

func (h *harness) key(s string) string { return h.prefix + s }

func (h *harness) put(t *testing.T, key string, data []byte, opts *objects.PutOptions) {
	t.Helper()
	if err := h.b.Put(t.Context(), key, data, opts); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func (h *harness) mustGet(t *testing.T, key string, want []byte) *objects.Attributes {
	t.Helper()
	got, a, err := h.b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("get %q: got %d bytes %.40q, want %d bytes %.40q", key, len(got), got, len(want), want)
	}
	return a
}

// list returns the keys under prefix, in listing order.
func (h *harness) list(t *testing.T, prefix string) []string {
	t.Helper()
	var keys []string
	if err := h.b.List(t.Context(), prefix, func(o objects.Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return keys
}

// listKeys returns the keys ListKeys gives under prefix, in order.
func (h *harness) listKeys(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	if err := h.b.ListKeys(t.Context(), prefix, func(k string) error {
		out = append(out, k)
		return nil
	}); err != nil {
		t.Fatalf("list keys %s: %v", prefix, err)
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func testPutGet(t *testing.T, h *harness) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"small", []byte("hello, object\n")},
		{"ndjson", bytes.Repeat([]byte(`{"id":"x","v":1}`+"\n"), 1000)},
		{"binary", rangeBytes(1, 300_000, 0, 300_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := h.key(tc.name)
			before := time.Now().Add(-time.Minute)
			h.put(t, k, tc.data, nil)
			a := h.mustGet(t, k, tc.data)
			if a.Size != int64(len(tc.data)) {
				t.Errorf("get attributes size %d, want %d", a.Size, len(tc.data))
			}
			a2, err := h.b.Attributes(t.Context(), k)
			if err != nil {
				t.Fatalf("attributes: %v", err)
			}
			if a2.Size != int64(len(tc.data)) {
				t.Errorf("attributes size %d, want %d", a2.Size, len(tc.data))
			}
			if a2.ModTime.Before(before) || a2.ModTime.After(time.Now().Add(time.Minute)) {
				t.Errorf("attributes mod time %v is not about now", a2.ModTime)
			}
			r, a3, err := h.b.NewReader(t.Context(), k)
			if err != nil {
				t.Fatalf("new reader: %v", err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, tc.data) || a3.Size != int64(len(tc.data)) {
				t.Errorf("new reader: %d bytes (size %d), err %v; want %d bytes", len(got), a3.Size, err, len(tc.data))
			}
		})
	}
}

// testPutBuffers writes objects held in pieces (empty ones among them),
// plain and conditional, and reads them back whole, in ranges and with
// their attributes.
func testPutBuffers(t *testing.T, h *harness) {
	ctx := t.Context()
	big := rangeBytes(3, 300_000, 0, 300_000)
	for _, tc := range []struct {
		name string
		bufs [][]byte
	}{
		{"none", nil},
		{"empties", [][]byte{{}, {}}},
		{"one", [][]byte{[]byte("hello, object\n")}},
		{"lines", [][]byte{[]byte(`{"a":1}` + "\n"), {}, []byte(`{"b":2}` + "\n"), []byte(`{"c":3}` + "\n")}},
		{"large", [][]byte{big[:1], big[1:100_000], {}, big[100_000:]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := bytes.Join(tc.bufs, nil)
			if want == nil {
				want = []byte{}
			}
			k := h.key(tc.name)
			opts := &objects.PutOptions{ContentType: "application/x-ndjson", IfNotExist: true, Metadata: map[string]string{"records": "3"}}
			if err := h.b.PutBuffers(ctx, k, tc.bufs, opts); err != nil {
				t.Fatalf("put buffers: %v", err)
			}
			a := h.mustGet(t, k, want)
			if a.Size != int64(len(want)) || a.Metadata["records"] != "3" || a.ContentType != "application/x-ndjson" {
				t.Errorf("attributes: size %d, metadata %v, content type %q; want %d, records=3, application/x-ndjson", a.Size, a.Metadata, a.ContentType, len(want))
			}
			if len(want) > 2 {
				r, err := h.b.NewRangeReader(ctx, k, 1, int64(len(want)-2))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, want[1:len(want)-1]) {
					t.Errorf("range: %d bytes, %v; want %d", len(got), err, len(want)-2)
				}
			}
			if err := h.b.PutBuffers(ctx, k, [][]byte{[]byte("other"), []byte("bytes")}, opts); !errors.Is(err, objects.ErrExists) {
				t.Fatalf("second conditional put buffers: %v, want ErrExists", err)
			}
			h.mustGet(t, k, want)
			if err := h.b.PutBuffers(ctx, k, [][]byte{[]byte("other "), []byte("bytes")}, nil); err != nil {
				t.Fatalf("unconditional put buffers: %v", err)
			}
			h.mustGet(t, k, []byte("other bytes"))
		})
	}
}

func testOverwrite(t *testing.T, h *harness) {
	k := h.key("obj")
	h.put(t, k, []byte("first version, longer"), &objects.PutOptions{Metadata: map[string]string{"v": "1"}})
	h.put(t, k, []byte("second"), &objects.PutOptions{Metadata: map[string]string{"v": "2"}})
	a := h.mustGet(t, k, []byte("second"))
	if a.Metadata["v"] != "2" {
		t.Errorf("metadata after overwrite = %v, want v=2", a.Metadata)
	}
}

func testExists(t *testing.T, h *harness) {
	ctx := t.Context()
	k := h.key("x/obj")
	for _, step := range []struct {
		do   func()
		want bool
	}{
		{func() {}, false},
		{func() { h.put(t, k, []byte("x"), nil) }, true},
		{func() {
			if err := h.b.Delete(ctx, k); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}, false},
	} {
		step.do()
		ok, err := h.b.Exists(ctx, k)
		if err != nil || ok != step.want {
			t.Fatalf("exists = %v, %v; want %v", ok, err, step.want)
		}
	}
	// A "directory" is not an object.
	h.put(t, h.key("d/inner"), []byte("x"), nil)
	if ok, err := h.b.Exists(ctx, h.key("d")); err != nil || ok {
		t.Errorf("exists(directory) = %v, %v; want false", ok, err)
	}
}

func testList(t *testing.T, h *harness) {
	ctx := t.Context()
	keys := []string{"a/1", "a/2.json", "a/b/3", "a/b/c/4", "ab/5", "b", "c-d/6", "c_d/7"}
	sizes := map[string]int64{}
	for i, k := range keys {
		data := bytes.Repeat([]byte("x"), i+1)
		h.put(t, h.key(k), data, nil)
		sizes[h.key(k)] = int64(len(data))
	}
	want := func(ks ...string) []string {
		var out []string
		for _, k := range ks {
			out = append(out, h.key(k))
		}
		return out
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", want(keys...)},
		{"a/", want("a/1", "a/2.json", "a/b/3", "a/b/c/4")},
		{"a", want("a/1", "a/2.json", "a/b/3", "a/b/c/4", "ab/5")},
		{"a/b/", want("a/b/3", "a/b/c/4")},
		{"c", want("c-d/6", "c_d/7")},
		{"nothing/", nil},
	} {
		got := h.list(t, h.key(tc.prefix))
		if !slices.Equal(got, tc.want) {
			t.Errorf("list %q = %q, want %q", tc.prefix, got, tc.want)
		}
		if got := h.listKeys(t, h.key(tc.prefix)); !slices.Equal(got, tc.want) {
			t.Errorf("list keys %q = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	// Sizes and mod times come with the listing.
	if err := h.b.List(ctx, h.prefix, func(o objects.Object) error {
		if o.Size != sizes[o.Key] {
			t.Errorf("list: %s size %d, want %d", o.Key, o.Size, sizes[o.Key])
		}
		if o.ModTime.IsZero() {
			t.Errorf("list: %s has no mod time", o.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// An error from the callback stops the listing and is returned as is.
	stop := errors.New("stop here")
	n := 0
	err := h.b.List(ctx, h.prefix, func(objects.Object) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("list with failing callback: err %v after %d calls, want %v after 2", err, n, stop)
	}
	n = 0
	err = h.b.ListKeys(ctx, h.prefix, func(string) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("list keys with failing callback: err %v after %d calls, want %v after 2", err, n, stop)
	}
	// More than one page (drivers page at 1000; this checks that paging
	// joins pages in order without loss on smaller page sizes too).
	const many = 1100
	if testing.Short() {
		return
	}
	var wg sync.WaitGroup
	errs := make(chan error, many)
	sem := make(chan struct{}, 16)
	for i := range many {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- h.b.Put(ctx, h.key(fmt.Sprintf("many/%05d", i)), []byte("m"), nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	got := h.list(t, h.key("many/"))
	if len(got) != many || !sort.StringsAreSorted(got) {
		t.Errorf("list of %d objects: got %d, sorted %v", many, len(got), sort.StringsAreSorted(got))
	}
	if keys := h.listKeys(t, h.key("many/")); !slices.Equal(keys, got) {
		t.Errorf("list keys of %d objects: got %d, not the listing's keys", many, len(keys))
	}
}

// testListKeysAfter checks that ListKeysAfter lists the keys after its
// start key only, in order, whatever the start key is: before, at or
// between keys, a directory's name with or without its '/', outside the
// prefix on either side, or past the driver's first page of a listing.
func testListKeysAfter(t *testing.T, h *harness) {
	keys := []string{"a/1", "a/2.json", "a/b/3", "a/b/c/4", "ab/5", "b", "c-d/6", "c_d/7"}
	for _, k := range keys {
		h.put(t, h.key(k), []byte("x"), nil)
	}
	after := func(prefix, start string) []string {
		var out []string
		for _, k := range keys {
			if k := h.key(k); strings.HasPrefix(k, h.key(prefix)) && k > start {
				out = append(out, k)
			}
		}
		return out
	}
	for _, tc := range []struct {
		prefix, start string
	}{
		{"", ""},
		{"", h.key("")},
		{"", h.key("a/1")},
		{"", h.key("a/1x")},
		{"", h.key("a/b")},
		{"", h.key("a/b/")},
		{"", h.key("a/b/3")},
		{"", h.key("a/b/c/4")},
		{"", h.key("a/b/c/4x")},
		{"", h.key("a/c")},
		{"", h.key("b")},
		{"", h.key("c")},
		{"", h.key("c_d/7")},
		{"", h.key("z")},
		{"a/", h.key("a/2.json")},
		{"a/", h.key("a/b/c/")},
		{"a/b/", h.key("a/")},
		{"a/b/", h.key("a/b/c/4")},
		{"a", h.key("a/b/c/4")},
		{"a/", "0"},
		{"a/", "zzz"},
	} {
		var got []string
		if err := h.b.ListKeysAfter(t.Context(), h.key(tc.prefix), tc.start, func(k string) error {
			got = append(got, k)
			return nil
		}); err != nil {
			t.Fatalf("list keys %q after %q: %v", tc.prefix, tc.start, err)
		}
		if want := after(tc.prefix, tc.start); !slices.Equal(got, want) {
			t.Errorf("list keys %q after %q = %q, want %q", tc.prefix, tc.start, got, want)
		}
	}
	// Past a first page: S3 lists 1,000 keys a page, Azure 5,000, the
	// file driver's listing in pages of its own.
	many := h.key("many/")
	var all []string
	for i := range 1100 {
		all = append(all, fmt.Sprintf("%s%05d", many, i))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, k := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := h.b.Put(t.Context(), k, nil, nil); err != nil {
				t.Errorf("put %s: %v", k, err)
			}
		}()
	}
	wg.Wait()
	for _, start := range []int{0, 999, 1000, 1098, 1099} {
		var got []string
		if err := h.b.ListKeysAfter(t.Context(), many, all[start], func(k string) error {
			got = append(got, k)
			return nil
		}); err != nil {
			t.Fatalf("list keys after %s: %v", all[start], err)
		}
		if !slices.Equal(got, all[start+1:]) {
			t.Errorf("list keys after %s: %d keys from %q, want %d from %q", all[start], len(got), first(got), len(all[start+1:]), first(all[start+1:]))
		}
	}
}

// first returns a list's first element, or "" when it is empty.
func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func testListDirs(t *testing.T, h *harness) {
	for _, k := range []string{
		"raw/2024/01/31/23/a.ndjson",
		"raw/2024/02/01/00/b.ndjson",
		"raw/2024/02/01/00/c.ndjson",
		"raw/2024/02/01/01/d.ndjson",
		"raw/2025/01/01/00/e.ndjson",
		"raw/top.ndjson",
		"results/x.json",
	} {
		h.put(t, h.key(k), []byte("{}\n"), nil)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"raw/", "results/"}},
		{"raw/", []string{"raw/2024/", "raw/2025/"}},
		{"raw/2024/", []string{"raw/2024/01/", "raw/2024/02/"}},
		{"raw/2024/02/01/", []string{"raw/2024/02/01/00/", "raw/2024/02/01/01/"}},
		{"raw/2024/02/01/00/", nil},
		{"nothing/", nil},
	} {
		got, err := h.b.ListDirs(t.Context(), h.key(tc.prefix))
		if err != nil {
			t.Fatalf("list dirs %q: %v", tc.prefix, err)
		}
		var want []string
		for _, w := range tc.want {
			want = append(want, h.key(w))
		}
		if !slices.Equal(got, want) {
			t.Errorf("list dirs %q = %q, want %q", tc.prefix, got, want)
		}
	}
}

func testDelete(t *testing.T, h *harness) {
	ctx := t.Context()
	k := h.key("gone")
	h.put(t, k, []byte("x"), nil)
	h.put(t, h.key("gone-not"), []byte("y"), nil)
	if err := h.b.Delete(ctx, k); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, _, err := h.b.Get(ctx, k); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if got := h.list(t, h.prefix); !slices.Equal(got, []string{h.key("gone-not")}) {
		t.Errorf("list after delete = %q", got)
	}
	// Deleting a missing object either succeeds or says ErrNotFound.
	if err := h.b.Delete(ctx, k); err != nil && !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("delete missing: %v, want nil or ErrNotFound", err)
	}
}

func testNotFound(t *testing.T, h *harness) {
	ctx := t.Context()
	k := h.key("missing")
	h.put(t, h.key("missing-not"), []byte("x"), nil)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, objects.ErrNotFound) {
			t.Errorf("%s of a missing object: %v, want ErrNotFound", op, err)
		}
		if errors.Is(err, objects.ErrExists) {
			t.Errorf("%s of a missing object is also ErrExists: %v", op, err)
		}
	}
	_, _, err := h.b.Get(ctx, k)
	check("get", err)
	_, _, err = h.b.NewReader(ctx, k)
	check("new reader", err)
	_, err = h.b.NewRangeReader(ctx, k, 0, 10)
	check("new range reader", err)
	_, err = h.b.Attributes(ctx, k)
	check("attributes", err)
	check("move", h.b.Move(ctx, k, h.key("dst"), nil))
	if err := h.b.Delete(ctx, k); err != nil {
		check("delete", err)
	}
	if ok, _ := h.b.Exists(ctx, h.key("dst")); ok {
		t.Errorf("failed move created its destination")
	}
}

func testMetadata(t *testing.T, h *harness) {
	k := h.key("md")
	md := map[string]string{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"origin":      "aws",
		"x-batch-id":  "0190d7c8-7c1e-7b39-a1c2-3d4e5f607182",
		"rows":        "42",
		"note":        "héllo wörld ✓ a+b=c&d %20 #x ?y",
		"empty":       "",
	}
	h.put(t, k, []byte("x"), &objects.PutOptions{Metadata: md})
	a, err := h.b.Attributes(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	for mk, mv := range md {
		got, ok := a.Metadata[mk]
		if mv == "" && !ok {
			continue // some stores drop empty values
		}
		if got != mv {
			t.Errorf("metadata %q = %q (present %v), want %q", mk, got, ok, mv)
		}
	}
	for mk := range a.Metadata {
		if _, ok := md[mk]; !ok {
			t.Errorf("unexpected metadata key %q", mk)
		}
	}
	_, a2, err := h.b.Get(t.Context(), k)
	if err != nil || a2.Metadata["traceparent"] != md["traceparent"] {
		t.Errorf("get attributes metadata = %v, %v", a2, err)
	}
	// Keys are case-insensitive and come back lowercase.
	k2 := h.key("md-upper")
	h.put(t, k2, []byte("x"), &objects.PutOptions{Metadata: map[string]string{"TraceParent": "v"}})
	a, err = h.b.Attributes(t.Context(), k2)
	if err != nil {
		t.Fatal(err)
	}
	if a.Metadata["traceparent"] != "v" || len(a.Metadata) != 1 {
		t.Errorf("metadata with an upper-case key = %v, want map[traceparent:v]", a.Metadata)
	}
	// Two keys that differ only in case are refused, and nothing is written.
	k3 := h.key("md-dup")
	if err := h.b.Put(t.Context(), k3, []byte("x"), &objects.PutOptions{Metadata: map[string]string{"a": "1", "A": "2"}}); err == nil {
		t.Errorf("put with metadata keys a and A succeeded")
	}
	if ok, _ := h.b.Exists(t.Context(), k3); ok {
		t.Errorf("refused put created the object")
	}
}

func testContentType(t *testing.T, h *harness) {
	for _, tc := range []struct{ name, ct, want string }{
		{"default", "", "application/octet-stream"},
		{"ndjson", "application/x-ndjson", "application/x-ndjson"},
		{"json", "application/json; charset=utf-8", "application/json; charset=utf-8"},
		{"csv", "text/csv", "text/csv"},
	} {
		k := h.key(tc.name)
		h.put(t, k, []byte("a,b\n"), &objects.PutOptions{ContentType: tc.ct})
		a, err := h.b.Attributes(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		if a.ContentType != tc.want {
			t.Errorf("%s: content type %q, want %q", tc.name, a.ContentType, tc.want)
		}
	}
}

func testIfNotExist(t *testing.T, h *harness) {
	ctx := t.Context()
	k := h.key("once")
	var events atomic.Int32
	h.b.OnCreate(func(e objects.Event) {
		if e.Key == k {
			events.Add(1)
		}
	})
	opts := &objects.PutOptions{IfNotExist: true, Metadata: map[string]string{"v": "1"}}
	if err := h.b.Put(ctx, k, []byte("first"), opts); err != nil {
		t.Fatalf("first conditional put: %v", err)
	}
	err := h.b.Put(ctx, k, []byte("second, longer"), &objects.PutOptions{IfNotExist: true, Metadata: map[string]string{"v": "2"}})
	if !errors.Is(err, objects.ErrExists) {
		t.Fatalf("second conditional put: %v, want ErrExists", err)
	}
	if errors.Is(err, objects.ErrNotFound) {
		t.Errorf("second conditional put is also ErrNotFound: %v", err)
	}
	a := h.mustGet(t, k, []byte("first"))
	if a.Metadata["v"] != "1" {
		t.Errorf("metadata after refused put = %v", a.Metadata)
	}
	if n := events.Load(); n != 1 {
		t.Errorf("%d created events, want 1", n)
	}
	// An unconditional put still overwrites.
	h.put(t, k, []byte("third"), nil)
	h.mustGet(t, k, []byte("third"))
}

func testIfNotExistRace(t *testing.T, h *harness) {
	ctx := t.Context()
	k := h.key("race")
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.b.Put(ctx, k, fmt.Appendf(nil, "writer %d", i), &objects.PutOptions{IfNotExist: true})
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both created %s", winner, i, k)
		case err == nil:
			winner = i
		case !errors.Is(err, objects.ErrExists):
			t.Errorf("writer %d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won: %v", errs)
	}
	h.mustGet(t, k, fmt.Appendf(nil, "writer %d", winner))
}

// testIfNotExistStream checks the conditional create on a streamed object
// big enough for drivers to upload it in parts.
func testIfNotExistStream(t *testing.T, h *harness) {
	ctx := t.Context()
	const size = 20 << 20
	k := h.key("big-once")
	first := sha256.New()
	if err := h.b.PutStream(ctx, k, io.TeeReader(newGenerator(1, size), first), &objects.PutOptions{IfNotExist: true}); err != nil {
		t.Fatalf("first conditional streamed put: %v", err)
	}
	err := h.b.PutStream(ctx, k, newGenerator(2, size), &objects.PutOptions{IfNotExist: true})
	if !errors.Is(err, objects.ErrExists) {
		t.Fatalf("second conditional streamed put: %v, want ErrExists", err)
	}
	// A small conditional put on a big existing object is refused too.
	if err := h.b.Put(ctx, k, []byte("x"), &objects.PutOptions{IfNotExist: true}); !errors.Is(err, objects.ErrExists) {
		t.Fatalf("small conditional put over a big object: %v, want ErrExists", err)
	}
	r, _, err := h.b.NewReader(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := sha256.New()
	if _, err := io.Copy(got, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sum(nil), first.Sum(nil)) {
		t.Errorf("object changed after a refused conditional put")
	}
}

func testRangeReader(t *testing.T, h *harness) {
	ctx := t.Context()
	const size = 100_000
	data := rangeBytes(7, size, 0, size)
	k := h.key("ranged")
	h.put(t, k, data, nil)
	for _, tc := range []struct {
		off, n int64
		want   []byte
	}{
		{0, 10, data[:10]},
		{3, 4, data[3:7]},
		{size - 5, 5, data[size-5:]},
		{10, -1, data[10:]},
		{0, -1, data},
		{size - 10, 100, data[size-10:]},
		{50_000, 0, []byte{}},
	} {
		r, err := h.b.NewRangeReader(ctx, k, tc.off, tc.n)
		if err != nil {
			t.Fatalf("range %d+%d: %v", tc.off, tc.n, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("range %d+%d: read: %v", tc.off, tc.n, err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("range %d+%d: got %d bytes, want %d", tc.off, tc.n, len(got), len(tc.want))
		}
	}
	if _, err := h.b.NewRangeReader(ctx, k, -1, 10); err == nil {
		t.Errorf("negative offset accepted")
	}
}

// PortableKeys lists keys every driver must store and list back exactly.
var PortableKeys = []string{
	"plain.json",
	"raw/2024/01/31/23/0190d7c8-7c1e-7b39-a1c2-3d4e5f607182.ndjson",
	"spaces/a b  c .txt",
	"unicode/héllo wörld/日本語/Ελληνικά/файл.json",
	"emoji/🚀🔥/✓.txt",
	"plus/a+b+c",
	"percent/100%",
	"percent/%2F%20%zz",
	"hash/a#b#",
	"question/a?b=c&d=e",
	"equals/k=v;x=y",
	"amp/a&b&c",
	"punct/!$'()*,:;@[]{}~^`|<>\"",
	"dots/a.b..c...",
	"dash-under/_a-b_",
	"deep/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18/19/20/21/22/23/24/25/leaf",
	"long/" + strings.Repeat("x", 200),
	"backslash/a\\b",
}

func testPortableKeys(t *testing.T, h *harness) {
	ctx := t.Context()
	for i, k := range PortableKeys {
		full := h.key(k)
		data := fmt.Appendf(nil, "object %d: %s", i, k)
		if err := h.b.Put(ctx, full, data, &objects.PutOptions{Metadata: map[string]string{"k": k}}); err != nil {
			t.Errorf("put %q: %v", k, err)
			continue
		}
		a := h.mustGet(t, full, data)
		if a.Metadata["k"] != k {
			t.Errorf("%q: metadata value %q", k, a.Metadata["k"])
		}
		if ok, err := h.b.Exists(ctx, full); !ok || err != nil {
			t.Errorf("exists %q = %v, %v", k, ok, err)
		}
		if got := h.list(t, full); !slices.Equal(got, []string{full}) {
			t.Errorf("list %q = %q, want exactly the key", k, got)
		}
		r, err := h.b.NewRangeReader(ctx, full, 2, 5)
		if err == nil {
			got, _ := io.ReadAll(r)
			r.Close()
			if !bytes.Equal(got, data[2:7]) {
				t.Errorf("range of %q = %q", k, got)
			}
		} else {
			t.Errorf("range reader %q: %v", k, err)
		}
	}
	var want []string
	for _, k := range PortableKeys {
		want = append(want, h.key(k))
	}
	got := h.list(t, h.prefix)
	if !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("full listing:\n got  %q\n want %q", sorted(got), sorted(want))
	}
	for _, k := range PortableKeys {
		if err := h.b.Delete(ctx, h.key(k)); err != nil {
			t.Errorf("delete %q: %v", k, err)
		}
	}
	if got := h.list(t, h.prefix); len(got) != 0 {
		t.Errorf("left after deleting every key: %q", got)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// invalidKeys are refused by every method with objects.ErrInvalidKey
// (relative to the subtest's prefix).
var invalidKeys = []string{
	"",
	"/leading-slash",
	"trailing-slash/",
	"double//slash",
	"dot/./segment",
	"dotdot/../escape",
	"../../outside",
	"invalid-utf8/\xff\xfe",
}

// otherKeys are valid but outside the portable set: each is stored
// exactly or refused with an error.
var otherKeys = []string{
	"ctrl/a\x01b\tc\nd",
	"del/\x7f",
	"name.attrs",
	"long/" + strings.Repeat("y", 300),
}

func testOtherKeys(t *testing.T, h *harness) {
	ctx := t.Context()
	for _, k := range append(slices.Clone(invalidKeys), "/abs", "..") {
		full := h.key(k)
		if k == "/abs" || k == ".." {
			full = k
		}
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, objects.ErrInvalidKey) {
				t.Errorf("%s %q: %v, want ErrInvalidKey", op, k, err)
			}
		}
		check("put", h.b.Put(ctx, full, []byte("x"), nil))
		check("put stream", h.b.PutStream(ctx, full, strings.NewReader("x"), nil))
		_, _, err := h.b.Get(ctx, full)
		check("get", err)
		_, err = h.b.Attributes(ctx, full)
		check("attributes", err)
		_, err = h.b.Exists(ctx, full)
		check("exists", err)
		check("delete", h.b.Delete(ctx, full))
		_, err = h.b.NewRangeReader(ctx, full, 0, 1)
		check("range", err)
		check("move", h.b.Move(ctx, h.key("any"), full, nil))
	}
	for _, k := range otherKeys {
		full := h.key(k)
		data := []byte("other: " + k)
		err := h.b.Put(ctx, full, data, nil)
		if err != nil {
			t.Logf("refused %q: %v", k, err)
			continue
		}
		got, _, err := h.b.Get(ctx, full)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("stored %q but reading it back gave %q, %v", k, got, err)
			continue
		}
		if keys := h.list(t, full); !slices.Contains(keys, full) {
			t.Errorf("stored %q but listing it gave %q", k, keys)
		}
		if err := h.b.Delete(ctx, full); err != nil {
			t.Errorf("delete %q: %v", k, err)
		}
		t.Logf("stored %q exactly", k)
	}
	// Nothing stored under another name.
	if left := h.list(t, h.prefix); len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}
	if left := h.list(t, strings.TrimSuffix(h.prefix, "/")); len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}
}

func testCancelled(t *testing.T, h *harness) {
	k := h.key("cancelled")
	h.put(t, h.key("existing"), []byte("x"), nil)
	var events atomic.Int32
	h.b.OnCreate(func(e objects.Event) {
		if strings.HasPrefix(e.Key, h.prefix) {
			events.Add(1)
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled in the chain", op, err)
		}
	}
	start := time.Now()
	check("put", h.b.Put(ctx, k, []byte("x"), nil))
	check("put stream", h.b.PutStream(ctx, k, newGenerator(3, 10<<20), nil))
	_, _, err := h.b.Get(ctx, h.key("existing"))
	check("get", err)
	r0, err := h.b.NewRangeReader(ctx, h.key("existing"), 0, 1)
	check("range reader", err)
	if err == nil {
		r0.Close()
	}
	_, err = h.b.Attributes(ctx, h.key("existing"))
	check("attributes", err)
	_, err = h.b.Exists(ctx, h.key("existing"))
	check("exists", err)
	check("list", h.b.List(ctx, h.prefix, func(objects.Object) error { return nil }))
	_, err = h.b.ListDirs(ctx, h.prefix)
	check("list dirs", err)
	check("delete", h.b.Delete(ctx, h.key("existing")))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled calls took %v", d)
	}
	if ok, err := h.b.Exists(t.Context(), k); ok || err != nil {
		t.Errorf("a cancelled put created the object (%v, %v)", ok, err)
	}
	if ok, err := h.b.Exists(t.Context(), h.key("existing")); !ok || err != nil {
		t.Errorf("a cancelled delete removed the object (%v, %v)", ok, err)
	}
	// Cancelled in the middle of a streamed upload: nothing is created.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	r := &cancelAfter{r: newGenerator(4, 30<<20), n: 3 << 20, cancel: cancel2}
	k2 := h.key("cancelled-mid")
	err = h.b.PutStream(ctx2, k2, r, nil)
	if err == nil {
		t.Errorf("put stream cancelled midway succeeded")
	}
	if ok, err := h.b.Exists(t.Context(), k2); ok || err != nil {
		t.Errorf("a put cancelled midway created the object (%v, %v)", ok, err)
	}
	if n := events.Load(); n != 0 {
		t.Errorf("%d created events for cancelled puts", n)
	}
}

// cancelAfter cancels a context once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel func()
	done   bool
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 && !c.done {
		c.cancel()
		c.done = true
		// Give the upload a moment to see the cancellation.
		time.Sleep(10 * time.Millisecond)
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// failingReader returns err after n bytes.
type failingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

func testReaderError(t *testing.T, h *harness) {
	var events atomic.Int32
	h.b.OnCreate(func(e objects.Event) {
		if strings.HasPrefix(e.Key, h.prefix) {
			events.Add(1)
		}
	})
	boom := errors.New("reader broke")
	for _, tc := range []struct {
		name string
		n    int64
	}{
		{"at-start", 0},
		{"small", 1000},
		{"after-parts", 12 << 20},
	} {
		k := h.key(tc.name)
		err := h.b.PutStream(t.Context(), k, &failingReader{r: newGenerator(5, 64<<20), n: tc.n, err: boom}, nil)
		if !errors.Is(err, boom) {
			t.Errorf("%s: put stream from a failing reader: %v, want the reader's error", tc.name, err)
		}
		if ok, err := h.b.Exists(t.Context(), k); ok || err != nil {
			t.Errorf("%s: a failed put left an object (%v, %v)", tc.name, ok, err)
		}
	}
	// A failed overwrite keeps the old object.
	k := h.key("kept")
	h.put(t, k, []byte("old"), nil)
	events.Store(0)
	if err := h.b.PutStream(t.Context(), k, &failingReader{r: newGenerator(6, 1<<20), n: 1000, err: boom}, nil); err == nil {
		t.Errorf("failed overwrite succeeded")
	}
	h.mustGet(t, k, []byte("old"))
	if n := events.Load(); n != 0 {
		t.Errorf("%d created events for failed puts", n)
	}
}

func testOnCreate(t *testing.T, h *harness) {
	ctx := t.Context()
	var mu sync.Mutex
	var got []objects.Event
	h.b.OnCreate(func(e objects.Event) {
		if !strings.HasPrefix(e.Key, h.prefix) {
			return
		}
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	})
	md := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	h.put(t, h.key("a"), []byte("12345"), &objects.PutOptions{Metadata: md})
	if err := h.b.PutStream(ctx, h.key("b"), strings.NewReader("123"), nil); err != nil {
		t.Fatal(err)
	}
	_ = h.b.Put(ctx, h.key("a"), []byte("x"), &objects.PutOptions{IfNotExist: true}) // fails
	if err := h.b.Delete(ctx, h.key("b")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("events %+v, want 2", got)
	}
	if e := got[0]; e.Key != h.key("a") || e.Size != 5 || e.Source != "put" || e.Metadata["traceparent"] != md["traceparent"] {
		t.Errorf("event %+v", e)
	}
	if e := got[1]; e.Key != h.key("b") || e.Size != 3 || e.Source != "put" {
		t.Errorf("event %+v", e)
	}
}

func testMove(t *testing.T, h *harness) {
	ctx := t.Context()
	src, dst := h.key("in/obj.ndjson"), h.key("done/obj.ndjson")
	h.put(t, src, []byte("payload"), &objects.PutOptions{ContentType: "application/x-ndjson", Metadata: map[string]string{"a": "1", "b": "old"}})
	if err := h.b.Move(ctx, src, dst, map[string]string{"b": "new", "c": "3"}); err != nil {
		t.Fatalf("move: %v", err)
	}
	if ok, _ := h.b.Exists(ctx, src); ok {
		t.Errorf("source still exists after move")
	}
	a := h.mustGet(t, dst, []byte("payload"))
	if a.ContentType != "application/x-ndjson" {
		t.Errorf("content type after move %q", a.ContentType)
	}
	if a.Metadata["a"] != "1" || a.Metadata["b"] != "new" || a.Metadata["c"] != "3" {
		t.Errorf("metadata after move %v", a.Metadata)
	}
	// Repeating a finished move is a no-op.
	if err := h.b.Move(ctx, src, dst, nil); err != nil {
		t.Errorf("repeated move: %v", err)
	}
	h.mustGet(t, dst, []byte("payload"))
	// Moving back with an empty value drops that key.
	if err := h.b.Move(ctx, dst, src, map[string]string{"c": ""}); err != nil {
		t.Fatalf("move back: %v", err)
	}
	a = h.mustGet(t, src, []byte("payload"))
	if _, ok := a.Metadata["c"]; ok || a.Metadata["a"] != "1" || a.Metadata["b"] != "new" {
		t.Errorf("metadata after moving back without c: %v", a.Metadata)
	}
}

func testConcurrent(t *testing.T, h *harness) {
	ctx := t.Context()
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := h.key(fmt.Sprintf("c/%03d", i))
			data := rangeBytes(uint64(i), 64<<10, 0, 64<<10)
			if err := h.b.Put(ctx, k, data, nil); err != nil {
				errs <- err
				return
			}
			got, _, err := h.b.Get(ctx, k)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("%s: read back differs", k)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := h.list(t, h.key("c/")); len(got) != n {
		t.Errorf("listed %d, want %d", len(got), n)
	}
}

// testLarge streams LargeSize bytes in and out and checks that the heap
// does not grow by anything near the object's size.
func testLarge(t *testing.T, h *harness) {
	if testing.Short() {
		t.Skip("large object skipped in -short mode")
	}
	ctx := t.Context()
	k := h.key("large.bin")
	const seed = 99

	// The heap is sampled right after a collection, so each sample is the
	// memory the upload holds live, not garbage waiting to be swept.
	var peak atomic.Uint64
	var base uint64
	var stop, sampled chan struct{}
	startSampling := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base = ms.HeapAlloc
		peak.Store(0)
		stop, sampled = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					runtime.GC()
					var m runtime.MemStats
					runtime.ReadMemStats(&m)
					if m.HeapAlloc > peak.Load() {
						peak.Store(m.HeapAlloc)
					}
				}
			}
		}()
	}
	measured := func() uint64 {
		close(stop)
		<-sampled
		p := peak.Load()
		if p < base {
			return 0
		}
		return p - base
	}

	startSampling()
	sum := sha256.New()
	start := time.Now()
	if err := h.b.PutStream(ctx, k, io.TeeReader(newGenerator(seed, LargeSize), sum), &objects.PutOptions{ContentType: "application/octet-stream"}); err != nil {
		t.Fatalf("put stream: %v", err)
	}
	upload := time.Since(start)
	growth := measured()
	t.Logf("put %d MiB in %v (%.0f MB/s), heap growth %.1f MiB", LargeSize>>20, upload.Round(time.Millisecond),
		float64(LargeSize)/1e6/upload.Seconds(), float64(growth)/(1<<20))
	if growth > LargeSize/2 {
		t.Errorf("heap grew by %d MiB while streaming a %d MiB object", growth>>20, LargeSize>>20)
	}

	a, err := h.b.Attributes(ctx, k)
	if err != nil || a.Size != LargeSize {
		t.Fatalf("attributes: %+v, %v", a, err)
	}
	startSampling()
	r, _, err := h.b.NewReader(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	back := sha256.New()
	start = time.Now()
	n, err := io.Copy(back, r)
	r.Close()
	if err != nil || n != LargeSize {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	growth = measured()
	t.Logf("read %d MiB in %v, heap growth %.1f MiB", LargeSize>>20, time.Since(start).Round(time.Millisecond), float64(growth)/(1<<20))
	if growth > LargeSize/2 {
		t.Errorf("heap grew by %d MiB while reading a %d MiB object", growth>>20, LargeSize>>20)
	}
	if !bytes.Equal(back.Sum(nil), sum.Sum(nil)) {
		t.Fatalf("read back content differs from what was written")
	}
	// A range in the middle of the large object.
	off := int64(LargeSize/2 + 12345)
	rr, err := h.b.NewRangeReader(ctx, k, off, 4096)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rr)
	rr.Close()
	if err != nil || !bytes.Equal(got, rangeBytes(seed, LargeSize, off, 4096)) {
		t.Errorf("range in the large object differs (%v)", err)
	}
	if err := h.b.Delete(ctx, k); err != nil {
		t.Errorf("delete: %v", err)
	}
}
