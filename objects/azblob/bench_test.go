package azblob_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azsdkblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	azblob "github.com/intercloud/intercloud/objects/azblob"
)

// ndjson returns about size bytes of NDJSON records, like an ingest batch.
func ndjson(size int) []byte {
	var buf bytes.Buffer
	for i := 0; buf.Len() < size; i++ {
		fmt.Fprintf(&buf, `{"id":"0190d7c8-7c1e-7b39-a1c2-%012d","sensor":"s-%d","value":%d.25,"_origin":"azure","_trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`+"\n", i, i%97, i)
	}
	return buf.Bytes()[:size]
}

func reportObjects(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkPut writes 256 KiB NDJSON objects through objects.Bucket.Put.
func BenchmarkPut(b *testing.B) {
	a := peers.StartAzurite(b)
	bk, err := objects.Open(b.Context(), sharedKeyURL(a, "bench", true), nil)
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

// BenchmarkRawSDKPut writes the same objects with the SDK's UploadBuffer.
func BenchmarkRawSDKPut(b *testing.B) {
	a := peers.StartAzurite(b)
	c, err := azblob.NewContainerClient(b.Context(), "bench", azblob.Options{
		ServiceURL: a.BlobEndpoint, Account: a.Account, AccountKey: a.Key, Create: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	payload := ndjson(256 << 10)
	ct := "application/x-ndjson"
	anyETag := azcore.ETagAny
	b.SetBytes(int64(len(payload)))
	i := 0
	for b.Loop() {
		_, err := c.NewBlockBlobClient(fmt.Sprintf("raw/2024/01/01/00/%08d.ndjson", i)).UploadBuffer(b.Context(), payload, &blockblob.UploadBufferOptions{
			HTTPHeaders: &azsdkblob.HTTPHeaders{BlobContentType: &ct},
			AccessConditions: &azsdkblob.AccessConditions{
				ModifiedAccessConditions: &azsdkblob.ModifiedAccessConditions{IfNoneMatch: &anyETag},
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportObjects(b)
}
