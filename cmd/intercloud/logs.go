package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/logstore"
	"github.com/intercloud/intercloud/topology"

	"encoding/json"
)

type logsCmd struct {
	limit  int
	asJSON bool
}

func (c *logsCmd) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.limit, "limit", 100, "entries to show, newest first")
	fs.BoolVar(&c.asJSON, "json", false, "print entries as JSON lines")
}

func (c *logsCmd) run(ctx context.Context, e *env, args []string) error {
	cfg, key, err := e.load()
	if err != nil {
		return err
	}
	query := strings.Join(args, " ")
	q, err := logstore.ParseQuery(query)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	q.Limit = c.limit
	entries, err := searchHTTP(ctx, cfg, topology.Scheme(cfg)+"://"+cfg.Logs.Listen, key, query, c.limit)
	var opErr *net.OpError
	if errors.As(err, &opErr) || errors.Is(err, errNoClient) {
		// No log service runs: read the store directly.
		st, oerr := logstore.Open(ctx, cfg.Logs.Store)
		if oerr != nil {
			return oerr
		}
		defer st.Close()
		entries, err = st.Search(ctx, q)
	}
	if err != nil {
		return err
	}
	for _, en := range entries {
		if c.asJSON {
			_ = json.NewEncoder(e.stdout).Encode(en)
			continue
		}
		fmt.Fprintf(e.stdout, "%s %-5s %-6s %-10s %s %s\n", en.Time.UTC().Format(time.RFC3339Nano), en.Level, orDash(en.Cloud), orDash(en.Component), en.Msg, en.TraceID)
	}
	if len(entries) == 0 {
		fmt.Fprintln(e.stderr, "no entries")
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errNoClient: no certificate to reach a log service with (none ran).
var errNoClient = errors.New("logs: no client certificate")

func searchHTTP(ctx context.Context, cfg *config.Config, base, key, query string, limit int) ([]logstore.Entry, error) {
	client, err := topology.ClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoClient, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/logs?q=%s&limit=%d", base, url.QueryEscape(query), limit), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if e := apierr.Read(resp); e != nil {
		return nil, e
	}
	var out struct {
		Entries []logstore.Entry `json:"entries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	return out.Entries, nil
}
