package telemetry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
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
	ic, _ := d["intercloud"].(map[string]any)
	if d["_index"] != "intercloud-logs" || d["message"] != "rows loaded" || dig(d, "cloud", "provider") != "aws" || dig(d, "service", "name") != "intercloud-load" ||
		ic["rows"] != 3.0 || d["log.level"] != "info" || d["@timestamp"] == nil || d["time"] != nil || d["msg"] != nil || ic["password"] != Redacted {
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

// dig returns the value at a path of nested objects.
func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[p]
	}
	return v
}

// TestESDocumentIsECS converts log lines of every kind and checks each
// field of the documents against the ECS definitions (testdata, from the
// ECS field reference): a known ECS field of the right type, or a field
// of the custom "intercloud" namespace.
func TestESDocumentIsECS(t *testing.T) {
	raw, err := os.ReadFile("testdata/ecs-fields.json")
	if err != nil {
		t.Fatal(err)
	}
	var defs struct {
		Fields map[string]struct {
			Type string `json:"type"`
		} `json:"fields"`
		Custom string `json:"custom_namespace"`
	}
	if err := json.Unmarshal(raw, &defs); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := NewLogger(Options{Cloud: "azure", Writer: &buf, Level: slog.LevelDebug})
	ctx := WithTrace(context.Background(), "4bf92f3577b34da6a3ce929d0e0e4736")
	log.With("component", "publish").ErrorContext(ctx, "publish failed", "err", errors.New("container does not exist"), "records", 3, "url", "http://x")
	LibraryLogger(log.With("component", "replicate"), "go-mysql").Warn("binlog reconnect", "level_detail", "x")
	NewLogger(Options{Writer: &buf}).Info("front door started", "group", map[string]int{"a": 1})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for _, line := range append(lines, "not json") {
		var doc map[string]any
		if err := json.Unmarshal(ESDocument([]byte(line)), &doc); err != nil {
			t.Fatal(err)
		}
		flat := map[string]any{}
		var walk func(prefix string, v any)
		walk = func(prefix string, v any) {
			if o, ok := v.(map[string]any); ok && prefix != defs.Custom {
				for k, vv := range o {
					name := k
					if prefix != "" {
						name = prefix + "." + k
					}
					walk(name, vv)
				}
				return
			}
			flat[prefix] = v
		}
		walk("", doc)
		for _, req := range []string{"message", "ecs.version", "service.name"} {
			if flat[req] == nil {
				t.Errorf("%s: no %s in %v", line, req, flat)
			}
		}
		for name, v := range flat {
			if name == defs.Custom {
				continue
			}
			def, ok := defs.Fields[name]
			if !ok {
				t.Errorf("%s: field %q is neither ECS nor under %q", line, name, defs.Custom)
				continue
			}
			s, isStr := v.(string)
			switch {
			case !isStr:
				t.Errorf("%s: %s is %T, ECS says %s", line, name, v, def.Type)
			case def.Type == "date":
				if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
					t.Errorf("%s: %s %q is not a date", line, name, s)
				}
			}
		}
		if line == lines[0] && (flat["trace.id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || flat["log.level"] != "error" ||
			flat["cloud.provider"] != "azure" || flat["error.message"] != "container does not exist" || flat["service.name"] != "intercloud-publish") {
			t.Errorf("first document %v", flat)
		}
		if line == lines[1] && (flat["log.logger"] != "go-mysql" || flat["log.level"] != "warn") {
			t.Errorf("library document %v", flat)
		}
	}
}

func TestESDocument(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"time":"t","msg":"m","a":1}`, `{"@timestamp":"t","ecs.version":"8.11.0","intercloud":{"a":1},"message":"m","service":{"name":"intercloud"}}`},
		{`{"time":"t","level":"INFO","cloud":"aws","component":"load","trace_id":"x"}`,
			`{"@timestamp":"t","cloud":{"provider":"aws"},"ecs.version":"8.11.0","log.level":"info","service":{"name":"intercloud-load"},"trace":{"id":"x"}}`},
		{`[1]`, `{"ecs.version":"8.11.0","message":"[1]","service":{"name":"intercloud"}}`},
		{`null`, `{"ecs.version":"8.11.0","message":"null","service":{"name":"intercloud"}}`},
	} {
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
