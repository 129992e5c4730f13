package pgsrc

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/intercloud/intercloud/replicate"
)

// Timing of Stream.
const (
	// statusEvery is how often a standby status update is sent unasked
	// (well within the server's wal_sender_timeout).
	statusEvery = 10 * time.Second
	// batchIdle delivers a pending batch when no message came for this
	// long; batchMaxAge when it has waited this long in all.
	batchIdle   = 10 * time.Millisecond
	batchMaxAge = 250 * time.Millisecond
	// idleAdvanceEvery is how often an idle stream moves its position to
	// the server's WAL end with an empty batch.
	idleAdvanceEvery = 2 * time.Second
)

// Stream implements replicate.Source (see the package doc).
func (s *Source) Stream(ctx context.Context, from replicate.Position, opts replicate.StreamOptions, fn func(context.Context, replicate.Batch) error) error {
	start, err := ParsePosition(from)
	if err != nil {
		return err
	}
	for {
		err := s.stream(ctx, start, opts, fn)
		var sw switchPubs
		if !errors.As(err, &sw) {
			return err
		}
		// Past the position the filtered publications may be read from:
		// a new replication connection reads them.
		s.log.Info("the stream moves to its filtered publications", "at", sw.at, "publications", strings.Join(s.pubs, ", "))
		start = sw.at
	}
}

// switchPubs ends a stream that read the plain publication once it has
// delivered everything up to at, at or past where its filtered
// publications may be read from.
type switchPubs struct{ at pglogrepl.LSN }

func (switchPubs) Error() string { return "pgsrc: switch to the filtered publications" }

// stream is one replication connection of Stream.
func (s *Source) stream(ctx context.Context, start pglogrepl.LSN, opts replicate.StreamOptions, fn func(context.Context, replicate.Batch) error) error {
	want, err := replicate.StreamTables(opts, s.tables)
	if err != nil {
		return err
	}
	opts = opts.WithDefaults()
	confirmed, err := s.confirmed(ctx)
	if err != nil {
		return err
	}
	if start != 0 && start < confirmed {
		return fmt.Errorf("%w: slot %s is at %s, the stream asked for %s", ErrPositionLost, s.slot, confirmed, start)
	}
	if start == 0 {
		start = confirmed
	}
	// The filtered publications when the stream starts where they may
	// be read; the plain one until then (see "Filtered publications").
	pubs, switchAt := []string{Publication}, pglogrepl.LSN(0)
	if s.pubs != nil {
		if start >= s.pubsFrom {
			pubs = s.pubs
		} else {
			switchAt = s.pubsFrom
		}
	}
	// A slot its previous stream just let go of stays active until the
	// server notices that walsender is gone; each try is a connection of
	// its own (a refused START_REPLICATION leaves the protocol mid-way).
	var conn *pgconn.PgConn
	closeConn := func(c *pgconn.PgConn) {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}
	err = whileSlotActive(ctx, func() error {
		c, err := connect(ctx, s.db)
		if err != nil {
			return err
		}
		err = pglogrepl.StartReplication(ctx, c, s.slot, start, pglogrepl.StartReplicationOptions{
			PluginArgs: []string{"proto_version '1'", pubOption(pubs)},
		})
		if err != nil {
			closeConn(c)
			return err
		}
		conn = c
		return nil
	})
	if conn != nil {
		defer closeConn(conn)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("pgsrc: start replication from %s: %w", start, err)
	}
	s.log.Debug("replication started", "from", start, "publications", strings.Join(pubs, ", "))
	oids, err := s.relationNames(ctx, want)
	if err != nil {
		return err
	}
	st := &streamState{
		oids:      oids,
		src:       s,
		conn:      conn,
		opts:      opts,
		want:      want,
		fn:        fn,
		confirmed: start,
		delivered: start,
		switchAt:  switchAt,
		known:     map[string][]relColumn{},
		rels:      map[uint32]*relationMsg{},
		schema:    map[string]bool{},
	}
	for name, t := range s.tables {
		st.known[name] = t.cols
	}
	err = st.run(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// streamState is one run of Stream.
type streamState struct {
	src  *Source
	conn *pgconn.PgConn
	opts replicate.StreamOptions
	want map[string]bool
	fn   func(context.Context, replicate.Batch) error

	// confirmed is the position reported flushed to the server;
	// delivered the position of the last batch fn accepted (confirmed
	// trails it while the consumer's checkpoint does, see confirm).
	confirmed, delivered pglogrepl.LSN
	nextStatus           time.Time

	rels   map[uint32]*relationMsg
	oids   map[uint32]string      // the wanted tables' names by OID when the stream started
	known  map[string][]relColumn // last columns seen per table
	schema map[string]bool        // tables with a schema change to emit

	// The transaction being received.
	inTxn     bool
	txn       []replicate.Change
	txnSkip   bool // wrote the origin table: replicated
	txnTime   time.Time
	txnSplit  bool // parts of it were delivered already
	txnErr    error
	lastMsgAt time.Time

	// The batch of whole transactions waiting for delivery.
	pending      []replicate.Change
	pendingPos   pglogrepl.LSN // 0: nothing pending
	pendingTime  time.Time
	pendingSince time.Time

	walEnd      pglogrepl.LSN // from keepalives, outside transactions
	lastAdvance time.Time

	// switchAt, when set, ends the connection (switchPubs) once
	// everything up to it is delivered.
	switchAt pglogrepl.LSN
}

func (st *streamState) run(ctx context.Context) error {
	st.nextStatus = time.Now()
	st.lastAdvance = time.Now()
	// Each message is read with a deadline on the connection itself rather
	// than a context of its own (a timer and a context watcher per row
	// message); ctx's cancellation ends the read the same way.
	nc := st.conn.Conn()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		if err := st.timers(ctx); err != nil {
			return err
		}
		if st.switchAt != 0 && !st.inTxn && st.pendingPos == 0 && st.delivered >= st.switchAt {
			return switchPubs{at: st.delivered}
		}
		deadline := st.nextStatus
		if st.pendingPos != 0 {
			deadline = earliest(deadline, st.lastMsgAt.Add(batchIdle), st.pendingSince.Add(batchMaxAge))
		}
		if !st.inTxn && st.walEnd > st.delivered && st.pendingPos == 0 {
			deadline = earliest(deadline, st.lastAdvance.Add(idleAdvanceEvery))
		}
		if err := nc.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("pgsrc: receive: %w", err)
		}
		if ctx.Err() != nil { // cancelled before the deadline was set
			return ctx.Err()
		}
		msg, err := st.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("pgsrc: receive: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := st.copyData(ctx, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("pgsrc: replication: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return errors.New("pgsrc: the server ended the replication stream")
		default:
			// Notices and parameter changes.
		}
	}
}

func earliest(t time.Time, more ...time.Time) time.Time {
	for _, m := range more {
		if m.Before(t) {
			t = m
		}
	}
	return t
}

// timers delivers a batch that waited long enough, advances an idle
// position, and sends a due status update.
func (st *streamState) timers(ctx context.Context) error {
	now := time.Now()
	if st.pendingPos != 0 && (now.Sub(st.lastMsgAt) >= batchIdle || now.Sub(st.pendingSince) >= batchMaxAge) {
		if err := st.deliverPending(ctx); err != nil {
			return err
		}
	}
	if !st.inTxn && st.pendingPos == 0 && st.walEnd > st.delivered && now.Sub(st.lastAdvance) >= idleAdvanceEvery {
		st.pendingPos, st.pendingSince = st.walEnd, now
		if err := st.deliverPending(ctx); err != nil {
			return err
		}
	}
	if !now.Before(st.nextStatus) {
		st.confirm()
		return st.sendStatus(false)
	}
	return nil
}

// confirm moves confirmed up to what was delivered, and no further than
// what the consumer says is durable (StreamOptions.Durable). It reports
// whether confirmed moved.
func (st *streamState) confirm() bool {
	to := st.delivered
	if st.opts.Durable != nil {
		d, err := ParsePosition(st.opts.Durable())
		if err != nil {
			st.src.log.Warn("the consumer's durable position is unusable; not confirmed", "err", err)
			return false
		}
		to = min(to, d)
	}
	if to <= st.confirmed {
		return false
	}
	st.confirmed = to
	return true
}

func (st *streamState) sendStatus(reply bool) error {
	st.nextStatus = time.Now().Add(statusEvery)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: st.confirmed,
		WALFlushPosition: st.confirmed,
		WALApplyPosition: st.confirmed,
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("pgsrc: send standby status: %w", err)
	}
	return nil
}

// deliverPending hands the pending batch to fn and, once fn accepted it,
// confirms its position to the server (see confirm).
func (st *streamState) deliverPending(ctx context.Context) error {
	if st.pendingPos == 0 {
		return nil
	}
	b := replicate.Batch{Changes: st.pending, Position: FormatPosition(st.pendingPos), CommitTime: st.pendingTime}
	pos := st.pendingPos
	st.pending, st.pendingPos, st.pendingTime = nil, 0, time.Time{}
	if err := st.fn(ctx, b); err != nil {
		return err
	}
	st.lastAdvance = time.Now()
	if pos > st.delivered {
		st.delivered = pos
	}
	if st.confirm() {
		return st.sendStatus(false)
	}
	return nil
}

// copyData handles one CopyData message of the replication stream.
func (st *streamState) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("pgsrc: empty replication message")
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("pgsrc: keepalive: %w", err)
		}
		if !st.inTxn && k.ServerWALEnd > st.walEnd {
			st.walEnd = k.ServerWALEnd
		}
		if k.ReplyRequested {
			return st.sendStatus(false)
		}
		return nil
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("pgsrc: xlog data: %w", err)
		}
		st.lastMsgAt = time.Now()
		return st.walData(ctx, x.WALData, x.WALStart)
	}
	return nil // other message kinds are not for logical replication clients
}

// walData handles one pgoutput message that started at at.
func (st *streamState) walData(ctx context.Context, data []byte, at pglogrepl.LSN) error {
	if len(data) > 0 && data[0] == 'I' {
		st.src.inserts.Add(1)
	}
	if st.dropped(data) {
		return nil
	}
	m, err := parseMessage(data)
	if err != nil {
		return err
	}
	return st.message(ctx, m, at)
}

// dropped reports whether data is a row change that row would drop
// unread, so its row images need not be parsed: a change inside a
// transaction that wrote the origin table (with SkipReplicated: the
// reverse stream receives every replicated row only to skip it), or
// that failed to decode already, or of a table the stream does not read.
// A change of the origin table itself is always parsed and handled.
func (st *streamState) dropped(data []byte) bool {
	if !st.inTxn || len(data) < 5 {
		return false
	}
	switch data[0] {
	case 'I', 'U', 'D': // each starts with its relation's OID
	default:
		return false
	}
	rel := st.rels[binary.BigEndian.Uint32(data[1:5])]
	if rel == nil || rel.name == OriginTable {
		return false
	}
	return st.txnSkip || st.txnErr != nil || !st.want[rel.name]
}

// message handles one pgoutput message.
func (st *streamState) message(ctx context.Context, m any, at pglogrepl.LSN) error {
	switch m := m.(type) {
	case beginMsg:
		st.inTxn = true
		st.txn, st.txnSkip, st.txnSplit, st.txnErr = nil, false, false, nil
		st.txnTime = m.commitTime
	case commitMsg:
		return st.commit(ctx, m)
	case relationMsg:
		rel := m
		if prev := st.rels[m.id]; prev != nil && prev.name != m.name {
			st.renamed(prev.name, m.name)
		} else if was, ok := st.oids[m.id]; ok && prev == nil && was != m.name {
			// The table's first Relation message of this stream, under
			// another name than it had when the stream started: renamed
			// since, when that name is the table's name now (otherwise
			// it is an older name, from before the stream started).
			now, err := st.src.relationName(ctx, m.id)
			if err != nil {
				return err
			}
			if now == m.name {
				st.renamed(was, m.name)
			}
		}
		delete(st.oids, m.id)
		st.rels[m.id] = &rel
		if st.want[m.name] && !sameColumns(st.known[m.name], m.columns) {
			st.schema[m.name] = true
		}
		st.known[m.name] = m.columns
	case insertMsg, updateMsg, deleteMsg:
		if !st.inTxn {
			return fmt.Errorf("pgsrc: row change at %s outside a transaction", at)
		}
		return st.row(ctx, m)
	case truncateMsg:
		if !st.inTxn {
			return fmt.Errorf("pgsrc: truncate at %s outside a transaction", at)
		}
		for _, id := range m.rels {
			if rel := st.rels[id]; rel != nil && st.want[rel.name] && !st.txnSkip {
				st.txn = append(st.txn, replicate.Change{Table: rel.name, Op: replicate.OpSchema,
					DDL: `TRUNCATE "` + strings.ReplaceAll(rel.name, `"`, `""`) + `"`})
			}
		}
	}
	return nil
}

// renamed handles a relation that comes under a new name (ALTER TABLE
// ... RENAME TO): an OpSchema change with NewTable goes into the
// transaction before the row that follows, and a table the stream reads
// is read under its new name from then on. A table of the publication the
// stream does not read is news too: the stream may select its new name.
func (st *streamState) renamed(from, to string) {
	if from == OriginTable || to == OriginTable {
		return
	}
	st.txn = append(st.txn, replicate.Change{Table: from, Op: replicate.OpSchema, NewTable: to,
		DDL: "ALTER TABLE " + quote(from) + " RENAME TO " + quote(to)})
	if !st.want[from] {
		return
	}
	delete(st.want, from)
	st.want[to] = true
	if t, ok := st.src.tables[from]; ok {
		delete(st.src.tables, from)
		st.src.tables[to] = t
	}
	if cols, ok := st.known[from]; ok {
		delete(st.known, from)
		st.known[to] = cols
	}
	if st.schema[from] {
		delete(st.schema, from)
		st.schema[to] = true
	}
}

// relationNames returns the OIDs of the tables (in the current schema)
// with their names.
func (s *Source) relationNames(ctx context.Context, tables map[string]bool) (map[uint32]string, error) {
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT c.oid::bigint, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY($1::text[])`, "{"+strings.Join(quoteAll(names), ",")+"}")
	if err != nil {
		return nil, fmt.Errorf("pgsrc: relation ids: %w", err)
	}
	defer rows.Close()
	out := map[uint32]string{}
	for rows.Next() {
		var oid int64
		var name string
		if err := rows.Scan(&oid, &name); err != nil {
			return nil, fmt.Errorf("pgsrc: relation ids: %w", err)
		}
		out[uint32(oid)] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgsrc: relation ids: %w", err)
	}
	return out, nil
}

// quoteAll quotes names as elements of a text array literal.
func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(n) + `"`
	}
	return out
}

// relationName returns a relation's name now ("" when it is gone).
func (s *Source) relationName(ctx context.Context, oid uint32) (string, error) {
	var name string
	err := s.db.QueryRowContext(ctx, `SELECT relname FROM pg_class WHERE oid = $1`, int64(oid)).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("pgsrc: name of relation %d: %w", oid, err)
	}
	return name, nil
}

// sameColumns reports whether two column lists have the same names, types
// and type modifiers.
func sameColumns(a, b []relColumn) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || a[i].typ != b[i].typ || a[i].mod != b[i].mod {
			return false
		}
	}
	return true
}

// row decodes a row change into the current transaction.
func (st *streamState) row(ctx context.Context, m any) error {
	var relID uint32
	switch m := m.(type) {
	case insertMsg:
		relID = m.rel
	case updateMsg:
		relID = m.rel
	case deleteMsg:
		relID = m.rel
	}
	rel := st.rels[relID]
	if rel == nil {
		return fmt.Errorf("pgsrc: row change of relation %d before its Relation message", relID)
	}
	if rel.name == OriginTable {
		if st.opts.SkipReplicated {
			// Renames seen in a replicated transaction still rename.
			st.txnSkip = true
			st.txn = slices.DeleteFunc(st.txn, func(c replicate.Change) bool { return c.NewTable == "" })
		}
		return nil
	}
	if st.txnSkip || !st.want[rel.name] || st.txnErr != nil {
		return nil
	}
	t := st.src.tables[rel.name]
	if st.schema[rel.name] {
		delete(st.schema, rel.name)
		st.txn = append(st.txn, replicate.Change{Table: rel.name, Op: replicate.OpSchema})
	}
	changes, err := rowChanges(rel, t.def.PrimaryKey, m)
	if err != nil {
		// Kept until the commit: a later write to the origin table may
		// still mark the transaction as replicated.
		st.txnErr = err
		return nil
	}
	st.txn = append(st.txn, changes...)
	if len(st.txn) >= MaxTxnChanges {
		// Too large to hold: deliver what came so far with the position
		// before the transaction, so a restart replays it whole.
		if err := st.deliverPending(ctx); err != nil {
			return err
		}
		b := replicate.Batch{Changes: st.txn, Position: FormatPosition(st.delivered), CommitTime: st.txnTime}
		st.txn, st.txnSplit = nil, true
		st.src.log.Warn("transaction too large to apply atomically; delivering it in parts", "changes", MaxTxnChanges)
		if err := st.fn(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// commit ends the current transaction: its changes join the pending batch,
// which is delivered when full.
func (st *streamState) commit(ctx context.Context, m commitMsg) error {
	if !st.inTxn {
		return errors.New("pgsrc: commit without begin")
	}
	st.inTxn = false
	end := pglogrepl.LSN(m.endLSN)
	if !st.txnSkip {
		if st.txnErr != nil {
			return fmt.Errorf("pgsrc: transaction ending at %s: %w", end, st.txnErr)
		}
	}
	if len(st.pending) > 0 && len(st.pending)+len(st.txn) > st.opts.MaxBatch {
		if err := st.deliverPending(ctx); err != nil {
			return err
		}
	}
	if st.pendingPos == 0 {
		st.pendingSince = time.Now()
	}
	st.pending = append(st.pending, st.txn...)
	st.pendingPos, st.pendingTime = end, m.commitTime
	st.txn = nil
	if len(st.pending) >= st.opts.MaxBatch {
		return st.deliverPending(ctx)
	}
	return nil
}

// rowChanges turns an insert, update or delete of a table with primary key
// pk into changes.
func rowChanges(rel *relationMsg, pk []string, m any) ([]replicate.Change, error) {
	idx := make([]int, len(pk))
	for i, k := range pk {
		idx[i] = -1
		for j, c := range rel.columns {
			if c.name == k {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return nil, fmt.Errorf("pgsrc: %s: primary key column %q is not in the replicated columns", rel.name, k)
		}
	}
	switch m := m.(type) {
	case insertMsg:
		row, key, err := image(rel, idx, m.new, nil)
		if err != nil {
			return nil, err
		}
		return []replicate.Change{upsert(rel.name, key, row)}, nil
	case updateMsg:
		row, key, err := image(rel, idx, m.new, m.old)
		if err != nil {
			return nil, err
		}
		out := make([]replicate.Change, 0, 2)
		if m.old != nil && keyChanged(idx, m.old, m.new) {
			oldKey, err := keyOf(rel, idx, m.old)
			if err != nil {
				return nil, err
			}
			out = append(out, replicate.Change{Table: rel.name, Op: replicate.OpDelete, Key: oldKey})
		}
		return append(out, upsert(rel.name, key, row)), nil
	case deleteMsg:
		key, err := keyOf(rel, idx, m.old)
		if err != nil {
			return nil, err
		}
		return []replicate.Change{{Table: rel.name, Op: replicate.OpDelete, Key: key}}, nil
	}
	return nil, fmt.Errorf("pgsrc: %T is not a row change", m)
}

func upsert(table string, key []any, row map[string]any) replicate.Change {
	c := replicate.Change{Table: table, Op: replicate.OpUpsert, Key: key, Row: row}
	if s, ok := row["_trace_id"].(string); ok {
		c.TraceID = s
	}
	return c
}

// image decodes a new row image; unchanged TOASTed columns come from the
// old image.
func image(rel *relationMsg, idx []int, tuple, old []tupleCol) (map[string]any, []any, error) {
	if len(tuple) != len(rel.columns) {
		return nil, nil, fmt.Errorf("pgsrc: %s: row has %d columns, relation %d", rel.name, len(tuple), len(rel.columns))
	}
	row := make(map[string]any, len(tuple))
	for i, c := range tuple {
		col := rel.columns[i]
		if c.kind == 'u' {
			if i >= len(old) || (old[i].kind != 't' && old[i].kind != 'n') {
				return nil, nil, fmt.Errorf("pgsrc: %s.%s: an update left this TOASTed column unchanged and the old row image lacks it; set REPLICA IDENTITY FULL on the table (Prepare does)", rel.name, col.name)
			}
			c = old[i]
		}
		v, err := decodeValue(col.typ, c)
		if err != nil {
			return nil, nil, fmt.Errorf("pgsrc: %s.%s: %w", rel.name, col.name, err)
		}
		row[col.name] = v
	}
	key := make([]any, len(idx))
	for i, j := range idx {
		key[i] = row[rel.columns[j].name]
		if key[i] == nil {
			return nil, nil, fmt.Errorf("pgsrc: %s: null in primary key column %s", rel.name, rel.columns[j].name)
		}
	}
	return row, key, nil
}

// keyOf decodes the primary key from a (key or old) row image.
func keyOf(rel *relationMsg, idx []int, tuple []tupleCol) ([]any, error) {
	key := make([]any, len(idx))
	for i, j := range idx {
		if j >= len(tuple) {
			return nil, fmt.Errorf("pgsrc: %s: key image has %d columns", rel.name, len(tuple))
		}
		v, err := decodeValue(rel.columns[j].typ, tuple[j])
		if err != nil {
			return nil, fmt.Errorf("pgsrc: %s.%s: %w", rel.name, rel.columns[j].name, err)
		}
		if v == nil {
			return nil, fmt.Errorf("pgsrc: %s: null in primary key column %s", rel.name, rel.columns[j].name)
		}
		key[i] = v
	}
	return key, nil
}

// keyChanged reports whether the old image's key differs from the new
// one's (an unchanged TOASTed key keeps its value).
func keyChanged(idx []int, old, new []tupleCol) bool {
	for _, j := range idx {
		if j >= len(old) || j >= len(new) {
			return true
		}
		if new[j].kind == 'u' {
			continue
		}
		if old[j].kind != new[j].kind || !bytes.Equal(old[j].data, new[j].data) {
			return true
		}
	}
	return false
}
