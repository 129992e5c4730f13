package pgsrc_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/pgsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// TestReplicatedInsertsFilter runs the reverse stream's publication row
// filter against one real server.
func TestReplicatedInsertsFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server")
	}
	c := startCluster(t)
	t.Run("WalsenderLeavesThemOut", func(t *testing.T) { testFilterLeavesOut(t, c) })
	t.Run("SlotOlderThanPublications", func(t *testing.T) { testFilterOldSlot(t, c) })
	t.Run("Bidirectional", func(t *testing.T) { testFilterBidi(t, c) })
	t.Run("DropSlotDropsThem", func(t *testing.T) { testFilterDropSlot(t, c) })
}

// Hostile names: quotes and a backslash in the table, the column and the
// value.
const (
	fTable  = `rec"ords`
	fColumn = `_or'igin`
	fValue  = `a'w\s"`
)

func filterDDL(db *sqldb.DB) string {
	q := db.Dialect.Quote
	return `CREATE TABLE ` + q(fTable) + ` (id BIGINT PRIMARY KEY, v TEXT, ` + q(fColumn) + ` TEXT)`
}

// replicatedTxn writes n records of the other cloud (ids from first) and
// a row of other the way the other stream applies them: marked.
func replicatedTxn(t *testing.T, db *sqldb.DB, first, n int) {
	t.Helper()
	err := db.Tx(context.Background(), func(tx *sql.Tx) error {
		if err := (pgsrc.Marker{}).MarkOrigin(context.Background(), tx, "aws"); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO `+db.Dialect.Quote(fTable)+` SELECT i, 'r', $3 FROM generate_series($1::bigint, $2::bigint) i`, first, first+n-1, fValue); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO other VALUES ($1) ON CONFLICT DO NOTHING`, first)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func filterSource(t *testing.T, db *sqldb.DB, filtered bool) *pgsrc.Source {
	t.Helper()
	cfg := replicate.SourceConfig{Name: "azure-to-aws", Tables: []string{fTable, "other"}, Logger: sourcetest.Quiet()}
	if filtered {
		cfg.ReplicatedInserts = &replicate.ReplicatedInserts{Table: fTable, Column: fColumn, Value: fValue}
	}
	src, err := pgsrc.Open(context.Background(), db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// keysOf lists "op table id" of changes.
func keysOf(cs []replicate.Change) []string {
	var out []string
	for _, c := range cs {
		if c.Op == replicate.OpSchema {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %v", c.Op, c.Table, c.Key[0]))
	}
	return out
}

// testFilterLeavesOut: the walsender sends none of the marked inserts of
// the filtered table; local inserts (a NULL origin included), a local
// update that sets the origin to the other cloud, deletes and the other
// tables arrive as without the filter.
func testFilterLeavesOut(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "filter")
	sourcetest.Exec(t, db, filterDDL(db))
	sourcetest.Exec(t, db, `CREATE TABLE other (id BIGINT PRIMARY KEY)`)
	filterSource(t, db, true)
	src := filterSource(t, db, true) // again: idempotent
	ins, upd := pgsrc.PubNames("azure-to-aws")
	if n := sourcetest.Count(t, db, `SELECT count(*) FROM pg_publication WHERE pubname IN ($1, $2)`, ins, upd); n != 2 {
		t.Fatalf("%d filtered publications, want 2", n)
	}
	if got := queryString(t, db, `SELECT string_agg(tablename || ' ' || coalesce(rowfilter, '-'), '; ' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = $1`, ins); got != `_ic_replication_origin -; other -; rec"ords ("_or'igin" IS DISTINCT FROM 'a''w\s"'::text)` {
		t.Fatalf("insert publication tables: %s", got)
	}
	from, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := db.Dialect.Quote(fTable)
	replicatedTxn(t, db, 1000, 100)
	sourcetest.Exec(t, db, `INSERT INTO `+q+` VALUES (1, 'l', 'azure'), (2, 'l', 'azure'), (3, 'l', 'azure'), (4, 'l', NULL)`)
	sourcetest.Exec(t, db, `INSERT INTO other VALUES (1)`)
	sourcetest.Exec(t, db, `UPDATE `+q+` SET `+db.Dialect.Quote(fColumn)+` = $1 WHERE id = 1`, fValue)
	replicatedTxn(t, db, 2000, 100)
	sourcetest.Exec(t, db, `UPDATE `+q+` SET v = 'r2' WHERE id = 1000`) // local update of a replicated row
	sourcetest.Exec(t, db, `DELETE FROM `+q+` WHERE id = 2`)
	sourcetest.Exec(t, db, `DELETE FROM `+q+` WHERE id = 1001`)
	got, err := collect(t, src, from, replicate.StreamOptions{SkipReplicated: true}, func(bs []replicate.Batch) bool {
		return slices.Contains(keysOf(changesOf(bs)), "delete "+fTable+" 1001")
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"upsert " + fTable + " 1", "upsert " + fTable + " 2", "upsert " + fTable + " 3", "upsert " + fTable + " 4",
		"upsert other 1", "upsert " + fTable + " 1", "upsert " + fTable + " 1000", "delete " + fTable + " 2", "delete " + fTable + " 1001"}
	if k := keysOf(changesOf(got)); !slices.Equal(k, want) {
		t.Fatalf("changes %q, want %q", k, want)
	}
	for _, ch := range changesOf(got) {
		if ch.Table == fTable && ch.Key[0] == int64(1) && ch.Row["v"] == "l" && ch.Row[fColumn] != fValue && ch.Row[fColumn] != "azure" {
			t.Fatalf("row 1 = %v", ch.Row)
		}
	}
	if last := changesOf(got)[5]; last.Row[fColumn] != fValue {
		t.Fatalf("the local update of the origin arrived as %v", last.Row)
	}
	// Received: the 5 local inserts, the origin mark's first insert and
	// the two marked rows of other; none of the 200 marked records.
	if n := pgsrc.InsertsReceived(src); n != 8 {
		t.Fatalf("the stream received %d inserts, want 8 (without the filter: 208)", n)
	}

	// Another value (the other cloud renamed) replaces the filter, to be
	// read from a later position.
	before := queryString(t, db, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`, ins)
	if _, err := pgsrc.Open(ctx, db, replicate.SourceConfig{Name: "azure-to-aws", Tables: []string{fTable, "other"}, Logger: sourcetest.Quiet(),
		ReplicatedInserts: &replicate.ReplicatedInserts{Table: fTable, Column: fColumn, Value: "gcp"}}); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, db, `SELECT rowfilter FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2`, ins, fTable); got != `("_or'igin" IS DISTINCT FROM 'gcp'::text)` {
		t.Fatalf("replaced filter: %s", got)
	}
	if after := queryString(t, db, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`, ins); after == before {
		t.Fatalf("the comment stayed %q", after)
	}
}

// testFilterOldSlot: a slot made before the filtered publications (a
// deployment upgraded in place) reads the plain publication until it
// passes where they may be read, then moves to them by itself.
func testFilterOldSlot(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "oldslot")
	sourcetest.Exec(t, db, filterDDL(db))
	sourcetest.Exec(t, db, `CREATE TABLE other (id BIGINT PRIMARY KEY)`)
	filterSource(t, db, false) // makes the slot
	q := db.Dialect.Quote(fTable)
	// A transaction open across the publications' creation.
	long, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := long.Exec(`INSERT INTO ` + q + ` VALUES (10, 'long', 'azure')`); err != nil {
		t.Fatal(err)
	}
	replicatedTxn(t, db, 1000, 50)
	sourcetest.Exec(t, db, `INSERT INTO `+q+` VALUES (1, 'a', 'azure')`)
	made := make(chan *pgsrc.Source)
	go func() {
		src, err := pgsrc.Open(ctx, db, replicate.SourceConfig{Name: "azure-to-aws", Tables: []string{fTable, "other"}, Logger: sourcetest.Quiet(),
			ReplicatedInserts: &replicate.ReplicatedInserts{Table: fTable, Column: fColumn, Value: fValue}})
		if err != nil {
			t.Error(err)
		}
		made <- src
	}()
	time.Sleep(200 * time.Millisecond) // the publications exist; Open waits for long
	if err := long.Commit(); err != nil {
		t.Fatal(err)
	}
	src := <-made
	if src == nil {
		t.FailNow()
	}
	replicatedTxn(t, db, 2000, 50)
	sourcetest.Exec(t, db, `INSERT INTO `+q+` VALUES (2, 'b', 'azure')`)
	ctx2, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var keys []string
	phase3 := int64(-1)
	err = src.Stream(ctx2, "", replicate.StreamOptions{SkipReplicated: true}, func(_ context.Context, b replicate.Batch) error {
		keys = append(keys, keysOf(b.Changes)...)
		switch {
		case phase3 < 0 && slices.Contains(keys, "upsert "+fTable+" 2"):
			// Wait until the stream moved (it delivers past the position
			// within 2 s when idle), then write more.
			go func() {
				ins, _ := pgsrc.PubNames("azure-to-aws")
				sourcetest.WaitFor(t, "the stream on the filtered publications", 20*time.Second, func() bool {
					return queryString(t, db, `SELECT coalesce((SELECT confirmed_flush_lsn >= split_part(obj_description(p.oid, 'pg_publication'), ' ', 5)::pg_lsn
FROM pg_replication_slots, pg_publication p WHERE slot_name = $1 AND p.pubname = $2), false)::text`, pgsrc.SlotName("azure-to-aws"), ins) == "true"
				})
				time.Sleep(100 * time.Millisecond)
				phase3 = pgsrc.InsertsReceived(src)
				replicatedTxn(t, db, 3000, 50)
				sourcetest.Exec(t, db, `INSERT INTO `+q+` VALUES (3, 'c', 'azure')`)
			}()
			phase3 = 0
		case slices.Contains(keys, "upsert "+fTable+" 3"):
			cancel()
		}
		return nil
	})
	if ctx2.Err() == context.DeadlineExceeded || (err != nil && err != context.Canceled) {
		t.Fatalf("stream: %v (changes %q)", err, keys)
	}
	want := []string{"upsert " + fTable + " 1", "upsert " + fTable + " 10", "upsert " + fTable + " 2", "upsert " + fTable + " 3"}
	if !slices.Equal(keys, want) {
		t.Fatalf("changes %q, want %q", keys, want)
	}
	// After the move: the local insert and the marked row of other only.
	if n := pgsrc.InsertsReceived(src) - phase3; n != 2 {
		t.Fatalf("after the move the stream received %d inserts, want 2 (without the filter: 52)", n)
	}
}

// testFilterBidi: PostgreSQL ⇄ SQLite with the records table both ways,
// the reverse stream filtered: local records reach the other side,
// replicated ones do not come back, a local update that sets the origin
// to the other cloud is replicated.
func testFilterBidi(t *testing.T, c *cluster) {
	ctx := context.Background()
	pg, lite := c.newDB(t, "fbidi"), sqliteDB(t, "fbidi")
	const ddl = `CREATE TABLE records (id BIGINT PRIMARY KEY, v TEXT NOT NULL, _origin TEXT)`
	for _, db := range []*sqldb.DB{pg, lite} {
		sourcetest.Exec(t, db, ddl)
		if err := replicate.Prepare(ctx, db, []string{"records"}, sourcetest.Quiet()); err != nil {
			t.Fatal(err)
		}
	}
	rev := replicate.Config{Name: "pg-to-lite", Origin: "pg", Source: pg, Target: lite, Tables: []string{"records"}, SkipReplicated: true, SkipFullLoad: true,
		Poll: 5 * time.Millisecond, ReplicatedInserts: &replicate.ReplicatedInserts{Table: "records", Column: "_origin", Value: "lite"}}
	// The slot (and the publications before it) before the first write.
	src, err := pgsrc.Open(ctx, pg, replicate.SourceConfig{Name: rev.Name, Tables: rev.Tables, ReplicatedInserts: rev.ReplicatedInserts, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	_ = src.Close()
	sourcetest.Exec(t, lite, `CREATE TABLE writes (n INTEGER NOT NULL); INSERT INTO writes VALUES (0);
CREATE TRIGGER count_ins AFTER INSERT ON records BEGIN UPDATE writes SET n = n + 1; END;
CREATE TRIGGER count_upd AFTER UPDATE ON records BEGIN UPDATE writes SET n = n + 1; END;
CREATE TRIGGER count_del AFTER DELETE ON records BEGIN UPDATE writes SET n = n + 1; END;`)
	sourcetest.Exec(t, pg, `CREATE TABLE writes (n BIGINT NOT NULL);
INSERT INTO writes VALUES (0);
CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE writes SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER count_writes AFTER INSERT OR UPDATE OR DELETE ON records FOR EACH ROW EXECUTE FUNCTION count_write();`)
	r := sourcetest.Start(t, rev)
	sourcetest.Start(t, replicate.Config{Name: "lite-to-pg", Origin: "lite", Source: lite, Target: pg, Tables: []string{"records"}, SkipReplicated: true, SkipFullLoad: true, Poll: 5 * time.Millisecond})
	for i := 1; i <= 30; i++ {
		sourcetest.Exec(t, pg, `INSERT INTO records VALUES ($1, 'pg', 'pg')`, i)
		sourcetest.Exec(t, lite, `INSERT INTO records VALUES (?, 'lite', 'lite')`, 1000+i)
	}
	waitSame(t, pg, lite, "records")
	// Local updates on PostgreSQL, one of them setting the origin to the
	// other cloud (an update is never filtered), and deletes.
	sourcetest.Exec(t, pg, `UPDATE records SET _origin = 'lite', v = 'moved' WHERE id <= 5`)
	sourcetest.Exec(t, pg, `UPDATE records SET v = 'pg2' WHERE id BETWEEN 1001 AND 1005`)
	waitSame(t, pg, lite, "records")
	sourcetest.Exec(t, pg, `DELETE FROM records WHERE id IN (6, 1006)`)
	waitSame(t, pg, lite, "records")
	if n := sourcetest.Count(t, lite, `SELECT count(*) FROM records WHERE _origin = 'lite' AND v = 'moved'`); n != 5 {
		t.Fatalf("SQLite has %d of the rows whose origin was updated on PostgreSQL, want 5", n)
	}
	time.Sleep(300 * time.Millisecond) // any echo
	waitSame(t, pg, lite, "records")
	// SQLite: 30 local inserts, 30 replicated + 10 updates + 2 deletes;
	// PostgreSQL: 30 + 30 + 10 + 2, nothing twice.
	if got := sourcetest.Count(t, lite, `SELECT n FROM writes`); got != 72 {
		t.Errorf("SQLite saw %d writes, want 72", got)
	}
	if got := sourcetest.Count(t, pg, `SELECT n FROM writes`); got != 72 {
		t.Errorf("PostgreSQL saw %d writes, want 72", got)
	}
	// Stopped right after batches that only moved its position (rows
	// replicated from SQLite, skipped, checkpointed up to a second later),
	// the reverse stream starts again from its checkpoint: the slot was
	// told no more than it.
	var mark pglogrepl.LSN
	for i := 2001; i <= 2003; i++ {
		var err error
		if mark, err = pglogrepl.ParseLSN(queryString(t, pg, `SELECT pg_current_wal_insert_lsn()::text`)); err != nil {
			t.Fatal(err)
		}
		sourcetest.Exec(t, lite, `INSERT INTO records VALUES (?, 'lite', 'lite')`, i)
		waitSame(t, pg, lite, "records")
	}
	// The reverse stream has read the last of them (its position is past
	// where the WAL stood before it was applied).
	sourcetest.WaitFor(t, "the reverse stream past the replicated rows", 30*time.Second, func() bool {
		l, err := pgsrc.ParsePosition(r.Stream.Status().Position)
		return err == nil && l > mark
	})
	r.Stop(t)
	sourcetest.Start(t, rev)
	sourcetest.Exec(t, pg, `INSERT INTO records VALUES (31, 'pg', 'pg')`)
	waitSame(t, pg, lite, "records")
}

// testFilterDropSlot: DropSlot drops a consumer's filtered publications
// with its slot (its name hostile), and leaves the plain publication,
// another consumer's slot and publications, and a publication of the
// consumer's name that it did not make; read with the server's own
// client.
func testFilterDropSlot(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "dropslot")
	sourcetest.Exec(t, db, filterDDL(db))
	sourcetest.Exec(t, db, `CREATE TABLE other (id BIGINT PRIMARY KEY)`)
	const hostile, kept = `az"ure'); DROP TABLE other; --`, "aws-to-azure"
	for _, name := range []string{hostile, kept} {
		cfg := replicate.SourceConfig{Name: name, Tables: []string{fTable, "other"}, Logger: sourcetest.Quiet(),
			ReplicatedInserts: &replicate.ReplicatedInserts{Table: fTable, Column: fColumn, Value: fValue}}
		if _, err := pgsrc.Open(ctx, db, cfg); err != nil {
			t.Fatal(err)
		}
	}
	dbName := queryString(t, db, `SELECT current_database()`)
	list := func(q string) string { return strings.Join(c.p.Query(t, dbName, q), " ") }
	pubs := func() string { return list(`SELECT pubname FROM pg_publication ORDER BY pubname`) }
	slots := func() string {
		return list(`SELECT slot_name FROM pg_replication_slots WHERE database = current_database() ORDER BY slot_name`)
	}
	ins, upd := pgsrc.PubNames(hostile)
	keptIns, keptUpd := pgsrc.PubNames(kept)
	sorted := func(names ...string) string { slices.Sort(names); return strings.Join(names, " ") }
	if got, want := pubs(), sorted(pgsrc.Publication, ins, upd, keptIns, keptUpd); got != want {
		t.Fatalf("publications %q, want %q", got, want)
	}
	if err := pgsrc.DropSlot(ctx, db, hostile); err != nil {
		t.Fatal(err)
	}
	if got, want := pubs(), sorted(pgsrc.Publication, keptIns, keptUpd); got != want {
		t.Errorf("publications after DropSlot %q, want %q", got, want)
	}
	if got, want := slots(), pgsrc.SlotName(kept); got != want {
		t.Errorf("slots after DropSlot %q, want %q", got, want)
	}
	if got := list(`SELECT count(*) FROM other`); got != "0" {
		t.Errorf("table other: %q", got)
	}
	// Again: nothing left to drop is no error. A publication of the
	// consumer's name that publishes more than the one made here is not
	// its own and stays.
	c.p.Query(t, dbName, `CREATE PUBLICATION `+db.Dialect.Quote(ins)+` FOR TABLE other WITH (publish = 'insert, update')`)
	if err := pgsrc.DropSlot(ctx, db, hostile); err != nil {
		t.Fatal(err)
	}
	if got, want := pubs(), sorted(pgsrc.Publication, ins, keptIns, keptUpd); got != want {
		t.Errorf("publications after DropSlot again %q, want %q", got, want)
	}
}
