package file_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocloud.dev/blob"

	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/file"
)

// TestListDelimiterPrefixes: a prefix made by a delimiter is listed once
// when any object makes it, whichever directories also map to it (an
// empty one among them), in pages of any size.
func TestListDelimiterPrefixes(t *testing.T) {
	tests := []struct {
		name      string
		dirs      []string // empty directories
		objects   []string
		delimiter string
		want      []string
	}{
		{"empty directory first", []string{"a-1"}, []string{"a-2", "a-3/obj"}, "-", []string{"a-"}},
		{"empty directory only", []string{"a-1"}, []string{"b"}, "-", []string{"b"}},
		{"object in a later directory", []string{"a-1", "a-2"}, []string{"a-3/obj"}, "-", []string{"a-"}},
		{"several prefixes", []string{"a-0", "c-0/d"}, []string{"a-1/x", "b", "c-1", "d-2/y/z"}, "-", []string{"a-", "b", "c-", "d-"}},
		{"slash", []string{"e", "f/g"}, []string{"a/b", "a/c/d", "b", "f/h/i"}, "/", []string{"a/", "b", "f/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			b, err := file.OpenBucket(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range tt.objects {
				if err := b.WriteAll(ctx, k, []byte("x"), nil); err != nil {
					t.Fatal(err)
				}
			}
			for _, size := range []int{1, 2, 100} {
				var keys []string
				token := blob.FirstPageToken
				for pages := 0; ; pages++ {
					if pages > 20 {
						t.Fatalf("page size %d: more than 20 pages", size)
					}
					objs, next, err := b.ListPage(ctx, token, size, &blob.ListOptions{Delimiter: tt.delimiter})
					if err != nil {
						t.Fatal(err)
					}
					if len(objs) > size {
						t.Fatalf("page size %d: a page of %d", size, len(objs))
					}
					for _, o := range objs {
						keys = append(keys, o.Key)
					}
					if len(next) == 0 {
						break
					}
					token = next
				}
				if !slices.Equal(keys, tt.want) {
					t.Errorf("page size %d: listed %q, want %q", size, keys, tt.want)
				}
			}
		})
	}
}

// FuzzListKeysAfter checks the file store's walk, which skips whole
// directories and names before the start key and keeps only a page's
// keys, against the plain definition: the keys with the prefix that sort
// after the start key, in order. It lists through ListKeysAfter and in
// pages of any size, keys only or not.
func FuzzListKeysAfter(f *testing.F) {
	keys := []string{
		"a-b/c", "a.b", "a/0", "a/1", "a/10/x", "a/1a", "a/b/c/d", "a/b/c/e", "a/b/ca",
		"a/b0", "ab/5", "b0", "b/a/a/a/a", "c d/é", "c d/ü/1", "c-d/6", "c_d/7", "raw/2026/12/01/18/01a2.ndjson",
		"raw/2026/12/01/18/01a3.ndjson", "raw/2026/12/01/19/01a1.ndjson", "z~", "~/x",
	}
	slices.Sort(keys)
	ctx := f.Context()
	bb, err := file.OpenBucket(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	bkt := objects.NewBucket(bb, "file", nil)
	defer bkt.Close()
	for _, k := range keys {
		if err := bkt.Put(ctx, k, []byte("x"), nil); err != nil {
			f.Fatal(err)
		}
	}
	for _, seed := range []struct {
		prefix, after string
		size          uint8
	}{
		{"", "", 0}, {"", "a/1", 1}, {"", "a/1/", 2}, {"a/", "a/10", 3}, {"a/", "a/10/", 0}, {"a/b", "a/b/c/", 1},
		{"a/b/", "a/b/c/d", 0}, {"raw/2026/12/01/", "raw/2026/12/01/18/01a2.ndjson", 0}, {"raw/", "raw/2026/12/01/18/", 1},
		{"c", "c d/é", 4}, {"", "~", 0}, {"a", "a-", 2}, {"", "a/b/c/e\x00", 0}, {"", "\xff", 0},
	} {
		f.Add(seed.prefix, seed.after, seed.size, true)
		f.Add(seed.prefix, seed.after, seed.size, false)
	}
	// Prefixes no key can have, which name no directory that can exist.
	f.Add("0\x00/", "0", uint8(0), true)
	f.Add(strings.Repeat("I", 300)+"a/", "@", uint8(0), true)
	f.Add("/", " ", uint8(0), true)
	f.Add("a/../b/", "", uint8(0), true)
	f.Fuzz(func(t *testing.T, prefix, after string, size uint8, keysOnly bool) {
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) && k > after {
				want = append(want, k)
			}
		}
		var got []string
		err := bkt.ListKeysAfter(t.Context(), prefix, after, func(k string) error {
			got = append(got, k)
			return nil
		})
		if err != nil {
			t.Fatalf("list keys %q after %q: %v", prefix, after, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("list keys %q after %q = %q, want %q", prefix, after, got, want)
		}
		opts := &blob.ListOptions{Prefix: prefix, BeforeList: func(as func(any) bool) error {
			var r *objects.ListRequest
			if as(&r) {
				r.KeysOnly = keysOnly
				r.StartAfter = after
			}
			return nil
		}}
		got = got[:0]
		token := blob.FirstPageToken
		for pages := 0; ; pages++ {
			if pages > len(keys)+1 {
				t.Fatalf("pages of %d: more than %d", size+1, len(keys)+1)
			}
			objs, next, err := bb.ListPage(t.Context(), token, int(size)+1, opts)
			if err != nil {
				t.Fatalf("list %q after %q in pages of %d: %v", prefix, after, size+1, err)
			}
			if len(objs) > int(size)+1 {
				t.Fatalf("pages of %d: a page of %d", size+1, len(objs))
			}
			for _, o := range objs {
				got = append(got, o.Key)
			}
			if len(next) == 0 {
				break
			}
			token = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("list %q after %q in pages of %d (keys only %v) = %q, want %q", prefix, after, size+1, keysOnly, got, want)
		}
	})
}
