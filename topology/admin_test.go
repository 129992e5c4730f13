package topology

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/config"
)

func TestResolveAPIKey(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default(dir)
	t.Setenv(KeyEnv, "")
	k1, created, err := ResolveAPIKey(cfg)
	if err != nil || !created || !strings.HasPrefix(k1, "ick_") {
		t.Fatalf("first start: %q %v %v", k1, created, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "api-key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if k2, created, _ := ResolveAPIKey(cfg); k2 != k1 || created {
		t.Fatalf("second start made another key: %q", k2)
	}
	cfg.APIKey = "from-config"
	if k, _, _ := ResolveAPIKey(cfg); k != "from-config" {
		t.Fatalf("config key not used: %q", k)
	}
	t.Setenv(KeyEnv, "from-env")
	if k, _, _ := ResolveAPIKey(cfg); k != "from-env" {
		t.Fatalf("INTERCLOUD_API_KEY does not override: %q", k)
	}
}
