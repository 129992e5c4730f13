package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercloud/intercloud/logstore"
	"github.com/intercloud/intercloud/telemetry"
)

const storeKey = "central-store-key"

func openStore(t *testing.T) *logstore.Store {
	t.Helper()
	s, err := logstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "logs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, s *telemetry.Shipper) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return")
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestShipToLogStore sends the logs of both clouds through the handler, a
// Shipper and the HTTP sink to a real log store server, and finds one
// trace's path across the clouds there.
func TestShipToLogStore(t *testing.T) {
	store := openStore(t)
	srv := httptest.NewServer(store.Handler(storeKey))
	defer srv.Close()

	const secret = "hunter2-s3cret"
	var stops []func()
	loggers := map[string]*telemetry.Shipper{}
	for _, cloud := range []string{"aws", "azure"} {
		sh := telemetry.NewShipper(telemetry.NewHTTPSink(srv.URL, storeKey, srv.Client()), telemetry.ShipperOptions{FlushInterval: 20 * time.Millisecond})
		stops = append(stops, run(t, sh))
		loggers[cloud] = sh
	}
	logger := func(cloud string) *telemetry.Shipper { return loggers[cloud] }
	aws := telemetry.NewLogger(telemetry.Options{Cloud: "aws", Sink: logger("aws")})
	azure := telemetry.NewLogger(telemetry.Options{Cloud: "azure", Sink: logger("azure")})

	id := telemetry.NewTraceID()
	ctx := telemetry.WithTrace(context.Background(), id)
	aws.With("component", "ingest").InfoContext(ctx, "records accepted", "count", 1, "password", secret)
	aws.With("component", "load").InfoContext(ctx, "rows loaded", "db", "mysql://app:"+secret+"@127.0.0.1:3306/app")
	azure.With("component", "replicate").WithGroup("cdc").InfoContext(ctx, "rows applied", "token", secret)
	azure.With("component", "publish").ErrorContext(ctx, "publish failed", "err", errors.New("dial https://u:"+secret+"@blob/x: refused"))
	aws.With("component", "load").Info("unrelated line")

	for _, stop := range stops {
		stop() // final flush
	}
	es, err := store.Search(context.Background(), logstore.Query{TraceID: id})
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, e := range es {
		path = append(path, e.Cloud+"/"+e.Component+"/"+e.Msg)
		if e.TraceID != id || e.Time.IsZero() {
			t.Fatalf("entry %+v", e)
		}
		if strings.Contains(string(e.Attrs), secret) || strings.Contains(e.Msg, secret) {
			t.Fatalf("secret reached the store: %s", e.Attrs)
		}
	}
	want := "azure/publish/publish failed|azure/replicate/rows applied|aws/load/rows loaded|aws/ingest/records accepted"
	if got := strings.Join(path, "|"); got != want {
		t.Fatalf("trace path:\n got %s\nwant %s", got, want)
	}
	if es[0].Level != "ERROR" || !strings.Contains(string(es[0].Attrs), "https://u:xxxxx@blob/x") {
		t.Fatalf("error entry %+v %s", es[0], es[0].Attrs)
	}
	if es, _ := store.Search(context.Background(), logstore.Query{Text: secret}); len(es) != 0 {
		t.Fatalf("secret is searchable: %d entries", len(es))
	}
	if es, _ := store.Search(context.Background(), logstore.Query{Text: "redacted", Cloud: "azure", Component: "replicate"}); len(es) != 1 {
		t.Fatalf("redacted token not found in azure/replicate")
	}
	if st := logger("aws").Stats(); st.Shipped != 3 || st.Dropped != 0 {
		t.Fatalf("aws shipper stats %+v", st)
	}
}

// TestShipperSurvivesStoreOutage logs while the store is down: logging never
// blocks, lines beyond the buffer are dropped and counted, and the buffered
// lines are delivered when the store comes back at the same address.
func TestShipperSurvivesStoreOutage(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the store is down: connections are refused

	sh := telemetry.NewShipper(telemetry.NewHTTPSink("http://"+addr, storeKey, nil), telemetry.ShipperOptions{
		BufferSize: 300, BatchSize: 100, FlushInterval: 10 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	run(t, sh)
	log := telemetry.NewLogger(telemetry.Options{Cloud: "aws", Sink: sh}).With("component", "ingest")

	start := time.Now()
	for i := range 5000 {
		log.Info("line", "i", i)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("logging 5000 lines with the store down took %v", d)
	}
	waitFor(t, 5*time.Second, "failed batches", func() bool { return sh.Stats().FailedBatches >= 2 })
	st := sh.Stats()
	if st.Buffered != 300 || st.Dropped != 4700 || st.Shipped != 0 {
		t.Fatalf("while down: %+v", st)
	}

	// The store comes back on the same address.
	store := openStore(t)
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s was taken meanwhile: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(store.Handler(storeKey))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	defer srv.Close()

	waitFor(t, 10*time.Second, "delivery after the outage", func() bool { return sh.Stats().Shipped == 300 })
	es, err := store.Search(context.Background(), logstore.Query{Cloud: "aws", Component: "ingest", Limit: 1000})
	if err != nil || len(es) != 300 {
		t.Fatalf("store has %d entries, %v", len(es), err)
	}
	// The first 300 lines were kept, in order.
	for i, e := range es {
		var m map[string]any
		json.Unmarshal(e.Attrs, &m)
		if m["i"] != float64(299-i) {
			t.Fatalf("entry %d is line %v", i, m["i"])
		}
	}
}

func TestHTTPSinkErrors(t *testing.T) {
	store := openStore(t)
	var posts atomic.Int32
	h := store.Handler(storeKey)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	// A wrong key is refused for good, and the key never shows.
	err := telemetry.NewHTTPSink(srv.URL, "wrong-key-123", nil).Write([][]byte{[]byte(`{"msg":"x"}`)})
	if !errors.Is(err, telemetry.ErrRejected) || strings.Contains(err.Error(), "wrong-key-123") {
		t.Fatalf("wrong key: %v", err)
	}
	// A password in the sink URL never shows in errors.
	err = telemetry.NewHTTPSink("http://u:pa55word@127.0.0.1:1", storeKey, nil).Write([][]byte{[]byte(`{}`)})
	if err == nil || errors.Is(err, telemetry.ErrRejected) || strings.Contains(err.Error(), "pa55word") {
		t.Fatalf("unreachable store: %v", err)
	}
	for _, bad := range []string{"ftp://x/", "http://[::1", ""} {
		err = telemetry.NewHTTPSink(bad, storeKey, nil).Write([][]byte{[]byte(`{}`)})
		if !errors.Is(err, telemetry.ErrRejected) {
			t.Fatalf("bad URL %q: %v", bad, err)
		}
	}
	// The path may be given in full; lines over the request size are split
	// into several requests.
	var lines [][]byte
	big := strings.Repeat("x", 900<<10)
	posts.Store(0)
	for i := range 5 {
		lines = append(lines, []byte(fmt.Sprintf(`{"msg":"m%d","pad":"%s"}`, i, big)))
	}
	if err := telemetry.NewHTTPSink(srv.URL+"/v1/logs", storeKey, nil).Write(lines); err != nil {
		t.Fatal(err)
	}
	if es, _ := store.Search(context.Background(), logstore.Query{Limit: 100}); len(es) != 5 || posts.Load() != 2 {
		t.Fatalf("store has %d entries after %d requests, want 5 after 2", len(es), posts.Load())
	}
}
