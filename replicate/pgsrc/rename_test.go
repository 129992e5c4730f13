package pgsrc_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
)

// TestRenameTable follows PostgreSQL renames (the Relation message that
// gives a relation its new name) on a stream whose tables are globs: two
// tables renamed in one transaction between row changes are renamed on
// the target with their rows exactly once; a table renamed onto a name the
// target already has stops under its new name with an error naming both,
// and the target's table is left alone; the others go on.
func TestRenameTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	c := startCluster(t)
	src, dst := c.newDB(t, "src"), c.newDB(t, "dst")
	for _, tbl := range []string{"shop_a", "shop_b", "shop_c"} {
		sourcetest.Exec(t, src, "CREATE TABLE "+tbl+" (id int PRIMARY KEY, v text)")
		sourcetest.Exec(t, src, "INSERT INTO "+tbl+" SELECT g, '"+tbl+"' FROM generate_series(1, 10) g")
	}
	sourcetest.Exec(t, dst, "CREATE TABLE shop_taken (id int PRIMARY KEY, v text)")
	sourcetest.Exec(t, dst, "INSERT INTO shop_taken VALUES (99, 'the target''s own')")
	r := sourcetest.Start(t, replicate.Config{Name: "renames", Source: src, Target: dst, Mapping: &replicate.Mapping{Include: []string{"shop_*"}}})
	sourcetest.WaitFor(t, "change data capture", 60*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	sourcetest.Exec(t, src, "INSERT INTO shop_a VALUES (100, 'cdc')")
	waitSame(t, src, dst, "shop_a")
	sourcetest.Exec(t, src, `BEGIN;
		INSERT INTO shop_a VALUES (11, 'before');
		UPDATE shop_b SET v = 'before' WHERE id = 1;
		ALTER TABLE shop_a RENAME TO shop_x;
		ALTER TABLE shop_b RENAME TO shop_y;
		INSERT INTO shop_x VALUES (12, 'same transaction');
		DELETE FROM shop_y WHERE id = 2;
		COMMIT`)
	sourcetest.Exec(t, src, "INSERT INTO shop_x VALUES (13, 'after')")
	sourcetest.Exec(t, src, "ALTER TABLE shop_c RENAME TO shop_taken")
	sourcetest.Exec(t, src, "INSERT INTO shop_taken VALUES (11, 'after')")
	sourcetest.WaitFor(t, "shop_taken stopped", 60*time.Second, func() bool {
		st := r.Stream.Status().StoppedTables
		return len(st) == 1 && st[0].Table == "shop_taken"
	})
	if te := r.Stream.Status().StoppedTables[0]; !strings.Contains(te.Error, `"shop_c"`) || !strings.Contains(te.Error, `the target already has a table "shop_taken"`) {
		t.Errorf("stop: %+v", te)
	}
	for _, tbl := range []string{"shop_x", "shop_y"} {
		waitSame(t, src, dst, tbl)
	}
	if got := sourcetest.Dump(t, dst, "shop_x", nil); len(got) != 14 {
		t.Errorf("target shop_x has %d rows, want 14", len(got))
	}
	if got := sourcetest.Dump(t, dst, "shop_taken", nil); len(got) != 1 || !strings.Contains(got[0], "the target's own") {
		t.Errorf("the target's shop_taken changed: %v", got)
	}
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('shop_a', 'shop_b')"); n != 0 {
		t.Errorf("the target still has %d of the old tables", n)
	}
	st := r.Stream.Status()
	var renames []string
	for _, tr := range st.RenamedTables {
		renames = append(renames, tr.From+">"+tr.To)
	}
	if !slices.Equal(renames, []string{"shop_a>shop_x", "shop_b>shop_y"}) {
		t.Errorf("renamed tables in status: %v", renames)
	}
	if st.Phase != replicate.PhaseCDC {
		t.Errorf("phase %s, last error %q", st.Phase, st.LastError)
	}
}
