package mysqlsrc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/mysqlsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// testDDL changes the source table during streaming: added columns and
// widened types are followed (rows before and after), an unsupported
// statement stops the stream naming it.
func testDDL(t *testing.T, e *env) {
	for _, target := range []struct{ name, url string }{{"postgres", e.pgURL(t)}, {"sqlite", sqliteURL(t)}} {
		t.Run(target.name, func(t *testing.T) {
			src := sourcetest.Open(t, e.mysqlURL(t, ""))
			dst := sourcetest.Open(t, target.url)
			sourcetest.Exec(t, src, "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(20) NOT NULL, qty INT NULL, price DECIMAL(6,2) NULL, gone INT NULL, _trace_id VARCHAR(64) NULL)")
			fillItems(t, src, 1, 51)
			r := sourcetest.Start(t, replicate.Config{Name: "ddl", Source: src, Target: dst, Tables: []string{"items"}})
			waitCaughtUp(t, r, src)
			// Rows before and after an added column, in one stretch of log.
			sourcetest.Exec(t, src, "INSERT INTO items (id, name) VALUES (100, 'before-add')")
			sourcetest.Exec(t, src, "ALTER TABLE items ADD COLUMN note VARCHAR(30) NULL, ADD COLUMN flag TINYINT UNSIGNED NULL")
			sourcetest.Exec(t, src, "INSERT INTO items (id, name, note, flag) VALUES (101, 'after-add', 'hello \U0001F600', 250)")
			sourcetest.Exec(t, src, "UPDATE items SET note = 'updated' WHERE id = 1")
			// Widening.
			sourcetest.Exec(t, src, "ALTER TABLE items MODIFY name VARCHAR(200) NOT NULL, MODIFY qty BIGINT NULL, MODIFY price DECIMAL(20,4) NULL")
			sourcetest.Exec(t, src, "INSERT INTO items (id, name, qty, price) VALUES (102, ?, 9000000000, 1234567890.1234)", strings.Repeat("w", 150))
			// A dropped column; an index changes nothing on the target.
			sourcetest.Exec(t, src, "ALTER TABLE items DROP COLUMN gone")
			sourcetest.Exec(t, src, "CREATE INDEX items_name ON items (name)")
			sourcetest.Exec(t, src, "INSERT INTO items (id, name) VALUES (103, 'after-drop')")
			waitCaughtUp(t, r, src)
			mustValidate(t, src, dst, "items")
			got := canonicalRow(t, dst, "items", 101)
			if got["note"] != "hello \U0001F600" || got["flag"] != "250" {
				t.Errorf("row 101: %v", got)
			}
			if _, ok := canonicalRow(t, dst, "items", 103)["gone"]; ok {
				t.Errorf("dropped column still on the target")
			}
			// A renamed column keeps its values; CHANGE renames and
			// retypes; a type change that is no widening is followed.
			sourcetest.Exec(t, src, "ALTER TABLE items RENAME COLUMN note TO remark")
			sourcetest.Exec(t, src, "INSERT INTO items (id, name, remark) VALUES (104, 'after-rename', 'r')")
			sourcetest.Exec(t, src, "ALTER TABLE items CHANGE flag level SMALLINT UNSIGNED NULL")
			sourcetest.Exec(t, src, "UPDATE items SET level = 60000 WHERE id = 104")
			if target.name == "postgres" { // SQLite cannot change a column's type
				sourcetest.Exec(t, src, "ALTER TABLE items MODIFY qty VARCHAR(30) NULL")
				sourcetest.Exec(t, src, "INSERT INTO items (id, name, qty) VALUES (105, 'qty as text', 'about 7')")
			}
			waitCaughtUp(t, r, src)
			mustValidate(t, src, dst, "items")
			if got := canonicalRow(t, dst, "items", 101); got["remark"] != "hello \U0001F600" || got["level"] != "250" {
				t.Errorf("row 101 after the renames: %v", got)
			}
			if got := canonicalRow(t, dst, "items", 104); got["remark"] != "r" || got["level"] != "60000" {
				t.Errorf("row 104 after the renames: %v", got)
			}
			if got := canonicalRow(t, dst, "items", 102); got["qty"] != "9000000000" {
				t.Errorf("row 102's qty after MODIFY to VARCHAR: %v", got["qty"])
			}
			// TRUNCATE is applied, and the stream goes on.
			sourcetest.Exec(t, src, "TRUNCATE TABLE items")
			sourcetest.Exec(t, src, "INSERT INTO items (id, name) VALUES (200, 'after-truncate')")
			waitCaughtUp(t, r, src)
			if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM items"); n != 1 {
				t.Errorf("target has %d rows after TRUNCATE and one insert, want 1", n)
			}
			mustValidate(t, src, dst, "items")
			// Renamed to a name the stream does not list: the table leaves
			// the stream, the target keeps it as it is.
			sourcetest.Exec(t, src, "RENAME TABLE items TO things")
			sourcetest.Exec(t, src, "INSERT INTO things (id, name) VALUES (201, 'after-rename')")
			sourcetest.WaitFor(t, "items leaving the stream", 60*time.Second, func() bool {
				rt := r.Stream.Status().RenamedTables
				return len(rt) == 1 && rt[0].From == "items" && rt[0].To == "things" && rt[0].Left
			})
			if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM items"); n != 1 {
				t.Errorf("target items has %d rows after it left the stream, want 1", n)
			}
			if st := r.Stream.Status(); len(st.StoppedTables) > 0 || st.Phase != replicate.PhaseCDC {
				t.Errorf("stream after the rename: %+v", st)
			}
		})
	}
}

// waitStopped waits until table is stopped with an error containing want.
func waitStopped(t *testing.T, r *sourcetest.Running, table, want string) replicate.TableError {
	t.Helper()
	var got replicate.TableError
	sourcetest.WaitFor(t, table+" stopped", 60*time.Second, func() bool {
		for _, te := range r.Stream.Status().StoppedTables {
			if te.Table == table && strings.Contains(te.Error, want) {
				got = te
				return true
			}
		}
		return false
	})
	return got
}

// TestRenameTable follows the renames of MySQL's statements on a stream
// whose tables are globs: RENAME TABLE with several pairs and ALTER TABLE
// ... RENAME TO rename the target tables, with rows before, between and
// after the renames in one stretch of log; a table renamed into the globs
// is loaded in full and streamed; a rename onto a name the target already
// has stops that table, naming both, and the others go on. The target is
// compared by its own canonical dump.
func TestRenameTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	src, dst, r := startRenames(t, "shop_a", "shop_b", "shop_c", "shop_d", "stash")
	// A change read through the log: the stream reads it, past the load.
	sourcetest.Exec(t, src, "INSERT INTO shop_a VALUES (100, 'cdc')")
	waitCaughtUp(t, r, src)
	for _, q := range []string{
		"INSERT INTO shop_a VALUES (11, 'before')",
		"UPDATE shop_b SET v = 'before' WHERE id = 1",
		"RENAME TABLE shop_a TO shop_x, shop_b TO shop_y",
		"INSERT INTO shop_x VALUES (12, 'between')",
		"DELETE FROM shop_y WHERE id = 2",
		"ALTER TABLE shop_c RENAME TO shop_z",
		"INSERT INTO shop_z VALUES (11, 'after')",
		"RENAME TABLE stash TO shop_stash",
		"INSERT INTO shop_stash VALUES (11, 'after')",
		"RENAME TABLE shop_d TO shop_taken",
		"INSERT INTO shop_x VALUES (13, 'after')",
		"INSERT INTO shop_taken VALUES (11, 'after')",
	} {
		sourcetest.Exec(t, src, q)
	}
	te := waitStopped(t, r, "shop_taken", "the target already has a table \"shop_taken\"")
	if !strings.Contains(te.Error, `"shop_d"`) {
		t.Errorf("the stop does not name the old table: %+v", te)
	}
	waitCaughtUp(t, r, src)
	for _, tbl := range []string{"shop_x", "shop_y", "shop_z", "shop_stash"} {
		waitSameTable(t, src, dst, tbl)
	}
	for _, tbl := range []string{"shop_a", "shop_b", "shop_c"} {
		if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = $1", tbl); n != 0 {
			t.Errorf("target still has %s", tbl)
		}
	}
	if got := sourcetest.Dump(t, dst, "shop_taken", nil); len(got) != 1 || !strings.Contains(got[0], "the target's own") {
		t.Errorf("the target's shop_taken changed: %v", got)
	}
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM shop_d"); n != 10 {
		t.Errorf("target shop_d has %d rows, want its 10 (kept as it is)", n)
	}
	st := r.Stream.Status()
	if len(st.StoppedTables) != 1 || st.Phase != replicate.PhaseCDC {
		t.Errorf("status: phase %s, stopped %+v", st.Phase, st.StoppedTables)
	}
	var renames []string
	for _, tr := range st.RenamedTables {
		renames = append(renames, tr.From+">"+tr.To)
	}
	if want := "shop_a>shop_x shop_b>shop_y shop_c>shop_z"; strings.Join(renames, " ") != want {
		t.Errorf("renamed tables in status: %v, want %s", renames, want)
	}
	rep, err := replicate.ValidateMapping(context.Background(), src, dst, &replicate.Mapping{Include: []string{"shop_x", "shop_y", "shop_z", "shop_stash"}}, 100)
	if err != nil || !rep.OK() {
		t.Errorf("validate: %v\n%s", err, rep)
	}
}

// TestRenameIntoGlobsOntoTargetTable renames a table the stream does not
// have into its table globs, onto a name the target already has a table of
// its own under (the path a rename also takes when the run's listing of
// the source missed the old name): the table stops, naming both, no row
// reaches the target's table, and the other tables go on.
func TestRenameIntoGlobsOntoTargetTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	src, dst, r := startRenames(t, "shop_a", "stash")
	for _, q := range []string{
		"RENAME TABLE stash TO shop_taken",
		"INSERT INTO shop_taken VALUES (11, 'after')",
		"INSERT INTO shop_a VALUES (11, 'after')",
	} {
		sourcetest.Exec(t, src, q)
	}
	te := waitStopped(t, r, "shop_taken", "the target already has a table \"shop_taken\"")
	if !strings.Contains(te.Error, `"stash"`) {
		t.Errorf("the stop does not name the old table: %+v", te)
	}
	waitCaughtUp(t, r, src)
	waitSameTable(t, src, dst, "shop_a")
	if got := sourcetest.Dump(t, dst, "shop_taken", nil); len(got) != 1 || !strings.Contains(got[0], "the target's own") {
		t.Errorf("the target's shop_taken changed: %v", got)
	}
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'stash'"); n != 0 {
		t.Errorf("target has a table stash")
	}
	if st := r.Stream.Status(); len(st.StoppedTables) != 1 || st.Phase != replicate.PhaseCDC {
		t.Errorf("status: phase %s, stopped %+v", st.Phase, st.StoppedTables)
	}
}

// waitSameTable waits until the canonical dumps of a table are equal.
func waitSameTable(t *testing.T, src, dst *sqldb.DB, table string) {
	t.Helper()
	var diff string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if diff = sourcetest.DiffDumps(sourcetest.Dump(t, src, table, nil), sourcetest.Dump(t, dst, table, nil)); diff == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%s differs:\n%s", table, diff)
}

// TestDropTable: DROP TABLE of a replicated table drops it on the target
// and the stream goes on with the other tables.
func TestDropTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	e := newEnv(t, true)
	src, dst := sourcetest.Open(t, e.mysqlURL(t, "")), sourcetest.Open(t, e.pgURL(t))
	sourcetest.Exec(t, src, "CREATE TABLE keep (id INT PRIMARY KEY, v INT)")
	sourcetest.Exec(t, src, "CREATE TABLE gone (id INT PRIMARY KEY, v INT)")
	sourcetest.Exec(t, src, "INSERT INTO keep VALUES (1, 1)")
	sourcetest.Exec(t, src, "INSERT INTO gone VALUES (1, 1)")
	r := sourcetest.Start(t, replicate.Config{Name: "drop", Source: src, Target: dst, Tables: []string{"keep", "gone"}})
	waitCaughtUp(t, r, src)
	sourcetest.Exec(t, src, "DROP TABLE gone")
	sourcetest.Exec(t, src, "INSERT INTO keep VALUES (2, 2)")
	waitCaughtUp(t, r, src)
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'gone'"); n != 0 {
		t.Errorf("the dropped table is still on the target")
	}
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM keep"); n != 2 {
		t.Errorf("keep has %d rows on the target, want 2", n)
	}
	if st := r.Stream.Status(); st.LastError != "" {
		t.Errorf("status after DROP TABLE: %q", st.LastError)
	}
}

func TestParseDDL(t *testing.T) {
	ref := func(s, n string) mysqlsrc.TableRef { return mysqlsrc.TableRef{Schema: s, Name: n} }
	for _, tc := range []struct {
		stmt string
		kind string
		refs []mysqlsrc.TableRef
	}{
		{"ALTER TABLE items ADD COLUMN x INT", "ALTER TABLE", []mysqlsrc.TableRef{ref("", "items")}},
		{"alter online ignore table `app`.`it``ems` add x int", "ALTER TABLE", []mysqlsrc.TableRef{ref("app", "it`ems")}},
		{"/* c */ ALTER TABLE a RENAME TO b", "ALTER TABLE", []mysqlsrc.TableRef{ref("", "a"), ref("", "b")}},
		{"ALTER TABLE a RENAME COLUMN x TO y", "ALTER TABLE", []mysqlsrc.TableRef{ref("", "a")}},
		{"RENAME TABLE a TO b, db.c TO d", "RENAME TABLE", []mysqlsrc.TableRef{ref("", "a"), ref("", "b"), ref("db", "c"), ref("", "d")}},
		{"DROP TABLE IF EXISTS `a`, b /* generated by server */", "DROP TABLE", []mysqlsrc.TableRef{ref("", "a"), ref("", "b")}},
		{"TRUNCATE items", "TRUNCATE TABLE", []mysqlsrc.TableRef{ref("", "items")}},
		{"truncate table x.items", "TRUNCATE TABLE", []mysqlsrc.TableRef{ref("x", "items")}},
		{"CREATE UNIQUE INDEX ix ON items (a, b)", "CREATE INDEX", []mysqlsrc.TableRef{ref("", "items")}},
		{"DROP INDEX IF EXISTS ix ON `items`", "DROP INDEX", []mysqlsrc.TableRef{ref("", "items")}},
		{"CREATE OR REPLACE TABLE t (a INT)", "CREATE TABLE", []mysqlsrc.TableRef{ref("", "t")}},
		{"CREATE TABLE IF NOT EXISTS t (a INT)", "CREATE TABLE", []mysqlsrc.TableRef{ref("", "t")}},
		{"/*!40000 ALTER TABLE `t` DISABLE KEYS */", "ALTER TABLE", []mysqlsrc.TableRef{ref("", "t")}},
		{"INSERT INTO t VALUES (1)", "", nil},
		{"CREATE USER x", "", nil},
		{"", "", nil},
		{"ALTER TABLE", "", nil},
	} {
		got := mysqlsrc.ParseDDL(tc.stmt)
		if got.Kind != tc.kind || len(got.Tables) != len(tc.refs) {
			t.Errorf("ParseDDL(%q) = %+v, want %s %v", tc.stmt, got, tc.kind, tc.refs)
			continue
		}
		for i := range got.Tables {
			if got.Tables[i] != tc.refs[i] {
				t.Errorf("ParseDDL(%q) = %+v, want %v", tc.stmt, got, tc.refs)
			}
		}
	}
}

func FuzzParseDDL(f *testing.F) {
	for _, s := range []string{"ALTER TABLE a ADD b INT", "RENAME TABLE a TO b, c TO d", "DROP TABLE IF EXISTS `x``y`.z", "/*!50000 CREATE INDEX i ON t (a) */", "TRUNCATE 'str", "-- c\nALTER TABLE \"q\" RENAME AS n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := mysqlsrc.ParseDDL(s)
		if d.Kind == "" && len(d.Tables) != 0 {
			t.Fatalf("tables without a kind: %+v", d)
		}
		if d.Kind != "" && len(d.Tables) == 0 {
			t.Fatalf("kind without tables: %+v", d)
		}
		for _, r := range d.Tables {
			if r.Name == "" {
				t.Fatalf("empty table name: %+v", d)
			}
		}
	})
}

// TestCreateTableLive: a table created on the source during change data
// capture that the stream's table globs select is picked up without a
// restart: its rows written before the stream saw it arrive by a full load
// of that table, later ones through the binlog; a created table the globs
// do not select stays out. The other tables go on throughout.
func TestCreateTableLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	e := newEnv(t, true)
	src, dst := sourcetest.Open(t, e.mysqlURL(t, "")), sourcetest.Open(t, e.pgURL(t))
	sourcetest.Exec(t, src, "CREATE TABLE shop_a (id INT PRIMARY KEY, v VARCHAR(10))")
	sourcetest.Exec(t, src, "INSERT INTO shop_a VALUES (1, 'a1')")
	m := &replicate.Mapping{Include: []string{"shop_*"}}
	r := sourcetest.Start(t, replicate.Config{Name: "live", Source: src, Target: dst, Mapping: m})
	waitCaughtUp(t, r, src)
	// Created and filled in one go, before the stream reads the CREATE.
	sourcetest.Exec(t, src, "CREATE TABLE shop_b (id INT PRIMARY KEY, v VARCHAR(10), n SMALLINT UNSIGNED)")
	sourcetest.Exec(t, src, "INSERT INTO shop_b VALUES (1, 'b1', 65535), (2, 'b2', 0)")
	sourcetest.Exec(t, src, "CREATE TABLE other (id INT PRIMARY KEY)")
	sourcetest.Exec(t, src, "INSERT INTO other VALUES (1)")
	sourcetest.Exec(t, src, "INSERT INTO shop_a VALUES (2, 'a2')")
	sourcetest.WaitFor(t, "shop_b on the target", 60*time.Second, func() bool {
		return sourcetest.Count(t, dst, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'shop_b'") == 1
	})
	waitCaughtUp(t, r, src)
	sourcetest.Exec(t, src, "INSERT INTO shop_b VALUES (3, 'b3', 40000)")
	sourcetest.Exec(t, src, "UPDATE shop_b SET v = 'b1!' WHERE id = 1")
	sourcetest.Exec(t, src, "DELETE FROM shop_b WHERE id = 2")
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "shop_a", "shop_b")
	if got := pgText(t, dst, "SELECT string_agg(id || '=' || v || '/' || n, ',' ORDER BY id) FROM shop_b"); got != "1=b1!/65535,3=b3/40000" {
		t.Errorf("shop_b on the target: %s", got)
	}
	if n := sourcetest.Count(t, dst, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'other'"); n != 0 {
		t.Errorf("a table the globs do not select was replicated")
	}
	if st := r.Stream.Status(); st.LastError != "" || len(st.StoppedTables) != 0 {
		t.Errorf("status: %+v", st)
	}
}

// startRenames makes the source tables (10 rows each), a table
// shop_taken of the target's own (one row, id 99), and a stream of the
// shop_* tables from MariaDB to PostgreSQL, caught up.
func startRenames(t *testing.T, tables ...string) (src, dst *sqldb.DB, r *sourcetest.Running) {
	t.Helper()
	e := newEnv(t, true)
	src, dst = sourcetest.Open(t, e.mysqlURL(t, "")), sourcetest.Open(t, e.pgURL(t))
	for _, tbl := range tables {
		sourcetest.Exec(t, src, "CREATE TABLE "+tbl+" (id INT PRIMARY KEY, v VARCHAR(20))")
		for i := 1; i <= 10; i++ {
			sourcetest.Exec(t, src, "INSERT INTO "+tbl+" VALUES (?, ?)", i, tbl)
		}
	}
	sourcetest.Exec(t, dst, "CREATE TABLE shop_taken (id INT PRIMARY KEY, v TEXT)")
	sourcetest.Exec(t, dst, "INSERT INTO shop_taken VALUES (99, 'the target''s own')")
	m := &replicate.Mapping{Include: []string{"shop_*"}}
	r = sourcetest.Start(t, replicate.Config{Name: "renames", Source: src, Target: dst, Mapping: m})
	waitCaughtUp(t, r, src)
	return src, dst, r
}
