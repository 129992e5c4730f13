package main

import (
	"slices"
	"testing"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/notify"
	"github.com/intercloud/intercloud/sqldb"
)

// The function reads the whole topology file, whose other cloud may name
// any driver intercloud ships: it must link them all to accept it.
func TestLinksEveryTopologyDriver(t *testing.T) {
	for _, c := range []struct {
		kind string
		have []string
		want []string
	}{
		{"objects", objects.Schemes(), []string{"azblob", "file", "s3"}},
		{"sqldb", sqldb.Schemes(), []string{"mysql", "postgres", "postgresql", "sqlite", "sqlserver"}},
		{"notify", notify.Schemes(), []string{"azqueue", "sqs", "webhook"}},
	} {
		for _, s := range c.want {
			if !slices.Contains(c.have, s) {
				t.Errorf("%s: scheme %s not linked (have %v)", c.kind, s, c.have)
			}
		}
	}
	yaml := `
clouds:
  aws: {objects: "s3://ingest?region=us-east-1", sql: "mysql://app@db:3306/app", notifications: "sqs://q?region=us-east-1"}
  azure: {objects: "azblob://results", sql: "sqlserver://app@db/app", origin: "127.0.0.1:9000"}
`
	if _, err := config.Parse([]byte(yaml), t.TempDir()); err != nil {
		t.Fatal(err)
	}
}
