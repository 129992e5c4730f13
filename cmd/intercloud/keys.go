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

	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/topology"
)

const keysUsage = `Usage:
  intercloud keys add --scopes SCOPE[,SCOPE...] [--name TEXT]   make a key (printed once) with scopes: ingest, read, purge, logs:read, logs:write
  intercloud keys list [--json]                                 list the keys: id, name, scopes, created (never the key)
  intercloud keys revoke ID                                     remove a key; a running process refuses it within a second
`

// keysCmd manages the scoped keys of the keys file (auth.keys).
type keysCmd struct {
	scopes string
	name   string
	asJSON bool
}

func (c *keysCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.scopes, "scopes", "", "add: comma-separated scopes (ingest, read, purge, logs:read, logs:write)")
	fs.StringVar(&c.name, "name", "", "add: a note naming who holds the key")
	fs.BoolVar(&c.asJSON, "json", false, "list: one JSON object per key")
}

func (c *keysCmd) run(_ context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, keysUsage)
		return &exitError{code: 2, err: errors.New("keys: say add, list or revoke")}
	}
	cfg, err := config.Load(e.configPath, e.dataDir)
	if err != nil {
		return err
	}
	if err := topology.CheckDataDir(cfg.DataDir); err != nil {
		return err
	}
	path := cfg.Auth.Keys
	switch args[0] {
	case "add":
		if len(args) != 1 {
			return &exitError{code: 2, err: errors.New("keys add takes no arguments, only --scopes and --name")}
		}
		scopes, err := auth.ParseScopes(c.scopes)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		secret, k, err := auth.Add(path, c.name, scopes, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "added key %s (%s) to %s; it is shown only now:\n", k.ID, joinScopes(k.Scopes), path)
		fmt.Fprintln(e.stdout, secret)
		return nil
	case "list":
		keys, err := auth.ReadFile(path)
		if err != nil {
			return err
		}
		if c.asJSON {
			enc := json.NewEncoder(e.stdout)
			for _, k := range keys {
				k.SHA256 = ""
				if err := enc.Encode(struct {
					ID      string       `json:"id"`
					Name    string       `json:"name"`
					Scopes  []auth.Scope `json:"scopes"`
					Created time.Time    `json:"created"`
				}{k.ID, k.Name, k.Scopes, k.Created}); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, joinScopes(k.Scopes), k.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	case "revoke":
		if len(args) != 2 {
			return &exitError{code: 2, err: errors.New("keys revoke takes one key id (see keys list)")}
		}
		k, err := auth.Revoke(path, args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "revoked key %s (%s)\n", k.ID, joinScopes(k.Scopes))
		return nil
	}
	fmt.Fprint(e.stderr, keysUsage)
	return &exitError{code: 2, err: fmt.Errorf("keys: unknown action %q (say add, list or revoke)", args[0])}
}

func joinScopes(ss []auth.Scope) string {
	s := make([]string, len(ss))
	for i, x := range ss {
		s[i] = string(x)
	}
	return strings.Join(s, ",")
}
