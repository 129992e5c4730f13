package main

import (
	"context"
	"encoding/json"
	"flag"
	"time"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/topology"
)

type demoCmd struct {
	records     int
	batch       int
	concurrency int
	timeout     time.Duration
}

func (c *demoCmd) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.records, "records", 1000, "records to send through the front door")
	fs.IntVar(&c.batch, "batch", 100, "records per request")
	fs.IntVar(&c.concurrency, "concurrency", 8, "requests in flight")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "how long to wait for every record to arrive everywhere")
}

func (c *demoCmd) run(ctx context.Context, e *env, _ []string) error {
	cfg, key, err := e.load()
	if err != nil {
		return err
	}
	// The demo runs in one process: every endpoint on a free port, so it
	// never collides with a running `intercloud up`.
	cfg.ListenOnFreePorts()
	lf, err := logFile(cfg)
	if err != nil {
		return err
	}
	defer lf.Close()
	sum, runErr := demo.Run(ctx, cfg, demo.Options{
		Records: c.records, BatchSize: c.batch, Concurrency: c.concurrency, Timeout: c.timeout,
		Progress: e.stderr, Live: isTerminal(e.stderr),
		Topology: topology.Options{APIKey: key, LogWriter: lf, LogLevel: parseLevel(cfg.Logs.Level), DefaultLogger: true, Alerts: e.stderr},
	})
	if sum != nil {
		_ = json.NewEncoder(e.stdout).Encode(sum)
	}
	if runErr != nil {
		return &exitError{code: 1, err: runErr}
	}
	return nil
}
