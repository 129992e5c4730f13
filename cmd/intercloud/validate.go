package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
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
	// Every acknowledged record (every record of every raw object) is in
	// both databases.
	comp, err := c.complete(ctx, cfg, map[string]*sqldb.DB{r.From: src, r.To: dst})
	if err != nil {
		return err
	}
	if c.asJSON {
		_ = json.NewEncoder(e.stdout).Encode(struct {
			replicate.Report
			Completeness load.Completeness `json:"completeness"`
		}{rep, comp})
	} else {
		fmt.Fprintf(e.stdout, "%s → %s\n%s%s", r.From, r.To, rep.String(), comp.String())
	}
	switch {
	case !rep.OK():
		return &exitError{code: 1, err: errors.New("the databases differ")}
	case !comp.OK():
		return &exitError{code: 1, err: errors.New("acknowledged records are missing (see intercloud dead list, and the reconciler's logs)")}
	}
	return nil
}

// complete checks every cloud's raw objects against both databases.
func (c *validateCmd) complete(ctx context.Context, cfg *config.Config, dbs map[string]*sqldb.DB) (load.Completeness, error) {
	var clouds []load.Cloud
	for _, name := range cfg.CloudNames() {
		db := dbs[name]
		if db == nil {
			continue // a cloud outside replication
		}
		b, err := objects.Open(ctx, cfg.Clouds[name].Objects, nil)
		if err != nil {
			return load.Completeness{}, fmt.Errorf("%s: %w", name, err)
		}
		defer b.Close()
		clouds = append(clouds, load.Cloud{Name: name, Loader: load.New(b, db, cfg.Schema, nil)})
	}
	return load.CheckComplete(ctx, clouds)
}
