package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/topology"
)

type benchCmd struct {
	target   string
	start    bool
	clients  int
	batch    int
	rate     float64
	duration time.Duration
	interval time.Duration
	drain    time.Duration
	pids     string
}

func (c *benchCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.target, "target", "frontdoor", "where to send: frontdoor, a cloud's name (its API), or a URL")
	fs.BoolVar(&c.start, "start", false, "start the topology in this process (all endpoints on free ports) instead of driving a running one")
	fs.IntVar(&c.clients, "clients", 8, "concurrent clients")
	fs.IntVar(&c.batch, "batch", 100, "records per request")
	fs.Float64Var(&c.rate, "rate", 0, "records per second to send; 0: as fast as the API answers")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to send")
	fs.DurationVar(&c.interval, "interval", time.Second, "how often to print a line of figures")
	fs.DurationVar(&c.drain, "drain", 30*time.Second, "how long to wait after sending for the results to count every acknowledged record")
	fs.StringVar(&c.pids, "pid", "", "comma-separated process ids whose CPU and memory to report (default: this process)")
}

// run drives a topology's front door (or one cloud's API) and prints a
// line of figures per interval and one JSON line at the end.
func (c *benchCmd) run(ctx context.Context, e *env, _ []string) error {
	cfg, key, err := e.load()
	if err != nil {
		return err
	}
	opts := demo.BenchOptions{Key: key, Clients: c.clients, BatchSize: c.batch, Rate: c.rate, Duration: c.duration,
		Interval: c.interval, Drain: c.drain, Out: e.stdout, Warn: e.stderr}
	if c.clients < 0 || c.batch < 0 || c.rate < 0 || c.duration < 0 || c.interval < 0 {
		return &exitError{code: 2, err: errors.New("bench: --clients, --batch, --rate, --duration and --interval must not be negative")}
	}
	for _, p := range strings.Split(c.pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return &exitError{code: 2, err: fmt.Errorf("bench: --pid: %q is not a process id", p)}
		}
		opts.PIDs = append(opts.PIDs, pid)
	}
	scheme := topology.Scheme(cfg)
	urls := map[string]string{"frontdoor": scheme + "://" + cfg.FrontDoor.Listen}
	for name, cl := range cfg.Clouds {
		urls[name] = scheme + "://" + cl.API
	}
	edge := scheme + "://" + cfg.Edge.Listen
	if !c.start {
		if opts.Client, err = topology.ClientFor(cfg); err != nil {
			return err
		}
	}
	if c.start {
		cfg.ListenOnFreePorts()
		lf, err := logFile(cfg)
		if err != nil {
			return err
		}
		defer lf.Close()
		topo, err := topology.Start(ctx, cfg, topology.Options{APIKey: key, LogWriter: lf, LogLevel: parseLevel(cfg.Logs.Level)})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = topo.Stop(sctx)
		}()
		opts.Client = topo.Client()
		urls["frontdoor"] = topo.URL("frontdoor")
		for name := range cfg.Clouds {
			urls[name] = topo.URL(name + "-api")
		}
		edge = topo.URL("edge")
	}
	opts.URL = urls[c.target]
	if opts.URL == "" {
		if !strings.HasPrefix(c.target, "http://") && !strings.HasPrefix(c.target, "https://") {
			return &exitError{code: 2, err: fmt.Errorf("bench: --target %q is not frontdoor, a cloud (%s) or a URL", c.target, strings.Join(cfg.CloudNames(), ", "))}
		}
		opts.URL = strings.TrimSuffix(c.target, "/")
	}
	opts.EdgeURL = edge
	opts.Clouds = map[string]string{}
	for _, name := range cfg.CloudNames() {
		opts.Clouds[name] = urls[name]
	}
	res, err := demo.Bench(ctx, opts)
	if res != nil {
		fmt.Fprintln(e.stdout, res.String())
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return &exitError{code: 1, err: err}
	}
	return nil
}
