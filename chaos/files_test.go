package chaos

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/intercloud/intercloud/config"
)

// TestTopologyFilesOwnPorts checks that the global role of the suite, which
// runs in the root namespace, listens on no default port: another test or
// an `intercloud up` on the machine would hold them.
func TestTopologyFilesOwnPorts(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, []byte("data_dir: "+filepath.Join(dir, "d")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	def, err := config.Load(empty, "")
	if err != nil {
		t.Fatal(err)
	}
	tf := topologyFiles{dir: dir, awsObjects: filepath.Join(dir, "aws"), tlsDir: filepath.Join(dir, "tls"), origin: "127.0.0.1:18085",
		front: 18080, console: 18086, aws: "10.9.0.2", azure: "10.9.0.3"}
	path, err := tf.write("global", "sqlite:///"+filepath.Join(dir, "a.db"), "sqlite:///"+filepath.Join(dir, "z.db"),
		"10.9.0.2:8081", "10.9.0.3:8082", "10.9.0.3:8085", "0.0.0.0:18084", "0.0.0.0:18087", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ name, got, def string }{
		{"frontdoor.listen", cfg.FrontDoor.Listen, def.FrontDoor.Listen},
		{"edge.listen", cfg.Edge.Listen, def.Edge.Listen},
		{"logs.listen", cfg.Logs.Listen, def.Logs.Listen},
		{"console.listen", cfg.Console.Listen, def.Console.Listen},
	} {
		if l.got == l.def {
			t.Errorf("%s = %s: the default port of a listener collides with other runs; give it a free one", l.name, l.got)
		}
	}
}
