package file_test

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"

	"gocloud.dev/blob"

	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/file"
)

// readSyscalls is the read system calls this process made so far
// (/proc/self/io's syscr).
func readSyscalls(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("syscr: ")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no syscr in /proc/self/io")
	return 0
}

// TestListOpensEachObjectOnce: listing a directory of n objects in pages
// opens each object once (for its size and time), not every object of the
// directory for every page: the reconciler lists the current hour's raw
// objects every 30 s, and at 20,000 records/s that hour holds tens of
// thousands of them. The pages together are the objects in key order,
// and one deleted between two pages is left out.
func TestListOpensEachObjectOnce(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b, err := file.OpenBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n, per = 400, 20
	var want []string
	for i := range n {
		key := fmt.Sprintf("raw/2026/%04d.ndjson", i)
		if err := b.WriteAll(ctx, key, []byte("{}\n"), nil); err != nil {
			t.Fatal(err)
		}
		want = append(want, key)
	}
	before := readSyscalls(t)
	var got []string
	token := blob.FirstPageToken
	for pages := 0; ; pages++ {
		if pages > n/per+1 {
			t.Fatalf("more than %d pages", n/per+1)
		}
		objs, next, err := b.ListPage(ctx, token, per, &blob.ListOptions{Prefix: "raw/2026/"})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			got = append(got, o.Key)
			if o.Size != 3 || o.ModTime.IsZero() {
				t.Fatalf("%s: size %d, time %v", o.Key, o.Size, o.ModTime)
			}
		}
		if pages == 0 {
			if err := b.Delete(ctx, want[n/2]); err != nil {
				t.Fatal(err)
			}
			want = append(want[:n/2], want[n/2+1:]...)
		}
		if next == nil {
			break
		}
		token = next
	}
	reads := readSyscalls(t) - before
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %d keys, want %d in key order", len(got), len(want))
	}
	// Each object is read once (its header); opening every object of
	// the directory for each of the 20 pages read 20 times as many.
	if reads > 2*n {
		t.Errorf("%d objects listed in pages of %d made %d read system calls, want at most %d", n, per, reads, 2*n)
	}
	t.Logf("%d read system calls", reads)
}

// TestListKeysOpensNoObject: a keys-only listing (Bucket.ListKeys, the
// reconciler's) reads the directory's entries and opens no object: at
// 20,000 records/s the current hour holds tens of thousands of objects,
// and opening each for its size and time every 30 s grew the
// reconciler's cost through the hour. The keys are those of List, in
// order.
func TestListKeysOpensNoObject(t *testing.T) {
	ctx := t.Context()
	const n = 400
	bkt, want := partition(t, n)
	before := readSyscalls(t)
	var got []string
	if err := bkt.ListKeys(ctx, "raw/2026/", func(k string) error {
		got = append(got, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	reads := readSyscalls(t) - before
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d keys, want %d in key order", len(got), len(want))
	}
	// Opening each object for its header read n times.
	if reads >= n/10 {
		t.Errorf("a keys-only listing of %d objects made %d read system calls, want fewer than %d", n, reads, n/10)
	}
	t.Logf("%d read system calls", reads)
}

// TestListKeysAfterBuildsNoKeyBefore: a listing after a start key builds
// nothing for the names at or before it (the reconciler lists the hour's
// partition after its mark every 30 s; reading every name into a key
// and dropping it cost about five allocations an object), so listing
// the last 10 of 400 objects allocates a small constant, not one per
// object.
func TestListKeysAfterBuildsNoKeyBefore(t *testing.T) {
	ctx := t.Context()
	const n = 400
	bkt, keys := partition(t, n)
	var got []string
	allocs := testing.AllocsPerRun(5, func() {
		got = got[:0]
		if err := bkt.ListKeysAfter(ctx, "raw/2026/", keys[n-11], func(k string) error {
			got = append(got, k)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	if !slices.Equal(got, keys[n-10:]) {
		t.Fatalf("listed %q, want the last 10 keys", got)
	}
	if allocs >= n/4 {
		t.Errorf("listing the last 10 of %d objects made %.0f allocations, want fewer than %d", n, allocs, n/4)
	}
	t.Logf("%.0f allocations", allocs)
}

// partition opens a file store in a temporary directory, closed when t
// ends, puts n small objects named like the API's in one partition, and
// returns their keys in order.
func partition(t *testing.T, n int) (*objects.Bucket, []string) {
	t.Helper()
	bkt, err := objects.Open(t.Context(), "file://"+t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bkt.Close() })
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("raw/2026/%04d.ndjson", i)
		if err := bkt.Put(t.Context(), keys[i], []byte("{}\n"), nil); err != nil {
			t.Fatal(err)
		}
	}
	return bkt, keys
}
