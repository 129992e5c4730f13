package file_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gocloud.dev/blob"

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
