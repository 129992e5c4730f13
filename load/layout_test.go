package load

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/sqldb"
)

// layoutRecords are records of two requests (different origin, trace and
// time) with what a load must carry over exactly: a missing optional
// field, escapes, non-ASCII, fractions and timestamps.
func layoutRecords() []record.Record {
	at1 := time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)
	at2 := time.Date(2026, 11, 24, 10, 0, 1, 0, time.UTC)
	ts := time.Date(2026, 11, 24, 9, 59, 58, 500000000, time.UTC)
	return []record.Record{
		{ID: "a-1", Origin: "aws", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", IngestedAt: at1,
			Fields: map[string]any{"device": "d\"1\"\\<x>", "metric": "cpu", "value": 1.25, "ts": ts}},
		{ID: "a-2", Origin: "aws", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", IngestedAt: at1,
			Fields: map[string]any{"device": "dé😀", "metric": "mem", "value": -0.001, "ts": ts.Add(time.Second)}},
		{ID: "b-1", Origin: "azure", TraceID: "00f067aa0ba902b700f067aa0ba902b7", IngestedAt: at2,
			Fields: map[string]any{"device": "d3", "metric": "disk", "value": 1e21, "ts": ts.Add(2 * time.Second)}},
		{ID: "b-2", Origin: "azure", TraceID: "00f067aa0ba902b700f067aa0ba902b7", IngestedAt: at2,
			Fields: map[string]any{"device": "d4", "metric": "net", "value": 42.0, "ts": ts}},
	}
}

// oldLayout is a raw object as earlier versions wrote it: every line
// self-contained.
func oldLayout(t testing.TB, recs []record.Record) []byte {
	t.Helper()
	var b []byte
	for _, r := range recs {
		var err error
		if b, err = r.AppendJSON(b); err != nil {
			t.Fatal(err)
		}
		b = append(b, '\n')
	}
	return b
}

// sharedLayout is a raw object as the API writes it: a shared line per run
// of records with the same origin, trace and time, then their compact
// lines.
func sharedLayout(t testing.TB, recs []record.Record) []byte {
	t.Helper()
	var b []byte
	for i, r := range recs {
		if i == 0 || r.TraceID != recs[i-1].TraceID {
			b = append(record.AppendShared(b, record.Shared{Origin: r.Origin, TraceID: r.TraceID, IngestedAt: r.IngestedAt}), '\n')
		}
		var err error
		if b, err = r.AppendCompact(b); err != nil {
			t.Fatal(err)
		}
		b = append(b, '\n')
	}
	return b
}

// loadBothLayouts loads the same records from an object of each layout,
// emptying the table between the two, and returns what dump (the
// database's own client) printed after each.
func loadBothLayouts(t *testing.T, l *Loader, db *sqldb.DB, part string, dump func() []string) (old, shared []string) {
	t.Helper()
	ctx := context.Background()
	recs := layoutRecords()
	for i, data := range [][]byte{oldLayout(t, recs), sharedLayout(t, recs)} {
		if i == 1 {
			if bytes.Equal(data, oldLayout(t, recs)) || len(data) >= len(oldLayout(t, recs)) {
				t.Fatalf("the shared layout is not the compact one:\n%s", data)
			}
			if _, err := db.ExecContext(ctx, "DELETE FROM records"); err != nil {
				t.Fatal(err)
			}
		}
		key := part + []string{"old", "shared"}[i] + ".ndjson"
		if err := l.bucket.Put(ctx, key, data, nil); err != nil {
			t.Fatal(err)
		}
		res, err := l.Load(ctx, key)
		if err != nil {
			t.Fatalf("load %s: %v", key, err)
		}
		if res.Records != len(recs) || res.Inserted != len(recs) {
			t.Fatalf("load %s = %+v, want %d records inserted", key, res, len(recs))
		}
		if i == 0 {
			old = dump()
		} else {
			shared = dump()
		}
	}
	if len(old) != len(recs) {
		t.Fatalf("dump after the old layout:\n%s", strings.Join(old, "\n"))
	}
	if !slices.Equal(old, shared) {
		t.Fatalf("the two layouts load differently:\nold:\n%s\nshared:\n%s", strings.Join(old, "\n"), strings.Join(shared, "\n"))
	}
	return old, shared
}

// TestLoadReadsBothLayouts loads the same records from an object of each
// layout into SQLite and compares the table as the sqlite3 shell prints
// it: identical rows.
func TestLoadReadsBothLayouts(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("needs the sqlite3 shell: apt-get install sqlite3")
	}
	l, _, db := setup(t)
	path := l.db.URL().Path
	dump := func() []string {
		out, err := exec.Command(shell, "-readonly", path, "SELECT * FROM records ORDER BY id").Output()
		if err != nil {
			t.Fatalf("sqlite3: %v", err)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	old, _ := loadBothLayouts(t, l, db, PartitionOf(time.Now()), dump)
	if want := "a-1|d\"1\"\\<x>|cpu|1.25|2026-11-24T09:59:58.500000Z|aws|4bf92f3577b34da6a3ce929d0e0e4736|2026-11-24T10:00:00.123456Z"; old[0] != want {
		t.Fatalf("row a-1 = %s\nwant        %s", old[0], want)
	}
}

func TestStoredIDsAndCount(t *testing.T) {
	recs := layoutRecords()
	for name, data := range map[string][]byte{"old": oldLayout(t, recs), "shared": sharedLayout(t, recs)} {
		ids, err := record.StoredIDs(data)
		if err != nil || strings.Join(ids, ",") != "a-1,a-2,b-1,b-2" {
			t.Errorf("%s: StoredIDs = %v, %v", name, ids, err)
		}
		if n := countRecords(data); n != len(recs) {
			t.Errorf("%s: countRecords = %d", name, n)
		}
	}
	// A damaged object is counted by its lines.
	if n := countRecords([]byte("{\"id\":\"x\"}\nnot json\n\n{\n")); n != 3 {
		t.Errorf("countRecords of a damaged object = %d, want 3", n)
	}
}

// TestLoadKeepsLastOfEachID loads an object whose records repeat ids out
// of order: each id's last record is loaded, once.
func TestLoadKeepsLastOfEachID(t *testing.T) {
	l, _, db := setup(t)
	ctx := context.Background()
	recs := layoutRecords()
	b2 := recs[3]
	b2.ID = "a-1" // a-1 again, after a-2 and b-1: its values win
	recs = append([]record.Record{recs[2]}, recs[0], recs[1], b2)
	key := PartitionOf(time.Now()) + "dups.ndjson"
	if err := l.bucket.Put(ctx, key, sharedLayout(t, recs), nil); err != nil {
		t.Fatal(err)
	}
	res, err := l.Load(ctx, key)
	if err != nil || res.Records != 4 || res.Inserted != 3 {
		t.Fatalf("Load = %+v, %v; want 4 records, 3 inserted", res, err)
	}
	rows, err := db.QueryContext(ctx, "SELECT id, device, _origin FROM records ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, dev, origin string
		if err := rows.Scan(&id, &dev, &origin); err != nil {
			t.Fatal(err)
		}
		got = append(got, id+"|"+dev+"|"+origin)
	}
	if want := []string{"a-1|d4|azure", "a-2|dé😀|aws", "b-1|d3|azure"}; !slices.Equal(got, want) {
		t.Fatalf("rows = %v, want %v", got, want)
	}
}
