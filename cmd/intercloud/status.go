package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/topology"
)

type statusCmd struct{}

func (*statusCmd) flags(*flag.FlagSet) {}

// run asks every cloud's API for its status and the front door for the
// health of the clouds, and prints them as JSON lines.
func (*statusCmd) run(ctx context.Context, e *env, _ []string) error {
	cfg, key, err := e.load()
	if err != nil {
		return err
	}
	client, err := topology.ClientFor(cfg)
	if err != nil {
		return err
	}
	client.Timeout = 5 * time.Second
	get := func(name, url string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		out := map[string]any{"component": name, "url": url}
		resp, err := client.Do(req)
		if err != nil {
			out["reachable"] = false
			out["error"] = err.Error()
		} else {
			var body any
			if ae := apierr.Read(resp); ae != nil {
				out["error"] = ae.Error()
			} else if err := json.NewDecoder(resp.Body).Decode(&body); err == nil {
				out["reachable"] = true
				out["status"] = body
			}
			resp.Body.Close()
		}
		_ = json.NewEncoder(e.stdout).Encode(out)
	}
	scheme := topology.Scheme(cfg)
	get("frontdoor", fmt.Sprintf("%s://%s/healthz", scheme, cfg.FrontDoor.Listen))
	for _, name := range cfg.CloudNames() {
		get(name, fmt.Sprintf("%s://%s/v1/status", scheme, cfg.Clouds[name].API))
	}
	return nil
}
