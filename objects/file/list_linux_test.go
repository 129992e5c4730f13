package file_test

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"

	"gocloud.dev/blob"

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
