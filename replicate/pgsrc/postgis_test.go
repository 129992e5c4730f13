package pgsrc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
)

// TestPostGISSource replicates PostGIS geometries from PostgreSQL to
// MariaDB through the full load and logical decoding: MariaDB's own
// functions read the same geometry and SRID back, and validate agrees.
// Without PostGIS (peers installs it) the test skips, or fails when peers
// are required.
func TestPostGISSource(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and MariaDB")
	}
	ctx := context.Background()
	c := startCluster(t)
	src := c.newDB(t, "gis")
	name := queryString(t, src, `SELECT current_database()`)
	c.p.CreatePostGIS(t, name)
	sourcetest.Exec(t, src, `CREATE TABLE geo (id BIGINT PRIMARY KEY, g geometry)`)
	if err := replicate.Prepare(ctx, src, []string{"geo"}, sourcetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	fill := func(base int) {
		sourcetest.Exec(t, src, `INSERT INTO geo VALUES ($1, ST_GeomFromText('POINT(1.5 -2)', 4326)), ($2, ST_GeomFromText('POLYGON((0 0,4 0,4 4,0 0))')),
			($3, NULL), ($4, ST_GeomFromText('MULTIPOINT((1 1),(2 2))', 3857))`, base+1, base+2, base+3, base+4)
	}
	fill(0)
	my := peers.StartMariaDB(t)
	root := sourcetest.Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port))
	sourcetest.Exec(t, root, "CREATE DATABASE gis_dst")
	dst := sourcetest.Open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/gis_dst", my.Port))
	r := sourcetest.Start(t, replicate.Config{Name: "gis", Source: src, Target: dst, Tables: []string{"geo"}, Poll: 10 * time.Millisecond})
	sourcetest.WaitFor(t, "full load", 60*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	fill(100)
	sourcetest.Exec(t, src, `UPDATE geo SET g = ST_GeomFromText('LINESTRING(0 0,1 2)', 4326) WHERE id = 2`)
	waitSame(t, src, dst, "geo")
	for id, want := range map[int]string{
		1: "4326 POINT(1.5 -2)", 2: "4326 LINESTRING(0 0,1 2)", 3: "", 4: "3857 MULTIPOINT(1 1,2 2)",
		101: "4326 POINT(1.5 -2)", 102: "0 POLYGON((0 0,4 0,4 4,0 0))", 103: "", 104: "3857 MULTIPOINT(1 1,2 2)",
	} {
		got := queryString(t, dst, `SELECT COALESCE(CONCAT(ST_SRID(g), ' ', ST_AsText(g)), '') FROM geo WHERE id = ?`, id)
		if got != want {
			t.Errorf("geo %d on MariaDB: %q, want %q", id, got, want)
		}
	}
}
