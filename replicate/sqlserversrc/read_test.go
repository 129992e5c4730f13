package sqlserversrc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqlserver"
)

// The recorded result sets below are what go-mssqldb returns for the
// statements of sql.go (binary(10) LSNs, int64 integers, strings,
// decimals as text bytes); script replays them call by call and checks
// every call (its statement kind and LSN arguments) against the one
// recorded, so each test pins the LSN ranges the source asks for.

// lsn is LSN n in VLF 0x2A, for readable scripts.
func lsn(n int) LSN {
	l, err := PositionLSN(replicate.Position(fmt.Sprintf("0000002A%08X%04X", n, 0)))
	if err != nil {
		panic(err)
	}
	return l
}

// seqv is a __$seqval.
func seqv(n int) LSN { return lsn(n) }

type call struct {
	kind     string // max, bounds, columns, changes, time
	inst     string
	pos      LSN // bounds
	from, to LSN // changes
	top      int // changes
	// results
	lsn1, lsn2 LSN
	cols       [2][]string
	rows       []row
	at         time.Time
	err        error
}

type script struct {
	t     *testing.T
	calls []call
}

func (s *script) next(kind string) call {
	s.t.Helper()
	if len(s.calls) == 0 {
		s.t.Fatalf("unexpected %s call: the script is done", kind)
	}
	c := s.calls[0]
	s.calls = s.calls[1:]
	if c.kind != kind {
		s.t.Fatalf("call %s, want %s (%+v)", kind, c.kind, c)
	}
	return c
}

func (s *script) maxLSN(context.Context) (LSN, error) { c := s.next("max"); return c.lsn1, c.err }

func (s *script) bounds(_ context.Context, inst string, pos LSN) (LSN, LSN, error) {
	c := s.next("bounds")
	if inst != c.inst || pos != c.pos {
		s.t.Fatalf("bounds(%s, %s), want bounds(%s, %s)", inst, pos, c.inst, c.pos)
	}
	return c.lsn1, c.lsn2, c.err
}

func (s *script) columns(_ context.Context, in *instance) ([]string, []string, error) {
	c := s.next("columns")
	if in.name != c.inst {
		s.t.Fatalf("columns(%s), want columns(%s)", in.name, c.inst)
	}
	return c.cols[0], c.cols[1], c.err
}

func (s *script) changes(_ context.Context, in *instance, from, to LSN, top int) ([]row, error) {
	c := s.next("changes")
	if in.name != c.inst || from != c.from || to != c.to || top != c.top {
		s.t.Fatalf("changes(%s, %s, %s, top %d), want changes(%s, %s, %s, top %d)", in.name, from, to, top, c.inst, c.from, c.to, c.top)
	}
	return c.rows, c.err
}

func (s *script) lsnTime(_ context.Context, l LSN) (time.Time, error) {
	c := s.next("time")
	if l != c.lsn1 {
		s.t.Fatalf("lsnTime(%s), want lsnTime(%s)", l, c.lsn1)
	}
	return c.at, c.err
}

func (s *script) done() {
	s.t.Helper()
	if len(s.calls) > 0 {
		s.t.Errorf("%d recorded calls not made, first %+v", len(s.calls), s.calls[0])
	}
}

var (
	itemsDef = sqldb.Table{
		Name: "items",
		Columns: []sqldb.Column{
			{Name: "id", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 64}},
			{Name: "name", Type: sqldb.Type{Kind: sqldb.KindString, Length: 100}, Nullable: true},
			{Name: "price", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 12, Scale: 2}, Nullable: true},
		},
		PrimaryKey: []string{"id"},
	}
	ordersDef = sqldb.Table{
		Name: "orders",
		Columns: []sqldb.Column{
			{Name: "k", Type: sqldb.Type{Kind: sqldb.KindString, Length: 20}},
			{Name: "n", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 32}},
			{Name: "_trace_id", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}, Nullable: true},
		},
		PrimaryKey: []string{"k", "n"},
	}
	markDef = sqldb.Table{
		Name: "_ic_poll_origin",
		Columns: []sqldb.Column{
			{Name: "conn", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 32}},
			{Name: "origin", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
		},
		PrimaryKey: []string{"conn"},
	}
	items  = &instance{table: "items", name: "dbo_items", def: itemsDef}
	orders = &instance{table: "orders", name: "dbo_orders", def: ordersDef}
	mark   = &instance{table: "_ic_poll_origin", name: "dbo__ic_poll_origin", def: markDef}
)

var (
	itemsCols  = [2][]string{{"id", "name", "price"}, {"id", "name", "price"}}
	ordersCols = [2][]string{{"k", "n", "_trace_id"}, {"k", "n", "_trace_id"}}
	t0         = time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC)
)

func item(start, seq, op int, id int64, name string, price string) row {
	return row{start: lsn(start), seq: seqv(seq), op: op, vals: []any{id, name, []byte(price)}}
}

func order(start, seq, op int, k string, n int64) row {
	return row{start: lsn(start), seq: seqv(seq), op: op, vals: []any{k, n, "trace-" + k}}
}

func run(t *testing.T, calls []call, pos LSN, tables []*instance, m *instance, opts replicate.StreamOptions) (replicate.Batch, LSN, bool, error) {
	t.Helper()
	s := &script{t: t, calls: calls}
	b, end, short, err := readBatch(context.Background(), s, sqlserver.Dialect{}, pos, tables, m, opts)
	s.done()
	return b, end, short, err
}

// summary is a batch's changes as text: op table key [row].
func summary(b replicate.Batch) []string {
	var out []string
	for _, c := range b.Changes {
		s := fmt.Sprintf("%s %s %v", c.Op, c.Table, c.Key)
		if c.Row != nil {
			var parts []string
			for _, col := range []string{"name", "price", "n", "_trace_id"} {
				if v, ok := c.Row[col]; ok {
					if bs, ok := v.([]byte); ok {
						v = string(bs)
					}
					parts = append(parts, fmt.Sprintf("%s=%v", col, v))
				}
			}
			s += " " + strings.Join(parts, ",")
		}
		out = append(out, s)
	}
	return out
}

// Operation mapping and the merge of two capture instances into log
// order: 2 and 4 upsert, 1 deletes the deleted row's key, 3 is skipped;
// the position is the highest LSN, the commit time that of the last
// change.
func TestReadMapsOperationsInLogOrder(t *testing.T) {
	calls := []call{
		{kind: "max", lsn1: lsn(9)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(1)},
		{kind: "changes", inst: "dbo_items", from: lsn(3).inc(), to: lsn(9), top: 100, rows: []row{
			item(4, 1, opInsert, 1, "a", "1.50"),
			item(6, 1, opUpdateBefore, 1, "a", "1.50"),
			item(6, 2, opUpdateAfter, 1, "b", "2.00"),
			item(8, 1, opDelete, 1, "b", "2.00"),
		}},
		{kind: "columns", inst: "dbo_orders", cols: ordersCols},
		{kind: "bounds", inst: "dbo_orders", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(2)},
		{kind: "changes", inst: "dbo_orders", from: lsn(3).inc(), to: lsn(9), top: 100, rows: []row{
			order(5, 1, opInsert, "x", 7),
			order(6, 3, opInsert, "y", 8),
		}},
		{kind: "time", lsn1: lsn(8), at: t0},
	}
	b, end, short, err := run(t, calls, lsn(3), []*instance{items, orders}, mark, replicate.StreamOptions{MaxBatch: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"upsert items [1] name=a,price=1.50",
		"upsert orders [x 7] n=7,_trace_id=trace-x",
		"upsert items [1] name=b,price=2.00",
		"upsert orders [y 8] n=8,_trace_id=trace-y",
		"delete items [1]",
	}
	if got := summary(b); !reflect.DeepEqual(got, want) {
		t.Errorf("changes\n got %q\nwant %q", got, want)
	}
	if end != lsn(9) || b.Position != lsn(9).Position() || short {
		t.Errorf("end %s position %s short %v, want %s, not short", end, b.Position, short, lsn(9))
	}
	if !b.CommitTime.Equal(t0) {
		t.Errorf("commit time %v", b.CommitTime)
	}
	if b.Changes[1].TraceID != "trace-x" {
		t.Errorf("trace id %q", b.Changes[1].TraceID)
	}
}

func TestReadUnknownOperation(t *testing.T) {
	calls := []call{
		{kind: "max", lsn1: lsn(9)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(1)},
		{kind: "changes", inst: "dbo_items", from: lsn(3).inc(), to: lsn(9), top: 100, rows: []row{item(4, 1, 5, 1, "a", "1")}},
	}
	_, _, _, err := run(t, calls, lsn(3), []*instance{items}, nil, replicate.StreamOptions{MaxBatch: 100})
	if !errors.Is(err, replicate.ErrPermanent) || !strings.Contains(err.Error(), "__$operation 5") {
		t.Errorf("err %v, want a permanent error naming the operation", err)
	}
}

// Nothing captured after the position: one call, no batch.
func TestReadNothingNew(t *testing.T) {
	b, end, short, err := run(t, []call{{kind: "max", lsn1: lsn(3)}}, lsn(3), []*instance{items}, nil, replicate.StreamOptions{MaxBatch: 10})
	if err != nil || end != lsn(3) || short || len(b.Changes) != 0 {
		t.Errorf("end %s short %v changes %d err %v", end, short, len(b.Changes), err)
	}
}

// The beginning of the log ("" position) reads each instance from its
// oldest LSN; changes of the mark table only move the position.
func TestReadFromBeginning(t *testing.T) {
	calls := []call{
		{kind: "max", lsn1: lsn(5)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: LSN{}, lsn1: LSN{}.inc(), lsn2: lsn(2)},
		{kind: "changes", inst: "dbo_items", from: lsn(2), to: lsn(5), top: 10},
	}
	b, end, short, err := run(t, calls, LSN{}, []*instance{items}, mark, replicate.StreamOptions{MaxBatch: 10, SkipReplicated: true})
	if err != nil || end != lsn(5) || short || len(b.Changes) != 0 || b.Position != lsn(5).Position() {
		t.Errorf("end %s short %v changes %d err %v", end, short, len(b.Changes), err)
	}
}

// A position older than an instance's oldest LSN was lost to the cleanup
// job: a permanent error, no changes; one exactly at the boundary is not.
func TestReadLostPosition(t *testing.T) {
	calls := []call{
		{kind: "max", lsn1: lsn(90)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(40)},
	}
	_, end, _, err := run(t, calls, lsn(3), []*instance{items}, nil, replicate.StreamOptions{MaxBatch: 10})
	if !errors.Is(err, replicate.ErrPermanent) || !strings.Contains(err.Error(), "lost") || end != lsn(3) {
		t.Errorf("err %v end %s, want a permanent error saying the position is lost", err, end)
	}
	calls = []call{
		{kind: "max", lsn1: lsn(90)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: lsn(39), lsn1: lsn(40), lsn2: lsn(40)},
		{kind: "changes", inst: "dbo_items", from: lsn(40), to: lsn(90), top: 10},
	}
	if _, end, _, err := run(t, calls, lsn(39), []*instance{items}, nil, replicate.StreamOptions{MaxBatch: 10}); err != nil || end != lsn(90) {
		t.Errorf("at the boundary: end %s err %v", end, err)
	}
	// An instance that is gone: sys.fn_cdc_get_min_lsn returns zeros.
	calls = []call{
		{kind: "max", lsn1: lsn(90)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: lsn(39), lsn1: lsn(40)},
	}
	if _, _, _, err := run(t, calls, lsn(39), []*instance{items}, nil, replicate.StreamOptions{MaxBatch: 10}); !errors.Is(err, replicate.ErrPermanent) {
		t.Errorf("gone instance: %v", err)
	}
}

// A column added to (or dropped from) a captured table stops it with an
// error naming the fix, before any change is read.
func TestReadSchemaChange(t *testing.T) {
	for name, cols := range map[string][2][]string{
		"added":   {{"id", "name", "price"}, {"id", "name", "price", "note"}},
		"dropped": {{"id", "name", "price"}, {"id", "price"}},
		"gone":    {nil, {"id", "name", "price"}},
	} {
		t.Run(name, func(t *testing.T) {
			calls := []call{{kind: "max", lsn1: lsn(9)}, {kind: "columns", inst: "dbo_items", cols: cols}}
			_, _, _, err := run(t, calls, lsn(3), []*instance{items}, nil, replicate.StreamOptions{MaxBatch: 10})
			if !errors.Is(err, replicate.ErrPermanent) || !strings.Contains(err.Error(), "sys.sp_cdc_enable_table") || !strings.Contains(err.Error(), "items") {
				t.Errorf("err %v, want a permanent error naming the table and sys.sp_cdc_enable_table", err)
			}
		})
	}
}

// Batching: an instance that returns MaxBatch rows is complete only
// before the transaction of its last row; the batch ends at the last
// transaction every instance holds whole, and is cut short.
func TestReadBatchCutsAtWholeTransactions(t *testing.T) {
	calls := []call{
		{kind: "max", lsn1: lsn(20)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(1)},
		{kind: "changes", inst: "dbo_items", from: lsn(3).inc(), to: lsn(20), top: 3, rows: []row{
			item(4, 1, opInsert, 1, "a", "1"),
			item(7, 1, opInsert, 2, "b", "1"),
			item(7, 2, opInsert, 3, "c", "1"), // transaction 7 may go on
		}},
		{kind: "columns", inst: "dbo_orders", cols: ordersCols},
		{kind: "bounds", inst: "dbo_orders", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(1)},
		{kind: "changes", inst: "dbo_orders", from: lsn(3).inc(), to: lsn(20), top: 3, rows: []row{
			order(5, 1, opInsert, "x", 1),
			order(7, 3, opInsert, "y", 1),
			// 12 is after the cut
		}},
		{kind: "time", lsn1: lsn(5), at: t0},
	}
	b, end, short, err := run(t, calls, lsn(3), []*instance{items, orders}, nil, replicate.StreamOptions{MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"upsert items [1] name=a,price=1", "upsert orders [x 1] n=1,_trace_id=trace-x"}
	if got := summary(b); !reflect.DeepEqual(got, want) || end != lsn(5) || !short {
		t.Errorf("changes %q end %s short %v, want %q end %s short", got, end, short, want, lsn(5))
	}
}

// A transaction larger than MaxBatch is read alone, whole, from every
// instance: the batch is that transaction and ends at its LSN.
func TestReadBatchWholeLargeTransaction(t *testing.T) {
	calls := []call{
		{kind: "max", lsn1: lsn(20)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(1)},
		{kind: "changes", inst: "dbo_items", from: lsn(3).inc(), to: lsn(20), top: 2, rows: []row{
			item(6, 1, opInsert, 1, "a", "1"), item(6, 2, opInsert, 2, "b", "1"),
		}},
		{kind: "columns", inst: "dbo_orders", cols: ordersCols},
		{kind: "bounds", inst: "dbo_orders", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(1)},
		{kind: "changes", inst: "dbo_orders", from: lsn(3).inc(), to: lsn(20), top: 2, rows: []row{
			order(6, 3, opInsert, "x", 1), order(9, 1, opInsert, "y", 1),
		}},
		{kind: "changes", inst: "dbo_items", from: lsn(3).inc(), to: lsn(6), top: 0, rows: []row{
			item(6, 1, opInsert, 1, "a", "1"), item(6, 2, opInsert, 2, "b", "1"), item(6, 4, opInsert, 3, "c", "1"),
		}},
		{kind: "changes", inst: "dbo_orders", from: lsn(3).inc(), to: lsn(6), top: 0, rows: []row{
			order(6, 3, opInsert, "x", 1),
		}},
		{kind: "time", lsn1: lsn(6), at: t0},
	}
	b, end, short, err := run(t, calls, lsn(3), []*instance{items, orders}, nil, replicate.StreamOptions{MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"upsert items [1] name=a,price=1", "upsert items [2] name=b,price=1", "upsert orders [x 1] n=1,_trace_id=trace-x", "upsert items [3] name=c,price=1"}
	if got := summary(b); !reflect.DeepEqual(got, want) || end != lsn(6) || !short {
		t.Errorf("changes %q end %s short %v, want %q end %s short", got, end, short, want, lsn(6))
	}
}

// With SkipReplicated, the changes of transactions whose commit LSN has
// an insert of a non-empty origin into the mark table are skipped (the
// mark's own delete, and an empty origin, tag nothing); without it, the
// mark table is not read.
func TestReadSkipsMarkedTransactions(t *testing.T) {
	data := func(top int) []call {
		return []call{
			{kind: "max", lsn1: lsn(9)},
			{kind: "columns", inst: "dbo_items", cols: itemsCols},
			{kind: "bounds", inst: "dbo_items", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(1)},
			{kind: "changes", inst: "dbo_items", from: lsn(3).inc(), to: lsn(9), top: top, rows: []row{
				item(4, 1, opInsert, 1, "local", "1"),
				item(5, 2, opInsert, 2, "replicated", "1"),
				item(6, 2, opUpdateBefore, 1, "local", "1"),
				item(6, 3, opUpdateAfter, 1, "empty origin", "1"),
			}},
		}
	}
	calls := append(data(10),
		call{kind: "bounds", inst: "dbo__ic_poll_origin", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(1)},
		call{kind: "changes", inst: "dbo__ic_poll_origin", from: lsn(3).inc(), to: lsn(9), top: 0, rows: []row{
			{start: lsn(5), seq: seqv(1), op: opInsert, vals: []any{int64(57), "aws->azure"}},
			{start: lsn(5), seq: seqv(3), op: opDelete, vals: []any{int64(57), "aws->azure"}},
			{start: lsn(6), seq: seqv(1), op: opInsert, vals: []any{int64(58), ""}},
			{start: lsn(6), seq: seqv(4), op: opDelete, vals: []any{int64(58), ""}},
		}},
		call{kind: "time", lsn1: lsn(6), at: t0},
	)
	b, _, _, err := run(t, calls, lsn(3), []*instance{items}, mark, replicate.StreamOptions{MaxBatch: 10, SkipReplicated: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"upsert items [1] name=local,price=1", "upsert items [1] name=empty origin,price=1"}
	if got := summary(b); !reflect.DeepEqual(got, want) {
		t.Errorf("skip: %q, want %q", got, want)
	}
	calls = append(data(10), call{kind: "time", lsn1: lsn(6), at: t0})
	b, _, _, err = run(t, calls, lsn(3), []*instance{items}, mark, replicate.StreamOptions{MaxBatch: 10})
	if err != nil || len(b.Changes) != 3 {
		t.Errorf("no skip: %q %v", summary(b), err)
	}
}

// Restart: a stream whose target committed the first (cut) batch and
// then died resumes from that position: the next read starts at the LSN
// after it and delivers the rest once, nothing twice.
func TestStreamResumesAfterCommittedBatch(t *testing.T) {
	first := []call{
		{kind: "max", lsn1: lsn(20)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: lsn(3), lsn1: lsn(3).inc(), lsn2: lsn(1)},
		{kind: "changes", inst: "dbo_items", from: lsn(3).inc(), to: lsn(20), top: 2, rows: []row{
			item(4, 1, opInsert, 1, "a", "1"), item(8, 1, opInsert, 2, "b", "1"),
		}},
		{kind: "time", lsn1: lsn(4), at: t0},
	}
	src := &Source{d: sqlserver.Dialect{}, tables: map[string]*instance{"items": items}}
	s := &script{t: t, calls: first}
	src.r = s
	var committed replicate.Position
	died := errors.New("killed after commit")
	err := src.Stream(context.Background(), lsn(3).Position(), replicate.StreamOptions{MaxBatch: 2, Poll: time.Millisecond}, func(_ context.Context, b replicate.Batch) error {
		committed = b.Position
		return died
	})
	s.done()
	if !errors.Is(err, died) || committed != lsn(4).Position() {
		t.Fatalf("first run: %v, committed %s", err, committed)
	}
	from, _ := PositionLSN(committed)
	s.calls = []call{
		{kind: "max", lsn1: lsn(20)},
		{kind: "columns", inst: "dbo_items", cols: itemsCols},
		{kind: "bounds", inst: "dbo_items", pos: from, lsn1: from.inc(), lsn2: lsn(1)},
		{kind: "changes", inst: "dbo_items", from: from.inc(), to: lsn(20), top: 2, rows: []row{item(8, 1, opInsert, 2, "b", "1")}},
		{kind: "time", lsn1: lsn(8), at: t0},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var got []string
	err = src.Stream(ctx, committed, replicate.StreamOptions{MaxBatch: 2, Poll: time.Hour}, func(_ context.Context, b replicate.Batch) error {
		got = append(got, summary(b)...)
		committed = b.Position
		cancel()
		return nil
	})
	s.done()
	if !errors.Is(err, context.Canceled) || committed != lsn(20).Position() || !reflect.DeepEqual(got, []string{"upsert items [2] name=b,price=1"}) {
		t.Errorf("resumed: %v, committed %s, changes %q", err, committed, got)
	}
}

// inc is sys.fn_cdc_increment_lsn as the recorded calls return it: the
// next LSN.
func (l LSN) inc() LSN {
	for i := len(l) - 1; i >= 0; i-- {
		l[i]++
		if l[i] != 0 {
			break
		}
	}
	return l
}
