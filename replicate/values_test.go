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
)

func TestCanonical(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6007000, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		kind sqldb.Kind
		in   []any // all must give want
		want string
	}{
		{sqldb.KindInt, []any{int64(42), 42, uint8(42), "42", []byte("042"), 42.0, "42.0"}, "42"},
		{sqldb.KindInt, []any{uint64(18446744073709551615), "18446744073709551615"}, "18446744073709551615"},
		{sqldb.KindFloat, []any{1.5, float32(1.5), "1.5", []byte("1.50")}, "1.5"},
		{sqldb.KindFloat, []any{1e21, "1e21"}, "1e+21"},
		{sqldb.KindDecimal, []any{"1.50", "+001.5", []byte("1.5000"), 1.5, "15e-1"}, "1.5"},
		{sqldb.KindDecimal, []any{"-0.00", "0", "000", 0.0}, "0"},
		{sqldb.KindDecimal, []any{"-12.340", "-12.34"}, "-12.34"},
		{sqldb.KindBool, []any{true, int64(1), "1", "true", "t", []byte("1")}, "1"},
		{sqldb.KindBool, []any{false, int64(0), "0", "false", "f"}, "0"},
		{sqldb.KindTimestamp, []any{ts, ts.UTC(), "2024-01-02T02:04:05.006007Z", "2024-01-02 02:04:05.006007", "2024-01-02 03:04:05.006007+01:00", "2024-01-02 03:04:05.006007+01"}, "2024-01-02T02:04:05.006007Z"},
		{sqldb.KindDate, []any{"2024-01-02", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), "2024-01-02T00:00:00Z"}, "2024-01-02"},
		{sqldb.KindTime, []any{"13:14:15.500", "13:14:15.5", 13*time.Hour + 14*time.Minute + 15500*time.Millisecond}, "13:14:15.5"},
		{sqldb.KindBytes, []any{[]byte{0xde, 0xad}, "\xde\xad"}, "dead"},
		{sqldb.KindJSON, []any{`{"b":1,"a":2}`, `{ "a": 2, "b": 1 }`, []byte(`{"a":2,"b":1}`)}, `{"a":2,"b":1}`},
		{sqldb.KindString, []any{"héllo", []byte("héllo")}, "héllo"},
	} {
		for _, v := range tc.in {
			got, err := Canonical(sqldb.Type{Kind: tc.kind}, v)
			if err != nil || got != tc.want {
				t.Errorf("Canonical(%v, %T %v) = %q, %v; want %q", tc.kind, v, v, got, err, tc.want)
			}
		}
	}
	for _, tc := range []struct {
		kind sqldb.Kind
		in   any
	}{
		{sqldb.KindInt, "x"}, {sqldb.KindInt, 1.5}, {sqldb.KindFloat, "pi"}, {sqldb.KindBool, "maybe"},
		{sqldb.KindTimestamp, "yesterday"}, {sqldb.KindBytes, 12},
	} {
		if _, err := Canonical(sqldb.Type{Kind: tc.kind}, tc.in); err == nil {
			t.Errorf("Canonical(%v, %v) did not fail", tc.kind, tc.in)
		}
	}
}

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

type mssqlish struct{ sqlite.Dialect }

func (mssqlish) Name() string { return "sqlserver" }

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
	q, _, _ = rangeQuery(mssqlish{}, tbl, []string{"a"}, nil, nil, 5)
	if !strings.HasSuffix(q, `ORDER BY "a", "b" OFFSET 0 ROWS FETCH NEXT 5 ROWS ONLY`) {
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

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"1.50", "-0", "1e5", "2024-01-02T03:04:05Z", "13:14:15.500", `{"a":1}`, "0x1p-2", "NaN", "", "+"} {
		f.Add(s, uint8(sqldb.KindDecimal))
	}
	f.Fuzz(func(t *testing.T, s string, k uint8) {
		typ := sqldb.Type{Kind: sqldb.Kind(k%11 + 1)}
		c1, err := Canonical(typ, s)
		if err != nil {
			return
		}
		// Canonical text is a fixed point for the text kinds it returns.
		switch typ.Kind {
		case sqldb.KindDecimal, sqldb.KindInt, sqldb.KindBool, sqldb.KindString, sqldb.KindText, sqldb.KindTimestamp, sqldb.KindDate:
			c2, err := Canonical(typ, c1)
			if err != nil || c2 != c1 {
				t.Fatalf("Canonical(%v, %q) = %q, again %q (%v)", typ.Kind, s, c1, c2, err)
			}
		}
	})
}
