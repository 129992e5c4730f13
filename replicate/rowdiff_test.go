package replicate_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// TestValidateNamesRows plants differences and checks the report names
// each differing row with its columns and both values, redacts secrets,
// and that Resync writes exactly those rows.
func TestValidateNamesRows(t *testing.T) {
	ctx := context.Background()
	src, dst := openDB(t, "src"), openDB(t, "dst")
	const ddl = `CREATE TABLE acct (id INTEGER PRIMARY KEY, name TEXT, api_token TEXT, n INTEGER, flag %s)`
	exec(t, src, strings.Replace(ddl, "%s", "INTEGER", 1))
	exec(t, dst, strings.Replace(ddl, "%s", "BOOLEAN", 1))
	for _, db := range []*sqldb.DB{src, dst} {
		exec(t, db, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300)
			INSERT INTO acct SELECT i, 'name-' || i, 'tok-' || i, i, 1 FROM s`)
	}
	// The independent count of target writes.
	exec(t, dst, `CREATE TABLE writes (n INTEGER NOT NULL)`)
	exec(t, dst, `INSERT INTO writes VALUES (0)`)
	for _, ev := range []string{"INSERT", "UPDATE", "DELETE"} {
		exec(t, dst, `CREATE TRIGGER acct_`+ev+` AFTER `+ev+` ON acct BEGIN UPDATE writes SET n = n + 1; END`)
	}
	exec(t, src, `UPDATE acct SET flag = 5 WHERE id = 7`) // 5 on the source, 1 on the target
	exec(t, dst, `UPDATE acct SET name = 'changed', n = NULL WHERE id = 42`)
	exec(t, dst, `UPDATE acct SET api_token = 'leaked' WHERE id = 43`)
	exec(t, dst, `DELETE FROM acct WHERE id = 150`)
	exec(t, dst, `INSERT INTO acct (id, name) VALUES (1000, 'stray')`)
	exec(t, dst, `UPDATE writes SET n = 0`)

	rep, err := replicate.ValidateWith(ctx, src, dst, []string{"acct"}, replicate.ValidateOptions{Chunk: 100, MaxRows: 4})
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Tables[0]
	if rep.OK() || tr.DifferingRows != 5 || len(tr.Rows) != 4 {
		t.Fatalf("report:\n%s", rep)
	}
	text := rep.String()
	for _, want := range []string{
		`key (7): differs: flag source "5", target "1"`,
		`key (42): differs: name source "name-42", target "changed"; n source "42", target NULL`,
		`key (43): differs: api_token source [redacted], target [redacted]`,
		`key (150): missing on target`,
		`... and 1 more differing rows`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "leaked") || strings.Contains(text, "tok-43") {
		t.Errorf("report shows a secret:\n%s", text)
	}
	b, _ := json.Marshal(rep)
	if strings.Contains(string(b), "leaked") || !strings.Contains(string(b), `"differing_rows":5`) {
		t.Errorf("json: %s", b)
	}
	// All of them, with a larger limit: the stray row too.
	rep, err = replicate.ValidateWith(ctx, src, dst, []string{"acct"}, replicate.ValidateOptions{Chunk: 100, MaxRows: 100})
	if err != nil || len(rep.Tables[0].Rows) != 5 || !strings.Contains(rep.String(), "key (1000): only on target") {
		t.Fatalf("report: %v\n%s", err, rep)
	}

	if err := replicate.Resync(ctx, src, dst, rep); err != nil {
		t.Fatal(err)
	}
	// Exactly the five rows were written: 4 upserts and 1 delete (an
	// upsert is one write whether it inserts or updates).
	if n := count(t, dst, `SELECT n FROM writes`); n != 5 {
		t.Fatalf("resync made %d row writes, want 5", n)
	}
	if n := count(t, dst, `SELECT COUNT(*) FROM acct WHERE id = 1000`); n != 0 {
		t.Fatal("the stray row is still there")
	}
	// The flag column still differs by type (a boolean cannot hold 5,
	// and validate says so): the rest is repaired.
	rep, err = replicate.Validate(ctx, src, dst, []string{"acct"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if tr := rep.Tables[0]; tr.DifferingRows != 1 || tr.Rows[0].Key[0] != "7" {
		t.Fatalf("after resync:\n%s", rep)
	}
}
