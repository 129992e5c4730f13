// Command intercloud-lambda is intercloud's load function as an AWS Lambda
// (custom runtime, provided.al2023): build it with
//
//	CGO_ENABLED=0 GOOS=linux go build -tags lambda.norpc -o bootstrap ./cmd/intercloud-lambda
//
// and configure it with INTERCLOUD_OBJECTS_URL, INTERCLOUD_SQL_URL and
// optionally INTERCLOUD_CONFIG (see package hosts/lambda).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/intercloud/intercloud/hosts/lambda"
	// Every driver a topology file may name, so INTERCLOUD_CONFIG accepts
	// the same files as intercloud itself.
	_ "github.com/intercloud/intercloud/objects/azblob"
	_ "github.com/intercloud/intercloud/objects/file"
	_ "github.com/intercloud/intercloud/objects/notify"
	_ "github.com/intercloud/intercloud/objects/s3"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
	_ "github.com/intercloud/intercloud/sqldb/sqlserver"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("cloud", "aws")
	if err := lambda.Start(context.Background(), nil, log); err != nil {
		fmt.Fprintln(os.Stderr, "intercloud-lambda:", err)
		os.Exit(1)
	}
}
