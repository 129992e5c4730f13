package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/intercloud/intercloud/internal/datasync"
)

// blockingFsync is an fsync of directories that counts its calls and
// holds each until the test releases it with the error to return.
type blockingFsync struct {
	mu      sync.Mutex
	calls   int
	started chan int
	release chan error
}

func newBlockingFsync() *blockingFsync {
	return &blockingFsync{started: make(chan int, 16), release: make(chan error)}
}

func (f *blockingFsync) fsync(*os.File) error {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	f.started <- n
	return <-f.release
}

// TestDirSyncRounds: callers that arrive while a directory's fsync runs
// share the next one, not the running one (it may have started before
// their entry was made); every caller of a failed round gets its error;
// a caller after the rounds runs one of its own.
func TestDirSyncRounds(t *testing.T) {
	f := newBlockingFsync()
	s := &dirSyncer{fsync: f.fsync}
	first := make(chan error, 1)
	go func() { first <- s.sync() }()
	if n := <-f.started; n != 1 {
		t.Fatalf("round %d started, want 1", n)
	}
	const later = 3
	got := make(chan error, later)
	for range later {
		go func() { got <- s.sync() }()
	}
	waitCallers(t, s, later)
	f.release <- nil // round 1 ends
	if err := <-first; err != nil {
		t.Fatalf("first caller: %v", err)
	}
	if n := <-f.started; n != 2 {
		t.Fatalf("round %d started, want 2", n)
	}
	select {
	case err := <-got:
		t.Fatalf("a caller that arrived during round 1 returned (%v) before round 2 ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	boom := errors.New("disk gone")
	f.release <- boom // round 2 fails, for all three
	for range later {
		if err := <-got; !errors.Is(err, boom) {
			t.Fatalf("caller of the failed round: %v, want %v", err, boom)
		}
	}
	go func() { first <- s.sync() }()
	if n := <-f.started; n != 3 {
		t.Fatalf("round %d started, want 3", n)
	}
	f.release <- nil
	if err := <-first; err != nil {
		t.Fatalf("caller after the failure: %v", err)
	}
	if f.calls != 3 {
		t.Fatalf("%d fsyncs for 5 callers in 3 rounds", f.calls)
	}
}

// waitCallers waits until n callers wait for the next round.
func waitCallers(t *testing.T, s *dirSyncer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		c := 0
		if s.next != nil {
			c = s.next.callers
		}
		s.mu.Unlock()
		if c == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers wait for the next round, want %d", c, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConcurrentPutsShareDirectoryFsyncs: objects written at once into one
// directory all land, with fewer directory fsyncs than objects when their
// writes finish together.
func TestConcurrentPutsShareDirectoryFsyncs(t *testing.T) {
	b := newBucket(t.TempDir())
	var mu sync.Mutex
	fsyncs := 0
	gate := make(chan struct{})
	b.fsyncDir = func(d *os.File) error {
		mu.Lock()
		fsyncs++
		first := fsyncs == 1
		mu.Unlock()
		if first {
			<-gate // the others finish their writes meanwhile
		}
		return syncDirFile(d)
	}
	bkt := blob.NewBucket(b)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- bkt.WriteAll(ctx, fmt.Sprintf("raw/h/%d.ndjson", i), []byte(fmt.Sprint(i)), &blob.WriterOptions{IfNotExist: true})
		})
	}
	// Hold the first fsync until the other writers wait for theirs.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		s := b.dirs[b.dir+"/raw/h"]
		b.mu.Unlock()
		c := 0
		if s != nil {
			s.mu.Lock()
			if s.next != nil {
				c = s.next.callers
			}
			s.mu.Unlock()
		}
		if c == n-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writers wait for the directory's fsync, want %d", c, n-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		got, err := bkt.ReadAll(ctx, fmt.Sprintf("raw/h/%d.ndjson", i))
		if err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("object %d: %q, %v", i, got, err)
		}
	}
	if fsyncs != 2 {
		t.Errorf("%d directory fsyncs for %d objects written together, want 2", fsyncs, n)
	}
}

// TestPutOrdersDurably checks the order of a write's flushes, which is
// what makes an acknowledged object survive a power loss: the file is
// flushed whole while no name points at it yet (a crash before leaves no
// partial object under the key), the directory is fsynced after the name
// was made (the name survives), and Put returns only after both. A
// failed flush of either fails the Put, and a failed file flush leaves
// no object.
func TestPutOrdersDurably(t *testing.T) {
	for _, conditional := range []bool{true, false} {
		t.Run(fmt.Sprintf("IfNotExist=%v", conditional), func(t *testing.T) {
			b := newBucket(t.TempDir())
			bkt := blob.NewBucket(b)
			ctx := context.Background()
			key := "raw/2026/11/30/13/a.ndjson"
			path := filepath.Join(b.dir, filepath.FromSlash(key))
			body := bytes.Repeat([]byte("{\"id\":\"x\"}\n"), 20000)
			var steps []string
			b.syncFile = func(f *os.File) error {
				got, err := os.ReadFile(f.Name())
				if err != nil || !bytes.HasSuffix(got, body) || !bytes.HasPrefix(got, []byte(magic)) {
					t.Errorf("file flushed before it was written whole (%d bytes, %v)", len(got), err)
				}
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the object's name exists before its file was flushed: %v", err)
				}
				steps = append(steps, "file")
				return datasync.File(f)
			}
			b.fsyncDir = func(d *os.File) error {
				if _, err := os.Stat(path); err != nil {
					t.Errorf("directory fsynced before the object was named: %v", err)
				}
				if d.Name() != filepath.Dir(path) {
					t.Errorf("fsynced %s, the object is in %s", d.Name(), filepath.Dir(path))
				}
				steps = append(steps, "dir")
				return syncDirFile(d)
			}
			if err := bkt.WriteAll(ctx, key, body, &blob.WriterOptions{IfNotExist: conditional, ContentType: "application/x-ndjson"}); err != nil {
				t.Fatal(err)
			}
			if want := []string{"file", "dir"}; !slices.Equal(steps, want) {
				t.Errorf("flushes %q before Put returned, want %q", steps, want)
			}
			got, err := bkt.ReadAll(ctx, key)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("read back %d bytes, %v", len(got), err)
			}

			boom := errors.New("flush failed")
			b.syncFile = func(*os.File) error { return boom }
			other := "raw/2026/11/30/13/b.ndjson"
			if err := bkt.WriteAll(ctx, other, body, &blob.WriterOptions{IfNotExist: conditional}); !errors.Is(err, boom) {
				t.Errorf("put with a failed file flush: %v, want %v", err, boom)
			}
			if ok, _ := bkt.Exists(ctx, other); ok {
				t.Error("an object whose file flush failed exists")
			}
			b.syncFile = datasync.File
			b.fsyncDir = func(*os.File) error { return boom }
			other = "raw/2026/11/30/14/b.ndjson" // a directory not yet open
			if err := bkt.WriteAll(ctx, other, body, &blob.WriterOptions{IfNotExist: conditional}); !errors.Is(err, boom) {
				t.Errorf("put with a failed directory fsync: %v, want %v", err, boom)
			}
			for _, d := range []string{filepath.Dir(path), filepath.Join(b.dir, "raw/2026/11/30/14")} {
				entries, err := os.ReadDir(d)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), tempMark) {
						t.Errorf("temporary file %q left behind", e.Name())
					}
				}
			}
		})
	}
}

// TestExistingNameMadeDurable: a conditional write that finds the name
// taken fsyncs the directory before it says so, since the object there
// may be one whose writer failed after naming it and before the
// directory's fsync: a caller that finds its own bytes there (ingest's
// retry) takes the write as done, so the name must be durable by then.
func TestExistingNameMadeDurable(t *testing.T) {
	b := newBucket(t.TempDir())
	bkt := blob.NewBucket(b)
	ctx := context.Background()
	key := "raw/2026/11/30/13/b.ndjson"
	body := []byte("{\"id\":\"x\"}\n")
	dirSyncs, fail := 0, true
	b.fsyncDir = func(d *os.File) error {
		dirSyncs++
		if fail {
			return errors.New("the disk said no")
		}
		return syncDirFile(d)
	}
	opts := &blob.WriterOptions{IfNotExist: true}
	if err := bkt.WriteAll(ctx, key, body, opts); err == nil {
		t.Fatal("a write whose directory fsync failed succeeded")
	}
	fail = false
	before := dirSyncs
	err := bkt.WriteAll(ctx, key, body, opts)
	if gcerrors.Code(err) != gcerrors.FailedPrecondition {
		t.Fatalf("the second write: %v, want the name taken", err)
	}
	if dirSyncs == before {
		t.Error("the name was reported taken without an fsync of its directory")
	}
}
