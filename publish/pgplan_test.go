package publish

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/sqldb"
)

// TestPostgresContributionsUseTheKey reads contributions from a RowsTable
// that autovacuum has not analyzed yet (as in the first minute of a
// pipeline): the PostgreSQL query probes the primary key instead of
// scanning the table (the generic "id IN (...)" is planned as a scan
// there), and finds exactly the stored ids, odd characters included.
func TestPostgresContributionsUseTheKey(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers are skipped with -short")
	}
	ctx := context.Background()
	db, err := sqldb.Open(ctx, peers.StartPostgres(t).URL("app"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bucket, err := objects.Open(ctx, "file://"+t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	p, err := New(Config{DB: db, Bucket: bucket, Schema: config.Default(t.TempDir()).Schema})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ensureRows(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO `+RowsTable+` (id, bkt, val) SELECT 'r' || lpad(i::text, 8, '0'), 'b' || (i % 40), i FROM generate_series(1, 50000) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO `+RowsMarkerTable+` VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	odd := []string{``, `q"uote`, `back\slash`, `com,ma`, `{brace}`, `sp ace`, `NULL`}
	for i, id := range odd {
		if _, err := db.ExecContext(ctx, `INSERT INTO `+RowsTable+` (id, bkt, val) VALUES ($1, 'odd', $2)`, id, i); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := 20000; i < 20500; i++ {
		ids = append(ids, fmt.Sprintf("r%08d", i))
	}
	ids = append(ids, "r99999999", "missing") // not stored
	ids = append(ids, odd...)

	plan := func(q string, args ...any) string {
		var lines []string
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, "EXPLAIN "+q, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var l string
				if err := rows.Scan(&l); err != nil {
					return err
				}
				lines = append(lines, l)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	d := db.Dialect
	got := plan(pgContributionsQuery(d, true), pgTextArray(ids))
	if strings.Contains(got, "Seq Scan on "+RowsTable+" ") || !strings.Contains(got, "Index Scan") {
		t.Errorf("contributions on PostgreSQL are not read by the key:\n%s", got)
	}
	// The generic statement is what this one replaces: planned as a scan
	// of the whole table while the table has no statistics.
	generic := fmt.Sprintf("SELECT id, bkt, val FROM %s WHERE id IN (%s)", RowsTable, sqldb.Placeholders(d, 1, len(ids)))
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	if g, _, _ := strings.Cut(plan(generic, args...), "\n"); !strings.HasPrefix(g, "Seq Scan") {
		t.Logf("the generic statement is no longer planned as a scan here: %s", g)
	}

	recs := make([]change, len(ids))
	at := map[string]int{}
	for i, id := range ids {
		recs[i].id = id
		at[id] = i
	}
	if err := db.Tx(ctx, func(tx *sql.Tx) error { return p.contributions(ctx, tx, recs, at) }); err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, r := range recs {
		if r.had {
			found = append(found, r.id)
			var bkt string
			var val float64
			if err := db.QueryRowContext(ctx, `SELECT bkt, val FROM `+RowsTable+` WHERE id = $1`, r.id).Scan(&bkt, &val); err != nil {
				t.Fatal(err)
			}
			if r.old.bucket != bkt || r.old.value != val {
				t.Errorf("%s: read %q %v, the table has %q %v", r.id, r.old.bucket, r.old.value, bkt, val)
			}
		}
	}
	want := slices.Concat(ids[:500], odd)
	if !slices.Equal(found, want) {
		t.Errorf("found %d contributions, want %d (%v ... vs %v ...)", len(found), len(want), found[max(0, len(found)-6):], want[len(want)-6:])
	}
	// Without the marker the contributions are taken as lost (emptied
	// by a crash), whatever ids are read.
	if _, err := db.ExecContext(ctx, `DELETE FROM `+RowsMarkerTable); err != nil {
		t.Fatal(err)
	}
	if err := db.Tx(ctx, func(tx *sql.Tx) error { return p.contributions(ctx, tx, recs, at) }); !errors.Is(err, errContributionsLost) {
		t.Fatalf("contributions without the marker: %v, want %v", err, errContributionsLost)
	}
}
