package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/ingest"
	"github.com/intercloud/intercloud/topology"
)

type statusCmd struct {
	json     bool
	watch    bool
	interval time.Duration
}

func (c *statusCmd) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print one JSON object (snake_case) instead of the table")
	fs.BoolVar(&c.watch, "watch", false, "refresh until interrupted, redrawing in place")
	fs.DurationVar(&c.interval, "interval", 2*time.Second, "how often --watch refreshes")
}

// Report is what `intercloud status --json` prints: every cloud's status,
// the global parts' and what could not be reached.
type Report struct {
	Time   time.Time              `json:"time"`
	Clouds []topology.CloudStatus `json:"clouds"`
	Global *topology.GlobalStatus `json:"global,omitempty"`
	// Unreachable lists the endpoints that did not answer.
	Unreachable []Unreachable `json:"unreachable,omitempty"`
}

// Unreachable is an endpoint that did not answer.
type Unreachable struct {
	Component string `json:"component"`
	URL       string `json:"url"`
	Error     string `json:"error"`
}

// run asks every cloud's API and the console for their status and prints
// them as a table (or JSON), once or every --interval.
func (c *statusCmd) run(ctx context.Context, e *env, _ []string) error {
	cfg, key, err := e.load()
	if err != nil {
		return err
	}
	if c.interval <= 0 {
		return &exitError{code: 2, err: errors.New("--interval must be positive")}
	}
	client, err := topology.ClientFor(cfg)
	if err != nil {
		return err
	}
	client.Timeout = 5 * time.Second
	color := isTerminal(e.stdout)
	for {
		rep := collect(ctx, client, cfg, key)
		var buf bytes.Buffer
		if c.json {
			_ = json.NewEncoder(&buf).Encode(rep)
		} else {
			writeTable(&buf, rep, color)
		}
		if c.watch && !c.json {
			// Home, the report, then clear what is left of the last one.
			fmt.Fprint(e.stdout, "\x1b[H\x1b[2J")
		}
		_, _ = e.stdout.Write(buf.Bytes())
		if !c.watch {
			if len(rep.Unreachable) > 0 && len(rep.Clouds) == 0 && rep.Global == nil {
				return &exitError{code: 1}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.interval):
		}
	}
}

// collect asks each cloud's API and the console for their status.
func collect(ctx context.Context, client *http.Client, cfg *config.Config, key string) Report {
	scheme := topology.Scheme(cfg)
	rep := Report{Time: time.Now().UTC()}
	get := func(component, url string, v any) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err == nil {
			defer resp.Body.Close()
			if ae := apierr.Read(resp); ae != nil {
				err = ae
			} else {
				err = json.NewDecoder(resp.Body).Decode(v)
			}
		}
		if err != nil {
			rep.Unreachable = append(rep.Unreachable, Unreachable{Component: component, URL: url, Error: err.Error()})
			return false
		}
		return true
	}
	for _, name := range cfg.CloudNames() {
		var st topology.CloudStatus
		if get(name, fmt.Sprintf("%s://%s/v1/status", scheme, cfg.Clouds[name].API), &st) {
			rep.Clouds = append(rep.Clouds, st)
		}
	}
	var gs topology.GlobalStatus
	if get("console", fmt.Sprintf("%s://%s/v1/status", scheme, cfg.Console.Listen), &gs) {
		rep.Global = &gs
	}
	return rep
}

// ANSI colors for a terminal.
const (
	red   = "\x1b[31m"
	green = "\x1b[32m"
	bold  = "\x1b[1m"
	reset = "\x1b[0m"
)

// writeTable writes the report for a person: per cloud its health, ingest
// rate, load backlog and dead letters; every stream's phase, lag and rate;
// publish; the edge's hit ratio; the front door; then every problem (in
// red on a terminal).
func writeTable(w io.Writer, rep Report, color bool) {
	paint := func(c, s string) string {
		if !color {
			return s
		}
		return c + s + reset
	}
	health := func(s string) string {
		switch s {
		case ingest.HealthOK:
			return paint(green, s)
		case "":
			return "?"
		}
		return paint(red, s)
	}
	var problems []string
	problem := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	fmt.Fprintf(w, "%s  %s\n\n", paint(bold, "intercloud status"), rep.Time.Local().Format("2006-01-02 15:04:05"))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLOUD\tHEALTH\tINGEST/s\tACKED\tLOAD BACKLOG\tFAILING\tDEAD LETTERS\t")
	for _, c := range rep.Clouds {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%d\t%d\t%d\t%d\t\n", c.Cloud, health(c.Health.Status), c.Ingest.RecordsPerSecond,
			c.Ingest.RecordsAcked, c.Load.Backlog, c.Load.Failing, c.DeadLetters)
		for _, p := range c.Health.Problems {
			problem("%s: %s", c.Cloud, p)
		}
	}
	for _, u := range rep.Unreachable {
		if u.Component != "console" {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\t\n", u.Component, paint(red, "unreachable"))
		}
		problem("%s unreachable at %s: %s", u.Component, u.URL, u.Error)
	}
	_ = tw.Flush()

	var streams []topology.StreamStatus
	into := map[string]string{}
	for _, c := range rep.Clouds {
		for _, s := range c.Replication {
			streams = append(streams, s)
			into[s.Name] = c.Cloud
		}
	}
	if len(streams) > 0 {
		sort.Slice(streams, func(i, j int) bool { return streams[i].Name < streams[j].Name })
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tPHASE\tSTATE\tLAG\tROWS/s\tROWS\tPENDING\t")
		for _, s := range streams {
			state := s.State
			if !s.ReconnectingSince.IsZero() || !s.LeaseLostSince.IsZero() || s.Phase == "stopped" {
				state = paint(red, state)
			}
			pending := "-"
			if s.PendingChanges >= 0 {
				pending = fmt.Sprint(s.PendingChanges)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%d\t%s\t\n", s.Name, s.Phase, truncate(state, 60),
				seconds(max(s.SourceLagSeconds, s.TargetLagSeconds)), s.RowsPerSecond, s.SnapshotRows+s.CDCRows, pending)
		}
		_ = tw.Flush()
	}

	fmt.Fprintln(w)
	for _, c := range rep.Clouds {
		if p := c.Publish; p != nil {
			state := paint(green, "ok")
			if !p.FailingSince.IsZero() {
				state = paint(red, "failing since "+p.FailingSince.Local().Format(time.TimeOnly))
			}
			fmt.Fprintf(w, "publish    %s: %d records published, %s\n", c.Cloud, p.Published, state)
		}
	}
	for _, c := range rep.Clouds {
		if wl := c.WriteLock; wl != nil {
			fmt.Fprintf(w, "database   %s: write lock busy %s\n", c.Cloud, writeLockLine(wl))
		}
	}
	if g := rep.Global; g != nil {
		if e := g.Edge; e != nil {
			fmt.Fprintf(w, "edge       hit ratio %.1f%% (%d hits, %d misses, %d stale, %d revalidations, %d origin errors)\n",
				100*e.HitRatio, e.Hits, e.Misses, e.StaleServed, e.Revalidations, e.OriginErrors)
		}
		var parts []string
		for _, b := range g.FrontDoor {
			s := "healthy"
			switch {
			case !b.Healthy:
				s = paint(red, "down")
				problem("front door: %s is down", b.Name)
			case b.Degraded:
				s = paint(red, "degraded")
			}
			parts = append(parts, b.Name+" "+s)
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "front door %s\n", strings.Join(parts, ", "))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(w, "\n%s\n", paint(bold, "PROBLEMS"))
		for _, p := range problems {
			fmt.Fprintf(w, "  %s\n", paint(red, p))
		}
	}
}

// writeLockLine says how busy a database's write lock is and who keeps
// it busy: "74% (replicate:aws-to-azure 37%, publish 30%), 2 waiting".
func writeLockLine(wl *topology.WriteLockStatus) string {
	s := fmt.Sprintf("%.0f%%", 100*wl.Busy)
	var by []string
	for _, w := range wl.Writers { // the busiest first
		if w.Busy >= 0.005 {
			by = append(by, fmt.Sprintf("%s %.0f%%", w.Writer, 100*w.Busy))
		}
	}
	if len(by) > 0 {
		s += " (" + strings.Join(by, ", ") + ")"
	}
	if wl.Waiting > 0 {
		s += fmt.Sprintf(", %d waiting", wl.Waiting)
	}
	return s
}

// seconds prints a lag for a person.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Millisecond:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// isTerminal reports whether w is a character device (a terminal) and
// NO_COLOR is not set.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
