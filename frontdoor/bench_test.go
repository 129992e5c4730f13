package frontdoor

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchBackend is a real HTTP server that reads each body and answers 202
// with a small JSON body, like the ingest API.
func benchBackend(b *testing.B) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"accepted":10}`)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// benchPosts POSTs a 1 KiB NDJSON batch to url, serially and in parallel.
func benchPosts(b *testing.B, url string) {
	body := bytes.Repeat([]byte(`{"device":"d-0001","temp":21.5,"ok":true}`+"\n"), 25)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	client := &http.Client{Transport: t}
	b.Cleanup(t.CloseIdleConnections)
	do := func(b *testing.B) {
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/records", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			do(b)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				do(b)
			}
		})
	})
}

// BenchmarkFrontDoor POSTs through the front door to a backend; compare
// with BenchmarkDirect for the front door's overhead.
func BenchmarkFrontDoor(b *testing.B) {
	backend := benchBackend(b)
	_, fd := start(b, Config{}, Backend{Name: "aws", URL: backend.URL}, Backend{Name: "azure", URL: backend.URL})
	benchPosts(b, fd.URL)
}

// BenchmarkDirect POSTs the same requests straight to the backend.
func BenchmarkDirect(b *testing.B) {
	benchPosts(b, benchBackend(b).URL)
}
