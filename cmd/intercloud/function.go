package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/intercloud/intercloud/hosts"
	"github.com/intercloud/intercloud/hosts/azurefunc"
	"github.com/intercloud/intercloud/hosts/lambda"
)

const functionUsage = `Usage:
  intercloud function lambda load          serve the load function as an AWS Lambda (inside a Lambda runtime)
  intercloud function azure serve          serve load and publish as an Azure Functions custom handler
  intercloud function azure init [--queue Q] [--schedule CRON] [--connection NAME] [--executable PATH] DIR
                                           write host.json and function.json files of the Azure function app

The functions read INTERCLOUD_OBJECTS_URL, INTERCLOUD_SQL_URL, INTERCLOUD_CONFIG
(a topology file path or inline YAML; --config is used when it is unset), and on
Azure INTERCLOUD_PUBLISH ("false": load only) and INTERCLOUD_CONTAINER.
`

// functionCmd runs intercloud's functions on a cloud's function service.
type functionCmd struct {
	app azurefunc.AppOptions
}

func (c *functionCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.app.Queue, "queue", "", "azure init: Storage Queue that Event Grid writes BlobCreated events to (default blob-created)")
	fs.StringVar(&c.app.Schedule, "schedule", "", "azure init: NCRONTAB schedule of the publish timer (default every minute)")
	fs.StringVar(&c.app.Connection, "connection", "", "azure init: app setting naming the queue's storage connection (default AzureWebJobsStorage)")
	fs.StringVar(&c.app.Executable, "executable", "", "azure init: the handler executable, relative to the app directory (default intercloud)")
}

func (c *functionCmd) run(ctx context.Context, e *env, args []string) error {
	getenv := func(k string) string {
		if v := os.Getenv(k); v != "" || k != hosts.EnvConfig {
			return v
		}
		return e.configPath
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	// Dependencies that log through slog.Default or the log package too.
	slog.SetDefault(log)
	switch strings.Join(args, " ") {
	case "lambda load":
		return lambda.Start(ctx, getenv, log.With("cloud", "aws"))
	case "azure serve":
		log = log.With("cloud", "azure")
		h, closeAll, err := azurefunc.Open(ctx, getenv, log)
		if err != nil {
			return err
		}
		defer closeAll()
		ln, err := net.Listen("tcp", azurefunc.Addr(getenv))
		if err != nil {
			return fmt.Errorf("function azure serve: %w", err)
		}
		log.Info("custom handler listening", "addr", ln.Addr().String())
		return azurefunc.Serve(ctx, ln, h)
	}
	if len(args) == 3 && args[0] == "azure" && args[1] == "init" {
		if err := azurefunc.WriteApp(args[2], c.app); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote host.json, %s/function.json and %s/function.json in %s\n", azurefunc.LoadFunction, azurefunc.PublishFunction, args[2])
		return nil
	}
	fmt.Fprint(e.stderr, functionUsage)
	return &exitError{code: 2, err: errors.New("unknown function command " + strings.Join(args, " "))}
}
