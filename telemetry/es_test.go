package telemetry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// bulkServer parses Elasticsearch _bulk bodies strictly (action line,
// document line, ...) and answers like Elasticsearch; fail decides the
// status of each document (0 = 201).
type bulkServer struct {
	t    *testing.T
	mu   sync.Mutex
	reqs []*http.Request
	docs []map[string]any
	fail func(doc map[string]any, attempt int) int
	seen map[string]int
}

func (b *bulkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reqs = append(b.reqs, r)
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/_bulk") || r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, `{"error":"bad request line"}`, http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if !bytes.HasSuffix(body, []byte("\n")) {
		http.Error(w, `{"error":"The bulk request must be terminated by a newline"}`, http.StatusBadRequest)
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	var items []map[string]any
	errs := false
	for sc.Scan() {
		var action map[string]map[string]any
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 || action["create"] == nil {
			http.Error(w, fmt.Sprintf(`{"error":"bad action line %q"}`, sc.Text()), http.StatusBadRequest)
			return
		}
		if !sc.Scan() {
			http.Error(w, `{"error":"action without document"}`, http.StatusBadRequest)
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			http.Error(w, `{"error":"bad document"}`, http.StatusBadRequest)
			return
		}
		doc["_index"] = action["create"]["_index"]
		key := fmt.Sprint(doc["message"])
		b.seen[key]++
		status := 201
		if b.fail != nil {
			if s := b.fail(doc, b.seen[key]); s != 0 {
				status = s
			}
		}
		item := map[string]any{"_index": doc["_index"], "status": status}
		if status >= 300 {
			errs = true
			item["error"] = map[string]any{"type": "failure", "reason": fmt.Sprintf("status %d", status)}
		} else {
			b.docs = append(b.docs, doc)
		}
		items = append(items, map[string]any{"create": item})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": errs, "items": items})
}

func newBulkServer(t *testing.T) (*bulkServer, *httptest.Server) {
	b := &bulkServer{t: t, seen: map[string]int{}}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv
}

func TestESBulkSinkFormat(t *testing.T) {
	b, srv := newBulkServer(t)
	sink := NewESBulkSink(srv.URL+"/insert/elasticsearch?_msg_field=message&_time_field=@timestamp", "intercloud-logs", nil)
	var lines [][]byte
	logger := NewLogger(Options{Cloud: "aws", Sink: SinkFunc(func(e [][]byte) error { lines = append(lines, e...); return nil })})
	logger.With("component", "load").Info("rows loaded", "rows", 3, "password", "hunter2")
	lines = append(lines, []byte(`not json`))
	if err := sink.Write(lines); err != nil {
		t.Fatal(err)
	}
	if len(b.reqs) != 1 {
		t.Fatalf("%d requests", len(b.reqs))
	}
	r := b.reqs[0]
	if r.URL.Path != "/insert/elasticsearch/_bulk" || r.URL.Query().Get("_msg_field") != "message" || r.URL.Query().Get("_time_field") != "@timestamp" {
		t.Fatalf("request URL %s", r.URL)
	}
	if len(b.docs) != 2 {
		t.Fatalf("docs %v", b.docs)
	}
	d := b.docs[0]
	if d["_index"] != "intercloud-logs" || d["message"] != "rows loaded" || d["cloud"] != "aws" || d["component"] != "load" ||
		d["rows"] != 3.0 || d["level"] != "INFO" || d["@timestamp"] == nil || d["time"] != nil || d["msg"] != nil || d["password"] != Redacted {
		t.Fatalf("doc %v", d)
	}
	if b.docs[1]["message"] != "not json" {
		t.Fatalf("non-JSON line became %v", b.docs[1])
	}
}

func TestESBulkSinkPartialFailures(t *testing.T) {
	b, srv := newBulkServer(t)
	b.fail = func(doc map[string]any, attempt int) int {
		switch doc["message"] {
		case "busy once":
			if attempt == 1 {
				return 429
			}
		case "mapping error":
			return 400
		}
		return 0
	}
	sink := NewESBulkSink(srv.URL, "logs", nil)
	// A retryable item is resent alone; the batch then succeeds.
	if err := sink.Write([][]byte{[]byte(`{"msg":"ok"}`), []byte(`{"msg":"busy once"}`)}); err != nil {
		t.Fatal(err)
	}
	if len(b.reqs) != 2 || b.seen["ok"] != 1 || b.seen["busy once"] != 2 || len(b.docs) != 2 {
		t.Fatalf("requests %d, seen %v, docs %d", len(b.reqs), b.seen, len(b.docs))
	}
	// A permanent item failure rejects the batch for good, without resending.
	err := sink.Write([][]byte{[]byte(`{"msg":"fine"}`), []byte(`{"msg":"mapping error"}`)})
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "1 of 2 documents failed") {
		t.Fatalf("mapping error: %v", err)
	}
	if b.seen["fine"] != 1 || b.seen["mapping error"] != 1 {
		t.Fatalf("resent: %v", b.seen)
	}
}

func TestESBulkSinkHTTPErrors(t *testing.T) {
	status := 503
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"x"}`, status)
	}))
	defer srv.Close()
	sink := NewESBulkSink(srv.URL+"/", "logs", nil)
	if err := sink.Write([][]byte{[]byte(`{}`)}); err == nil || errors.Is(err, ErrRejected) {
		t.Fatalf("503 should be retryable: %v", err)
	}
	status = 400
	if err := sink.Write([][]byte{[]byte(`{}`)}); !errors.Is(err, ErrRejected) {
		t.Fatalf("400 should be final: %v", err)
	}
}

func TestESDocument(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"time":"t","msg":"m","a":1}`, `{"@timestamp":"t","a":1,"message":"m"}`},
		{`{"time":"t","@timestamp":"u"}`, `{"@timestamp":"u","time":"t"}`},
		{`[1]`, `{"message":"[1]"}`},
		{`null`, `{"message":"null"}`},
	}
	for _, tt := range tests {
		if got := string(ESDocument([]byte(tt.in))); got != tt.want {
			t.Errorf("ESDocument(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestESBulkSinkDefaultIndex(t *testing.T) {
	s := NewESBulkSink("http://127.0.0.1:9", "", nil).(*esBulkSink)
	if !strings.Contains(string(s.action), `"_index":"`+DefaultIndex+`"`) {
		t.Fatalf("action %s does not name %s", s.action, DefaultIndex)
	}
}
