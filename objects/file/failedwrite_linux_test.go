package file_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/intercloud/intercloud/objects"
)

// TestFailedWriteNamesNoObject: a write the file system refuses part way
// (here the process's file size limit, EFBIG, as a full disk gives ENOSPC)
// fails the Put and leaves no object under the key, nothing listed and no
// file behind, whether the body goes in one write or is copied from a
// reader. It runs in a child process, whose file size limit it lowers.
func TestFailedWriteNamesNoObject(t *testing.T) {
	if os.Getenv("INTERCLOUD_FILE_TEST_FSIZE") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFailedWriteNamesNoObject$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "INTERCLOUD_FILE_TEST_FSIZE=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFailedWriteNamesNoObject")) {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	ctx := t.Context()
	dir, b := openDir(t)
	signal.Ignore(syscall.SIGXFSZ) // the write returns EFBIG instead
	const limit = 64 << 10
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: limit, Max: unix.RLIM_INFINITY}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte(`{"id":"x","v":1}`+"\n"), 4*limit/17)
	for _, tc := range []struct {
		name string
		put  func(key string) error
	}{
		{"one write", func(key string) error {
			return b.Put(ctx, key, body, &objects.PutOptions{IfNotExist: true})
		}},
		{"copied", func(key string) error {
			return b.PutStream(ctx, key, io.MultiReader(bytes.NewReader(body[:100]), bytes.NewReader(body[100:])), &objects.PutOptions{IfNotExist: true})
		}},
		{"overwrite", func(key string) error {
			return b.Put(ctx, key, body, nil)
		}},
	} {
		key := "raw/" + strings.ReplaceAll(tc.name, " ", "-") + ".ndjson"
		if err := tc.put(key); err == nil {
			t.Fatalf("%s: a write past the file size limit succeeded", tc.name)
		}
		if _, _, err := b.Get(ctx, key); !errors.Is(err, objects.ErrNotFound) {
			t.Errorf("%s: Get after the failed write: %v, want not found", tc.name, err)
		}
	}
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("files left behind: %q", files)
	}
	var keys []string
	if err := b.List(ctx, "", func(o objects.Object) error { keys = append(keys, o.Key); return nil }); err != nil || len(keys) != 0 {
		t.Errorf("listed %q (%v), want nothing", keys, err)
	}
}
