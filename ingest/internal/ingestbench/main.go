// Command ingestbench is the helper of the ingest floor benchmark (see
// scripts/bench-ingest.sh): "floor" is the trivial durable server the
// ingest API is measured against, "api" is the ingest API alone on the
// file store (durable: every object fsynced with its directory before the
// 202), "body" writes a request body of N generated records.
//
//	ingestbench floor -listen 127.0.0.1:9001 -dir DIR
//	ingestbench api -listen 127.0.0.1:9002 -dir DIR [-pprof 127.0.0.1:6060] [-writers N]
//	ingestbench body -records 100 > body.ndjson
//
// The floor appends each request body to one file and fsyncs it before
// answering 202 (one writer at a time, as the simplest correct server
// would), so its throughput is what the disk gives one fsync per request.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // -pprof serves /debug/pprof
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/ingest"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
)

// Key is the API key the "api" server takes.
const Key = "bench"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: ingestbench floor|api|body [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	dir := fs.String("dir", "", "where to write")
	records := fs.Int("records", 100, "body: records per body")
	pprofAddr := fs.String("pprof", "", "api: serve /debug/pprof on this address")
	writers := fs.Int("writers", 0, "api: objects written at once (0: the ingest default)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var h http.Handler
	switch args[0] {
	case "body":
		now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
		metrics := []string{"cpu", "mem", "disk", "net", "temp"}
		for i := range *records {
			fmt.Printf(`{"device":"dev-%03d","metric":%q,"value":%d.%02d,"ts":%q}`+"\n",
				i%200, metrics[i%len(metrics)], i*7%10000, i%100, now.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
		}
		return nil
	case "floor":
		f, err := os.OpenFile(filepath.Join(*dir, "floor.ndjson"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		var mu sync.Mutex
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err == nil {
				mu.Lock()
				if _, err = f.Write(body); err == nil {
					err = f.Sync()
				}
				mu.Unlock()
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"ok":true}`+"\n")
		})
	case "api":
		b, err := objects.Open(context.Background(), "file://"+*dir, nil)
		if err != nil {
			return err
		}
		defer b.Close()
		api, err := ingest.New(ingest.Config{
			Cloud: "aws", Bucket: b, Schema: config.Default("").Schema, APIKey: Key, Writers: *writers,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err != nil {
			return err
		}
		defer api.Close(context.Background())
		h = api
		if *pprofAddr != "" {
			go func() { _ = http.ListenAndServe(*pprofAddr, http.DefaultServeMux) }()
		}
	default:
		return fmt.Errorf("unknown mode %q (floor, api or body)", args[0])
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
