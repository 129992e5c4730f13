package topology

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/edge"
)

// The edge's routes: the configured ones, plus /results/ to the result
// store unless a route claims it; a bad route fails at start, named.
func TestEdgeConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default(dir)
	cfg.Edge.Routes = []config.EdgeRoute{{Prefix: "/static/", Origins: []string{"http://127.0.0.1:9000"}}}
	cfg.Edge.TargetedFields = []string{"Edge-Cache-Control"}
	topo := &Topology{cfg: cfg}
	ec := topo.edgeConfig()
	want := []edge.Route{
		{Prefix: "/static/", Origins: []string{"http://127.0.0.1:9000"}},
		{Prefix: "/results/", Origins: []string{"https://" + cfg.Clouds[cfg.Publish.Cloud].Origin}},
	}
	if !slices.EqualFunc(ec.Routes, want, func(a, b edge.Route) bool { return a.Prefix == b.Prefix && slices.Equal(a.Origins, b.Origins) }) {
		t.Fatalf("routes %+v", ec.Routes)
	}
	if ec.DiskDir != filepath.Join(dir, "edge-cache") || ec.TargetedFields[0] != "Edge-Cache-Control" {
		t.Fatalf("config %+v", ec)
	}
	cfg.Edge.Routes = append(cfg.Edge.Routes, config.EdgeRoute{Prefix: "/results/", Origins: []string{"http://127.0.0.1:9001"}})
	if rs := topo.edgeConfig().Routes; len(rs) != 2 || rs[1].Origins[0] != "http://127.0.0.1:9001" {
		t.Fatalf("a /results/ route of the config must replace the default: %+v", rs)
	}
	cfg.Edge.Routes = []config.EdgeRoute{{Prefix: "static", Origins: []string{"http://127.0.0.1:9000"}}}
	if _, err := edge.New(topo.edgeConfig()); err == nil || !strings.Contains(err.Error(), "routes[0].prefix") {
		t.Fatalf("bad route: %v", err)
	}
}

// A purge published while the edge is still starting is applied once it
// runs: its disk tier may hold what the purge is about.
func TestPurgeWhileEdgeStarts(t *testing.T) {
	topo := &Topology{cfg: config.Default(t.TempDir()), opts: Options{Roles: []string{RoleGlobal}}}
	purge := topo.purger()
	if err := purge(t.Context(), nil, []string{"summary"}); err != nil {
		t.Fatal(err)
	}
	if len(topo.pendingPurges) != 1 || topo.pendingPurges[0].Tags[0] != "summary" {
		t.Fatalf("pending %+v", topo.pendingPurges)
	}
}
