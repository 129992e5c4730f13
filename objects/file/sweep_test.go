package file

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// staleTemp writes a temporary file no writer holds, last written two
// hours ago, at dir/name.
func staleTemp(t testing.TB, dir, name string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, tempMark+name)
	if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return p
}

// openClose opens the bucket in dir as OpenBucket does, waits for the
// end of its sweep and closes it.
func openClose(t testing.TB, dir string) {
	t.Helper()
	b := newBucket(dir)
	b.startSweep()
	<-b.swept
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestSweepAtOpen: every open removes the stale temporary files of the
// directory of temporary files, and keeps a recent one; the temporary
// files earlier versions left beside the objects are removed by the first
// open of the bucket, which walks it once.
func TestSweepAtOpen(t *testing.T) {
	dir := t.TempDir()
	tdir := filepath.Join(dir, tempDirName)
	legacy := staleTemp(t, filepath.Join(dir, "raw", "2026", "11"), "0001")
	first := staleTemp(t, tdir, "0002")
	recent := filepath.Join(tdir, tempMark+"0003")
	if err := os.WriteFile(recent, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	openClose(t, dir)
	if exists(legacy) || exists(first) {
		t.Errorf("after the first open: beside the objects %v, in the directory of temporary files %v; want both gone", exists(legacy), exists(first))
	}
	if !exists(recent) {
		t.Error("a recent temporary file was removed")
	}

	second := staleTemp(t, tdir, "0004")
	openClose(t, dir)
	if exists(second) {
		t.Error("a stale temporary file in the directory of temporary files outlived an open")
	}

	// The walk beside the objects was done: a later open reads only the
	// directory of temporary files (where this version writes them).
	late := staleTemp(t, filepath.Join(dir, "raw", "2026", "11"), "0005")
	openClose(t, dir)
	if !exists(late) {
		t.Error("a later open walked the whole bucket again")
	}
	if err := os.RemoveAll(filepath.Join(tdir, sweptMark)); err != nil {
		t.Fatal(err)
	}
	openClose(t, dir)
	if exists(late) {
		t.Error("an open without the mark did not walk the bucket")
	}
}

// fillBucket makes n objects (files of an earlier version's layout) in
// partitions of 1,000.
func fillBucket(t testing.TB, dir string, n int) {
	t.Helper()
	for i := range n {
		part := filepath.Join(dir, "raw", "2026", "11", "30", fmt.Sprintf("%02d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(part, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(part, fmt.Sprintf("%08d.ndjson", i)), []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenCostDoesNotGrowWithTheBucket: once the bucket was walked for
// the temporary files of earlier versions, an open (and its sweep)
// allocates as much for a bucket of 10,000 objects as for one of 10.
func TestOpenCostDoesNotGrowWithTheBucket(t *testing.T) {
	allocs := map[int]float64{}
	for _, n := range []int{10, 10_000} {
		dir := t.TempDir()
		fillBucket(t, dir, n)
		staleTemp(t, filepath.Join(dir, tempDirName), "0001")
		openClose(t, dir) // the walk, once
		allocs[n] = testing.AllocsPerRun(20, func() { openClose(t, dir) })
	}
	if allocs[10_000] > allocs[10]+5 {
		t.Errorf("an open allocates %v times with 10,000 objects, %v with 10: it grows with the bucket", allocs[10_000], allocs[10])
	}
}

// BenchmarkOpen opens and closes (after its sweep) a bucket of n objects.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			fillBucket(b, dir, n)
			openClose(b, dir)
			b.ReportAllocs()
			for b.Loop() {
				openClose(b, dir)
			}
		})
	}
}
