package telemetry_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/intercloud/intercloud/logstore"
	"github.com/intercloud/intercloud/telemetry"
)

// storeServer serves a log store on a fixed address and can be stopped
// and started again, as an outage of the central store.
type storeServer struct {
	t     *testing.T
	addr  string
	store *logstore.Store
	mu    sync.Mutex
	srv   *http.Server
}

func (s *storeServer) start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ { // the port may linger a moment after a stop
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: s.store.Handler(storeKey)}
	go func() { _ = srv.Serve(ln) }()
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

func (s *storeServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.srv.Close()
}

// TestDiskBufferOutageAndRestart ships numbered lines through a disk
// buffer while the central store is stopped mid-stream and the shipping
// process restarts on the same directory: the store ends with every line
// exactly once, counted with its own SQL.
func TestDiskBufferOutageAndRestart(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "logs.db")
	st, err := logstore.Open(context.Background(), "sqlite://"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := &storeServer{t: t, addr: "127.0.0.1:0", store: st}
	srv.start()
	defer srv.stop()
	dir := t.TempDir()
	opts := telemetry.ShipperOptions{Dir: dir, BatchSize: 50, FlushInterval: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	newShipper := func() *telemetry.Shipper {
		sh, err := telemetry.NewDiskShipper(telemetry.NewHTTPSink("http://"+srv.addr+"/v1/logs", storeKey, nil), opts)
		if err != nil {
			t.Fatal(err)
		}
		return sh
	}
	const total = 3000
	line := func(i int) []byte {
		return fmt.Appendf(nil, `{"time":"2026-11-30T10:00:00Z","level":"INFO","msg":"line %d","cloud":"aws","component":"test","n":%d}`, i, i)
	}
	sh := newShipper()
	stop := run(t, sh)
	for i := 0; i < total; i++ {
		_ = sh.Write([][]byte{line(i)})
		switch i {
		case 500: // the store goes away mid-stream
			srv.stop()
		case 1500: // the shipping process stops (its buffer stays on disk) and starts again
			stop()
			if err := sh.Close(); err != nil {
				t.Fatal(err)
			}
			sh = newShipper()
			if sh.Stats().Buffered == 0 {
				t.Fatal("the restarted shipper found nothing on disk")
			}
			stop = run(t, sh)
		case 2000: // the store comes back
			srv.start()
		}
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, distinct int
	waitFor(t, 60*time.Second, "every line in the store", func() bool {
		_ = db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT msg) FROM logs WHERE component = 'test'`).Scan(&rows, &distinct)
		return rows >= total
	})
	time.Sleep(300 * time.Millisecond) // anything sent twice would arrive by now
	_ = db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT msg) FROM logs WHERE component = 'test'`).Scan(&rows, &distinct)
	if rows != total || distinct != total {
		t.Fatalf("store has %d lines, %d distinct; want %d once each", rows, distinct, total)
	}
	if s := sh.Stats(); s.Dropped != 0 || s.Buffered != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestDiskBufferBound: past MaxBytes new lines are dropped and counted;
// what was kept is delivered once the sink answers.
func TestDiskBufferBound(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	down := true
	sink := telemetry.SinkFunc(func(entries [][]byte) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return fmt.Errorf("down")
		}
		got = append(got, entries...)
		return nil
	})
	sh, err := telemetry.NewDiskShipper(sink, telemetry.ShipperOptions{Dir: t.TempDir(), MaxBytes: 1000, FlushInterval: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	run(t, sh)
	line := func(i int) []byte { return fmt.Appendf(nil, `{"n":%03d,"pad":"0123456789012345678901234"}`, i) }
	kept := 1000 / (len(line(0)) + 1) // each line and its newline
	for i := 0; i < 100; i++ {
		_ = sh.Write([][]byte{line(i)})
	}
	if s := sh.Stats(); s.Buffered != kept || s.Dropped != int64(100-kept) {
		t.Fatalf("stats %+v, want %d kept (1000 bytes) and the rest dropped", s, kept)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	waitFor(t, 10*time.Second, "the kept lines", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == kept
	})
	for i, g := range got {
		if string(g) != string(line(i)) {
			t.Fatalf("line %d is %s: want the oldest first", i, g)
		}
	}
}
