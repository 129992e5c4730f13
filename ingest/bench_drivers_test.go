package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azsdkblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/ingest"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/azblob"
	_ "github.com/intercloud/intercloud/objects/file"
	s3 "github.com/intercloud/intercloud/objects/s3"
)

// The ingest benchmarks post benchRecords records per request from
// benchClients concurrent clients through the ingest API (which
// group-commits them into objects), then write objects of the same
// average size with the SDK from ingest.DefaultWriters goroutines: the
// floor the store itself sets.
const (
	benchRecords = 100
	benchClients = 32
	benchKey     = "bench-key"
)

// rawPut writes one object with the store's own SDK (or the file system).
type rawPut func(ctx context.Context, key string, data []byte) error

func benchBody() []byte {
	var buf bytes.Buffer
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range benchRecords {
		fmt.Fprintf(&buf, `{"device":"dev-%d","metric":"m%d","value":%d.5,"ts":%q}`+"\n", i%17, i%5, i, ts)
	}
	return buf.Bytes()
}

// benchIngest runs the "api" and "raw-sdk" sub-benchmarks for one store.
func benchIngest(b *testing.B, bucket *objects.Bucket, raw rawPut) {
	var objSize, recsPerObj, rawRuns atomic.Int64
	b.Run("api", func(b *testing.B) {
		api, err := ingest.New(ingest.Config{
			Cloud: "bench", Bucket: bucket, Schema: config.Default(b.TempDir()).Schema, APIKey: benchKey,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(api)
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
		body := benchBody()
		b.SetBytes(int64(len(body)))
		var next atomic.Int64
		var failed atomic.Value
		start := time.Now()
		b.ResetTimer()
		var wg sync.WaitGroup
		for range benchClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					req, _ := http.NewRequest(http.MethodPost, srv.URL+ingest.PathRecords, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/x-ndjson")
					req.Header.Set("Authorization", "Bearer "+benchKey)
					resp, err := client.Do(req)
					if err != nil {
						failed.Store(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						failed.Store(fmt.Errorf("status %d", resp.StatusCode))
						return
					}
				}
			}()
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := api.Close(ctx); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start).Seconds()
		b.StopTimer()
		if err, _ := failed.Load().(error); err != nil {
			b.Fatal(err)
		}
		st := api.Stats()
		b.ReportMetric(float64(st.RecordsAcked)/el, "records/s")
		b.ReportMetric(float64(st.ObjectsWritten)/el, "objects/s")
		if st.ObjectsWritten > 0 {
			b.ReportMetric(float64(st.RecordsAcked)/float64(st.ObjectsWritten), "records/object")
			objSize.Store(st.BytesWritten / st.ObjectsWritten)
			recsPerObj.Store(st.RecordsAcked / st.ObjectsWritten)
		}
	})
	b.Run("raw-sdk", func(b *testing.B) {
		size := objSize.Load()
		if size == 0 {
			b.Skip("the api run wrote nothing")
		}
		payload := bytes.Repeat([]byte("x"), int(size))
		run := rawRuns.Add(1)
		b.SetBytes(size)
		var next atomic.Int64
		var failed atomic.Value
		start := time.Now()
		b.ResetTimer()
		var wg sync.WaitGroup
		for range ingest.DefaultWriters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > int64(b.N) {
						return
					}
					if err := raw(context.Background(), fmt.Sprintf("raw/2026/01/01/00/sdk-%d-%09d.ndjson", run, i), payload); err != nil {
						failed.Store(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start).Seconds()
		b.StopTimer()
		if err, _ := failed.Load().(error); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/el, "objects/s")
		b.ReportMetric(float64(b.N)*float64(recsPerObj.Load())/el, "records/s")
	})
}

// BenchmarkIngestFile measures ingest into the embedded file store.
func BenchmarkIngestFile(b *testing.B) {
	dir := b.TempDir()
	bucket, err := objects.Open(b.Context(), "file://"+filepath.Join(dir, "objects"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bucket.Close()
	rawDir := filepath.Join(dir, "raw")
	benchIngest(b, bucket, func(_ context.Context, key string, data []byte) error {
		p := filepath.Join(rawDir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// BenchmarkIngestS3 measures ingest into versitygw, next to PutObject.
func BenchmarkIngestS3(b *testing.B) {
	s := peers.StartS3(b)
	s.CreateBucket(b, "bench")
	bucket, err := objects.Open(b.Context(), "s3://bench?region="+s.Region+"&use_path_style=true&endpoint="+url.QueryEscape(s.Endpoint)+
		"&access_key_id="+s.AccessKey+"&secret_access_key="+s.SecretKey, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bucket.Close()
	client, err := s3.NewClient(b.Context(), s3.Options{Region: s.Region, Endpoint: s.Endpoint, UsePathStyle: true,
		AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	benchIngest(b, bucket, func(ctx context.Context, key string, data []byte) error {
		_, err := client.PutObject(ctx, &awss3.PutObjectInput{
			Bucket: aws.String("bench"), Key: aws.String(key), Body: bytes.NewReader(data),
			ContentType: aws.String("application/x-ndjson"), IfNoneMatch: aws.String("*"),
		})
		return err
	})
}

// BenchmarkIngestAzure measures ingest into Azurite, next to UploadBuffer.
func BenchmarkIngestAzure(b *testing.B) {
	a := peers.StartAzurite(b)
	q := url.Values{"service_url": {a.BlobEndpoint}, "storage_account": {a.Account}, "account_key": {a.Key}, "create": {"true"}}
	bucket, err := objects.Open(b.Context(), "azblob://bench?"+q.Encode(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bucket.Close()
	c, err := azblob.NewContainerClient(b.Context(), "bench", azblob.Options{ServiceURL: a.BlobEndpoint, Account: a.Account, AccountKey: a.Key})
	if err != nil {
		b.Fatal(err)
	}
	ct := "application/x-ndjson"
	anyETag := azcore.ETagAny
	benchIngest(b, bucket, func(ctx context.Context, key string, data []byte) error {
		_, err := c.NewBlockBlobClient(key).UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{
			HTTPHeaders:      &azsdkblob.HTTPHeaders{BlobContentType: &ct},
			AccessConditions: &azsdkblob.AccessConditions{ModifiedAccessConditions: &azsdkblob.ModifiedAccessConditions{IfNoneMatch: &anyETag}},
		})
		return err
	})
}
