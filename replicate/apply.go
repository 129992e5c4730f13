package replicate

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// tablePair is one replicated table's schema on both sides.
type tablePair struct {
	src sqldb.Table // source schema: how to read and normalize values
	dst sqldb.Table // target schema: how to write them
	// upserts holds the texts of the multi-row upserts of power-of-two
	// sizes written so far, by upsertKey (see upsertText).
	upserts sync.Map
}

// upsertKey names one multi-row upsert text of a table.
type upsertKey struct {
	rows  int
	newer bool // NewerUpserter's UpsertNewer rather than Upsert
}

// upsertText returns the text of an upsert of rows rows, built by make;
// the texts of power-of-two sizes, those sqldb.StatementRows gives a
// statement-caching dialect, are built once per table.
func (tp *tablePair) upsertText(rows int, newer bool, make func() string) string {
	if rows&(rows-1) != 0 {
		return make()
	}
	k := upsertKey{rows: rows, newer: newer}
	if q, ok := tp.upserts.Load(k); ok {
		return q.(string)
	}
	q := make()
	tp.upserts.Store(k, q)
	return q
}

// describePair reads a table's source schema, checks its primary key, and
// creates the table on the target from it when missing.
func describePair(ctx context.Context, src, dst *sqldb.DB, name string, create bool) (*tablePair, error) {
	st, err := src.Dialect.Describe(ctx, src, name)
	if err != nil {
		if errors.Is(err, sqldb.ErrNoTable) {
			return nil, permanent(fmt.Errorf("replicate: source table %q does not exist", name))
		}
		return nil, fmt.Errorf("replicate: describe source %s: %w", name, err)
	}
	if len(st.PrimaryKey) == 0 {
		return nil, permanent(fmt.Errorf("replicate: table %q %w", name, ErrNoPrimaryKey))
	}
	if err := checkTypes(st, st.Columns, dst.Dialect); err != nil {
		return nil, err
	}
	dt, err := dst.Dialect.Describe(ctx, dst, name)
	if errors.Is(err, sqldb.ErrNoTable) && create {
		if err := dst.EnsureTable(ctx, st); err != nil {
			return nil, fmt.Errorf("replicate: create target %s: %w", name, err)
		}
		dt, err = dst.Dialect.Describe(ctx, dst, name)
	}
	if err != nil {
		return nil, fmt.Errorf("replicate: describe target %s: %w", name, err)
	}
	if len(dt.PrimaryKey) == 0 {
		return nil, permanent(fmt.Errorf("replicate: target table %q %w", name, ErrNoPrimaryKey))
	}
	if strings.Join(dt.PrimaryKey, "\x00") != strings.Join(st.PrimaryKey, "\x00") {
		return nil, permanent(fmt.Errorf("replicate: table %q: target primary key (%s) differs from source (%s)",
			name, strings.Join(dt.PrimaryKey, ", "), strings.Join(st.PrimaryKey, ", ")))
	}
	if added, err := addMissingColumns(ctx, dst, st, dt); err != nil {
		return nil, err
	} else if added {
		if dt, err = dst.Dialect.Describe(ctx, dst, name); err != nil {
			return nil, fmt.Errorf("replicate: describe target %s: %w", name, err)
		}
	}
	for _, c := range st.Columns {
		if _, ok := dt.Column(c.Name); !ok {
			return nil, permanent(fmt.Errorf("replicate: table %q: target has no column %q", name, c.Name))
		}
	}
	return &tablePair{src: st, dst: dt}, nil
}

// checkTypes refuses columns of t whose type has no portable counterpart
// or that the target dialect cannot hold, naming table, column and type,
// rather than replicating them as something else.
func checkTypes(t sqldb.Table, cols []sqldb.Column, target sqldb.Dialect) error {
	for _, c := range cols {
		switch {
		case c.Type.Kind == 0:
			return permanent(fmt.Errorf("replicate: table %q column %q: type %s has no portable counterpart; exclude the column or override its type in the mapping", t.Name, c.Name, c.Type))
		case target.ColumnType(c.Type) == "":
			return permanent(fmt.Errorf("replicate: table %q column %q: a %s target cannot hold type %s; exclude the column or override its type in the mapping", t.Name, c.Name, target.Name(), c.Type))
		}
	}
	return nil
}

// writer applies row images and deletes to a target inside a transaction.
type writer struct {
	d      sqldb.Dialect
	tables map[string]*tablePair
	// version are the columns by which a row replaces the target's only
	// when newer (Config.Version); skipped counts the rows of the last
	// apply that were not newer than the target's.
	version []string
	skipped int
	// newest is the greatest timestamp in the first version column of the
	// rows of the last apply (zero when none).
	newest time.Time
	// conn is the connection the current transaction runs on, when it was
	// begun on one (applier.tx with a sqldb.Copier target); nil otherwise.
	conn *sql.Conn
}

// minCopyRows is the fewest rows of a group written with the dialect's
// Copier: below it, one multi-row statement costs fewer round trips.
const minCopyRows = 64

// convPlan is what converting a table's rows and keys needs, looked up
// once per group of changes instead of once per value.
type convPlan struct {
	row  []sqldb.Type // per target column: the type its source values have
	key  []sqldb.Type // per primary-key column: its source type
	dkey []sqldb.Type // per primary-key column: its target type
	ver  int          // target column of the first version column; -1: none
	// last holds, per target column of a kind that is parsed (times,
	// dates), the last text converted and its bind value: rows written
	// together often share one (the ingest time of a request's records).
	last []lastValue
	// slab is where targetRow takes its rows from.
	slab []any
}

// lastValue is a column's last converted text.
type lastValue struct {
	in  string
	out any
	ok  bool
}

// newConvPlan returns the plan of a group of rows changes of tp.
func (w *writer) newConvPlan(tp *tablePair, rows int) *convPlan {
	p := &convPlan{row: make([]sqldb.Type, len(tp.dst.Columns)), key: make([]sqldb.Type, len(tp.src.PrimaryKey)), ver: -1,
		last: make([]lastValue, len(tp.dst.Columns)), slab: make([]any, rows*len(tp.dst.Columns))}
	if w.versioned(tp) {
		p.ver = slices.Index(tp.dst.ColumnNames(), w.version[0])
	}
	for i, c := range tp.dst.Columns {
		p.row[i] = c.Type
		if sc, ok := tp.src.Column(c.Name); ok {
			p.row[i] = sc.Type
		}
	}
	p.dkey = make([]sqldb.Type, len(tp.dst.PrimaryKey))
	for i, k := range tp.src.PrimaryKey {
		c, _ := tp.src.Column(k)
		p.key[i] = c.Type
	}
	for i, k := range tp.dst.PrimaryKey {
		c, _ := tp.dst.Column(k)
		p.dkey[i] = c.Type
	}
	return p
}

// targetRow converts a source row image to the target's bind values, in the
// target's column order.
func (w *writer) targetRow(tp *tablePair, p *convPlan, row map[string]any) ([]any, error) {
	cols := len(tp.dst.Columns)
	if len(p.slab) < cols {
		p.slab = make([]any, 64*cols)
	}
	out := p.slab[:cols:cols]
	p.slab = p.slab[cols:]
	for i, c := range tp.dst.Columns {
		v, ok := row[c.Name]
		if v = zeroDate(c, v); !ok || v == nil {
			continue
		}
		text, isText := v.(string)
		if isText && p.last[i].ok && p.last[i].in == text {
			out[i] = p.last[i].out // converted before, newest included
			continue
		}
		n, err := sqldb.Normalize(p.row[i], v)
		if errors.Is(err, sqldb.ErrZeroDate) {
			return nil, fmt.Errorf("replicate: %s.%s is NOT NULL: %w", tp.dst.Name, c.Name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("replicate: %s.%s: %w", tp.dst.Name, c.Name, err)
		}
		if i == p.ver {
			if ts, ok := n.(time.Time); ok && ts.After(w.newest) {
				w.newest = ts
			}
		}
		x, err := w.d.Value(c.Type, n)
		if err != nil {
			return nil, fmt.Errorf("replicate: %s.%s: %w", tp.dst.Name, c.Name, err)
		}
		out[i] = x
		if k := p.row[i].Kind; isText && (k == sqldb.KindTimestamp || k == sqldb.KindDate) {
			p.last[i] = lastValue{in: text, out: x, ok: true}
		}
	}
	return out, nil
}

// targetKey converts a source key to the target's bind values.
func (w *writer) targetKey(tp *tablePair, p *convPlan, key []any) ([]any, error) {
	if len(key) != len(tp.src.PrimaryKey) {
		return nil, fmt.Errorf("replicate: %s: key has %d values, primary key %d columns", tp.src.Name, len(key), len(tp.src.PrimaryKey))
	}
	out := make([]any, len(key))
	for i, v := range key {
		n, err := sqldb.Normalize(p.key[i], v)
		if err != nil {
			return nil, fmt.Errorf("replicate: %s: key column %s: %w", tp.src.Name, tp.src.PrimaryKey[i], err)
		}
		// As dialectKey converts a key.
		if out[i], err = w.d.Value(p.dkey[i], n); err != nil {
			return nil, fmt.Errorf("replicate: %s: key column %s: %w", tp.dst.Name, tp.dst.PrimaryKey[i], err)
		}
	}
	return out, nil
}

// upsert writes rows (already converted by targetRow) with multi-row
// statements, or, for a dialect that is a sqldb.Copier and a transaction
// begun on w.conn, with its CopyUpsert. Rows must have distinct keys.
func (w *writer) upsert(ctx context.Context, tx *sql.Tx, tp *tablePair, rows [][]any) error {
	if nu, ok := w.d.(sqldb.NewerUpserter); ok && w.versioned(tp) {
		return w.upsertNewer(ctx, tx, tp, nu, rows)
	}
	if cp, ok := w.d.(sqldb.Copier); ok && w.conn != nil && len(rows) >= minCopyRows {
		return cp.CopyUpsert(ctx, w.conn, tp.dst, rows)
	}
	per := min(maxRows, max(1, maxParams(w.d)/len(tp.dst.Columns)))
	for len(rows) > 0 {
		n := sqldb.StatementRows(w.d, len(rows), per)
		vals := make([]any, 0, n*len(tp.dst.Columns))
		for _, r := range rows[:n] {
			vals = append(vals, r...)
		}
		q := tp.upsertText(n, false, func() string { return w.d.Upsert(tp.dst, n) })
		if _, err := tx.ExecContext(ctx, q, vals...); err != nil {
			return fmt.Errorf("replicate: upsert %d rows into %s: %w", n, tp.dst.Name, err)
		}
		rows = rows[n:]
	}
	return nil
}

// versioned reports whether the target table has every version column
// outside its primary key.
func (w *writer) versioned(tp *tablePair) bool {
	if len(w.version) == 0 {
		return false
	}
	for _, v := range w.version {
		if _, ok := tp.dst.Column(v); !ok || tp.dst.IsPrimaryKey(v) {
			return false
		}
	}
	return true
}

// upsertNewer writes rows that are newer than the target's (or new), and
// counts in w.skipped the rows that were not: the target already held the
// same or a greater version of the row. Like upsert, it copies many rows
// with the dialect's sqldb.NewerCopier when it has one.
func (w *writer) upsertNewer(ctx context.Context, tx *sql.Tx, tp *tablePair, nu sqldb.NewerUpserter, rows [][]any) error {
	if cp, ok := w.d.(sqldb.NewerCopier); ok && w.conn != nil && len(rows) >= minCopyRows {
		n, err := cp.CopyUpsertNewer(ctx, w.conn, tp.dst, rows, w.version)
		if err != nil {
			return err
		}
		w.skipped += max(0, len(rows)-int(n))
		return nil
	}
	per := min(maxRows, max(1, maxParams(w.d)/len(tp.dst.Columns)))
	// MySQL counts an overwritten row twice; the rows that existed before
	// tell inserts from overwrites.
	double := w.d.Name() == "mysql" && len(tp.dst.PrimaryKey) == 1
	for len(rows) > 0 {
		n := sqldb.StatementRows(w.d, len(rows), per)
		vals := make([]any, 0, n*len(tp.dst.Columns))
		for _, r := range rows[:n] {
			vals = append(vals, r...)
		}
		existing := 0
		if double {
			var err error
			if existing, err = w.countExisting(ctx, tx, tp, rows[:n]); err != nil {
				return err
			}
		}
		q := tp.upsertText(n, true, func() string { return nu.UpsertNewer(tp.dst, n, w.version) })
		res, err := tx.ExecContext(ctx, q, vals...)
		if err != nil {
			return fmt.Errorf("replicate: upsert %d rows into %s: %w", n, tp.dst.Name, err)
		}
		if affected, err := res.RowsAffected(); err == nil {
			a := int(affected)
			if double {
				inserted := n - existing
				a = inserted + (a-inserted)/2
			}
			w.skipped += max(0, n-a)
		}
		rows = rows[n:]
	}
	return nil
}

// countExisting counts the rows of a single-column key that the target
// holds already.
func (w *writer) countExisting(ctx context.Context, tx *sql.Tx, tp *tablePair, rows [][]any) (int, error) {
	pk := tp.dst.PrimaryKey[0]
	at := slices.Index(tp.dst.ColumnNames(), pk)
	a := &args{d: w.d}
	ph := make([]string, len(rows))
	for i, r := range rows {
		ph[i] = a.add(r[at])
	}
	var n int
	q := "SELECT COUNT(*) FROM " + w.d.Quote(tp.dst.Name) + " WHERE " + w.d.Quote(pk) + " IN (" + strings.Join(ph, ", ") + ")"
	if err := tx.QueryRowContext(ctx, q, a.vals...).Scan(&n); err != nil {
		return 0, fmt.Errorf("replicate: count rows of %s: %w", tp.dst.Name, err)
	}
	return n, nil
}

// delete removes rows by key (already converted by targetKey).
func (w *writer) delete(ctx context.Context, tx *sql.Tx, tp *tablePair, keys [][]any) error {
	pk := tp.dst.PrimaryKey
	per := min(maxRows, max(1, maxParams(w.d)/len(pk)))
	for len(keys) > 0 {
		n := sqldb.StatementRows(w.d, len(keys), per)
		a := &args{d: w.d}
		var where string
		if len(pk) == 1 {
			ph := make([]string, n)
			for i, k := range keys[:n] {
				ph[i] = a.add(k[0])
			}
			where = w.d.Quote(pk[0]) + " IN (" + strings.Join(ph, ", ") + ")"
		} else {
			ors := make([]string, n)
			for i, k := range keys[:n] {
				ors[i] = "(" + keyEquals(a, pk, k) + ")"
			}
			where = strings.Join(ors, " OR ")
		}
		q := "DELETE FROM " + w.d.Quote(tp.dst.Name) + " WHERE " + where
		if _, err := tx.ExecContext(ctx, q, a.vals...); err != nil {
			return fmt.Errorf("replicate: delete %d rows from %s: %w", n, tp.dst.Name, err)
		}
		keys = keys[n:]
	}
	return nil
}

// apply writes changes in order, grouping consecutive changes of one table
// and operation into multi-row statements. It returns the rows written.
func (w *writer) apply(ctx context.Context, tx *sql.Tx, changes []Change) (int, error) {
	steps, err := w.plan(changes)
	if err != nil {
		return 0, err
	}
	return w.write(ctx, tx, steps)
}

// step is one group of apply: consecutive changes of one table and
// operation, converted to the target's bind values, each key once.
type step struct {
	tp   *tablePair
	op   Op
	keys [][]any // the keys, in order of first appearance
	rows [][]any // for an upsert, each key's last image
}

// plan converts changes to the steps write applies, outside any
// transaction: the conversion holds no lock of the target. It sets
// w.newest.
func (w *writer) plan(changes []Change) ([]step, error) {
	w.newest = time.Time{}
	var steps []step
	for i := 0; i < len(changes); {
		c := changes[i]
		tp, ok := w.tables[c.Table]
		if !ok {
			i++ // not a replicated table: the source should not send it
			continue
		}
		j := i + 1
		for j < len(changes) && changes[j].Table == c.Table && changes[j].Op == c.Op {
			j++
		}
		group := changes[i:j]
		i = j
		// One statement must not touch a key twice (Postgres refuses it,
		// and the last image is what counts): keep each key's last change.
		plan := w.newConvPlan(tp, len(group))
		seen := make(map[groupKey]int, len(group))
		st := step{tp: tp, op: c.Op, keys: make([][]any, 0, len(group))}
		if c.Op == OpUpsert {
			st.rows = make([][]any, 0, len(group))
		}
		for _, ch := range group {
			k, err := w.targetKey(tp, plan, ch.Key)
			if err != nil {
				return nil, err
			}
			ks := dedupKey(k)
			var r []any
			if c.Op == OpUpsert {
				if r, err = w.targetRow(tp, plan, ch.Row); err != nil {
					return nil, err
				}
			}
			if at, dup := seen[ks]; dup {
				st.keys[at] = k
				if c.Op == OpUpsert {
					st.rows[at] = r
				}
				continue
			}
			seen[ks] = len(st.keys)
			st.keys = append(st.keys, k)
			if c.Op == OpUpsert {
				st.rows = append(st.rows, r)
			}
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// write applies steps in tx, in order, and returns the rows written; it
// sets w.skipped. It changes no step, so a transaction retried runs it
// again on the same steps.
func (w *writer) write(ctx context.Context, tx *sql.Tx, steps []step) (int, error) {
	written := 0
	w.skipped = 0
	for _, st := range steps {
		var err error
		switch st.op {
		case OpUpsert:
			err = w.upsert(ctx, tx, st.tp, st.rows)
		case OpDelete:
			err = w.delete(ctx, tx, st.tp, st.keys)
		default:
			err = fmt.Errorf("replicate: %s: unknown op %v", st.tp.src.Name, st.op)
		}
		if err != nil {
			return written, err
		}
		written += len(st.keys)
	}
	return written, nil
}

func permanent(err error) error { return Permanent(err) }

func isPermanent(err error) bool {
	return errors.Is(err, ErrPermanent) || errors.Is(err, ErrNoPrimaryKey) || errors.Is(err, ErrNoSourceDriver)
}

// groupKey identifies bound key values within one statement group.
type groupKey struct {
	kind byte // 'i': a single int64 key (n); 't': a single string (s); 'k': any other key (s)
	n    int64
	s    string
}

// dedupKey identifies bound key values within one statement group.
func dedupKey(k []any) groupKey {
	if len(k) == 1 {
		switch x := k[0].(type) {
		case int64:
			return groupKey{kind: 'i', n: x}
		case string:
			return groupKey{kind: 't', s: x}
		}
	}
	return groupKey{kind: 'k', s: keyString(k)}
}

// keyString encodes key values as one string.
func keyString(k []any) string {
	var b strings.Builder
	for _, v := range k {
		switch x := v.(type) {
		case int64:
			b.WriteString("i" + strconv.FormatInt(x, 10))
		case string:
			b.WriteString("s" + strconv.Itoa(len(x)) + ":" + x)
		case []byte:
			b.WriteString("b" + hex.EncodeToString(x))
		default:
			fmt.Fprintf(&b, "%T:%#v", x, x)
		}
		b.WriteByte(0)
	}
	return b.String()
}
