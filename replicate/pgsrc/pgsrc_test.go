package pgsrc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/internal/readpace"
	"github.com/intercloud/intercloud/internal/testchild"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/pgsrc"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	_ "github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
	_ "github.com/intercloud/intercloud/sqldb/sqlite"
)

// cluster is a Postgres server shared by the subtests of one test; each
// subtest works in databases of its own.
type cluster struct {
	p    *peers.Postgres
	root *sqldb.DB
	n    atomic.Int64
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	p := peers.StartPostgres(t)
	return &cluster{p: p, root: sourcetest.Open(t, p.RootURL("postgres"))}
}

// newDB creates a database owned by app and opens it as app.
func (c *cluster) newDB(t *testing.T, prefix string) *sqldb.DB {
	t.Helper()
	name := fmt.Sprintf("%s_%d", prefix, c.n.Add(1))
	sourcetest.Exec(t, c.root, `CREATE DATABASE `+name+` OWNER app`)
	// The cluster has 8 replication slots: free this database's once its
	// streams stopped (cleanups run last registered first).
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := c.root.ExecContext(context.Background(),
				`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, name)
			if err == nil || time.Now().After(deadline) {
				if err != nil {
					t.Errorf("drop slots of %s: %v", name, err)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return sourcetest.Open(t, c.p.URL(name))
}

func sqliteDB(t *testing.T, name string) *sqldb.DB {
	return sourcetest.Open(t, "sqlite://"+filepath.Join(t.TempDir(), name+".db"))
}

// waitSame waits until the target equals the source.
func waitSame(tb testing.TB, src, dst *sqldb.DB, tables ...string) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, err := replicate.Validate(context.Background(), src, dst, tables, 1000)
		if err == nil && rep.OK() {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				tb.Fatalf("validate: %v", err)
			}
			tb.Fatalf("source and target still differ:\n%s", rep)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const typesDDL = `CREATE TABLE types (
	id BIGINT PRIMARY KEY,
	i2 SMALLINT, i4 INTEGER, i8 BIGINT,
	num NUMERIC(38,10), f8 DOUBLE PRECISION, f4 REAL,
	b BOOLEAN, t TEXT, vc VARCHAR(50), by BYTEA,
	ts TIMESTAMPTZ(6), tsn TIMESTAMP(6), d DATE, tm TIME(6),
	j JSONB, js JSON, big TEXT)`

// typeRows are rows exercising every decoded type, extremes included.
var typeRows = [][]any{
	{1, 32767, 2147483647, int64(9223372036854775807), "12345678901234567890123456.0123456789", 1.7976931348623157e308, float32(3.4028235e38),
		true, "héllo 世界 'quoted' \\ back", "vc", []byte{0, 1, 2, 255}, "2024-02-29T23:59:59.999999Z", "1999-12-31 23:59:59.123456", "2024-02-29", "23:59:59.999999",
		`{"b": [1, 2.5, "x"], "a": null}`, `{"z": 1, "a": 2}`, "small"},
	{2, -32768, -2147483648, int64(-9223372036854775808), "-0.0000000001", -4.9e-324, float32(1.1),
		false, "", "", []byte{}, "0001-01-01T00:00:00Z", "9999-12-31 23:59:59.999999", "0001-01-01", "00:00:00",
		`[]`, `"s"`, nil},
	{3, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
	{4, 0, 0, 0, "0", 0.1, float32(-0.5), true, strings.Repeat("x", 10), "z", bytes.Repeat([]byte{7}, 300),
		"2001-02-03T04:05:06+05:30", "2001-02-03 04:05:06", "2001-02-03", "12:00:00.5", `{"n": 1e3}`, `{}`, nil},
}

func insertTypes(t *testing.T, db *sqldb.DB, rows [][]any) {
	t.Helper()
	for _, r := range rows {
		sourcetest.Exec(t, db, `INSERT INTO types VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)`, r...)
	}
}

// TestPostgres runs the source against one real server, each part in
// databases of its own.
func TestPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server")
	}
	c := startCluster(t)
	t.Run("CDCToPostgres", func(t *testing.T) { testCDC(t, c, c.newDB(t, "dst")) })
	t.Run("CDCToSQLite", func(t *testing.T) { testCDC(t, c, sqliteDB(t, "dst")) })
	t.Run("LargeTransaction", func(t *testing.T) { testLargeTxn(t, c) })
	t.Run("Resume", func(t *testing.T) { testResume(t, c) })
	t.Run("KillChild", func(t *testing.T) { testKill(t, c) })
	t.Run("SchemaChange", func(t *testing.T) { testSchema(t, c) })
	t.Run("ConfirmOnlyApplied", func(t *testing.T) { testConfirm(t, c) })
	t.Run("ConfirmOnlyDurable", func(t *testing.T) { testConfirmDurable(t, c) })
	t.Run("WaitsForActiveSlot", func(t *testing.T) { testWaitsForActiveSlot(t, c) })
	t.Run("Truncate", func(t *testing.T) { testTruncate(t, c) })
	t.Run("StreamStopsOnTruncate", func(t *testing.T) { testStopOnTruncate(t, c) })
	t.Run("NoPrimaryKey", func(t *testing.T) { testNoPK(t, c) })
	t.Run("Bidirectional", func(t *testing.T) { testBidi(t, c) })
	t.Run("ServerRestart", func(t *testing.T) { testRestart(t, c) })
	t.Run("CurrentWaitsForVisibility", func(t *testing.T) { testCurrentWaitsForVisibility(t, c) })
	t.Run("ReadOnlySource", func(t *testing.T) { testReadOnlySource(t, c) })
	t.Run("PacedReads", func(t *testing.T) { testPacedReads(t, c) })
}

// testPacedReads: the replication connection's reads are paced (package
// readpace) by the default gap.
func testPacedReads(t *testing.T, c *cluster) {
	conn, err := pgsrc.Connect(t.Context(), c.newDB(t, "paced"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if rc, ok := conn.Conn().(*readpace.Conn); !ok || rc.Gap != readpace.DefaultGap {
		t.Errorf("the replication connection is %T, want a *readpace.Conn with the default gap", conn.Conn())
	}
	if _, err := pglogrepl.IdentifySystem(t.Context(), conn); err != nil {
		t.Errorf("IDENTIFY_SYSTEM: %v", err)
	}
}

func testCDC(t *testing.T, c *cluster, dst *sqldb.DB) {
	ctx := context.Background()
	src := c.newDB(t, "src")
	sourcetest.Exec(t, src, typesDDL)
	if err := replicate.Prepare(ctx, src, []string{"types"}, sourcetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	insertTypes(t, src, typeRows[:2]) // full load
	name := "cdc-" + dst.Dialect.Name()
	r := sourcetest.Start(t, replicate.Config{Name: name, Source: src, Target: dst, Tables: []string{"types"}, BatchSize: 100})
	waitSame(t, src, dst, "types")

	// CDC: inserts, updates, deletes, a primary-key change, TOAST.
	insertTypes(t, src, typeRows[2:])
	big := strings.Repeat("large and incompressible? ", 10) + randomText(8000)
	sourcetest.Exec(t, src, `UPDATE types SET big = $1 WHERE id = 1`, big)
	waitSame(t, src, dst, "types")
	sourcetest.Exec(t, src, `UPDATE types SET i4 = 42 WHERE id = 1`) // big unchanged: TOASTed, not sent
	sourcetest.Exec(t, src, `UPDATE types SET id = 100, t = 'moved' WHERE id = 4`)
	sourcetest.Exec(t, src, `DELETE FROM types WHERE id = 2`)
	waitSame(t, src, dst, "types")

	var gotBig string
	var i4 int64
	if err := dst.QueryRowContext(ctx, `SELECT big, i4 FROM types WHERE id = 1`).Scan(&gotBig, &i4); err != nil {
		t.Fatal(err)
	}
	if gotBig != big || i4 != 42 {
		t.Errorf("TOASTed column after an update that left it: %d bytes (want %d), i4 %d", len(gotBig), len(big), i4)
	}
	if n := sourcetest.Count(t, dst, `SELECT COUNT(*) FROM types WHERE id IN (2, 4)`); n != 0 {
		t.Errorf("%d deleted or re-keyed rows remain", n)
	}
	var moved string
	if err := dst.QueryRowContext(ctx, `SELECT t FROM types WHERE id = 100`).Scan(&moved); err != nil || moved != "moved" {
		t.Errorf("re-keyed row: %q, %v", moved, err)
	}
	if dst.Dialect.Name() == "postgres" {
		// Exact values, compared by the server itself.
		var same bool
		err := dst.QueryRowContext(ctx, `SELECT num = '12345678901234567890123456.0123456789' AND f8 = 1.7976931348623157e308
AND f4 = 3.4028235e38::real AND by = '\x000102ff'::bytea AND ts = '2024-02-29T23:59:59.999999Z'
AND tsn = '1999-12-31 23:59:59.123456+00' AND d = '2024-02-29' AND tm = '23:59:59.999999' AND t = $1
AND j = '{"a": null, "b": [1, 2.5, "x"]}'::jsonb AND js = '{"z": 1, "a": 2}'::jsonb FROM types WHERE id = 1`, typeRows[0][8]).Scan(&same)
		if err != nil || !same {
			t.Errorf("row 1 on the target differs: %v", err)
		}
	}
	if st := r.Stream.Status(); st.Phase != replicate.PhaseCDC || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
	// The slot confirms what was applied: its lag shrinks to (nearly)
	// nothing once idle.
	sourcetest.WaitFor(t, "slot confirmation", 20*time.Second, func() bool {
		lag, err := pgsrc.SlotLag(ctx, src, pgsrc.SlotName(name))
		return err == nil && lag < 1024
	})
}

func randomText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = alphabet[x%uint32(len(alphabet))]
	}
	return string(b)
}

const itemsDDL = `CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL DEFAULT 0)`

// writeCounter counts the row writes to items on a Postgres target.
const writeCounter = `
CREATE TABLE writes (n BIGINT NOT NULL);
INSERT INTO writes VALUES (0);
CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE writes SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER count_writes AFTER INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION count_write();`

func testLargeTxn(t *testing.T, c *cluster) {
	ctx := context.Background()
	src, dst := c.newDB(t, "src"), c.newDB(t, "dst")
	sourcetest.Exec(t, src, itemsDDL)
	if err := replicate.Prepare(ctx, src, []string{"items"}, sourcetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sizes []int
	r := sourcetest.Start(t, replicate.Config{Name: "large", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 500,
		OnApplied: func(b replicate.Batch) {
			if !b.Snapshot && len(b.Changes) > 0 {
				mu.Lock()
				sizes = append(sizes, len(b.Changes))
				mu.Unlock()
			}
		}})
	sourcetest.WaitFor(t, "cdc", 20*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	sourcetest.Exec(t, src, `INSERT INTO items (id, name) VALUES (0, 'before')`)
	sourcetest.Exec(t, src, `INSERT INTO items (id, name) SELECT g, 'row ' || g FROM generate_series(1, 50000) g`)
	// Meanwhile the target never shows part of it.
	stop := make(chan struct{})
	var partial atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int64
			if err := dst.QueryRowContext(ctx, `SELECT COUNT(*) FROM items WHERE id > 0`).Scan(&n); err == nil && n != 0 && n != 50000 {
				partial.Store(n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitSame(t, src, dst, "items")
	close(stop)
	if n := partial.Load(); n != 0 {
		t.Errorf("the target showed %d of the transaction's 50000 rows", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) < 1 || sizes[len(sizes)-1] != 50000 {
		t.Errorf("batch sizes %v: want the 50000-row transaction in one batch", sizes)
	}
}

// writer inserts rows with ids from, one transaction each, until stopped.
func writer(t *testing.T, db *sqldb.DB, from int64) (stop func() int64) {
	done := make(chan struct{})
	var next atomic.Int64
	next.Store(from)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			default:
			}
			id := next.Load()
			if _, err := db.ExecContext(context.Background(), `INSERT INTO items (id, name) VALUES ($1, $2)`, id, fmt.Sprint("w", id)); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			next.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return next.Load() - from
	}
}

func testResume(t *testing.T, c *cluster) {
	ctx := context.Background()
	src, dst := c.newDB(t, "src"), c.newDB(t, "dst")
	sourcetest.Exec(t, src, itemsDDL)
	sourcetest.Exec(t, dst, itemsDDL)
	sourcetest.Exec(t, dst, writeCounter)
	if err := replicate.Prepare(ctx, src, []string{"items"}, sourcetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	// No full load: it would copy rows that CDC then replays (harmless,
	// but not countable). The slot exists before the first write.
	if err := pgsrc.EnsureSlot(ctx, src, "resume"); err != nil {
		t.Fatal(err)
	}
	cfg := replicate.Config{Name: "resume", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 7, SkipFullLoad: true}
	stopWriter := writer(t, src, 1)
	for i := 0; i < 4; i++ {
		r := sourcetest.Start(t, cfg)
		before := sourcetest.Count(t, dst, `SELECT COUNT(*) FROM items`)
		sourcetest.WaitFor(t, "progress", 20*time.Second, func() bool { return sourcetest.Count(t, dst, `SELECT COUNT(*) FROM items`) > before+10 })
		r.Stop(t)
	}
	n := stopWriter()
	r := sourcetest.Start(t, cfg)
	waitSame(t, src, dst, "items")
	r.Stop(t)
	if got := sourcetest.Count(t, dst, `SELECT n FROM writes`); got != n {
		t.Errorf("the target saw %d row writes for %d source inserts", got, n)
	}
}

const (
	childSrcEnv = "PGSRC_CHILD_SRC"
	childDstEnv = "PGSRC_CHILD_DST"
)

// TestChildStream is the child process of the KillChild test: it runs a
// stream between the databases its environment names until killed.
func TestChildStream(t *testing.T) {
	srcURL, dstURL := os.Getenv(childSrcEnv), os.Getenv(childDstEnv)
	if srcURL == "" || dstURL == "" {
		t.Skip("runs only as a child of TestPostgres")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	s, err := replicate.New(replicate.Config{Name: "killed", Source: sourcetest.Open(t, srcURL), Target: sourcetest.Open(t, dstURL),
		Tables: []string{"items"}, BatchSize: 5, SkipFullLoad: true, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func testKill(t *testing.T, c *cluster) {
	ctx := context.Background()
	src, dst := c.newDB(t, "src"), c.newDB(t, "dst")
	sourcetest.Exec(t, src, itemsDDL)
	sourcetest.Exec(t, dst, itemsDDL)
	sourcetest.Exec(t, dst, writeCounter)
	if err := replicate.Prepare(ctx, src, []string{"items"}, sourcetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	if err := pgsrc.EnsureSlot(ctx, src, "killed"); err != nil {
		t.Fatal(err)
	}
	srcURL, dstURL := c.p.URL(strings.TrimPrefix(src.URL().Path, "/")), c.p.URL(strings.TrimPrefix(dst.URL().Path, "/"))
	stopWriter := writer(t, src, 1)
	for i := 0; i < 3; i++ {
		cmd := testchild.Start(t, "TestChildStream", childSrcEnv+"="+srcURL, childDstEnv+"="+dstURL)
		before := sourcetest.Count(t, dst, `SELECT COUNT(*) FROM items`)
		sourcetest.WaitFor(t, "child progress", 30*time.Second, func() bool { return sourcetest.Count(t, dst, `SELECT COUNT(*) FROM items`) > before+20 })
		testchild.Kill(t, cmd)
	}
	n := stopWriter()
	// The killed process's WAL sender may still hold the slot a moment:
	// the engine retries until it is free.
	r := sourcetest.Start(t, replicate.Config{Name: "killed", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 5, SkipFullLoad: true})
	waitSame(t, src, dst, "items")
	r.Stop(t)
	if got := sourcetest.Count(t, dst, `SELECT n FROM writes`); got != n {
		t.Errorf("the target saw %d row writes for %d source inserts", got, n)
	}
}

// collect streams from a source until until says stop or the time is up.
func collect(t *testing.T, src replicate.Source, from replicate.Position, opts replicate.StreamOptions, until func([]replicate.Batch) bool) ([]replicate.Batch, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []replicate.Batch
	err := src.Stream(ctx, from, opts, func(ctx context.Context, b replicate.Batch) error {
		got = append(got, b)
		if until(got) {
			cancel()
		}
		return nil
	})
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return got, err
}

func changesOf(bs []replicate.Batch) []replicate.Change {
	var out []replicate.Change
	for _, b := range bs {
		out = append(out, b.Changes...)
	}
	return out
}

func testSchema(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "src")
	sourcetest.Exec(t, db, itemsDDL)
	src, err := pgsrc.Open(ctx, db, replicate.SourceConfig{Name: "schema", Tables: []string{"items"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	from, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES (1, 'a')`)
	sourcetest.Exec(t, db, `ALTER TABLE items ADD COLUMN note TEXT`)
	sourcetest.Exec(t, db, `INSERT INTO items (id, name, note) VALUES (2, 'b', 'n')`)
	got, err := collect(t, src, from, replicate.StreamOptions{}, func(bs []replicate.Batch) bool { return len(changesOf(bs)) >= 3 })
	if err != nil {
		t.Fatal(err)
	}
	ch := changesOf(got)
	if len(ch) != 3 || ch[0].Op != replicate.OpUpsert || ch[1].Op != replicate.OpSchema || ch[1].Table != "items" || ch[2].Op != replicate.OpUpsert || ch[2].Row["note"] != "n" {
		t.Fatalf("changes %+v: want upsert, schema, upsert with note", ch)
	}
	for i, b := range got {
		if i > 0 {
			p0, _ := pgsrc.ParsePosition(got[i-1].Position)
			p1, _ := pgsrc.ParsePosition(b.Position)
			if p1 < p0 {
				t.Errorf("position went back: %s after %s", b.Position, got[i-1].Position)
			}
		}
	}
	// Resuming from the last position delivers nothing again.
	last := got[len(got)-1].Position
	sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES (3, 'c')`)
	again, err := collect(t, src, last, replicate.StreamOptions{}, func(bs []replicate.Batch) bool { return len(changesOf(bs)) >= 1 })
	if err != nil {
		t.Fatal(err)
	}
	// The schema change is seen again against the catalog only if the
	// historic columns differ; the row must be id 3 alone.
	var rows []replicate.Change
	for _, c := range changesOf(again) {
		if c.Op == replicate.OpUpsert {
			rows = append(rows, c)
		}
	}
	if len(rows) != 1 || rows[0].Key[0] != int64(3) {
		t.Errorf("resumed stream delivered %+v, want only id 3", rows)
	}
}

func testTruncate(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "src")
	sourcetest.Exec(t, db, itemsDDL)
	src, err := pgsrc.Open(ctx, db, replicate.SourceConfig{Name: "trunc", Tables: []string{"items"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	from, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES (1, 'a')`)
	sourcetest.Exec(t, db, `BEGIN; INSERT INTO items (id, name) VALUES (2, 'b'); TRUNCATE items; INSERT INTO items (id, name) VALUES (3, 'c'); COMMIT`)
	ch, err := collect(t, src, from, replicate.StreamOptions{}, func(bs []replicate.Batch) bool { return len(changesOf(bs)) >= 4 })
	if err != nil {
		t.Fatalf("stream over a TRUNCATE: %v", err)
	}
	got := changesOf(ch)
	if len(got) != 4 || got[2].Op != replicate.OpSchema || got[2].DDL != `TRUNCATE "items"` || got[3].Key[0] != int64(3) {
		t.Fatalf("stream over a TRUNCATE delivered %+v, want rows 1, 2, the TRUNCATE, row 3", got)
	}
	if err := pgsrc.DropSlot(ctx, db, "trunc"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Lag(ctx); !errors.Is(err, pgsrc.ErrNoSlot) {
		t.Errorf("lag of a dropped slot: %v", err)
	}
}

func testNoPK(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "src")
	sourcetest.Exec(t, db, `CREATE TABLE nokey (a INTEGER)`)
	err := replicate.Prepare(ctx, db, []string{"nokey"}, sourcetest.Quiet())
	if !errors.Is(err, replicate.ErrNoPrimaryKey) || !strings.Contains(err.Error(), "nokey") {
		t.Fatalf("Prepare of a table without primary key: %v", err)
	}
	if err := replicate.Prepare(ctx, db, []string{"missing"}, sourcetest.Quiet()); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Prepare of a missing table: %v", err)
	}
}

func testBidi(t *testing.T, c *cluster) {
	ctx := context.Background()
	pg, lite := c.newDB(t, "bidi"), sqliteDB(t, "bidi")
	for _, db := range []*sqldb.DB{pg, lite} {
		sourcetest.Exec(t, db, itemsDDL)
		if err := replicate.Prepare(ctx, db, []string{"items"}, sourcetest.Quiet()); err != nil {
			t.Fatal(err)
		}
	}
	// Both streams read their logs from the start: the Postgres slot must
	// exist before the first write.
	if err := pgsrc.EnsureSlot(ctx, pg, "pg-to-lite"); err != nil {
		t.Fatal(err)
	}
	sourcetest.Exec(t, lite, writeCounterSQLite)
	sourcetest.Exec(t, pg, writeCounter)
	base := []replicate.Config{
		{Name: "pg-to-lite", Origin: "pg", Source: pg, Target: lite, Tables: []string{"items"}, SkipReplicated: true, SkipFullLoad: true, Poll: 5 * time.Millisecond},
		{Name: "lite-to-pg", Origin: "lite", Source: lite, Target: pg, Tables: []string{"items"}, SkipReplicated: true, SkipFullLoad: true, Poll: 5 * time.Millisecond},
	}
	for _, cfg := range base {
		sourcetest.Start(t, cfg)
	}
	// Phases of distinct keys, converged in between, so that no batch
	// folds two writes of one key into one.
	for i := 1; i <= 30; i++ {
		sourcetest.Exec(t, pg, `INSERT INTO items (id, name) VALUES ($1, 'pg')`, i)
		sourcetest.Exec(t, lite, `INSERT INTO items (id, name) VALUES (?, 'lite')`, 1000+i)
	}
	waitSame(t, pg, lite, "items")
	sourcetest.Exec(t, pg, `UPDATE items SET qty = 1 WHERE id <= 10`)
	sourcetest.Exec(t, lite, `UPDATE items SET qty = 2 WHERE id BETWEEN 1001 AND 1010`)
	waitSame(t, pg, lite, "items")
	sourcetest.Exec(t, pg, `DELETE FROM items WHERE id BETWEEN 21 AND 25`)
	waitSame(t, pg, lite, "items")
	lsn, err := pgsrc.ParsePosition(replicate.Position(queryString(t, pg, `SELECT pg_current_wal_lsn()::text`)))
	if err != nil {
		t.Fatal(err)
	}
	// Let any echo arrive, then count: each side's writes of the other's
	// rows happened once (30 inserts + 10 updates + 5 deletes from pg on
	// lite; 30 + 10 from lite on pg), and local writes count too.
	time.Sleep(300 * time.Millisecond)
	waitSame(t, pg, lite, "items")
	if got := sourcetest.Count(t, lite, `SELECT n FROM writes`); got != 45+40 {
		t.Errorf("SQLite saw %d writes, want 45 replicated + 40 local", got)
	}
	if got := sourcetest.Count(t, pg, `SELECT n FROM writes`); got != 40+45 {
		t.Errorf("Postgres saw %d writes, want 40 replicated + 45 local", got)
	}
	// The slot confirms past the replicated (skipped) transactions too.
	sourcetest.WaitFor(t, "the slot to confirm the WAL end", 20*time.Second, func() bool {
		s := queryString(t, pg, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, pgsrc.SlotName("pg-to-lite"))
		l, err := pgsrc.ParsePosition(replicate.Position(s))
		return err == nil && l >= lsn
	})
}

const writeCounterSQLite = `
CREATE TABLE writes (n INTEGER NOT NULL);
INSERT INTO writes VALUES (0);
CREATE TRIGGER count_ins AFTER INSERT ON items BEGIN UPDATE writes SET n = n + 1; END;
CREATE TRIGGER count_upd AFTER UPDATE ON items BEGIN UPDATE writes SET n = n + 1; END;
CREATE TRIGGER count_del AFTER DELETE ON items BEGIN UPDATE writes SET n = n + 1; END;`

func queryString(t *testing.T, db *sqldb.DB, q string, args ...any) string {
	t.Helper()
	var s string
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func testRestart(t *testing.T, c *cluster) {
	ctx := context.Background()
	src, dst := c.newDB(t, "src"), sqliteDB(t, "restart")
	sourcetest.Exec(t, src, itemsDDL)
	if err := replicate.Prepare(ctx, src, []string{"items"}, sourcetest.Quiet()); err != nil {
		t.Fatal(err)
	}
	r := sourcetest.Start(t, replicate.Config{Name: "restart", Source: src, Target: dst, Tables: []string{"items"}, BatchSize: 10})
	for i := 1; i <= 50; i++ {
		sourcetest.Exec(t, src, `INSERT INTO items (id, name) VALUES ($1, 'before')`, i)
	}
	sourcetest.WaitFor(t, "progress", 20*time.Second, func() bool {
		var n int64
		err := dst.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&n)
		return err == nil && n > 0
	})
	c.p.Stop(t)
	c.p.Start(t)
	for i := 51; i <= 100; i++ {
		sourcetest.WaitFor(t, "the server", 20*time.Second, func() bool {
			_, err := src.ExecContext(ctx, `INSERT INTO items (id, name) VALUES ($1, 'after') ON CONFLICT DO NOTHING`, i)
			return err == nil
		})
	}
	waitSame(t, src, dst, "items")
	if n := sourcetest.Count(t, dst, `SELECT COUNT(*) FROM items`); n != 100 {
		t.Errorf("target has %d rows, want 100", n)
	}
	if st := r.Stream.Status(); st.Phase != replicate.PhaseCDC {
		t.Errorf("status %+v", st)
	}
}

// testConfirm checks the slot confirms only batches fn accepted: a failed
// batch is delivered again by the next stream.
func testConfirm(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "src")
	sourcetest.Exec(t, db, itemsDDL)
	src, err := pgsrc.Open(ctx, db, replicate.SourceConfig{Name: "confirm", Tables: []string{"items"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	from, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES ($1, 'x')`, i)
	}
	failed := errors.New("apply failed")
	var accepted replicate.Position
	seen := 0
	err = src.Stream(ctx, from, replicate.StreamOptions{MaxBatch: 1}, func(ctx context.Context, b replicate.Batch) error {
		if len(b.Changes) == 0 {
			accepted = b.Position
			return nil
		}
		seen++
		if seen == 2 {
			return failed
		}
		accepted = b.Position
		return nil
	})
	if !errors.Is(err, failed) {
		t.Fatalf("Stream: %v, want the fn error", err)
	}
	slot := queryString(t, db, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, src.Slot())
	got, _ := pgsrc.ParsePosition(replicate.Position(slot))
	want, _ := pgsrc.ParsePosition(accepted)
	if got > want {
		t.Fatalf("slot confirmed %s, past the last accepted batch %s", slot, accepted)
	}
	// Asking for an older position than the slot kept is refused.
	if got > 0 {
		if _, err := collect(t, src, pgsrc.FormatPosition(got-1), replicate.StreamOptions{}, func([]replicate.Batch) bool { return true }); !errors.Is(err, pgsrc.ErrPositionLost) {
			t.Errorf("stream from before the slot: %v, want ErrPositionLost", err)
		}
	}
	// The server lets go of the slot a moment after the stream ended.
	sourcetest.WaitFor(t, "the slot to be free", 20*time.Second, func() bool {
		return queryString(t, db, `SELECT (NOT active)::text FROM pg_replication_slots WHERE slot_name = $1`, src.Slot()) == "true"
	})
	again, err := collect(t, src, accepted, replicate.StreamOptions{}, func(bs []replicate.Batch) bool { return len(changesOf(bs)) >= 2 })
	if err != nil {
		t.Fatal(err)
	}
	ch := changesOf(again)
	if len(ch) != 2 || ch[0].Key[0] != int64(2) || ch[1].Key[0] != int64(3) {
		t.Fatalf("after the failure the stream delivered %+v, want rows 2 and 3", ch)
	}
}

// testConfirmDurable: with StreamOptions.Durable the slot confirms no more
// than the consumer's durable position, even for batches fn accepted, and
// follows it as it moves; a stream from that position is not refused.
func testConfirmDurable(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "src")
	sourcetest.Exec(t, db, itemsDDL)
	src, err := pgsrc.Open(ctx, db, replicate.SourceConfig{Name: "durable", Tables: []string{"items"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	from, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slotAt := func() pglogrepl.LSN {
		s := queryString(t, db, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, src.Slot())
		l, err := pgsrc.ParsePosition(replicate.Position(s))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	start := slotAt()
	var mu sync.Mutex
	durable := from
	var positions []replicate.Position // of the batches with changes
	opts := replicate.StreamOptions{MaxBatch: 1, Durable: func() replicate.Position {
		mu.Lock()
		defer mu.Unlock()
		return durable
	}}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- src.Stream(sctx, from, opts, func(ctx context.Context, b replicate.Batch) error {
			if len(b.Changes) > 0 {
				mu.Lock()
				positions = append(positions, b.Position)
				mu.Unlock()
			}
			return nil
		})
	}()
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(positions)
	}
	for i := 1; i <= 3; i++ {
		sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES ($1, 'x')`, i)
	}
	sourcetest.WaitFor(t, "3 batches", 20*time.Second, func() bool { return delivered() == 3 })
	// Accepted, not durable: the slot stays where it was.
	time.Sleep(300 * time.Millisecond)
	if got := slotAt(); got != start {
		t.Fatalf("the slot moved to %s with the consumer durable at %s (slot was at %s)", got, from, start)
	}
	// The consumer saves the second batch; the next delivery confirms
	// that far and no further.
	mu.Lock()
	durable = positions[1]
	mu.Unlock()
	want, _ := pgsrc.ParsePosition(positions[1])
	sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES (4, 'x')`)
	sourcetest.WaitFor(t, "the slot at the durable position", 20*time.Second, func() bool { return slotAt() == want })
	time.Sleep(300 * time.Millisecond)
	if got := slotAt(); got != want {
		t.Fatalf("the slot is at %s, want the durable %s", got, positions[1])
	}
	cancel()
	<-done
	// A restart from the durable position delivers the rest again.
	sourcetest.WaitFor(t, "the slot to be free", 20*time.Second, func() bool {
		return queryString(t, db, `SELECT (NOT active)::text FROM pg_replication_slots WHERE slot_name = $1`, src.Slot()) == "true"
	})
	again, err := collect(t, src, positions[1], replicate.StreamOptions{}, func(bs []replicate.Batch) bool { return len(changesOf(bs)) >= 2 })
	if err != nil {
		t.Fatal(err)
	}
	if ch := changesOf(again); len(ch) != 2 || ch[0].Key[0] != int64(3) || ch[1].Key[0] != int64(4) {
		t.Fatalf("from the durable position the stream delivered %+v, want rows 3 and 4", ch)
	}
}

// testWaitsForActiveSlot: a stream that starts while its slot is still
// held (as by the walsender of a stream that just stopped, until the
// server notices) waits for it instead of failing.
func testWaitsForActiveSlot(t *testing.T, c *cluster) {
	ctx := context.Background()
	db := c.newDB(t, "src")
	sourcetest.Exec(t, db, itemsDDL)
	src, err := pgsrc.Open(ctx, db, replicate.SourceConfig{Name: "held", Tables: []string{"items"}, Logger: sourcetest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	from, err := src.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The slot is held by a replication connection of the test's own.
	u := *db.URL()
	q := u.Query()
	q.Set("replication", "database")
	u.RawQuery = q.Encode()
	holder, err := pgconn.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := pglogrepl.StartReplication(ctx, holder, src.Slot(), 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + pgsrc.Publication + "'"},
	}); err != nil {
		t.Fatal(err)
	}
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(time.Second)
		released <- time.Now()
		_ = holder.Close(ctx)
	}()
	sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES (1, 'x')`)
	got, err := collect(t, src, from, replicate.StreamOptions{}, func(bs []replicate.Batch) bool { return len(changesOf(bs)) >= 1 })
	if err != nil {
		t.Fatalf("stream on a held slot: %v", err)
	}
	select {
	case <-released:
	default:
		t.Fatal("the stream got its change while the slot was still held")
	}
	if ch := changesOf(got); len(ch) != 1 || ch[0].Key[0] != int64(1) {
		t.Fatalf("changes %+v, want row 1", ch)
	}
}

// testStopOnTruncate: a stream reports its slot's backlog, and a TRUNCATE
// is applied on the target (its rows deleted) without stopping the stream.
func testStopOnTruncate(t *testing.T, c *cluster) {
	db := c.newDB(t, "src")
	sourcetest.Exec(t, db, itemsDDL)
	dst := sqliteDB(t, "dst")
	cfg := replicate.Config{Name: "stoptrunc", Source: db, Target: dst, Tables: []string{"items"}}
	r := sourcetest.Start(t, cfg)
	sourcetest.WaitFor(t, "full load", 30*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	r.Stop(t)
	for i := 1; i <= 200; i++ {
		sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES ($1, 'x')`, i)
	}
	r = sourcetest.Start(t, cfg)
	sourcetest.WaitFor(t, "source backlog in status", 10*time.Second, func() bool { return r.Stream.Status().SourceBacklogBytes > 0 })
	waitSame(t, db, dst, "items")
	sourcetest.Exec(t, db, `TRUNCATE items`)
	sourcetest.Exec(t, db, `INSERT INTO items (id, name) VALUES (7, 'after')`)
	waitSame(t, db, dst, "items")
	var n int
	if err := dst.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM items`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("target has %d rows after TRUNCATE and one insert (%v)", n, err)
	}
	if st := r.Stream.Status(); st.Phase != replicate.PhaseCDC || st.LastError != "" {
		t.Fatalf("status after a TRUNCATE: phase %q, last error %q", st.Phase, st.LastError)
	}
	if !errors.Is(pgsrc.ErrPositionLost, replicate.ErrPermanent) {
		t.Fatal("ErrPositionLost is not permanent")
	}
}
