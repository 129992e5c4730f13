package notify_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"testing"

	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/notify"
)

// awsS3Event is an S3 notification as AWS documents it.
const awsS3Event = `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
"eventTime":"2026-11-24T10:00:00.000Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:EXAMPLE"},
"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"R","x-amz-id-2":"I"},
"s3":{"s3SchemaVersion":"1.0","configurationId":"load","bucket":{"name":"ingest","ownerIdentity":{"principalId":"E"},"arn":"arn:aws:s3:::ingest"},
"object":{"key":"raw/2026/11/24/10/a+b.ndjson","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0A1B2C"}}}]}`

func snsWrap(t *testing.T, msg string) string {
	b, err := json.Marshal(map[string]string{"Type": "Notification", "MessageId": "m1", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Subject": "Amazon S3 Notification", "Message": msg})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseS3Event(t *testing.T) {
	want := []objects.Event{{Key: "raw/2026/11/24/10/a b.ndjson", Size: 1024, Source: notify.Source}}
	for _, tc := range []struct {
		name string
		body string
		want []objects.Event
		bad  bool
	}{
		{"direct", awsS3Event, want, false},
		{"sns", snsWrap(t, awsS3Event), want, false},
		{"sns subscription", `{"Type":"SubscriptionConfirmation","Message":"confirm"}`, nil, false},
		{"test event", `{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"ingest"}`, nil, false},
		{"versitygw names", `{"Records":[{"eventName":"s3:ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"b","arn":"arn:aws:s3:::b:"},"object":{"key":"raw/x%2By.ndjson","size":"7"}}}]}`,
			[]objects.Event{{Key: "raw/x+y.ndjson", Size: 7, Source: notify.Source}}, false},
		{"removal", `{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"object":{"key":"raw/a"}}}]}`, nil, false},
		{"test record", `{"Records":[{"eventName":"s3:TestEvent"}]}`, nil, false},
		{"bad json", `{"Records":`, nil, true},
		{"trailing", awsS3Event + `{}`, nil, true},
		{"bad escape", `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"object":{"key":"raw/%zz"}}}]}`, nil, true},
		{"bad key", `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"object":{"key":"raw//a"}}}]}`, nil, true},
		{"bad size", `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"object":{"key":"raw/a","size":-3}}}]}`, nil, true},
		{"nested sns", snsWrap(t, snsWrap(t, awsS3Event)), nil, true},
		{"sns bad message", snsWrap(t, "nope"), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := notify.ParseS3Event([]byte(tc.body))
			if tc.bad {
				if !errors.Is(err, notify.ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].Key != tc.want[i].Key || got[i].Size != tc.want[i].Size || got[i].Source != tc.want[i].Source {
					t.Fatalf("got %+v, want %+v", got[i], tc.want[i])
				}
			}
		})
	}
}

// gridEvent is a BlobCreated event as Event Grid writes it (Event Grid schema).
func gridEvent(blobURL string, size int) string {
	return `{"topic":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
"subject":"/blobServices/default/containers/raw/blobs/x","eventType":"Microsoft.Storage.BlobCreated","id":"e1",
"data":{"api":"PutBlob","clientRequestId":"c","requestId":"r","eTag":"0x8D","contentType":"application/x-ndjson",
"contentLength":` + itoa(size) + `,"blobType":"BlockBlob","url":"` + blobURL + `","sequencer":"0000","storageDiagnostics":{"batchId":"b"}},
"dataVersion":"","metadataVersion":"1","eventTime":"2026-11-24T10:00:00.0000000Z"}`
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestParseS3EventRawKeys(t *testing.T) {
	got, err := notify.ParseS3EventRawKeys([]byte(`{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"object":{"key":"raw/a b+c%d.ndjson","size":1}}}]}`))
	if err != nil || len(got) != 1 || got[0].Key != "raw/a b+c%d.ndjson" {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestParseEventGrid(t *testing.T) {
	cloud := gridEvent("https://acct.blob.core.windows.net/ingest/raw/2026/11/24/10/a%20b.ndjson", 42)
	emu := gridEvent("http://127.0.0.1:10000/devstoreaccount1/ingest/raw/x.ndjson", 5)
	other := gridEvent("https://acct.blob.core.windows.net/results/raw/x.ndjson", 5)
	cloudEvent := `{"specversion":"1.0","type":"Microsoft.Storage.BlobCreated","source":"/subscriptions/x","id":"1","data":{"url":"https://acct.blob.core.windows.net/ingest/raw/c.ndjson","contentLength":3}}`
	deleted := `{"eventType":"Microsoft.Storage.BlobDeleted","data":{"url":"https://acct.blob.core.windows.net/ingest/raw/c.ndjson"}}`
	for _, tc := range []struct {
		name string
		body string
		keys []string
		bad  bool
	}{
		{"cloud", cloud, []string{"raw/2026/11/24/10/a b.ndjson"}, false},
		{"emulator", emu, []string{"raw/x.ndjson"}, false},
		{"other container", other, nil, false},
		{"cloudevents", cloudEvent, []string{"raw/c.ndjson"}, false},
		{"array", "[" + cloud + "," + emu + "," + deleted + "]", []string{"raw/2026/11/24/10/a b.ndjson", "raw/x.ndjson"}, false},
		{"deleted", deleted, nil, false},
		{"bad json", `{"eventType":`, nil, true},
		{"no type", `{"data":{}}`, nil, true},
		{"no url", `{"eventType":"Microsoft.Storage.BlobCreated","data":{}}`, nil, true},
		{"bad url", `{"eventType":"Microsoft.Storage.BlobCreated","data":{"url":"ftp://x/ingest/a"}}`, nil, true},
		{"bad key", `{"eventType":"Microsoft.Storage.BlobCreated","data":{"url":"https://a/ingest/raw//x"}}`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := notify.ParseEventGrid([]byte(tc.body), "ingest")
			if tc.bad {
				if !errors.Is(err, notify.ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, e := range got {
				keys = append(keys, e.Key)
			}
			if len(keys) != len(tc.keys) {
				t.Fatalf("keys = %q, want %q", keys, tc.keys)
			}
			for i := range keys {
				if keys[i] != tc.keys[i] {
					t.Fatalf("keys = %q, want %q", keys, tc.keys)
				}
			}
		})
	}
	if got, _ := notify.ParseEventGrid([]byte(cloud), "ingest"); got[0].Size != 42 {
		t.Errorf("size = %d", got[0].Size)
	}
	// Event Grid writes queue messages base64-encoded.
	if string(notify.DecodeQueueMessage(base64.StdEncoding.EncodeToString([]byte(emu)))) != emu {
		t.Error("base64 message not decoded")
	}
	if string(notify.DecodeQueueMessage(emu)) != emu {
		t.Error("plain JSON message changed")
	}
}

func TestParseURLs(t *testing.T) {
	u, _ := url.Parse("sqs://sqs.eu-west-1.amazonaws.com/123456789012/loads?region=eu-west-1&wait=5s&batch=4")
	c, err := notify.ParseSQSURL(u)
	if err != nil || c.QueueURL != "https://sqs.eu-west-1.amazonaws.com/123456789012/loads" || c.Region != "eu-west-1" || c.Batch != 4 || c.Wait.Seconds() != 5 {
		t.Fatalf("%+v %v", c, err)
	}
	u, _ = url.Parse("sqs://loads?region=us-east-1")
	if c, err = notify.ParseSQSURL(u); err != nil || c.QueueName != "loads" || c.QueueURL != "" {
		t.Fatalf("%+v %v", c, err)
	}
	u, _ = url.Parse("azqueue://blob-events?container=ingest&service_url=https://acct.queue.core.windows.net&visibility_timeout=30s&max_dequeue=3")
	ac, err := notify.ParseAzureQueueURL(u)
	if err != nil || ac.Queue != "blob-events" || ac.Container != "ingest" || ac.MaxDequeue != 3 || ac.VisibilityTimeout.Seconds() != 30 {
		t.Fatalf("%+v %v", ac, err)
	}
}

func FuzzParseS3Event(f *testing.F) {
	f.Add([]byte(awsS3Event))
	f.Add([]byte(`{"Type":"Notification","Message":"{\"Records\":[]}"}`))
	f.Add([]byte(`{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"object":{"key":"raw/a%20b","size":"1"}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := notify.ParseS3Event(b)
		if err != nil && evs != nil {
			t.Fatal("events with an error")
		}
		for _, e := range evs {
			if objects.ValidateKey(e.Key) != nil || e.Size < 0 {
				t.Fatalf("bad event %+v", e)
			}
		}
	})
}

func FuzzParseEventGrid(f *testing.F) {
	f.Add([]byte(gridEvent("https://acct.blob.core.windows.net/ingest/raw/a.ndjson", 1)))
	f.Add([]byte(`[{"type":"Microsoft.Storage.BlobCreated","data":{"url":"http://127.0.0.1:1/a/ingest/raw/b"}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := notify.ParseEventGrid(notify.DecodeQueueMessage(string(b)), "ingest")
		if err != nil && evs != nil {
			t.Fatal("events with an error")
		}
		for _, e := range evs {
			if objects.ValidateKey(e.Key) != nil || e.Size < 0 {
				t.Fatalf("bad event %+v", e)
			}
		}
	})
}
