package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/topology"
)

type validateCmd struct {
	chunk  int
	resync bool
	asJSON bool
}

func (c *validateCmd) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.chunk, "chunk", 10000, "rows per checksummed key range")
	fs.BoolVar(&c.resync, "resync", false, "copy the differing ranges from the source again")
	fs.BoolVar(&c.asJSON, "json", false, "print the report as JSON")
}

func (c *validateCmd) run(ctx context.Context, e *env, _ []string) error {
	cfg, _, err := e.load()
	if err != nil {
		return err
	}
	r := cfg.Replication
	// Only the tables the mapping selects are compared, through the mapping
	// (filtered source rows, renamed and excluded columns).
	m, err := topology.Mapping(r)
	if err != nil {
		return err
	}
	src, err := sqldb.Open(ctx, cfg.Clouds[r.From].SQL, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := sqldb.Open(ctx, cfg.Clouds[r.To].SQL, nil)
	if err != nil {
		return err
	}
	defer dst.Close()
	rep, err := replicate.ValidateMapping(ctx, src, dst, m, c.chunk)
	if err != nil {
		return err
	}
	if c.resync && !rep.OK() {
		if err := replicate.ResyncMapping(ctx, src, dst, m, rep); err != nil {
			return err
		}
		fmt.Fprintln(e.stderr, "resynced the differing ranges; validating again")
		if rep, err = replicate.ValidateMapping(ctx, src, dst, m, c.chunk); err != nil {
			return err
		}
	}
	if c.asJSON {
		_ = json.NewEncoder(e.stdout).Encode(rep)
	} else {
		fmt.Fprintf(e.stdout, "%s → %s\n%s", r.From, r.To, rep.String())
	}
	if !rep.OK() {
		return &exitError{code: 1, err: errors.New("the databases differ")}
	}
	return nil
}
