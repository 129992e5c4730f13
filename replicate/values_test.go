package replicate

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqlite"
	"github.com/intercloud/intercloud/sqldb/sqlserver"
)

func TestKeyRoundTrip(t *testing.T) {
	tbl := sqldb.Table{Name: "t", Columns: []sqldb.Column{
		{Name: "a", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "b", Type: sqldb.Type{Kind: sqldb.KindBytes}},
		{Name: "c", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
		{Name: "d", Type: sqldb.Type{Kind: sqldb.KindDecimal}},
		{Name: "e", Type: sqldb.Type{Kind: sqldb.KindString}},
		{Name: "f", Type: sqldb.Type{Kind: sqldb.KindBool}},
	}, PrimaryKey: []string{"a", "b", "c", "d", "e", "f"}}
	key := []any{int64(9007199254740993), []byte{0, 1}, time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC), "1.50", "x\x00y", true}
	enc, err := encodeKey(tbl, key)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := decodeKey(tbl, enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dec, key) {
		t.Fatalf("round trip: %#v → %q → %#v", key, enc, dec)
	}
	if _, err := decodeKey(tbl, enc[:2]); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := encodeKey(tbl, []any{nil, nil, nil, nil, nil, nil}); err == nil {
		t.Fatal("null key accepted")
	}
}

type pgish struct{ sqlite.Dialect }

func (pgish) Name() string             { return "postgres" }
func (pgish) Placeholder(n int) string { return "$" + string(rune('0'+n)) }

func TestRangeQuery(t *testing.T) {
	tbl := sqldb.Table{Name: "t", Columns: []sqldb.Column{
		{Name: "a", Type: sqldb.Type{Kind: sqldb.KindString}},
		{Name: "b", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "v", Type: sqldb.Type{Kind: sqldb.KindText}},
	}, PrimaryKey: []string{"a", "b"}}
	q, args, err := rangeQuery(pgish{}, tbl, []string{"a", "b", "v"}, []any{"x", int64(1)}, []any{"y", int64(2)}, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT "a", "b", "v" FROM "t" WHERE (("a" > $1) OR ("a" = $2 AND "b" > $3)) AND NOT (("a" > $4) OR ("a" = $5 AND "b" > $6)) ORDER BY "a", "b" LIMIT 10`
	if q != want || !reflect.DeepEqual(args, []any{"x", "x", int64(1), "y", "y", int64(2)}) {
		t.Fatalf("got %s %v\nwant %s", q, args, want)
	}
	q, _, _ = rangeQuery(sqlserver.Dialect{}, tbl, []string{"a"}, nil, nil, 5)
	if !strings.HasSuffix(q, `ORDER BY [a], [b] OFFSET 0 ROWS FETCH NEXT 5 ROWS ONLY`) {
		t.Fatalf("sqlserver limit: %s", q)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "t.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := EnsureCheckpoints(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := EnsureCheckpoints(ctx, db); err != nil {
		t.Fatal(err)
	}
	cp, err := LoadCheckpoint(ctx, db, db.Dialect, "s")
	if err != nil || cp.Phase != "" {
		t.Fatalf("no checkpoint: %+v %v", cp, err)
	}
	for _, want := range []Checkpoint{
		{Phase: PhaseSnapshot, Snapshot: &SnapshotState{Start: "42", Table: "items", LastKey: []string{"7", "a"}}},
		{Phase: PhaseCDC, Position: "1234"},
	} {
		if err := db.Tx(ctx, func(tx *sql.Tx) error { return SaveCheckpoint(ctx, tx, db.Dialect, "s", want) }); err != nil {
			t.Fatal(err)
		}
		got, err := LoadCheckpoint(ctx, db, db.Dialect, "s")
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(got.UpdatedAt) > time.Minute {
			t.Fatalf("updated_at = %v", got.UpdatedAt)
		}
		got.UpdatedAt = time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	err = db.Tx(ctx, func(tx *sql.Tx) error { return SaveCheckpoint(ctx, tx, db.Dialect, "s", Checkpoint{Phase: "bogus"}) })
	if err == nil {
		t.Fatal("bad phase saved")
	}
	if _, err := db.ExecContext(ctx, `UPDATE _ic_checkpoints SET snapshot = '{' , phase = 'snapshot'`); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(ctx, db, db.Dialect, "s"); err == nil || !strings.Contains(err.Error(), "snapshot state") {
		t.Fatalf("corrupt checkpoint: %v", err)
	}
}
