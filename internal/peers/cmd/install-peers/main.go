// Command install-peers installs the real servers that the tests talk to
// (see package peers) into the repository's .cache/peers directory. With
// no arguments it installs all of them; otherwise the named ones. It is
// idempotent and takes seconds when everything is cached.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/intercloud/intercloud/internal/peers"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "install-peers:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("install-peers", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: install-peers [name ...]\nnames: %s (default: all)\n", strings.Join(peers.Names(), ", "))
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	names := fs.Args()
	if len(names) == 0 {
		names = peers.Names()
	}
	start := time.Now()
	fmt.Fprintf(os.Stderr, "install-peers: %s into %s\n", strings.Join(names, ", "), peers.CacheDir())
	if err := peers.Install(ctx, names...); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "install-peers: all present (%s)\n", time.Since(start).Round(time.Millisecond))
	return nil
}
