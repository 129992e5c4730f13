// Command intercloud runs a cross-cloud (AWS ⇄ Azure) data platform: ingest,
// load, replication, publish, edge, front door and central logs, on embedded
// stand-ins or on the real services named in one topology file.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/intercloud/intercloud/internal/gcsettings"
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

func main() {
	gcsettings.Apply(os.Getenv)
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
