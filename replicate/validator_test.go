package replicate

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// TestValidatorCountsPersistentDifferences: a row that differs in a first
// look but not in the second (a change in flight) is not counted; one that
// differs in both is, and is listed.
func TestValidatorCountsPersistentDifferences(t *testing.T) {
	ctx := context.Background()
	open := func(name string) *sqldb.DB {
		db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), name+".db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	exec := func(db *sqldb.DB, q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	src, dst := open("src"), open("dst")
	for _, db := range []*sqldb.DB{src, dst} {
		exec(db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`)
		exec(db, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 50) INSERT INTO t SELECT i, 'v' || i FROM s`)
	}
	v := &Validator{Source: src, Target: dst, Tables: []string{"t"}, Name: "s", Options: ValidateOptions{Chunk: 10}}
	st, err := v.Round(ctx, time.Millisecond)
	if err != nil || st.DifferingRows["t"] != 0 {
		t.Fatalf("equal tables: %+v, %v", st, err)
	}
	exec(dst, `UPDATE t SET v = 'in flight' WHERE id = 3`)
	exec(dst, `UPDATE t SET v = 'diverged' WHERE id = 33`)
	v.afterFirst = func() { exec(dst, `UPDATE t SET v = 'v3' WHERE id = 3`) }
	st, err = v.Round(ctx, time.Millisecond)
	if err != nil || st.DifferingRows["t"] != 1 || len(st.Rows["t"]) != 1 || st.Rows["t"][0].Key[0] != "33" {
		t.Fatalf("round = %+v, %v", st, err)
	}

	// Run keeps the last round in Status.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v.afterFirst, v.Every, v.Recheck = nil, time.Hour, time.Millisecond
	go v.Run(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for v.Status().Rounds == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no round")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := v.Status(); st.DifferingRows["t"] != 1 || st.Name != "s" || st.Error != "" {
		t.Fatalf("status = %+v", st)
	}
}
