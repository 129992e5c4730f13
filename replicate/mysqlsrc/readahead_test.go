package mysqlsrc_test

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/mysqlsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
)

// testReadAheadBounded: while the stream's consumer is stuck on its first
// batch, the stream reads and decodes only a bounded part of the binlog
// ahead of it, however much the server has. With go-mysql's default queue
// (10,240 events) and the stream's own (8,192) it read all 60 MB of rows
// logged here into the heap; at 20,000 records a second through MariaDB
// and PostgreSQL the same read-ahead, while the target fell behind, held
// the collector at the process's memory limit until it fell further.
func testReadAheadBounded(t *testing.T, e *env) {
	ctx := context.Background()
	db := sourcetest.Open(t, e.mysqlURL(t, ""))
	sourcetest.Exec(t, db, "CREATE TABLE wide (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(1000) NOT NULL) ENGINE=InnoDB")
	src, err := mysqlsrc.Open(ctx, db, replicate.SourceConfig{Tables: []string{"wide"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	from, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 60,000 rows of 1,000 bytes, 100 to a transaction.
	const rows, per = 60000, 100
	for lo := 0; lo < rows; lo += per {
		sourcetest.Exec(t, db, "INSERT INTO wide (id, v) SELECT ? + i, REPEAT(CHAR(65 + i % 26), 1000) FROM "+
			"(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1) SELECT i FROM n) AS s", lo, per)
	}
	before := liveHeap()

	sctx, cancel := context.WithCancel(ctx)
	first := make(chan replicate.Batch, 1)
	done := make(chan error, 1)
	go func() {
		done <- src.Stream(sctx, from, replicate.StreamOptions{Tables: []string{"wide"}}, func(ctx context.Context, b replicate.Batch) error {
			select {
			case first <- b:
			default:
			}
			<-ctx.Done() // stuck: the target is down or slow
			return ctx.Err()
		})
	}()
	select {
	case b := <-first:
		if len(b.Changes) == 0 {
			t.Fatalf("first batch empty at %s", b.Position)
		}
	case err := <-done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no batch within 30 s")
	}
	// Let the reader take what it may: the heap stops growing once its
	// queues are full.
	grown := liveHeap() - before
	for range 20 {
		time.Sleep(250 * time.Millisecond)
		g := liveHeap() - before
		settled := g-grown < 256<<10
		grown = g
		if settled {
			break
		}
	}
	cancel()
	<-done // the stream's error is the cancellation's
	t.Logf("live heap %.1f MB larger with the consumer stuck (%d MB logged)", float64(grown)/(1<<20), rows*1000>>20)
	if grown > 24<<20 {
		t.Errorf("live heap grew by %.1f MB while the consumer was stuck, want a bounded read-ahead (under 24 MB)", float64(grown)/(1<<20))
	}
}

// liveHeap is the live heap after a collection.
func liveHeap() int64 {
	runtime.GC()
	m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(m)
	return int64(m[0].Value.Uint64())
}
