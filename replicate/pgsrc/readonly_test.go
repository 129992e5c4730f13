package pgsrc_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/pgsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// catalog lists what the source's schema holds and publishes, to see that
// a stream wrote nothing there.
func catalog(t *testing.T, db *sqldb.DB) string {
	t.Helper()
	var b strings.Builder
	for _, s := range sourcetest.Column[string](t, db, `
		SELECT 'rel ' || c.relname || ' ' || c.relkind::text || ' ' || c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
		UNION ALL SELECT 'pub ' || pubname || ' ' || tablename FROM pg_publication_tables
		UNION ALL SELECT 'pubs ' || count(*) FROM pg_publication
		ORDER BY 1`) {
		b.WriteString(s + "\n")
	}
	return b.String()
}

// testReadOnlySource replicates from a user with SELECT on the table and
// the REPLICATION attribute only, from a source its owner prepared (the
// publication, replica identity): the stream runs, and the source's
// schema and publications are what they were.
func testReadOnlySource(t *testing.T, c *cluster) {
	ctx := context.Background()
	name := fmt.Sprintf("ro_%d", c.n.Add(1))
	sourcetest.Exec(t, c.root, `CREATE DATABASE `+name)
	owner := sourcetest.Open(t, c.p.RootURL(name))
	for _, q := range []string{
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		`CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT, big TEXT)`,
		`CREATE TABLE other (id BIGINT PRIMARY KEY)`,
		`ALTER TABLE t REPLICA IDENTITY FULL`,
		`CREATE PUBLICATION intercloud FOR TABLE t`,
		`INSERT INTO t SELECT i, 'v' || i, repeat('x', 5000) FROM generate_series(1, 500) i`,
	} {
		sourcetest.Exec(t, owner, q)
	}
	role := "reader_" + name
	sourcetest.Exec(t, c.root, `CREATE ROLE `+role+` LOGIN REPLICATION PASSWORD 'pw'`)
	sourcetest.Exec(t, owner, `GRANT SELECT ON t TO `+role)
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := c.root.ExecContext(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, name)
			if err == nil || time.Now().After(deadline) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	src := sourcetest.Open(t, fmt.Sprintf("postgres://%s:pw@127.0.0.1:%d/%s?sslmode=disable", role, c.p.Port, name))
	before := catalog(t, owner)

	// t exists only on the source: the full load creates it on the target.
	dst := sqliteDB(t, "dst")
	// A row filter it may not create: the plain publication is read.
	r := sourcetest.Start(t, replicate.Config{Name: "ro", Source: src, Target: dst, Tables: []string{"t"}, Poll: 10 * time.Millisecond,
		ReplicatedInserts: &replicate.ReplicatedInserts{Table: "t", Column: "v", Value: "v1"}})
	waitSame(t, src, dst, "t")
	sourcetest.Exec(t, owner, `UPDATE t SET v = 'changed' WHERE id % 7 = 0`)
	sourcetest.Exec(t, owner, `DELETE FROM t WHERE id > 450`)
	sourcetest.Exec(t, owner, `INSERT INTO t VALUES (1000, 'new', NULL)`)
	waitSame(t, src, dst, "t")
	if st := r.Stream.Status(); st.Phase != replicate.PhaseCDC || len(st.StoppedTables) != 0 {
		t.Fatalf("status = %+v", st)
	}
	r.Stop(t)
	if after := catalog(t, owner); after != before {
		t.Fatalf("the source changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if n := sourcetest.Count(t, owner, `SELECT count(*) FROM pg_class WHERE relname LIKE '\_ic\_%'`); n != 0 {
		t.Fatalf("%d _ic_ objects in the source", n)
	}

	// What the owner did not prepare is named, with the statement to run.
	sourcetest.Exec(t, owner, `GRANT SELECT ON other TO `+role)
	_, err := pgsrc.Install(ctx, src, []string{"other"})
	if err == nil || !strings.Contains(err.Error(), `ALTER TABLE "other" REPLICA IDENTITY FULL`) {
		t.Fatalf("Install without the owner's preparation = %v", err)
	}
	sourcetest.Exec(t, owner, `ALTER TABLE other REPLICA IDENTITY FULL`)
	_, err = pgsrc.Install(ctx, src, []string{"other"})
	if err == nil || !strings.Contains(err.Error(), `ALTER PUBLICATION "intercloud" ADD TABLE "other"`) {
		t.Fatalf("Install without the table in the publication = %v", err)
	}
}
