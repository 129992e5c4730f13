// Command intercloud runs a cross-cloud (AWS ⇄ Azure) data platform: ingest,
// load, replication, publish, edge, front door and central logs, on embedded
// stand-ins or on the real services named in one topology file.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	_ "github.com/intercloud/intercloud/objects/azblob"
	_ "github.com/intercloud/intercloud/objects/file"
	_ "github.com/intercloud/intercloud/objects/notify"
	_ "github.com/intercloud/intercloud/objects/s3"
	_ "github.com/intercloud/intercloud/replicate/mysqlsrc"
	_ "github.com/intercloud/intercloud/replicate/pgsrc"
	_ "github.com/intercloud/intercloud/replicate/pollsrc"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	_ "github.com/intercloud/intercloud/replicate/sqlserversrc"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
	_ "github.com/intercloud/intercloud/sqldb/sqlserver"
)

// DefaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set: the garbage collector runs early rather than let the heap
// grow to twice its live size while a backlog keeps full change batches in
// flight (GOMEMLIMIT=off lifts it).
const DefaultMemoryLimit = 64 << 20

// DefaultGCPercent is the garbage collector's target (GOGC) that goes with
// DefaultMemoryLimit when neither GOGC nor GOMEMLIMIT is set: the live heap
// of a running topology is 12–25 MB, and at the runtime's 100 the collector
// ran every 12–25 MB allocated (10–15 times a second at 20,000 records/s),
// so it lets the heap grow to four times the live size, the memory limit
// still bounding the whole (see docs/benchmarks.md).
const DefaultGCPercent = 300

// memoryLimit is the soft memory limit to set given GOMEMLIMIT's value, or
// false to leave the runtime's own (GOMEMLIMIT set).
func memoryLimit(env string) (int64, bool) {
	if env != "" {
		return 0, false
	}
	return DefaultMemoryLimit, true
}

// gcPercent is the GOGC to set given GOGC's value and whether the default
// memory limit applies (memoryLimit), or false to leave the runtime's own:
// DefaultGCPercent only under the default limit, since without a limit it
// would let the heap grow to four times its live size.
func gcPercent(gogc string, defaultLimit bool) (int, bool) {
	if gogc != "" || !defaultLimit {
		return 0, false
	}
	return DefaultGCPercent, true
}

func main() {
	limit, limited := memoryLimit(os.Getenv("GOMEMLIMIT"))
	if limited {
		debug.SetMemoryLimit(limit)
	}
	if pct, ok := gcPercent(os.Getenv("GOGC"), limited); ok {
		debug.SetGCPercent(pct)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return fmt.Sprint(e.err) }
