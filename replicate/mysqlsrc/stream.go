package mysqlsrc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/intercloud/intercloud/replicate"
)

// idleFlush is how long a position-only move (skipped transactions, other
// tables) may wait before it is delivered as an empty batch.
const idleFlush = time.Second

type eventOrErr struct {
	ev  *replication.BinlogEvent
	err error
}

// txState is the transaction being read.
type txState struct {
	active  bool
	changes []replicate.Change
	skip    bool   // it wrote the origin table: replication's own
	gtid    string // its GTID (gtid positions)
	parted  bool   // parts of it were delivered already
}

// streamer is the state of one Stream call.
type streamer struct {
	s        *Source
	opts     replicate.StreamOptions
	fn       func(context.Context, replicate.Batch) error
	want     map[string]bool
	maxBatch int

	file string
	gset gmysql.GTIDSet

	committed replicate.Position // after the last whole transaction
	tx        txState
	batch     []replicate.Change
	batchAt   time.Time // commit time of the batch's last transaction
	dirty     bool      // committed moved since the last delivery
	lastFlush time.Time
	decoders  map[string]decState
}

type decState struct {
	tme *replication.TableMapEvent
	dec *decoder
}

// Stream implements replicate.Source.
func (s *Source) Stream(ctx context.Context, from replicate.Position, opts replicate.StreamOptions, fn func(context.Context, replicate.Batch) error) (err error) {
	// Batches are applied by one goroutine, in order, while the next one
	// is decoded: the position is only ever the target's checkpoint, so
	// nothing is confirmed to the server early.
	p := replicate.NewPipeline(ctx, fn)
	defer func() { err = p.Close(err) }()
	st := &streamer{s: s, opts: opts, fn: p.Send, want: map[string]bool{}, maxBatch: opts.MaxBatch, decoders: map[string]decState{}}
	if st.maxBatch <= 0 {
		st.maxBatch = replicate.DefaultBatchSize
	}
	tables := opts.Tables
	if len(tables) == 0 {
		for t := range s.tables {
			tables = append(tables, t)
		}
	}
	for _, t := range tables {
		st.want[t] = true
		// The schema read now decodes rows logged before a later rename
		// of the table, when they are read after the server renamed it
		// (a failure here shows again, and is reported, when a row needs
		// it).
		_, _ = s.tableInfo(ctx, t)
	}
	syncer := s.syncer()
	defer syncer.Close()
	var bs *replication.BinlogStreamer
	switch {
	case from == "" && s.gtid:
		st.gset, _ = gmysql.ParseGTIDSet(s.flavor, "")
		bs, err = syncer.StartSyncGTID(st.gset.Clone())
		st.committed = gtidPosition(st.gset.String())
	case from == "":
		first, ferr := s.firstFile(ctx)
		if ferr != nil {
			return ferr
		}
		st.file = first
		st.committed = filePosition(first, 4)
		bs, err = syncer.StartSync(gmysql.Position{Name: first, Pos: 4})
	default:
		kind, file, pos, gtid, perr := ParsePosition(from)
		if perr != nil {
			return perr
		}
		st.committed = from
		if kind == "gtid" {
			if st.gset, err = gmysql.ParseGTIDSet(s.flavor, gtid); err != nil {
				return fmt.Errorf("%w: %v", ErrBadPosition, err)
			}
			bs, err = syncer.StartSyncGTID(st.gset.Clone())
		} else {
			st.file = file
			bs, err = syncer.StartSync(gmysql.Position{Name: file, Pos: pos})
		}
	}
	if err != nil {
		return fmt.Errorf("mysqlsrc: start binlog stream from %s: %w", st.committed, err)
	}
	s.log.Debug("binlog stream started", "from", st.committed, "server_id", s.serverID, "flavor", s.flavor)

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan eventOrErr, readAhead/4)
	go func() {
		for {
			ev, err := bs.GetEvent(rctx)
			select {
			case ch <- eventOrErr{ev, err}:
			case <-rctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(idleFlush / 2)
	defer tick.Stop()
	st.lastFlush = time.Now()
	for {
		// A partial batch goes when nothing is waiting to be decoded and
		// the applier is free; while it is busy, the batch grows.
		if len(ch) == 0 && len(st.batch) > 0 && p.Idle() {
			if err := st.flush(ctx); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.Done():
			return p.Err()
		case <-p.Free():
		case <-tick.C:
			if st.dirty && time.Since(st.lastFlush) >= idleFlush {
				if err := st.flush(ctx); err != nil {
					return err
				}
			}
		case e := <-ch:
			if e.err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				var me *gmysql.MyError
				if errors.As(e.err, &me) && me.Code == gmysql.ER_MASTER_FATAL_ERROR_READING_BINLOG {
					return fmt.Errorf("%w: from %s: %v", ErrPositionLost, st.committed, e.err)
				}
				return fmt.Errorf("mysqlsrc: read binlog: %w", e.err)
			}
			if err := st.handle(ctx, e.ev); err != nil {
				return err
			}
		}
	}
}

// flush delivers the batch (possibly empty, to move the position).
func (st *streamer) flush(ctx context.Context) error {
	if len(st.batch) == 0 && !st.dirty {
		return nil
	}
	b := replicate.Batch{Changes: st.batch, Position: st.committed, CommitTime: st.batchAt}
	st.batch = nil
	st.dirty = false
	st.lastFlush = time.Now()
	return st.fn(ctx, b)
}

func (st *streamer) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	h := ev.Header
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		st.file = string(e.NextLogName)
		if st.gset == nil && !st.tx.active {
			p := filePosition(st.file, uint32(e.Position))
			if p != st.committed {
				st.committed = p
				st.dirty = true
			}
		}
	case *replication.GTIDEvent:
		st.begin()
		if next, err := e.GTIDNext(); err == nil {
			st.tx.gtid = next.String()
		}
	case *replication.MariadbGTIDEvent:
		st.begin()
		st.tx.gtid = e.GTID.String()
	case *replication.QueryEvent:
		return st.query(ctx, h, e)
	case *replication.RowsEvent:
		return st.rows(ctx, h, e)
	case *replication.XIDEvent:
		return st.end(ctx, h)
	}
	return nil
}

func (st *streamer) begin() {
	if !st.tx.active {
		st.tx = txState{active: true}
	}
}

// query handles BEGIN, COMMIT and statements (DDL).
func (st *streamer) query(ctx context.Context, h *replication.EventHeader, e *replication.QueryEvent) error {
	q := strings.TrimSpace(string(e.Query))
	word := strings.ToUpper(firstWord(q))
	switch word {
	case "BEGIN":
		st.begin()
		return nil
	case "COMMIT":
		return st.end(ctx, h)
	case "SAVEPOINT", "RELEASE":
		return nil
	case "ROLLBACK":
		if strings.Contains(strings.ToUpper(q), " TO ") {
			return nil
		}
		return st.end(ctx, h) // what a non-transactional engine kept
	case "XA":
		return nil
	}
	// A statement logged as text: DDL, which commits on its own.
	st.begin()
	ddl := ParseDDL(q)
	switch {
	case ddl.Kind == "RENAME TABLE" || (ddl.Kind == "ALTER TABLE" && len(ddl.Tables) > 1):
		st.renames(ddl, string(e.Schema), q)
	case ddl.Kind != "":
		var hit []string
		for _, t := range ddl.Tables {
			if !st.ours(t, string(e.Schema)) {
				continue
			}
			st.s.forget(t.Name)
			delete(st.decoders, t.Name)
			// A created table the stream does not have yet is news too:
			// the stream picks it up when its table globs select it.
			if st.want[t.Name] || ddl.Kind == "CREATE TABLE" {
				hit = append(hit, t.Name)
			}
		}
		if len(ddl.Tables) == 0 {
			st.s.forget()
			clear(st.decoders)
		}
		for _, t := range hit {
			st.tx.changes = append(st.tx.changes, replicate.Change{Table: t, Op: replicate.OpSchema, DDL: q})
		}
	}
	return st.end(ctx, h)
}

// ours reports whether a table of a statement run in schema def is in the
// source's database.
func (st *streamer) ours(t TableRef, def string) bool {
	if t.Schema == "" {
		return def == st.s.schema
	}
	return t.Schema == st.s.schema
}

// renames turns the renames of a RENAME TABLE (pairs of old and new
// names) or an ALTER TABLE ... RENAME (the table, then its new name) into
// OpSchema changes with NewTable, one per renamed table, in order: for
// the tables the stream reads, whose rows it then reads under the new
// name, and for the others, whose new name the stream may select. A table
// moved to another database is a schema change without NewTable (it is
// gone from this one). An ALTER TABLE that renames may change columns
// too: a schema change of the new name follows its renames.
func (st *streamer) renames(ddl DDL, def, q string) {
	pairs := ddl.Tables
	if ddl.Kind == "ALTER TABLE" {
		// ALTER TABLE a RENAME b [, RENAME c]: a is renamed to the last.
		pairs = []TableRef{ddl.Tables[0], ddl.Tables[len(ddl.Tables)-1]}
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		from, to := pairs[i], pairs[i+1]
		if !st.ours(from, def) {
			if st.ours(to, def) {
				// Moved in from another database: the stream may select it.
				st.s.forget(to.Name)
				st.tx.changes = append(st.tx.changes, replicate.Change{Table: from.Schema + "." + from.Name, Op: replicate.OpSchema, DDL: q, NewTable: to.Name})
			}
			continue
		}
		delete(st.decoders, from.Name)
		delete(st.decoders, to.Name)
		if !st.ours(to, def) {
			st.s.forget(from.Name)
			if st.want[from.Name] {
				delete(st.want, from.Name)
				st.tx.changes = append(st.tx.changes, replicate.Change{Table: from.Name, Op: replicate.OpSchema, DDL: q})
			}
			continue
		}
		if ddl.Kind == "RENAME TABLE" {
			st.s.rename(from.Name, to.Name)
		} else {
			st.s.forget(from.Name, to.Name)
		}
		st.tx.changes = append(st.tx.changes, replicate.Change{Table: from.Name, Op: replicate.OpSchema, DDL: q, NewTable: to.Name})
		if st.want[from.Name] {
			delete(st.want, from.Name)
			st.want[to.Name] = true
			if ddl.Kind == "ALTER TABLE" {
				st.tx.changes = append(st.tx.changes, replicate.Change{Table: to.Name, Op: replicate.OpSchema, DDL: q})
			}
		}
	}
}

// rows turns a rows event into changes of the current transaction.
func (st *streamer) rows(ctx context.Context, h *replication.EventHeader, e *replication.RowsEvent) error {
	if e.Table == nil || string(e.Table.Schema) != st.s.schema {
		return nil
	}
	st.begin()
	table := string(e.Table.Table)
	if table == OriginTable {
		if st.opts.SkipReplicated {
			st.tx.skip = true
			st.tx.changes = nil
		}
		return nil
	}
	if !st.want[table] || st.tx.skip {
		return nil
	}
	ds, ok := st.decoders[table]
	if !ok || ds.tme != e.Table {
		dec, err := st.s.decoderFor(ctx, e.Table)
		if err != nil {
			return err
		}
		ds = decState{tme: e.Table, dec: dec}
		st.decoders[table] = ds
	}
	dec := ds.dec
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert:
		for _, r := range e.Rows {
			row, key, err := dec.row(r)
			if err != nil {
				return err
			}
			st.tx.changes = append(st.tx.changes, replicate.Change{Table: table, Op: replicate.OpUpsert, Key: key, Row: row, TraceID: traceID(row)})
		}
	case replication.EnumRowsEventTypeUpdate:
		for i := 0; i+1 < len(e.Rows); i += 2 {
			_, oldKey, err := dec.row(e.Rows[i])
			if err != nil {
				return err
			}
			row, key, err := dec.row(e.Rows[i+1])
			if err != nil {
				return err
			}
			if !sameKey(oldKey, key) {
				st.tx.changes = append(st.tx.changes, replicate.Change{Table: table, Op: replicate.OpDelete, Key: oldKey})
			}
			st.tx.changes = append(st.tx.changes, replicate.Change{Table: table, Op: replicate.OpUpsert, Key: key, Row: row, TraceID: traceID(row)})
		}
	case replication.EnumRowsEventTypeDelete:
		for _, r := range e.Rows {
			_, key, err := dec.row(r)
			if err != nil {
				return err
			}
			st.tx.changes = append(st.tx.changes, replicate.Change{Table: table, Op: replicate.OpDelete, Key: key})
		}
	default:
		return nil
	}
	if len(st.tx.changes) >= st.s.maxTx {
		// Too large to hold: deliver this part at the position before the
		// transaction, so a restart re-reads all of it.
		if err := st.flush(ctx); err != nil {
			return err
		}
		part := st.tx.changes
		st.tx.changes = nil
		st.tx.parted = true
		st.lastFlush = time.Now()
		if err := st.fn(ctx, replicate.Batch{Changes: part, Position: st.committed, CommitTime: time.Unix(int64(h.Timestamp), 0)}); err != nil {
			return err
		}
	}
	return nil
}

// end closes the current transaction at the event that ends it.
func (st *streamer) end(ctx context.Context, h *replication.EventHeader) error {
	tx := st.tx
	st.tx = txState{}
	var next replicate.Position
	if st.gset != nil {
		if tx.gtid != "" {
			if err := st.gset.Update(tx.gtid); err != nil {
				return fmt.Errorf("mysqlsrc: gtid %s: %w", tx.gtid, err)
			}
		}
		next = gtidPosition(st.gset.String())
	} else {
		next = filePosition(st.file, h.LogPos)
	}
	keep := !tx.skip && len(tx.changes) > 0
	if keep && len(st.batch) > 0 && len(st.batch)+len(tx.changes) > st.maxBatch {
		// What came before goes on its own, at its own position.
		if err := st.flush(ctx); err != nil {
			return err
		}
	}
	st.committed = next
	st.dirty = true
	if !keep {
		return nil
	}
	st.batch = append(st.batch, tx.changes...)
	st.batchAt = time.Unix(int64(h.Timestamp), 0)
	if len(st.batch) >= st.maxBatch {
		return st.flush(ctx)
	}
	return nil
}

func firstWord(q string) string {
	for strings.HasPrefix(q, "/*") {
		i := strings.Index(q, "*/")
		if i < 0 {
			return ""
		}
		q = strings.TrimSpace(q[i+2:])
	}
	i := strings.IndexFunc(q, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ';' })
	if i < 0 {
		return q
	}
	return q[:i]
}

func sameKey(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if fmt.Sprintf("%T:%v", a[i], a[i]) != fmt.Sprintf("%T:%v", b[i], b[i]) {
			return false
		}
	}
	return true
}

func traceID(row map[string]any) string {
	switch v := row["_trace_id"].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
