package file

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
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

func (f *blockingFsync) fsync(string) error {
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
	s := &dirSyncer{dir: "d", fsync: f.fsync}
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
	b.fsyncDir = func(dir string) error {
		mu.Lock()
		fsyncs++
		first := fsyncs == 1
		mu.Unlock()
		if first {
			<-gate // the others finish their writes meanwhile
		}
		return syncDir(dir)
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
		s := b.syncers[b.dir+"/raw/h"]
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
