package ingest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
)

// benchNDJSON is a request body of n records of the default schema, as
// scripts/bench-ingest.sh sends them.
func benchNDJSON(n int) []byte {
	var b strings.Builder
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	metrics := []string{"cpu", "mem", "disk", "net", "temp"}
	for i := range n {
		fmt.Fprintf(&b, `{"device":"dev-%03d","metric":%q,"value":%d.%02d,"ts":%q}`+"\n",
			i%200, metrics[i%len(metrics)], i*7%10000, i%100, at.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
	}
	return []byte(b.String())
}

// BenchmarkRequestPath is the per-record work of one request on the
// default schema, NDJSON bodies of 100 and 1,000 records: "fast" is the
// one-pass path requests take, "parse+prepare" the reference path (Parse
// into records, then ids and the stored NDJSON) that bodies it declines
// take. Group commit and the object write are per batch and not included;
// the fast path's buffers are recycled as after the write.
func BenchmarkRequestPath(b *testing.B) {
	schema := config.Default("").Schema
	api := &API{cfg: Config{Cloud: "aws", Schema: schema, Now: time.Now}, fast: newFastPlan(schema, "aws")}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, n := range []int{100, 1000} {
		body := benchNDJSON(n)
		b.Run(strconv.Itoa(n)+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				fr, ok := api.fastPrepare(MediaNDJSON, body, trace, time.Now(), "", false, time.Time{})
				if !ok {
					b.Fatal("declined")
				}
				// Written and answered: the buffers go back, as in
				// API.write and the handler.
				api.bufs.put(fr.lines)
				api.bufs.put(fr.answer)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
		b.Run(strconv.Itoa(n)+"/parse+prepare", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				recs, err := Parse(schema, MediaNDJSON, body, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := api.prepare(recs, trace, time.Now(), "", false, time.Time{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
