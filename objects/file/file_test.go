package file_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/objects/objectstest"
)

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	objectstest.RunConformance(t, func(t *testing.T) *objects.Bucket {
		b, err := objects.Open(t.Context(), "file://"+dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestOpenBucket(t *testing.T) {
	if _, err := file.OpenBucket(""); err == nil {
		t.Error("empty directory accepted")
	}
	b, err := file.OpenBucket(t.TempDir() + "/new/sub")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// TestOneFilePerObject checks the layout on disk: each object is one file
// (attributes and body together) and no temporary file is left behind,
// not even by a refused conditional create.
func TestOneFilePerObject(t *testing.T) {
	ctx := t.Context()
	dir, b := openDir(t)
	opts := &objects.PutOptions{ContentType: "application/x-ndjson", Metadata: map[string]string{"k": "v"}, IfNotExist: true}
	if err := b.Put(ctx, "raw/2026/a.ndjson", []byte("{}\n"), opts); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "raw/2026/a.ndjson", []byte("other"), opts); !errors.Is(err, objects.ErrExists) {
		t.Fatalf("second conditional put: %v", err)
	}
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	if want := []string{filepath.FromSlash("raw/2026/a.ndjson")}; !slices.Equal(files, want) {
		t.Errorf("files on disk %q, want %q", files, want)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "raw", "2026", "a.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(raw, []byte("{}\n")) || !bytes.Contains(raw, []byte(`"application/x-ndjson"`)) || !bytes.Contains(raw, []byte(`"k":"v"`)) {
		t.Errorf("file does not hold attributes and body: %q", raw)
	}
}

// TestLeftoverTempFile checks that what a crash mid-write leaves (a
// temporary file) is neither listed nor readable as an object.
func TestLeftoverTempFile(t *testing.T) {
	ctx := t.Context()
	dir, b := openDir(t)
	if err := b.Put(ctx, "p/a", []byte("a"), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p", ".\xfftmp-0123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := b.List(ctx, "", func(o objects.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"p/a"}) {
		t.Errorf("listed %q, want only p/a", keys)
	}
}

// TestLegacyObjects checks that objects of the earlier layout (body file
// plus a ".attrs" sidecar, or no sidecar at all) are read, listed,
// overwritten and deleted correctly.
func TestLegacyObjects(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	if err := os.MkdirAll(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "old", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("with", "body one")
	write("with.attrs", `{"user.content_type":"text/csv","user.metadata":{"m":"1"},"md5":"AAAA"}`+"\n")
	write("bare", "body two")
	b, err := objects.Open(ctx, "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data, a, err := b.Get(ctx, "old/with")
	if err != nil || string(data) != "body one" || a.ContentType != "text/csv" || a.Metadata["m"] != "1" || a.Size != 8 {
		t.Errorf("legacy object with sidecar: %q %+v %v", data, a, err)
	}
	data, a, err = b.Get(ctx, "old/bare")
	if err != nil || string(data) != "body two" || a.ContentType != "application/octet-stream" {
		t.Errorf("legacy object without sidecar: %q %+v %v", data, a, err)
	}
	var keys []string
	if err := b.List(ctx, "old/", func(o objects.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"old/bare", "old/with"}) {
		t.Errorf("listed %q", keys)
	}
	if err := b.Put(ctx, "old/with", []byte("new"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "old", "with.attrs")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("sidecar left after overwrite: %v", err)
	}
	data, a, err = b.Get(ctx, "old/with")
	if err != nil || string(data) != "new" || a.Metadata["m"] != "" {
		t.Errorf("after overwrite: %q %+v %v", data, a, err)
	}
	if err := b.Delete(ctx, "old/bare"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Exists(ctx, "old/bare"); ok {
		t.Error("deleted legacy object still exists")
	}
}

func TestObjectUnderObject(t *testing.T) {
	ctx := t.Context()
	b, err := objects.Open(ctx, "file://"+t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Put(ctx, "a", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	err = b.Put(ctx, "a/b", []byte("y"), nil)
	if err == nil || errors.Is(err, objects.ErrNotFound) {
		t.Errorf("put under an object's name: %v, want a clear error", err)
	}
}

// TestDirectoryRemovedUnderneath: a directory removed from outside the
// bucket is made again by the next write under it.
func TestDirectoryRemovedUnderneath(t *testing.T) {
	ctx := t.Context()
	dir, b := openDir(t)
	if err := b.Put(ctx, "a/b/c", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "a", "b")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "a/b/d", []byte("2"), nil); err != nil {
		t.Fatalf("put after the directory was removed: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "a/b/d", []byte("2"), nil); err != nil {
		t.Fatalf("put after the directory was removed: %v", err)
	}
}

// TestDirectoryReplacedUnderneath: a directory of the bucket renamed away
// and replaced (by a new directory, then by a file) between writes: the
// next object goes to the path its key names, or fails, and never into the
// directory that moved away.
func TestDirectoryReplacedUnderneath(t *testing.T) {
	ctx := t.Context()
	dir, b := openDir(t)
	if err := b.Put(ctx, "r/a", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	r := filepath.Join(dir, "r")
	if err := os.Rename(r, r+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(r, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "r/b", []byte("2"), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(r, "b")); err != nil || !bytes.HasSuffix(got, []byte("2")) {
		t.Fatalf("r/b on disk: %q, %v; want it in the new directory", got, err)
	}
	if err := os.Rename(r, r+".away2"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "r/c", []byte("3"), nil); err == nil {
		t.Fatal("put under a path that is a file succeeded")
	}
	for _, moved := range []string{"r.away", "r.away2"} {
		entries, _ := os.ReadDir(filepath.Join(dir, moved))
		for _, e := range entries {
			if name := e.Name(); name != "a" && name != "b" {
				t.Errorf("%s holds %q, written after it moved away", moved, name)
			}
		}
	}
}

// openDir opens a bucket on a fresh directory, closed when the test ends.
func openDir(t testing.TB) (string, *objects.Bucket) {
	t.Helper()
	dir := t.TempDir()
	b, err := objects.Open(t.Context(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return dir, b
}
