package mysqlsrc_test

import (
	"strings"
	"testing"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// queryStrings returns the first column of every row.
func queryStrings(t *testing.T, db *sqldb.DB, q string, args ...any) []string {
	t.Helper()
	return sourcetest.Column[string](t, db, q, args...)
}

// testSchemaFull replicates MariaDB → PostgreSQL with schema: full: the
// target gets the secondary indexes, defaults and foreign keys (deferred,
// validated), status names what it could not convert, and a cascade the
// source did not log (InnoDB keeps cascades out of the binlog) happens on
// the target through its own foreign key.
func testSchemaFull(t *testing.T, e *env) {
	src, dst := sourcetest.Open(t, e.mysqlURL(t, "")), sourcetest.Open(t, e.pgURL(t))
	for _, q := range []string{
		`CREATE TABLE parent (id INT PRIMARY KEY, code INT NOT NULL, name VARCHAR(40) NOT NULL DEFAULT 'n/a', body TEXT,
			created DATETIME DEFAULT CURRENT_TIMESTAMP, token VARCHAR(36) DEFAULT (uuid()),
			UNIQUE KEY uq_code (code), KEY idx_name_code (name, code), FULLTEXT KEY ft_body (body)) ENGINE=InnoDB`,
		`CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL, qty INT NOT NULL DEFAULT 5,
			KEY idx_qty (qty), CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB`,
		`INSERT INTO parent (id, code, name, body) VALUES (1, 10, 'a', 'x'), (2, 20, 'b', 'y'), (3, 30, 'c', 'z')`,
		`INSERT INTO child (id, parent_id, qty) VALUES (1, 1, 1), (2, 1, 2), (3, 2, 3), (4, 3, 4)`,
	} {
		sourcetest.Exec(t, src, q)
	}
	r := sourcetest.Start(t, replicate.Config{Name: "full", Source: src, Target: dst, Tables: []string{"parent", "child"}, Schema: replicate.SchemaFull})
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "parent", "child")

	// The target's catalog, read with its own SQL.
	idx := strings.Join(queryStrings(t, dst, `SELECT indexdef FROM pg_indexes WHERE tablename IN ('parent', 'child') AND indexname NOT LIKE '%pkey' ORDER BY indexname`), "\n")
	for _, want := range []string{
		`CREATE INDEX child_idx_qty ON public.child USING btree (qty)`,
		`CREATE INDEX child_fk_parent ON public.child USING btree (parent_id)`,
		`CREATE INDEX parent_idx_name_code ON public.parent USING btree (name, code)`,
		`CREATE UNIQUE INDEX parent_uq_code ON public.parent USING btree (code)`,
	} {
		if !strings.Contains(idx, want) {
			t.Errorf("target indexes lack %q:\n%s", want, idx)
		}
	}
	defs := strings.Join(queryStrings(t, dst, `SELECT table_name || '.' || column_name || ' ' || column_default FROM information_schema.columns
		WHERE table_name IN ('parent', 'child') AND column_default IS NOT NULL ORDER BY 1`), "\n")
	for _, want := range []string{"child.qty 5", "parent.created CURRENT_TIMESTAMP", "parent.name 'n/a'"} {
		if !strings.Contains(defs, want) {
			t.Errorf("target defaults lack %q:\n%s", want, defs)
		}
	}
	fks := queryStrings(t, dst, `SELECT conname || ' ' || confdeltype::text || ' ' || condeferrable || ' ' || condeferred || ' ' || convalidated FROM pg_constraint WHERE contype = 'f'`)
	if len(fks) != 1 || fks[0] != "fk_parent c true true true" {
		t.Errorf("target foreign keys = %v", fks)
	}
	st := r.Stream.Status()
	// 4 indexes (InnoDB's index behind the foreign key too), 3 defaults,
	// 1 foreign key.
	if st.Schema == nil || st.Schema.Created != 8 {
		t.Fatalf("schema report = %+v", st.Schema)
	}
	var issues []string
	for _, i := range st.Schema.NotConverted {
		issues = append(issues, i.Table+" "+i.Kind+" "+i.Name+": "+i.Reason)
	}
	all := strings.Join(issues, "\n")
	if len(issues) != 2 || !strings.Contains(all, "parent index ft_body: a FULLTEXT index") || !strings.Contains(all, "parent default token: the expression") {
		t.Fatalf("not converted:\n%s", all)
	}

	// A cascade the binlog does not carry.
	sourcetest.Exec(t, src, `DELETE FROM parent WHERE id = 1`)
	sourcetest.Exec(t, src, `INSERT INTO child (id, parent_id) VALUES (5, 2)`)
	waitCaughtUp(t, r, src)
	mustValidate(t, src, dst, "parent", "child")
	if n := sourcetest.Count(t, dst, `SELECT COUNT(*) FROM child WHERE qty = 5`); n != 1 {
		t.Fatalf("%d rows with the default qty", n)
	}
}
