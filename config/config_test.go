package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	// The drivers a topology may name: config accepts exactly the schemes
	// of the drivers a binary links.
	_ "github.com/intercloud/intercloud/objects/azblob"
	_ "github.com/intercloud/intercloud/objects/file"
	_ "github.com/intercloud/intercloud/objects/notify"
	_ "github.com/intercloud/intercloud/objects/s3"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func TestDefault(t *testing.T) {
	dir := t.TempDir()
	c := Default(dir)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Clouds["aws"].Objects; got != "file://"+filepath.Join(dir, "aws", "objects") {
		t.Errorf("aws objects = %q", got)
	}
	if got := c.Clouds["azure"].SQL; got != "sqlite://"+filepath.Join(dir, "azure", "sql.db") {
		t.Errorf("azure sql = %q", got)
	}
	if c.Replication.From != "aws" || c.Replication.To != "azure" || c.Publish.Cloud != "azure" {
		t.Errorf("directions: %+v %+v", c.Replication, c.Publish)
	}
	if c.FrontDoor.Priority[0] != "aws" || c.Edge.Listen != "127.0.0.1:8083" || c.Schema.Table != "records" {
		t.Errorf("defaults: %+v %+v", c.FrontDoor, c.Edge)
	}
	// Settings a component owns are left to it (zero: its default).
	if c.Ingest != (Ingest{}) || c.Functions != (Functions{}) || c.Edge.TTL != 0 || c.Replication.BatchSize != 0 || c.Publish.GroupBy != "" {
		t.Errorf("config filled component defaults: %+v %+v %+v", c.Ingest, c.Functions, c.Publish)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // substring of the error; "" = valid
	}{
		{"empty file is the default", "", ""},
		{"full", `
clouds:
  aws:
    objects: s3://ingest?region=us-east-1&endpoint=http://127.0.0.1:7070
    sql: mysql://app:secret@127.0.0.1:3306/app
  azure:
    objects: azblob://results
    sql: postgres://app@127.0.0.1/app
    origin: 127.0.0.1:9000
replication: {from: aws, to: azure, tables: [records]}
ingest: {batch_wait: 2ms, max_body_bytes: 1000}
`, ""},
		{"unknown top key", "bogus: 1\n", `unknown key "bogus"`},
		{"unknown nested key", "clouds:\n  aws:\n    objcts: file:///x\n", `unknown key "objcts"`},
		{"bad scheme", "clouds:\n  aws:\n    objects: ftp://x\n  azure: {}\n", `clouds.aws.objects: scheme "ftp"`},
		{"bad url", "clouds:\n  aws:\n    sql: \"mysql://a:b@[::1\"\n  azure: {}\n", "clouds.aws.sql: not a URL"},
		{"bad duration", "ingest: {batch_wait: soon}\n", `"soon" is not a duration`},
		{"unknown cloud in replication", "replication: {from: aws, to: gcp}\n", `replication.to: "gcp" is not a cloud`},
		{"same cloud twice", "replication: {from: aws, to: aws}\n", "replication.to: must differ"},
		{"bad field type", "schema:\n  fields:\n    - {name: device, type: text}\n", `schema.fields[0].type: "text" is not one of`},
		{"reserved field", "schema:\n  fields:\n    - {name: id, type: string}\n", `schema.fields[0].name: "id" is a duplicate or reserved`},
		{"hostile field name", "schema:\n  fields:\n    - {name: \"a; DROP TABLE x\", type: string}\n", "is not a plain name"},
		{"bad listen", "edge: {listen: nowhere}\n", `edge.listen: "nowhere" is not host:port`},
		{"negative", "functions: {max_attempts: -1}\n", "functions: settings must not be negative"},
		{"no fields", "schema:\n  fields: []\n", ""},
		{"bad max_length", "schema:\n  fields:\n    - {name: a, type: string, max_length: -1}\n", "schema.fields[0].max_length: must not be negative"},
		{"edge routes", "edge:\n  routes:\n    - {prefix: /static/, origins: [\"http://127.0.0.1:9000\"]}\n  targeted_fields: [Edge-Cache-Control]\n  disk_bytes: 1000\n", ""},
		{"edge route unknown key", "edge:\n  routes:\n    - {prefx: /}\n", `unknown key "prefx"`},
		{"bad level", "logs: {level: loud}\n", "logs.level"},
		{"replicas per cloud", "frontdoor:\n  backends: {aws: [\"http://10.0.0.1:8081\", \"http://10.0.0.2:8081\"]}\nleases: {ttl: 3s}\nretention: {raw: 72h}\nlogs: {max_age: 24h, max_bytes: 1000000}\n", ""},
		{"backends of an unknown cloud", "frontdoor:\n  backends: {gcp: [\"http://a\"]}\n", `frontdoor.backends.gcp: "gcp" is not a cloud`},
		{"backends empty", "frontdoor:\n  backends: {aws: []}\n", "frontdoor.backends.aws: list at least one URL"},
		{"backend not http", "frontdoor:\n  backends: {aws: [\"ftp://a\"]}\n", `frontdoor.backends.aws[0]: scheme "ftp"`},
		{"lease ttl too small", "leases: {ttl: 1ms}\n", "leases.ttl: 1ms is below 300ms"},
		{"negative retention", "retention: {raw: -1h}\n", "retention.raw: must not be negative"},
		{"negative log size", "logs: {max_bytes: -1}\n", "logs.max_bytes: must not be negative"},
		{"tls and auth", "tls: {dir: /etc/ic/tls, cert: /a.crt, key: /a.key, ca: /ca.crt}\nauth: {keys: /etc/ic/keys.json, public_metrics: true}\ningest: {idempotency_window: 1h, idempotency_keys: 10}\n", ""},
		{"tls cert without key", "tls: {cert: /a.crt}\n", "tls: cert and key go together"},
		{"http limits", "http: {read_header_timeout: 5s, read_timeout: 1m, write_timeout: 1m, idle_timeout: 30s, max_header_bytes: 32768, min_body_rate: 1024, body_grace: 5s, max_conns_per_ip: 64, max_requests_per_key: -1}\n", ""},
		{"listener tls", "tls:\n  listeners:\n    frontdoor: {cert: /p.crt, key: /p.key}\n    azure-origin: {cert: /o.crt, key: /o.key}\n", ""},
		{"listener tls unknown", "tls:\n  listeners:\n    gateway: {cert: /p.crt, key: /p.key}\n", "tls.listeners.gateway: no such listener"},
		{"listener tls no key", "tls:\n  listeners:\n    edge: {cert: /p.crt}\n", "tls.listeners.edge: cert and key are required"},
		{"tls off with a cert", "tls: {disabled: true, cert: /a.crt, key: /a.key}\n", "tls.disabled"},
		{"negative idempotency window", "ingest: {idempotency_window: -1s}\n", "idempotency_window"},
		{"not yaml", "clouds: [\n", "config:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), t.TempDir())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestPartialKeepsDefaults: a file that sets some keys keeps the defaults
// of everything else, the other default cloud included.
func TestPartialKeepsDefaults(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		clouds []string
		check  func(t *testing.T, c *Config)
	}{
		{"only azure objects", "clouds:\n  azure:\n    objects: azblob://results\n", []string{"aws", "azure"}, func(t *testing.T, c *Config) {
			if c.Clouds["azure"].Objects != "azblob://results" || !strings.HasPrefix(c.Clouds["azure"].SQL, "sqlite://") {
				t.Errorf("azure = %+v", *c.Clouds["azure"])
			}
			if c.Clouds["aws"].API != "127.0.0.1:8081" || !strings.HasPrefix(c.Clouds["aws"].Objects, "file://") {
				t.Errorf("aws = %+v", *c.Clouds["aws"])
			}
		}},
		{"only aws sql", "clouds:\n  aws: {sql: \"mysql://a:b@h:3306/db\"}\n", []string{"aws", "azure"}, func(t *testing.T, c *Config) {
			if c.Clouds["azure"].Origin != "127.0.0.1:8085" {
				t.Errorf("azure = %+v", *c.Clouds["azure"])
			}
		}},
		{"empty clouds", "clouds: {aws: {}, azure: {}}\n", []string{"aws", "azure"}, nil},
		{"null cloud", "clouds:\n  aws:\n", []string{"aws", "azure"}, nil},
		{"only a log level", "logs: {level: debug}\n", []string{"aws", "azure"}, func(t *testing.T, c *Config) {
			if c.Logs.Listen != "127.0.0.1:8084" || c.Replication.From != "aws" {
				t.Errorf("logs = %+v", c.Logs)
			}
		}},
		{"own clouds", "clouds:\n  east: {api: \"127.0.0.1:9001\"}\n  west: {api: \"127.0.0.1:9002\", origin: \"127.0.0.1:9003\"}\nreplication: {from: east, to: west}\n",
			[]string{"east", "west"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if got := c.CloudNames(); strings.Join(got, ",") != strings.Join(tt.clouds, ",") {
				t.Fatalf("clouds = %v, want %v", got, tt.clouds)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestLoadNamesFileAndHidesPasswords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, []byte("clouds:\n  aws:\n    sql: \"mysql://app:hunter2@[::1\"\n  azure: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v does not name the file", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("clouds:\n  aws: {}\n  azure: {}\n"))
	f.Add([]byte("schema:\n  fields:\n    - {name: a, type: string}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b, "/tmp/intercloud-fuzz")
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("parsed config does not validate: %v", verr)
			}
		}
	})
}

// A URL's scheme is accepted iff this binary registered a driver for it;
// the error lists the ones it has. This test binary links no sqlserver
// driver.
func TestSchemesFromRegistries(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{"registered", "clouds:\n  aws: {notifications: \"webhook://127.0.0.1:9/s3\"}\n  azure: {sql: \"postgresql://h/db\"}\n", ""},
		{"not linked", "clouds:\n  aws: {sql: \"sqlserver://h/db\"}\n  azure: {}\n",
			`clouds.aws.sql: scheme "sqlserver" is not one of mysql, postgres, postgresql, sqlite (the sqldb drivers of this binary)`},
		{"unknown objects", "clouds:\n  aws: {objects: \"gs://b\"}\n  azure: {}\n",
			`clouds.aws.objects: scheme "gs" is not one of azblob, file, s3 (the objects drivers of this binary)`},
		{"unknown notifications", "clouds:\n  aws: {notifications: \"sns://t\"}\n  azure: {}\n",
			`clouds.aws.notifications: scheme "sns" is not one of azqueue, sqs, webhook (the notify drivers of this binary)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), t.TempDir())
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestListenOnFreePorts: every listener of a topology moves to a free
// loopback port, and a cloud without an origin keeps none.
func TestListenOnFreePorts(t *testing.T) {
	cfg := Default(t.TempDir())
	cfg.ListenOnFreePorts()
	got := []string{cfg.Edge.Listen, cfg.FrontDoor.Listen, cfg.Logs.Listen, cfg.Console.Listen}
	for name, c := range cfg.Clouds {
		got = append(got, c.API)
		if c.Origin != "" {
			got = append(got, c.Origin)
		} else if name == "azure" {
			t.Errorf("azure lost its origin")
		}
	}
	for _, l := range got {
		if l != "127.0.0.1:0" {
			t.Errorf("listener %q, want 127.0.0.1:0", l)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
