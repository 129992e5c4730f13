package file_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/intercloud/intercloud/objects"
)

// BenchmarkPut writes objects of the size the ingest API writes for one
// 1,000-record request (124,412 bytes) as it does: a conditional create
// of a new key in one directory, durable when Put returns.
func BenchmarkPut(b *testing.B) {
	_, bkt := openDir(b)
	data := bytes.Repeat([]byte(`{"id":"01a22c8d-7dc0-7bad-bc7c-54753653f6d3","device":"dev-001","value":1.25}`+"\n"), 124412/80)
	opts := &objects.PutOptions{ContentType: "application/x-ndjson", IfNotExist: true,
		Metadata: map[string]string{"origin": "aws", "records": "1000", "trace-ids": "4bf92f3577b34da6a3ce929d0e0e4736"}}
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		if err := bkt.Put(b.Context(), fmt.Sprintf("raw/2026/11/30/13/%08d.ndjson", i), data, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList lists an hour's raw partition as the reconciler does
// (Bucket.List, every object with its size and time) with n objects in it.
func BenchmarkList(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir, bkt := openDir(b)
			part := filepath.Join(dir, "raw", "2026", "11", "30", "13")
			if err := os.MkdirAll(part, 0o700); err != nil {
				b.Fatal(err)
			}
			for i := range n { // objects without attributes, as an earlier version wrote them
				if err := os.WriteFile(filepath.Join(part, fmt.Sprintf("%08d.ndjson", i)), []byte("{}\n"), 0o600); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				seen := 0
				if err := bkt.List(b.Context(), "raw/2026/11/30/13/", func(objects.Object) error { seen++; return nil }); err != nil {
					b.Fatal(err)
				}
				if seen != n {
					b.Fatalf("listed %d, want %d", seen, n)
				}
			}
		})
	}
}

// BenchmarkPutGroup writes a group commit of 8 requests of 1,000 records
// (8 x 124,412 bytes) as one durable object: "joined" copies the
// requests' lines into one buffer first and Puts it, "buffers" hands them
// to PutBuffers as they are.
func BenchmarkPutGroup(b *testing.B) {
	line := []byte(`{"id":"01a22c8d-7dc0-7bad-bc7c-54753653f6d3","device":"dev-001","value":1.25}` + "\n")
	reqs := make([][]byte, 8)
	size := 0
	for i := range reqs {
		reqs[i] = bytes.Repeat(line, 124412/len(line))
		size += len(reqs[i])
	}
	opts := &objects.PutOptions{ContentType: "application/x-ndjson", IfNotExist: true,
		Metadata: map[string]string{"origin": "aws", "records": "8000", "trace-ids": "4bf92f3577b34da6a3ce929d0e0e4736"}}
	joined := make([]byte, 0, size)
	for _, tc := range []struct {
		name string
		put  func(ctx context.Context, bkt *objects.Bucket, key string) error
	}{
		{"joined", func(ctx context.Context, bkt *objects.Bucket, key string) error {
			joined = joined[:0]
			for _, r := range reqs {
				joined = append(joined, r...)
			}
			return bkt.Put(ctx, key, joined, opts)
		}},
		{"buffers", func(ctx context.Context, bkt *objects.Bucket, key string) error {
			return bkt.PutBuffers(ctx, key, reqs, opts)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			_, bkt := openDir(b)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := tc.put(b.Context(), bkt, fmt.Sprintf("raw/2026/11/30/13/%08d.ndjson", i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
