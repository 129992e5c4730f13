package file_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/objects"
)

// tempMark starts the names of the driver's temporary files.
const tempMark = ".\xfftmp-"

// killedWriterEnv names the directory the child of
// TestSweepRemovesOnlyWhatKilledWritersLeft writes into.
const killedWriterEnv = "FILE_TEST_KILLED_WRITER_DIR"

// TestKilledWriterChild is the child process of
// TestSweepRemovesOnlyWhatKilledWritersLeft: it starts writing an object,
// says so and waits to be killed mid-write.
func TestKilledWriterChild(t *testing.T) {
	dir := os.Getenv(killedWriterEnv)
	if dir == "" {
		t.Skip("run by TestSweepRemovesOnlyWhatKilledWritersLeft")
	}
	b, err := objects.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		_ = b.PutStream(context.Background(), "raw/killed.ndjson", pr, &objects.PutOptions{ContentType: "application/x-ndjson"})
	}()
	if _, err := pw.Write(bytes.Repeat([]byte("{}\n"), 1000)); err != nil {
		t.Fatal(err)
	}
	for len(temps(t, dir)) == 0 {
		time.Sleep(time.Millisecond)
	}
	os.Stdout.WriteString("\nwriting\n")
	time.Sleep(time.Minute)
	t.Fatal("not killed")
}

// TestSweepRemovesOnlyWhatKilledWritersLeft: a process killed mid-write
// leaves its temporary file behind; opening the bucket (as another process
// sharing the directory would) removes it, but keeps the file of a live
// writer (however old its last write) and a recent file no writer holds,
// and no listing ever shows a temporary file. The live writer then
// finishes its object.
func TestSweepRemovesOnlyWhatKilledWritersLeft(t *testing.T) {
	if os.Getenv(killedWriterEnv) != "" {
		t.Skip("in the child")
	}
	ctx := t.Context()
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)

	// A writer killed mid-write, in a process of its own.
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterChild$", "-test.v")
	cmd.Env = append(os.Environ(), killedWriterEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "writing" {
				ready <- true
				break
			}
		}
		close(ready)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the child ended before it was writing")
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the child did not start writing")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	crashed := temps(t, dir)
	if len(crashed) != 1 {
		t.Fatalf("temporary files after the kill: %q, want one", crashed)
	}
	if err := os.Chtimes(crashed[0], old, old); err != nil {
		t.Fatal(err)
	}

	// A live writer, mid-write through a bucket of its own, its file as
	// old as the crashed one: only its lock can keep it.
	live, err := objects.Open(ctx, "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	pr, pw := io.Pipe()
	body := bytes.Repeat([]byte("{\"a\":1}\n"), 2000)
	done := make(chan error, 1)
	go func() {
		done <- live.PutStream(context.Background(), "raw/live.ndjson", pr, &objects.PutOptions{ContentType: "application/x-ndjson", IfNotExist: true})
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	var liveTemp string
	waitUntil(t, "the live writer's temporary file", func() bool {
		for _, p := range temps(t, dir) {
			if p != crashed[0] {
				liveTemp = p
				return true
			}
		}
		return false
	})
	if err := os.Chtimes(liveTemp, old, old); err != nil {
		t.Fatal(err)
	}
	// A recent file no writer holds (a writer of a version without the
	// lock, say) is not old enough to go.
	recent := filepath.Join(dir, "raw", tempMark+"0123456789abcdef")
	if err := os.WriteFile(recent, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	b, err := objects.Open(ctx, "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the crashed writer's file to go", func() bool {
		_, err := os.Lstat(crashed[0])
		return err != nil
	})
	if keys := list(t, b); len(keys) != 0 {
		t.Errorf("listed %q while only temporary files exist", keys)
	}
	if err := b.Close(); err != nil { // the sweep is over
		t.Fatal(err)
	}
	for _, p := range []string{liveTemp, recent} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%q was removed: %v", p, err)
		}
	}

	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("the live writer: %v", err)
	}
	got, _, err := live.Get(ctx, "raw/live.ndjson")
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the live writer's object: %d bytes, %v", len(got), err)
	}
	if keys := list(t, live); !slices.Equal(keys, []string{"raw/live.ndjson"}) {
		t.Errorf("listed %q, want only raw/live.ndjson", keys)
	}
	if left := temps(t, dir); !slices.Equal(left, []string{recent}) {
		t.Errorf("temporary files left %q, want only %q", left, recent)
	}
}

// temps returns the temporary files under dir.
func temps(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tempMark) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// list returns every key the bucket lists under the empty prefix.
func list(t testing.TB, b *objects.Bucket) []string {
	t.Helper()
	var keys []string
	if err := b.List(t.Context(), "", func(o objects.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
