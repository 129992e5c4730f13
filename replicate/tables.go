package replicate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/retry"
	"github.com/intercloud/intercloud/sqldb"
)

// A change the target rejects (a constraint, a value out of range, a
// column it lacks: anything but the target being unreachable or busy) is
// retried with backoff RejectRetries times; when it is still rejected, the
// batch is applied change by change, each behind a savepoint, and every
// change still rejected is handled by its table's ErrorPolicy:
//
//   - OnErrorStop (the default) stops that table: its later changes are
//     left out, the table is listed in Status.StoppedTables with the key,
//     operation and the database's error, an ERROR log line names them, and
//     every other table goes on. The stop is kept in the target's
//     TableStateTable; when the stream starts again (a restart of the
//     process, once the cause is fixed), a stopped table is loaded afresh
//     and rejoins change data capture.
//   - OnErrorSkip writes the rejected change (table, key, operation, error,
//     position, row image) to ExceptionsTable on the target, in the
//     transaction that applies the rest, and goes on.

// ErrorPolicy says what a stream does with a change its target rejects.
type ErrorPolicy string

// The error policies.
const (
	// OnErrorStop stops the table of a rejected change (the default).
	OnErrorStop ErrorPolicy = "stop"
	// OnErrorSkip records a rejected change in ExceptionsTable and goes on.
	OnErrorSkip ErrorPolicy = "skip"
)

// Validate checks the policy; empty means OnErrorStop.
func (p ErrorPolicy) Validate() error {
	switch p {
	case "", OnErrorStop, OnErrorSkip:
		return nil
	}
	return fmt.Errorf("on_error %q is neither %q nor %q", string(p), OnErrorStop, OnErrorSkip)
}

// Target tables of the per-table state and of the rejected changes.
const (
	// TableStateTable holds each stream's per-table state on the target:
	// the full load's progress per table, and the tables stopped by a
	// rejected change (with the change and the error).
	TableStateTable = "_ic_table_state"
	// ExceptionsTable holds the changes skipped under OnErrorSkip.
	ExceptionsTable = "_ic_apply_exceptions"
)

// Defaults for Config.
const (
	DefaultLoadParallel  = 4
	DefaultRejectRetries = 3
)

// The states of a table in TableStateTable.
const (
	tableLoading = "loading"
	tableLoaded  = "loaded"
	tableStopped = "stopped"
)

var tableStateDef = sqldb.Table{
	Name: TableStateTable,
	Columns: []sqldb.Column{
		{Name: "stream", Type: sqldb.Type{Kind: sqldb.KindString, Length: 200}},
		{Name: "table_name", Type: sqldb.Type{Kind: sqldb.KindString, Length: 200}},
		{Name: "state", Type: sqldb.Type{Kind: sqldb.KindString, Length: 16}},
		{Name: "last_key", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "error", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "error_key", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "error_op", Type: sqldb.Type{Kind: sqldb.KindString, Length: 16}, Nullable: true},
		{Name: "error_position", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "updated_at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
	},
	PrimaryKey: []string{"stream", "table_name"},
}

var exceptionsDef = sqldb.Table{
	Name: ExceptionsTable,
	Columns: []sqldb.Column{
		{Name: "stream", Type: sqldb.Type{Kind: sqldb.KindString, Length: 200}},
		// id identifies the change: a hash of table, position and its
		// place in the batch, so a replayed batch writes it once.
		{Name: "id", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
		{Name: "table_name", Type: sqldb.Type{Kind: sqldb.KindString, Length: 200}},
		{Name: "op", Type: sqldb.Type{Kind: sqldb.KindString, Length: 16}},
		{Name: "change_key", Type: sqldb.Type{Kind: sqldb.KindText}},
		{Name: "error", Type: sqldb.Type{Kind: sqldb.KindText}},
		{Name: "position", Type: sqldb.Type{Kind: sqldb.KindText}},
		{Name: "row_image", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "created_at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
	},
	PrimaryKey: []string{"stream", "id"},
}

// TableError is a table stopped by a change its target rejected (or by a
// schema the stream cannot replicate).
type TableError struct {
	Table string `json:"table"`
	// Key is the rejected change's primary key (canonical texts joined by
	// ", "); empty when the table stopped before any change.
	Key string `json:"key,omitempty"`
	// Op is the change's operation ("upsert", "delete").
	Op string `json:"op,omitempty"`
	// Error is the database's (or the converter's) error.
	Error string `json:"error"`
	// Position is the source position of the batch that carried it.
	Position Position  `json:"position,omitempty"`
	At       time.Time `json:"at"`
}

// TableState is one table's state in a stream, as kept on the target
// (TableStateTable).
type TableState struct {
	// State is "loading" (LastKey is the last key loaded), "loaded" or
	// "stopped" (Err says why).
	State   string
	LastKey []string
	Err     TableError
}

func ensureStateTables(ctx context.Context, db *sqldb.DB) error {
	for _, t := range []sqldb.Table{tableStateDef, exceptionsDef} {
		if err := db.EnsureTable(ctx, t); err != nil {
			return fmt.Errorf("replicate: %s: %w", t.Name, err)
		}
	}
	return nil
}

// LoadTableStates reads a stream's per-table states from its target.
func LoadTableStates(ctx context.Context, db *sqldb.DB, stream string) (map[string]TableState, error) {
	d := db.Dialect
	cols := []string{"table_name", "state", "last_key", "error", "error_key", "error_op", "error_position", "updated_at"}
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = d.Quote(c)
	}
	rows, err := db.QueryContext(ctx, "SELECT "+strings.Join(q, ", ")+" FROM "+d.Quote(TableStateTable)+
		" WHERE "+d.Quote("stream")+" = "+d.Placeholder(1), stream)
	if err != nil {
		return nil, fmt.Errorf("replicate: load table states of %s: %w", stream, err)
	}
	defer rows.Close()
	out := map[string]TableState{}
	for rows.Next() {
		var name, state string
		var lastKey, msg, key, op, pos sql.NullString
		var at any
		if err := rows.Scan(&name, &state, &lastKey, &msg, &key, &op, &pos, &at); err != nil {
			return nil, fmt.Errorf("replicate: load table states of %s: %w", stream, err)
		}
		ts := TableState{State: state}
		if lastKey.Valid && lastKey.String != "" {
			if err := json.Unmarshal([]byte(lastKey.String), &ts.LastKey); err != nil {
				return nil, fmt.Errorf("replicate: load table states of %s: %s: %w", stream, name, err)
			}
		}
		if state == tableStopped {
			ts.Err = TableError{Table: name, Key: key.String, Op: op.String, Error: msg.String, Position: Position(pos.String)}
			if t, err := sqldb.Normalize(sqldb.Type{Kind: sqldb.KindTimestamp}, at); err == nil && t != nil {
				ts.Err.At = t.(time.Time)
			}
		}
		out[name] = ts
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replicate: load table states of %s: %w", stream, err)
	}
	return out, nil
}

// saveTableState writes one table's state in tx.
func saveTableState(ctx context.Context, tx sqldb.Querier, d sqldb.Dialect, stream, table string, ts TableState) error {
	var lastKey, msg, key, op, pos any
	if len(ts.LastKey) > 0 {
		b, err := json.Marshal(ts.LastKey)
		if err != nil {
			return fmt.Errorf("replicate: save table state %s: %w", table, err)
		}
		lastKey = string(b)
	}
	at := time.Now().UTC()
	if ts.State == tableStopped {
		msg, key, op, pos = ts.Err.Error, ts.Err.Key, ts.Err.Op, string(ts.Err.Position)
		if !ts.Err.At.IsZero() {
			at = ts.Err.At.UTC()
		}
	}
	vals := []any{stream, table, ts.State, lastKey, msg, key, op, pos, at}
	return upsertRow(ctx, tx, d, tableStateDef, vals)
}

// resetTableStates forgets a stream's per-table states (a new full load).
func resetTableStates(ctx context.Context, tx sqldb.Querier, d sqldb.Dialect, stream string) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM "+d.Quote(TableStateTable)+" WHERE "+d.Quote("stream")+" = "+d.Placeholder(1), stream)
	if err != nil {
		return fmt.Errorf("replicate: reset table states of %s: %w", stream, err)
	}
	return nil
}

// upsertRow writes one row of an internal table.
func upsertRow(ctx context.Context, tx sqldb.Querier, d sqldb.Dialect, t sqldb.Table, vals []any) error {
	for i, c := range t.Columns {
		if vals[i] == nil {
			continue
		}
		v, err := d.Value(c.Type, vals[i])
		if err != nil {
			return fmt.Errorf("replicate: %s.%s: %w", t.Name, c.Name, err)
		}
		vals[i] = v
	}
	if _, err := tx.ExecContext(ctx, d.Upsert(t, 1), vals...); err != nil {
		return fmt.Errorf("replicate: write %s: %w", t.Name, err)
	}
	return nil
}

// policy returns the error policy of a source table.
func (c Config) policy(table string) ErrorPolicy {
	names := make([]string, 0, len(c.TableOnError))
	for p := range c.TableOnError {
		names = append(names, p)
	}
	slices.Sort(names) // a plain name before the patterns it could match
	for _, p := range names {
		if p == table {
			return c.TableOnError[p]
		}
	}
	for _, p := range names {
		if ok, _ := path.Match(p, table); ok {
			return c.TableOnError[p]
		}
	}
	if c.OnError == "" {
		return OnErrorStop
	}
	return c.OnError
}

// keyText renders a change's key for operators: each value's canonical
// text, joined by ", ".
func keyText(tp *tablePair, key []any) string {
	if tp != nil {
		if s, err := encodeKey(tp.src, key); err == nil {
			return strings.Join(s, ", ")
		}
	}
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}

// rowJSON renders a row image for the exceptions table.
func rowJSON(row map[string]any) any {
	if row == nil {
		return nil
	}
	m := make(map[string]any, len(row))
	for k, v := range row {
		switch x := v.(type) {
		case []byte:
			m[k] = "\\x" + hex.EncodeToString(x)
		case time.Time:
			m[k] = x.UTC().Format(time.RFC3339Nano)
		default:
			m[k] = x
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprint(row)
	}
	return string(b)
}

// rejected reports whether err is the target refusing a change (or a value
// that cannot be converted for it), rather than a database that could not
// be reached or was busy, or the stream stopping.
func rejected(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && !retry.Transient(err) && !isPermanent(err)
}

// commit applies changes in one target transaction, with save (the
// checkpoint or the table's progress) in the same transaction. A
// transaction the target rejects is retried with backoff; still rejected,
// it is applied change by change (isolate). It returns the rows written.
func (a *applier) commit(ctx context.Context, w *writer, changes []Change, pos Position, save func(tx *sql.Tx) error) (int, error) {
	s := a.s
	policy := retry.Policy{Base: s.cfg.RejectBackoff, Max: maxBackoff}
	for attempt := 1; ; attempt++ {
		var written int
		// The changes are converted before the transaction begins: a
		// target that takes one writer at a time (SQLite) is held only
		// while they are written.
		steps, err := w.plan(changes)
		if err == nil {
			err = a.txOn(ctx, w, func(tx *sql.Tx) error {
				var err error
				if written, err = w.write(ctx, tx, steps); err != nil {
					return err
				}
				if s.cfg.Fence != nil {
					if err := s.cfg.Fence(ctx, tx); err != nil {
						return err
					}
				}
				if save != nil {
					return save(tx)
				}
				return nil
			})
		}
		if err == nil {
			s.committed(w.skipped, w.newest)
		}
		if err == nil || !rejected(ctx, err) {
			return written, err
		}
		if err := s.cfg.Target.PingContext(ctx); err != nil {
			return 0, fmt.Errorf("replicate: target unreachable: %w", err)
		}
		if attempt > s.cfg.RejectRetries {
			s.log.Warn("target rejects a transaction; applying its changes one by one", "changes", len(changes), "err", err)
			return a.isolate(ctx, w, changes, pos, save)
		}
		s.noteError(err)
		s.log.Warn("target rejected a transaction; retrying", "attempt", attempt, "err", err)
		if err := policy.Sleep(ctx, attempt); err != nil {
			return 0, err
		}
	}
}

// isolate applies changes one by one in one transaction, each behind a
// savepoint; a change the target still rejects is handled by its table's
// policy.
func (a *applier) isolate(ctx context.Context, w *writer, changes []Change, pos Position, save func(tx *sql.Tx) error) (int, error) {
	s := a.s
	d := s.cfg.Target.Dialect
	var written int
	var stops []TableError
	var conflicts int
	var newest time.Time
	skips := 0
	err := a.txOn(ctx, w, func(tx *sql.Tx) error {
		written, stops, skips, conflicts, newest = 0, nil, 0, 0, time.Time{}
		stopped := map[string]bool{}
		if d.Name() == "postgres" {
			// Deferred foreign keys (schema: full) are checked per change
			// here, so a violation is one change's.
			if _, err := tx.ExecContext(ctx, "SET CONSTRAINTS ALL IMMEDIATE"); err != nil {
				return fmt.Errorf("replicate: set constraints immediate: %w", err)
			}
		}
		for i, c := range changes {
			if stopped[c.Table] {
				continue
			}
			if _, err := tx.ExecContext(ctx, savepoint(d, "set")); err != nil {
				return fmt.Errorf("replicate: savepoint: %w", err)
			}
			n, err := w.apply(ctx, tx, changes[i:i+1])
			if err == nil {
				if q := savepoint(d, "release"); q != "" {
					if _, err := tx.ExecContext(ctx, q); err != nil {
						return fmt.Errorf("replicate: release savepoint: %w", err)
					}
				}
				written += n
				conflicts += w.skipped
				if w.newest.After(newest) {
					newest = w.newest
				}
				continue
			}
			if !rejected(ctx, err) {
				return err
			}
			if _, rerr := tx.ExecContext(ctx, savepoint(d, "rollback")); rerr != nil {
				return fmt.Errorf("replicate: rollback to savepoint: %w (after %w)", rerr, err)
			}
			if q := savepoint(d, "release"); q != "" {
				if _, rerr := tx.ExecContext(ctx, q); rerr != nil {
					return fmt.Errorf("replicate: release savepoint: %w", rerr)
				}
			}
			te := TableError{Table: c.Table, Key: keyText(w.tables[c.Table], c.Key), Op: c.Op.String(), Error: err.Error(), Position: pos, At: time.Now().UTC()}
			if s.cfg.policy(c.Table) == OnErrorSkip {
				sum := sha256.Sum256([]byte(c.Table + "\x00" + string(pos) + "\x00" + strconv.Itoa(i) + "\x00" + te.Key))
				vals := []any{s.cfg.Name, hex.EncodeToString(sum[:16]), c.Table, te.Op, te.Key, te.Error, string(pos), rowJSON(c.Row), te.At}
				if err := upsertRow(ctx, tx, d, exceptionsDef, vals); err != nil {
					return err
				}
				skips++
				s.log.Error("change rejected by the target; skipped into "+ExceptionsTable,
					"table", c.Table, "key", te.Key, "op", te.Op, "position", string(pos), "err", te.Error)
				continue
			}
			stopped[c.Table] = true
			if err := saveTableState(ctx, tx, d, s.cfg.Name, c.Table, TableState{State: tableStopped, Err: te}); err != nil {
				return err
			}
			stops = append(stops, te)
		}
		if save != nil {
			return save(tx)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.status.ApplyExceptions += int64(skips)
	s.mu.Unlock()
	s.committed(conflicts, newest)
	for _, te := range stops {
		s.stopTable(te)
	}
	return written, nil
}

// committed counts the conflicts of a committed target transaction and
// tells Config.Observe the newest version it carried.
func (s *Stream) committed(conflicts int, newest time.Time) {
	if conflicts > 0 {
		s.mu.Lock()
		s.status.Conflicts += int64(conflicts)
		s.mu.Unlock()
	}
	if s.cfg.Observe != nil && !newest.IsZero() {
		s.cfg.Observe(newest)
	}
}

// savepoint returns the statement that sets, releases or rolls back to the
// stream's savepoint in dialect d ("" when there is none to run).
func savepoint(d sqldb.Dialect, op string) string {
	if d.Name() == "sqlserver" {
		switch op {
		case "set":
			return "SAVE TRANSACTION ic_change"
		case "rollback":
			return "ROLLBACK TRANSACTION ic_change"
		}
		return ""
	}
	switch op {
	case "set":
		return "SAVEPOINT ic_change"
	case "release":
		return "RELEASE SAVEPOINT ic_change"
	}
	return "ROLLBACK TO SAVEPOINT ic_change"
}

// stopTable leaves a table out from now on and says so everywhere.
func (s *Stream) stopTable(te TableError) {
	if te.At.IsZero() {
		te.At = time.Now().UTC()
	}
	s.mu.Lock()
	if s.stopped == nil {
		s.stopped = map[string]TableError{}
	}
	s.stopped[te.Table] = te
	s.status.StoppedTables = s.stoppedListLocked()
	s.mu.Unlock()
	why := "the target rejected a change"
	if te.Op == "schema" {
		why = "a schema change the target cannot follow"
	}
	s.log.Error("replication of table stopped: "+why,
		"table", te.Table, "key", te.Key, "op", te.Op, "position", string(te.Position), "err", te.Error)
}

// isStopped reports whether a table is stopped.
func (s *Stream) isStopped(table string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.stopped[table]
	return ok
}

func (s *Stream) stoppedListLocked() []TableError {
	out := make([]TableError, 0, len(s.stopped))
	for _, te := range s.stopped {
		out = append(out, te)
	}
	slices.SortFunc(out, func(a, b TableError) int { return strings.Compare(a.Table, b.Table) })
	return out
}

// noteError records a failure that is being retried.
func (s *Stream) noteError(err error) {
	s.mu.Lock()
	s.status.LastError = err.Error()
	s.status.LastErrorAt = time.Now()
	s.mu.Unlock()
}

// withoutStopped drops the changes of stopped tables, except renames (a
// stopped table stays stopped under its new name).
func (s *Stream) withoutStopped(changes []Change) []Change {
	s.mu.Lock()
	n := len(s.stopped)
	s.mu.Unlock()
	if n == 0 {
		return changes
	}
	out := make([]Change, 0, len(changes))
	for _, c := range changes {
		if c.NewTable != "" || !s.isStopped(c.Table) {
			out = append(out, c)
		}
	}
	return out
}
