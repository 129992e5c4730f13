package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/intercloud/intercloud/topology"
)

type upCmd struct {
	cloud     string
	logFormat string
}

func (c *upCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.logFormat, "log-format", "auto", "stderr's log lines: json, text (colored on a terminal), or auto (text on a terminal, json otherwise)")
	fs.StringVar(&c.cloud, "cloud", "", "run only these roles, comma-separated: a cloud's name (aws, azure) and/or global (front door, edge, logs); empty: all")
}

func (c *upCmd) run(ctx context.Context, e *env, _ []string) error {
	cfg, key, err := e.load()
	if err != nil {
		return err
	}
	var roles []string
	if c.cloud != "" {
		roles = strings.Split(c.cloud, ",")
	}
	term := isTerminal(e.stderr)
	var text bool
	switch c.logFormat {
	case "json":
	case "text":
		text = true
	case "auto", "":
		text = term
	default:
		return &exitError{code: 2, err: fmt.Errorf("--log-format %q is not one of auto, json, text", c.logFormat)}
	}
	// Every line on stderr is a log line, dependencies' included.
	topo, err := topology.Start(ctx, cfg, topology.Options{
		Roles: roles, APIKey: key, LogWriter: e.stderr, LogLevel: parseLevel(cfg.Logs.Level), DefaultLogger: true,
		LogText: text, LogColor: text && term,
	})
	if err != nil {
		return err
	}
	for _, ep := range topo.Endpoints() {
		fmt.Fprintf(e.stdout, "%s %s\n", ep.Name, ep.URL)
	}
	<-ctx.Done()
	slog.Info("shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return topo.Stop(sctx)
}
