package replicate_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
)

// TestSchemaFullToSQLite: a SQLite target gets the indexes; what SQLite
// cannot take after the fact (a default, a foreign key) is named.
func TestSchemaFullToSQLite(t *testing.T) {
	src, dst := openDB(t, "src"), openDB(t, "dst")
	exec(t, src, `CREATE TABLE p (id INTEGER PRIMARY KEY, code INTEGER NOT NULL, name TEXT DEFAULT 'none')`)
	exec(t, src, `CREATE UNIQUE INDEX p_code ON p (code)`)
	exec(t, src, `CREATE INDEX p_lower ON p (lower(name))`)
	exec(t, src, `CREATE TABLE c (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p (id) ON DELETE CASCADE)`)
	exec(t, src, `INSERT INTO p VALUES (1, 10, 'a')`)
	if err := replicate.Prepare(context.Background(), src, []string{"p", "c"}, quietLogger()); err != nil {
		t.Fatal(err)
	}
	r := sourcetest.Start(t, replicate.Config{Name: "s", Source: src, Target: dst, Tables: []string{"p", "c"}, Schema: replicate.SchemaFull, Poll: 5 * time.Millisecond})
	waitCaughtUp(t, r, src)
	if n := count(t, dst, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'p_p_code' AND sql LIKE 'CREATE UNIQUE INDEX%'`); n != 1 {
		t.Fatal("the unique index is not on the target")
	}
	st := r.Stream.Status()
	var issues []string
	for _, i := range st.Schema.NotConverted {
		issues = append(issues, i.Table+" "+i.Kind+" "+i.Name+": "+i.Reason)
	}
	all := strings.Join(issues, "\n")
	for _, want := range []string{
		"p index p_lower: an index on an expression",
		"p default name: sqlite cannot change a column's default",
		"c foreign key c_fk0: sqlite checks foreign keys at once",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("not converted lacks %q:\n%s", want, all)
		}
	}
	if st.Schema.Created != 1 || len(issues) != 3 {
		t.Fatalf("schema report: %+v", st.Schema)
	}
	if !strings.Contains(r.Stream.Status().State, "streaming") {
		t.Fatalf("state %q", st.State)
	}
}
