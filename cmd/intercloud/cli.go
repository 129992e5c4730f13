package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/topology"
)

const usage = `intercloud runs a cross-cloud data platform.

Usage:
  intercloud demo     [--records N] [--config FILE] [--data-dir DIR]   run the whole scenario once and report
  intercloud up       [--config FILE] [--data-dir DIR] [--cloud aws|azure|global,...] [--log-format auto|json|text]
                      run the topology until interrupted
  intercloud validate [--config FILE] [--data-dir DIR] [--resync] [--rows N] [--continuous [--every D] [--listen ADDR]]
                                                                      compare the clouds' databases, naming differing rows
  intercloud logs     [--config FILE] [--data-dir DIR] [--limit N] QUERY   search the central logs
  intercloud status   [--config FILE] [--data-dir DIR] [--json] [--watch]   show every component's state
  intercloud bench    [--start] [--target frontdoor|aws|azure|URL] [--clients N] [--batch N] [--rate R] [--duration D]
                      drive the ingest path and print throughput, latencies, backlog, CPU and memory
  intercloud dead     list [--cloud NAME] [--json] | replay [--cloud NAME] (--all | KEY...)
                      list the dead-lettered objects, or load them again
  intercloud keys     add --scopes SCOPE[,SCOPE...] [--name TEXT] | list [--json] | revoke ID
                      manage the scoped keys (ingest, read, purge, logs:read, logs:write)
  intercloud certs    init | rotate [--new-ca] | prune | list
                      make, rotate and list the TLS certificates (a CA, one per role) under tls.dir
  intercloud function lambda load | azure serve | azure init [--queue Q] [--schedule CRON] [--connection NAME] [--executable PATH] DIR
                      run a function as an AWS Lambda or an Azure Functions custom handler
  intercloud version

No --config means the embedded default: files and SQLite under ./intercloud-data.
Every command takes --cpuprofile FILE: a CPU profile of the whole run, for go tool pprof,
and --memprofile FILE: a heap profile taken when the live heap was largest.
`

// command is one subcommand.
type command interface {
	flags(fs *flag.FlagSet)
	run(ctx context.Context, env *env, args []string) error
}

// env is what every command shares.
type env struct {
	stdout, stderr io.Writer
	configPath     string
	dataDir        string
	cpuProfile     string
	memProfile     string
}

// load reads the topology and resolves the API key.
func (e *env) load() (*config.Config, string, error) {
	cfg, err := config.Load(e.configPath, e.dataDir)
	if err != nil {
		return nil, "", err
	}
	if err := topology.CheckDataDir(cfg.DataDir); err != nil {
		return nil, "", err
	}
	key, created, err := topology.ResolveAPIKey(cfg)
	if err != nil {
		return nil, "", err
	}
	if created {
		fmt.Fprintf(e.stderr, "made an API key and kept it in %s: %s\n", filepath.Join(cfg.DataDir, "api-key"), key)
	}
	return cfg, key, nil
}

// logFile opens the local JSON log of a data directory.
func logFile(cfg *config.Config) (*os.File, error) {
	dir := filepath.Join(cfg.DataDir, "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(filepath.Join(dir, "intercloud.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Everything the process creates (databases, objects, logs, keys,
	// certificates) is for its own user only: 0600 files, 0700 dirs.
	restrictUmask()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmds := map[string]command{
		"demo": &demoCmd{}, "up": &upCmd{}, "validate": &validateCmd{},
		"logs": &logsCmd{}, "status": &statusCmd{}, "version": &versionCmd{}, "function": &functionCmd{},
		"dead": &deadCmd{}, "keys": &keysCmd{}, "certs": &certsCmd{}, "bench": &benchCmd{},
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "intercloud: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	e := &env{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("intercloud "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&e.configPath, "config", "", "topology file (YAML); empty: the embedded default")
	fs.StringVar(&e.dataDir, "data-dir", "", "data directory of the embedded stand-ins (default ./"+config.DefaultDataDir+")")
	fs.StringVar(&e.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	fs.StringVar(&e.memProfile, "memprofile", "", "write a heap profile, taken when the live heap was largest, to this file (go tool pprof)")
	cmd.flags(fs)
	if err := fs.Parse(interleave(fs, args[1:])); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	for _, prof := range []struct {
		file  string
		start func(string) (func() error, error)
	}{
		{e.cpuProfile, startCPUProfile},
		{e.memProfile, func(f string) (func() error, error) { return startHeapProfile(f, time.Second) }},
	} {
		if prof.file == "" {
			continue
		}
		stop, err := prof.start(prof.file)
		if err != nil {
			fmt.Fprintf(stderr, "intercloud %s: %v\n", args[0], err)
			return 1
		}
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintf(stderr, "intercloud %s: %v\n", args[0], err)
			}
		}()
	}
	if err := cmd.run(ctx, e, fs.Args()); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintf(stderr, "intercloud %s: %v\n", args[0], ee.err)
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "intercloud %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		return nil
	}, nil
}

// startHeapProfile looks at the live heap every interval and, each time it
// is the largest yet (by 5 %), writes a heap profile to path (a temporary
// file renamed over it, so path always holds a whole profile); stop takes
// a last look.
func startHeapProfile(path string, interval time.Duration) (stop func() error, err error) {
	if err := writeHeapProfile(path); err != nil { // the path works, and a profile is there
		return nil, err
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak uint64
	look := func() error {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return nil
		}
		if live := sample[0].Value.Uint64(); live > peak+peak/20 {
			peak = live
			return writeHeapProfile(path)
		}
		return nil
	}
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		var first error
		for {
			select {
			case <-done:
				if err := look(); err != nil && first == nil {
					first = err
				}
				errc <- first
				return
			case <-t.C:
				if err := look(); err != nil && first == nil {
					first = err
				}
			}
		}
	}()
	return func() error { close(done); return <-errc }, nil
}

func writeHeapProfile(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("memprofile: %w", err)
	}
	return nil
}

// interleave moves flags after positional arguments to the front, so
// `intercloud logs QUERY --limit 5` works like `--limit 5 QUERY`.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") {
				if f := fs.Lookup(name); f != nil {
					if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
						if i+1 < len(args) {
							flags = append(flags, args[i+1])
							i++
						}
					}
				}
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

type versionCmd struct{}

func (*versionCmd) flags(*flag.FlagSet) {}
func (*versionCmd) run(_ context.Context, e *env, _ []string) error {
	fmt.Fprintln(e.stdout, "intercloud", version)
	return nil
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"
