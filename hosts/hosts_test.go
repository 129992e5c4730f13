package hosts_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/hosts"
	"github.com/intercloud/intercloud/load"
	_ "github.com/intercloud/intercloud/objects/file"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// The one set of environment variables every function host reads.
func TestReadEnv(t *testing.T) {
	dir := t.TempDir()
	base := map[string]string{
		hosts.EnvObjectsURL: "file://" + filepath.Join(dir, "objects"),
		hosts.EnvSQLURL:     "sqlite://" + filepath.Join(dir, "sql.db"),
	}
	e, err := hosts.ReadEnv(envOf(base))
	if err != nil || e.Config.Schema.Table != "records" || !e.Publish || e.Container != "" {
		t.Fatalf("default: %+v %v", e, err)
	}
	inline := "schema:\n  table: events\n  fields:\n    - {name: k, type: string, required: true}\n    - {name: ts, type: timestamp, required: true}\n    - {name: value, type: number, required: true}\n    - {name: metric, type: string, required: true}\n"
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for bk, bv := range base {
			if _, ok := m[bk]; !ok {
				m[bk] = bv
			}
		}
		return m
	}
	if e, err = hosts.ReadEnv(envOf(with(hosts.EnvConfig, inline))); err != nil || e.Config.Schema.Table != "events" {
		t.Fatalf("inline: %+v %v", e, err)
	}
	p := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(p, []byte(inline), 0o600); err != nil {
		t.Fatal(err)
	}
	if e, err = hosts.ReadEnv(envOf(with(hosts.EnvConfig, p))); err != nil || e.Config.Schema.Table != "events" {
		t.Fatalf("file: %+v %v", e, err)
	}
	if _, err := hosts.ReadEnv(envOf(with(hosts.EnvConfig, filepath.Join(t.TempDir(), "missing.yaml")))); err == nil || !strings.Contains(err.Error(), hosts.EnvConfig) {
		t.Fatalf("a missing file: %v", err)
	}
	if _, err := hosts.ReadEnv(envOf(with(hosts.EnvConfig, "schema: [\n"))); err == nil {
		t.Fatal("bad YAML was accepted")
	}
	if _, err := hosts.ReadEnv(envOf(nil)); err == nil || !strings.Contains(err.Error(), hosts.EnvObjectsURL) {
		t.Fatalf("an empty environment: %v", err)
	}
	if e, _ := hosts.ReadEnv(envOf(with(hosts.EnvPublish, "false"))); e.Publish || e.Settings().Publish != nil {
		t.Fatal("INTERCLOUD_PUBLISH=false still publishes")
	}
	if e, err := hosts.ReadEnv(envOf(with(hosts.EnvConfig, "replication:\n  source: poll\n"))); err != nil || e.Settings().Source != "poll" {
		t.Fatalf("replication.source: poll reached the publisher as %q (%v)", e.Settings().Source, err)
	}
	if e, _ := hosts.ReadEnv(envOf(with(hosts.EnvObjectsURL, "azblob://results?service_url=x"))); e.Container != "results" {
		t.Fatalf("container = %q", e.Container)
	}
	if e, _ := hosts.ReadEnv(envOf(with(hosts.EnvContainer, "other"))); e.Container != "other" {
		t.Fatalf("container = %q", e.Container)
	}
}

// Open builds the whole stack, prepared; a bad part closes what was opened.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	e, err := hosts.ReadEnv(envOf(map[string]string{
		hosts.EnvObjectsURL: "file://" + filepath.Join(dir, "objects"),
		hosts.EnvSQLURL:     "sqlite://" + filepath.Join(dir, "sql.db"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	st, err := hosts.Open(t.Context(), e.Settings())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Bucket == nil || st.DB == nil || st.Loader == nil || st.Publisher == nil {
		t.Fatalf("stack %+v", st)
	}
	var n int
	if err := st.DB.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+load.LoadedTable).Scan(&n); err != nil {
		t.Fatalf("tables not prepared: %v", err)
	}

	s := e.Settings()
	s.SQLURL = "nosuch://x"
	if _, err := hosts.Open(t.Context(), s); err == nil || !strings.Contains(err.Error(), `no driver for scheme "nosuch"`) {
		t.Fatalf("Open with a bad SQL URL: %v", err)
	}
	if _, err := hosts.Open(t.Context(), hosts.Settings{}); err == nil {
		t.Fatal("Open without URLs succeeded")
	}
}
