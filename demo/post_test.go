package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// cutBodies hands out the real answers but, for the first cut of them,
// replaces the body with one whose read fails as an HTTP/2 connection
// closed under a stream does: with an error no errors.Is recognises.
type cutBodies struct {
	next http.RoundTripper
	mu   sync.Mutex
	cut  int
}

func (c *cutBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut > 0 {
		c.cut--
		resp.Body.Close()
		resp.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"ids":[`), errReader{}))
	}
	return resp, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) {
	return 0, errors.New("http2: client connection force closed via ClientConn.Close")
}

// TestPostAnswerCut checks what the driver does with a 202 whose body
// does not arrive whole: the ids are unknown, so it asks again under the
// same Idempotency-Key (the server answers with the same ids) or, out of
// attempts, gives up without calling the records acknowledged; a body
// that arrives whole but is not the answer is an error at once.
func TestPostAnswerCut(t *testing.T) {
	tests := []struct {
		name       string
		cut        int
		attempts   int
		body       string
		wantIDs    bool
		wantErr    string
		wantGaveUp bool
		requests   int
	}{
		{name: "cut then whole", cut: 1, attempts: 3, wantIDs: true, requests: 2},
		{name: "cut twice", cut: 2, attempts: 3, wantIDs: true, requests: 3},
		{name: "cut, one attempt", cut: 1, attempts: 1, wantGaveUp: true, wantErr: "reading the 202 answer", requests: 1},
		{name: "malformed", attempts: 3, body: `{"ids":`, wantErr: "bad 202 answer", requests: 1},
		{name: "too few ids", attempts: 3, body: `{"ids":["a"]}`, wantErr: "bad 202 answer (1 ids for 2 records)", requests: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			keys := map[string]int{}
			n := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n++
				keys[r.Header.Get("Idempotency-Key")]++
				mu.Unlock()
				w.WriteHeader(http.StatusAccepted)
				if tc.body != "" {
					fmt.Fprint(w, tc.body)
					return
				}
				fmt.Fprint(w, `{"ids":["id-1","id-2"]}`)
			}))
			defer srv.Close()
			client := &http.Client{Transport: &cutBodies{next: srv.Client().Transport, cut: tc.cut}}
			recs := []Record{{Device: "a"}, {Device: "b"}}
			ids, err := post(context.Background(), client, srv.URL, "key", 0, recs, tc.attempts)
			if tc.wantIDs {
				if err != nil || len(ids) != 2 || ids[0] != "id-1" {
					t.Fatalf("post = %v, %v; want the two ids", ids, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("post error = %v; want one containing %q", err, tc.wantErr)
			}
			if got := errors.Is(err, errGaveUp); got != tc.wantGaveUp {
				t.Errorf("errors.Is(err, errGaveUp) = %v, want %v (err %v)", got, tc.wantGaveUp, err)
			}
			if n != tc.requests || len(keys) != 1 {
				t.Errorf("server saw %d requests under %d keys; want %d under one", n, len(keys), tc.requests)
			}
		})
	}
}
