package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/sqldb"
)

const deadUsage = `Usage:
  intercloud dead list   [--cloud NAME] [--json]             list the dead-lettered objects: cloud, key, records, age, error
  intercloud dead replay [--cloud NAME] (--all | KEY...)    load them again through the same idempotent load
`

// deadCmd lists and replays dead letters: raw objects the load function
// gave up on, kept under dead/ with their error.
type deadCmd struct {
	cloud  string
	all    bool
	asJSON bool
}

func (c *deadCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.cloud, "cloud", "", "only this cloud's dead letters (default: every cloud)")
	fs.BoolVar(&c.all, "all", false, "replay: every dead letter")
	fs.BoolVar(&c.asJSON, "json", false, "list: one JSON object per dead letter")
}

// deadStore is one cloud's loader over its store and database.
type deadStore struct {
	cloud  string
	loader *load.Loader
	close  func()
}

func (c *deadCmd) open(ctx context.Context, cfg *config.Config) ([]deadStore, error) {
	names := cfg.CloudNames()
	if c.cloud != "" {
		if _, ok := cfg.Clouds[c.cloud]; !ok {
			return nil, fmt.Errorf("no cloud %q (have %s)", c.cloud, strings.Join(names, ", "))
		}
		names = []string{c.cloud}
	}
	var out []deadStore
	closeAll := func() {
		for _, s := range out {
			s.close()
		}
	}
	for _, name := range names {
		cc := cfg.Clouds[name]
		b, err := objects.Open(ctx, cc.Objects, nil)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		db, err := sqldb.Open(ctx, cc.SQL, nil)
		if err != nil {
			b.Close()
			closeAll()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, deadStore{cloud: name, loader: load.New(b, db, cfg.Schema, nil), close: func() { db.Close(); b.Close() }})
	}
	return out, nil
}

func (c *deadCmd) run(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprint(e.stderr, deadUsage)
		return &exitError{code: 2, err: errors.New("dead: say list or replay")}
	}
	op, keys := args[0], args[1:]
	switch {
	case op == "list" && (len(keys) > 0 || c.all):
		return &exitError{code: 2, err: errors.New("dead list takes no keys")}
	case op == "replay" && c.all == (len(keys) > 0):
		fmt.Fprint(e.stderr, deadUsage)
		return &exitError{code: 2, err: errors.New("dead replay: give --all or the keys, not both")}
	}
	cfg, _, err := e.load()
	if err != nil {
		return err
	}
	stores, err := c.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range stores {
			s.close()
		}
	}()
	if op == "list" {
		return c.list(ctx, e, stores)
	}
	return c.replay(ctx, e, stores, keys)
}

func (c *deadCmd) list(ctx context.Context, e *env, stores []deadStore) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if !c.asJSON {
		fmt.Fprintln(tw, "CLOUD\tKEY\tRECORDS\tAGE\tERROR")
	}
	now := time.Now()
	for _, s := range stores {
		dead, err := s.loader.DeadLetters(ctx, true)
		if err != nil {
			return fmt.Errorf("%s: %w", s.cloud, err)
		}
		for _, d := range dead {
			if c.asJSON {
				_ = json.NewEncoder(e.stdout).Encode(struct {
					Cloud string `json:"cloud"`
					load.Dead
					AgeSeconds float64 `json:"age_seconds"`
				}{s.cloud, d, now.Sub(d.At).Seconds()})
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.cloud, d.Key, d.Records, age(now.Sub(d.At)), strings.Join(strings.Fields(d.Error), " "))
		}
	}
	if !c.asJSON {
		return tw.Flush()
	}
	return nil
}

func (c *deadCmd) replay(ctx context.Context, e *env, stores []deadStore, keys []string) error {
	var failed int
	replayed := map[string]bool{}
	for _, s := range stores {
		if err := s.loader.Prepare(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.cloud, err)
		}
		var todo []string
		if c.all {
			dead, err := s.loader.DeadLetters(ctx, false)
			if err != nil {
				return fmt.Errorf("%s: %w", s.cloud, err)
			}
			for _, d := range dead {
				todo = append(todo, d.Key)
			}
		} else {
			// A key is replayed on the cloud whose store holds it.
			for _, k := range keys {
				k = strings.TrimPrefix(k, load.DeadPrefix)
				if ok, err := s.loader.IsDead(ctx, k); err != nil {
					return fmt.Errorf("%s: %w", s.cloud, err)
				} else if ok {
					todo = append(todo, k)
				}
			}
		}
		for _, k := range todo {
			res, err := s.loader.Replay(ctx, k)
			replayed[k] = true
			if err != nil {
				failed++
				fmt.Fprintf(e.stdout, "%s\t%s\tfailed: %v\n", s.cloud, k, err)
				continue
			}
			fmt.Fprintf(e.stdout, "%s\t%s\tloaded: %d records, %d new\n", s.cloud, k, res.Records, res.Inserted)
		}
	}
	for _, k := range keys {
		if !replayed[strings.TrimPrefix(k, load.DeadPrefix)] {
			failed++
			fmt.Fprintf(e.stdout, "-\t%s\tfailed: no such dead letter\n", k)
		}
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d dead letters not replayed", failed)}
	}
	return nil
}

// age renders a duration for a table: 45s, 12m, 3h, 5d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
