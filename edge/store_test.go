package edge

import (
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"
)

// TestRefreshPersistedAtMostEveryInterval: a response refreshed right
// after it was stored is not written again until persistEvery has passed
// (or the edge closes), so a revalidation-heavy load does not write a
// meta file per 304.
func TestRefreshPersistedAtMostEveryInterval(t *testing.T) {
	s := newStore(1<<20, 1<<10, 1<<20, t.TempDir(), quiet)
	o := s.insert("a", &meta{Key: "/a", Status: 200, Size: 1}, nil, []byte("x"), true)
	path := s.metaPath("a") // insert finds the files in place; here there are none
	for _, c := range []struct {
		name    string
		after   time.Duration
		all     bool
		written bool
	}{
		{"refresh just after storing", time.Second, false, false},
		{"refresh an interval later", persistEvery + time.Second, false, true},
		{"refresh just after writing", persistEvery + 2*time.Second, false, false},
		{"closing", persistEvery + 3*time.Second, true, true},
	} {
		_ = os.Remove(path)
		s.update(o, &meta{Key: "/a", Status: 200, Size: 1})
		s.flush(time.Now().Add(c.after), c.all)
		_, err := os.Stat(path)
		if written := err == nil; written != c.written || (err != nil && !errors.Is(err, fs.ErrNotExist)) {
			t.Fatalf("%s: meta written %v (%v), want %v", c.name, written, err, c.written)
		}
	}
}
