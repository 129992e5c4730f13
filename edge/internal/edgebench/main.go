// Command edgebench is the side-by-side benchmark's helper (see
// scripts/bench-edge.sh): "origin" serves the benchmark's objects, "edge"
// runs the edge in front of an origin, as `intercloud up` serves it: behind
// the limits of package serve and with its request metrics.
//
//	edgebench origin -listen 127.0.0.1:9001
//	edgebench edge -listen 127.0.0.1:9002 -origin http://127.0.0.1:9001 [-disk DIR] [-pprof 127.0.0.1:6060] [-fast=false]
//
// The origin serves /1k/<n> (1 KiB) and /1m/<n> (1 MiB), fresh for an
// hour, and /reval/<n> (1 KiB) fresh for one second, all with ETag and
// Last-Modified and answering conditional requests with 304.
// GET /stats reports how many requests (and conditional ones) it served.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // -pprof serves /debug/pprof
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/intercloud/intercloud/edge"
	"github.com/intercloud/intercloud/internal/serve"
	"github.com/intercloud/intercloud/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "edgebench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: edgebench origin|edge [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	originURL := fs.String("origin", "", "edge: the origin's URL")
	disk := fs.String("disk", "", "edge: disk tier directory (empty: none)")
	pprofAddr := fs.String("pprof", "", "edge: serve /debug/pprof on this address")
	fast := fs.Bool("fast", true, "edge: answer memory-tier hits on the fast path (else net/http only)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "origin":
		srv := &http.Server{Addr: *listen, Handler: newOrigin(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			<-ctx.Done()
			_ = srv.Shutdown(context.Background())
		}()
		if err := srv.ListenAndServe(); err != http.ErrServerClosed {
			return err
		}
		return nil
	case "edge":
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		e, err := edge.New(edge.Config{
			Routes:  []edge.Route{{Prefix: "/", Origins: []string{*originURL}}},
			DiskDir: *disk, Logger: log,
		})
		if err != nil {
			return err
		}
		defer e.Close()
		duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edge_request_duration_seconds",
			Help: "Latency of requests to the edge, by status code.", Buckets: prometheus.DefBuckets}, []string{"code"})
		bytes := prometheus.NewCounter(prometheus.CounterOpts{Name: "edge_response_bytes_total", Help: "Body bytes the edge sent to clients."})
		cfg := serve.Config{Name: "edge", Addr: *listen, Handler: telemetry.InstrumentHandler(e, duration, bytes), Logger: log}
		if *fast {
			cfg.Fast = telemetry.InstrumentFast(e, duration, bytes)
		}
		srv, err := serve.Listen(cfg)
		if err != nil {
			return err
		}
		if *pprofAddr != "" {
			go func() { _ = http.ListenAndServe(*pprofAddr, http.DefaultServeMux) }()
		}
		<-ctx.Done()
		return srv.Shutdown(context.Background())
	default:
		return fmt.Errorf("unknown mode %q", args[0])
	}
}

type origin struct {
	small, large []byte
	modified     time.Time
	requests     atomic.Int64
	conditional  atomic.Int64
}

func newOrigin() *origin {
	return &origin{
		small:    bytes.Repeat([]byte("a"), 1<<10),
		large:    bytes.Repeat([]byte("b"), 1<<20),
		modified: time.Now().Add(-time.Hour).UTC().Truncate(time.Second),
	}
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/stats" {
		_ = json.NewEncoder(w).Encode(map[string]int64{"requests": o.requests.Load(), "conditional": o.conditional.Load()})
		return
	}
	o.requests.Add(1)
	var body []byte
	maxAge := 3600
	switch {
	case strings.HasPrefix(r.URL.Path, "/1k/"):
		body = o.small
	case strings.HasPrefix(r.URL.Path, "/1m/"):
		body = o.large
	case strings.HasPrefix(r.URL.Path, "/reval/"):
		body, maxAge = o.small, 1
	default:
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", maxAge))
	h.Set("ETag", `"`+r.URL.Path+`"`)
	h.Set("Content-Type", "application/octet-stream")
	if r.Header.Get("If-None-Match") != "" {
		o.conditional.Add(1)
	}
	http.ServeContent(w, r, "", o.modified, bytes.NewReader(body))
}
