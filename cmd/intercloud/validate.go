package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/serve"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/telemetry"
	"github.com/intercloud/intercloud/topology"
)

type validateCmd struct {
	chunk      int
	rows       int
	resync     bool
	asJSON     bool
	continuous bool
	every      time.Duration
	recheck    time.Duration
	listen     string
}

func (c *validateCmd) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.chunk, "chunk", 10000, "rows per checksummed key range")
	fs.IntVar(&c.rows, "rows", replicate.DefaultMaxRowDiffs, "differing rows listed per table (every one is counted)")
	fs.BoolVar(&c.resync, "resync", false, "repair exactly the differing rows from the source")
	fs.BoolVar(&c.asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&c.continuous, "continuous", false, "validate again every --every until interrupted; a row counts when it still differs --recheck later")
	fs.DurationVar(&c.every, "every", time.Minute, "time between rounds with --continuous")
	fs.DurationVar(&c.recheck, "recheck", replicate.DefaultValidateRecheck, "wait before the second look at differing rows with --continuous")
	fs.StringVar(&c.listen, "listen", "", "with --continuous, serve GET /metrics (intercloud_validation_differing_rows) on this address")
}

func (c *validateCmd) run(ctx context.Context, e *env, _ []string) error {
	cfg, _, err := e.load()
	if err != nil {
		return err
	}
	r := cfg.Replication
	// Only the tables the mapping selects are compared, through the mapping
	// (filtered source rows, renamed and excluded columns).
	m, err := topology.Mapping(cfg)
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
	opts := replicate.ValidateOptions{Chunk: c.chunk, MaxRows: c.rows}
	if c.continuous {
		return c.runContinuous(ctx, e, r.From+"-to-"+r.To, &replicate.Validator{Source: src, Target: dst, Mapping: m, Options: opts})
	}
	rep, err := replicate.ValidateMappingWith(ctx, src, dst, m, opts)
	if err != nil {
		return err
	}
	if c.resync && !rep.OK() {
		if err := replicate.ResyncMappingMode(ctx, src, dst, m, rep, topology.SourceMode(cfg, dst)); err != nil {
			return err
		}
		var n int64
		for _, t := range rep.Tables {
			n += t.DifferingRows
		}
		fmt.Fprintf(e.stderr, "resynced %d differing rows; validating again\n", n)
		if rep, err = replicate.ValidateMappingWith(ctx, src, dst, m, opts); err != nil {
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

// runContinuous validates every c.every until ctx ends, printing each
// round, and serves the differing rows as metrics when asked to.
func (c *validateCmd) runContinuous(ctx context.Context, e *env, name string, v *replicate.Validator) error {
	if c.every <= 0 || c.recheck < 0 {
		return &exitError{code: 2, err: errors.New("validate: --every must be positive and --recheck not negative")}
	}
	v.Name = name
	var mu sync.Mutex
	var last replicate.ValidationStatus
	if c.listen != "" {
		ln, err := net.Listen("tcp", c.listen)
		if err != nil {
			return fmt.Errorf("validate: --listen: %w", err)
		}
		reg := telemetry.NewRegistry()
		reg.MustRegister(telemetry.SampleCollector(func() []telemetry.Sample {
			mu.Lock()
			st := last
			mu.Unlock()
			var ms []telemetry.Sample
			for table, n := range st.DifferingRows {
				ms = append(ms, telemetry.Sample{Name: "validation_differing_rows", Type: prometheus.GaugeValue, Value: float64(n),
					Help:   "Rows that differ between source and target in the last round (in both of its looks).",
					Labels: map[string]string{"stream": name, "table": table}})
			}
			return append(ms, telemetry.Sample{Name: "validation_rounds_total", Type: prometheus.CounterValue, Value: float64(st.Rounds),
				Help: "Rounds of continuous validation.", Labels: map[string]string{"stream": name}})
		}))
		srv, sln := serve.HTTPServer(telemetry.MetricsHandler(reg), serve.Limits{}, nil, ln)
		go func() { _ = srv.Serve(sln) }()
		defer srv.Close()
		fmt.Fprintf(e.stderr, "metrics on http://%s/metrics\n", ln.Addr())
	}
	for round := 1; ; round++ {
		st, err := v.Round(ctx, c.recheck)
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now().UTC().Format(time.RFC3339)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s round %d failed: %v\n", now, round, err)
		} else {
			st.Rounds = round
			mu.Lock()
			last = st
			mu.Unlock()
			tables := make([]string, 0, len(st.DifferingRows))
			for t := range st.DifferingRows {
				tables = append(tables, t)
			}
			slices.Sort(tables)
			for _, t := range tables {
				fmt.Fprintf(e.stdout, "%s %s: %d differing rows\n", now, t, st.DifferingRows[t])
				for _, d := range st.Rows[t] {
					fmt.Fprintf(e.stdout, "    %s\n", d)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.every):
		}
	}
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
