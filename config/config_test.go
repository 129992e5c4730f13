package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if c.Ingest.BatchWait.D() != 5*time.Millisecond || c.FrontDoor.Priority[0] != "aws" {
		t.Errorf("defaults: %+v %+v", c.Ingest, c.FrontDoor)
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
		{"publish group not in schema", "publish: {group_by: nope}\n", "publish.group_by"},
		{"bad listen", "edge: {listen: nowhere}\n", `edge.listen: "nowhere" is not host:port`},
		{"edge routes", "edge:\n  routes:\n    - {prefix: /static/, origins: [\"http://127.0.0.1:9000\"]}\n  targeted_fields: [Edge-Cache-Control]\n  disk_bytes: 1000\n", ""},
		{"edge route unknown key", "edge:\n  routes:\n    - {prefx: /}\n", `unknown key "prefx"`},
		{"negative", "ingest: {max_records: -1}\n", "ingest: limits must not be negative"},
		{"bad level", "logs: {level: loud}\n", "logs.level"},
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

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"mysql://app:secret@h:3306/db":                  "mysql://app:xxxxx@h:3306/db",
		"s3://b?region=x&secret_key=abc":                "s3://b?region=x&secret_key=xxxxx",
		"azblob://c?connection_string=AccountKey%3Dabc": "azblob://c?connection_string=xxxxx",
		"file:///tmp/x":                                 "file:///tmp/x",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
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
