package s3_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	s3 "github.com/intercloud/intercloud/objects/s3"
)

// ndjson returns about size bytes of NDJSON records, like an ingest batch.
func ndjson(size int) []byte {
	var buf bytes.Buffer
	for i := 0; buf.Len() < size; i++ {
		fmt.Fprintf(&buf, `{"id":"0190d7c8-7c1e-7b39-a1c2-%012d","sensor":"s-%d","value":%d.25,"_origin":"aws","_trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`+"\n", i, i%97, i)
	}
	return buf.Bytes()[:size]
}

func reportObjects(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkPut writes 256 KiB NDJSON objects through objects.Bucket.Put.
func BenchmarkPut(b *testing.B) {
	s := peers.StartS3(b)
	s.CreateBucket(b, "bench")
	bk, err := objects.Open(b.Context(), bucketURL(s, "bench"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bk.Close()
	payload := ndjson(256 << 10)
	opts := &objects.PutOptions{ContentType: "application/x-ndjson", IfNotExist: true}
	b.SetBytes(int64(len(payload)))
	i := 0
	for b.Loop() {
		if err := bk.Put(b.Context(), fmt.Sprintf("raw/2024/01/01/00/%08d.ndjson", i), payload, opts); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportObjects(b)
}

// BenchmarkRawSDKPut writes the same objects with the SDK's PutObject.
func BenchmarkRawSDKPut(b *testing.B) {
	s := peers.StartS3(b)
	s.CreateBucket(b, "bench")
	client, err := s3.NewClient(b.Context(), s3.Options{
		Region: s.Region, Endpoint: s.Endpoint, UsePathStyle: true,
		AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey,
	})
	if err != nil {
		b.Fatal(err)
	}
	payload := ndjson(256 << 10)
	b.SetBytes(int64(len(payload)))
	i := 0
	for b.Loop() {
		_, err := client.PutObject(b.Context(), &awss3.PutObjectInput{
			Bucket:      aws.String("bench"),
			Key:         aws.String(fmt.Sprintf("raw/2024/01/01/00/%08d.ndjson", i)),
			Body:        bytes.NewReader(payload),
			ContentType: aws.String("application/x-ndjson"),
			IfNoneMatch: aws.String("*"),
		})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportObjects(b)
}
