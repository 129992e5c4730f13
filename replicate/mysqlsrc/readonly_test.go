package mysqlsrc_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// schemaOf lists the tables of a database with their row counts' source
// of truth left out: what a stream could have created or altered there.
func schemaOf(t *testing.T, db *sqldb.DB, name string) string {
	t.Helper()
	var b strings.Builder
	for _, s := range sourcetest.Column[string](t, db, `SELECT CONCAT(table_name, ' ', table_type, ' ', COALESCE(create_time, ''))
		FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name`, name) {
		b.WriteString(s + "\n")
	}
	return b.String()
}

// testReadOnlySource replicates from a user with exactly SELECT,
// REPLICATION CLIENT and REPLICATION SLAVE, into a target that does not
// have the table yet, and checks the source's schema is what it was.
func testReadOnlySource(t *testing.T, e *env) {
	rootURL := e.mysqlURL(t, "")
	root := sourcetest.Open(t, rootURL)
	u, _ := url.Parse(rootURL)
	dbName := strings.TrimPrefix(u.Path, "/")
	sourcetest.Exec(t, root, itemsDDL)
	fillItems(t, root, 1, 301)
	user := "ro_" + dbName
	sourcetest.Exec(t, root, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw'", user))
	sourcetest.Exec(t, root, fmt.Sprintf("GRANT SELECT ON %s.* TO '%s'@'%%'", dbName, user))
	sourcetest.Exec(t, root, fmt.Sprintf("GRANT REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO '%s'@'%%'", user))
	var grants []string
	rows, err := root.QueryContext(context.Background(), fmt.Sprintf("SHOW GRANTS FOR '%s'@'%%'", user))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var g string
		_ = rows.Scan(&g)
		grants = append(grants, g)
	}
	rows.Close()
	t.Logf("grants: %s", strings.Join(grants, "; "))
	before := schemaOf(t, root, dbName)

	src := sourcetest.Open(t, fmt.Sprintf("mysql://%s:pw@127.0.0.1:%d/%s", user, e.my.Port, dbName))
	dst := sourcetest.Open(t, sqliteURL(t))
	r := sourcetest.Start(t, replicate.Config{Name: "ro", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 100})
	waitCaughtUp(t, r, root)
	mustValidate(t, root, dst, "items")
	sourcetest.Exec(t, root, "UPDATE items SET qty = 7 WHERE id % 5 = 0")
	sourcetest.Exec(t, root, "DELETE FROM items WHERE id > 250")
	sourcetest.Exec(t, root, "INSERT INTO items (id, name) VALUES (1000, 'new')")
	waitCaughtUp(t, r, root)
	mustValidate(t, root, dst, "items")
	if st := r.Stream.Status(); len(st.StoppedTables) != 0 {
		t.Fatalf("status = %+v", st)
	}
	r.Cancel()
	if err := r.Wait(t); err != nil {
		t.Fatal(err)
	}
	if after := schemaOf(t, root, dbName); after != before {
		t.Fatalf("the source changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if n := sourcetest.Count(t, root, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name LIKE '\\_ic\\_%'", dbName); n != 0 {
		t.Fatalf("%d _ic_ tables in the source database", n)
	}
}
