package replicate

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/intercloud/intercloud/sqldb"
)

// args numbers bind parameters for dialects with positional placeholders.
type args struct {
	d    sqldb.Dialect
	vals []any
}

func (a *args) add(v any) string {
	a.vals = append(a.vals, v)
	return a.d.Placeholder(len(a.vals))
}

// keyAfter returns the portable predicate "(pk) > (key)" for a primary key
// of one or more columns: a > ? OR (a = ? AND b > ?) OR ... (row-value
// comparison is not available everywhere). key holds values already
// converted for the dialect.
func keyAfter(a *args, cols []string, key []any) string {
	var ors []string
	for i := range cols {
		var ands []string
		for j := 0; j < i; j++ {
			ands = append(ands, a.d.Quote(cols[j])+" = "+a.add(key[j]))
		}
		ands = append(ands, a.d.Quote(cols[i])+" > "+a.add(key[i]))
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

// keyEquals returns "a = ? AND b = ?".
func keyEquals(a *args, cols []string, key []any) string {
	ands := make([]string, len(cols))
	for i, c := range cols {
		ands[i] = a.d.Quote(c) + " = " + a.add(key[i])
	}
	return strings.Join(ands, " AND ")
}

// dialectKey converts normalized key values for binding in d.
func dialectKey(d sqldb.Dialect, t sqldb.Table, key []any) ([]any, error) {
	out := make([]any, len(key))
	for i, v := range key {
		c, _ := t.Column(t.PrimaryKey[i])
		x, err := d.Value(c.Type, v)
		if err != nil {
			return nil, fmt.Errorf("replicate: %s: key column %s: %w", t.Name, c.Name, err)
		}
		out[i] = x
	}
	return out, nil
}

// rangeQuery builds SELECT cols FROM t WHERE pk > after AND pk <= upTo
// ORDER BY pk with an optional row limit. after and upTo are normalized keys
// (nil = unbounded).
func rangeQuery(d sqldb.Dialect, t sqldb.Table, cols []string, after, upTo []any, limit int) (string, []any, error) {
	a := &args{d: d}
	var where []string
	if after != nil {
		k, err := dialectKey(d, t, after)
		if err != nil {
			return "", nil, err
		}
		where = append(where, keyAfter(a, t.PrimaryKey, k))
	}
	if upTo != nil {
		k, err := dialectKey(d, t, upTo)
		if err != nil {
			return "", nil, err
		}
		where = append(where, "NOT "+keyAfter(a, t.PrimaryKey, k))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %s", sqldb.SelectList(d, t, cols), d.Quote(t.Name))
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY " + sqldb.QuoteList(d, t.PrimaryKey))
	if limit > 0 {
		b.WriteString(sqldb.Limit(d, limit))
	}
	return b.String(), a.vals, nil
}

// maxParams is a safe number of bind parameters for one statement.
func maxParams(d sqldb.Dialect) int {
	switch d.Name() {
	case "sqlserver":
		return 2000
	case "sqlite":
		return 32000
	}
	return 30000
}

// maxRows is the most rows one multi-row statement carries.
const maxRows = 1000

// scannedRow is one row read from a table, values as scanned.
type scannedRow []any

// queryRows runs a query and returns its rows with values as scanned.
func queryRows(ctx context.Context, q sqldb.Querier, query string, args []any, ncols int) ([]scannedRow, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []scannedRow
	for rows.Next() {
		r := make(scannedRow, ncols)
		ptrs := make([]any, ncols)
		for i := range r {
			ptrs[i] = &r[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range r { // drivers may reuse []byte buffers
			if b, ok := v.([]byte); ok {
				r[i] = bytes.Clone(b) // keeps empty apart from NULL
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// readRows is queryRows for rows of table t scanned with cols (names of
// t's columns): values the database stores in a form of its own (see
// sqldb.Reader) are converted to their portable form.
func readRows(ctx context.Context, db *sqldb.DB, t sqldb.Table, cols []string, query string, args []any) ([]scannedRow, error) {
	rows, err := queryRows(ctx, db, query, args, len(cols))
	if err != nil {
		return nil, err
	}
	_, reader := db.Dialect.(sqldb.Reader)
	columns := make([]sqldb.Column, len(cols))
	dates := false
	for i, name := range cols {
		columns[i], _ = t.Column(name)
		dates = dates || isDate(columns[i].Type)
	}
	if !reader && !dates {
		return rows, nil
	}
	for _, r := range rows {
		for i, v := range r {
			if r[i], err = sqldb.Read(db.Dialect, columns[i].Type, v); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", t.Name, cols[i], err)
			}
			r[i] = zeroDate(columns[i], r[i])
		}
	}
	return rows, nil
}

// readSourceRows is readRows for rows of the source that may be copied to
// the target (full load, resync): the rows it returns are durable
// (sqldb.DB.WaitDurable).
func readSourceRows(ctx context.Context, db *sqldb.DB, t sqldb.Table, cols []string, query string, args []any) ([]scannedRow, error) {
	rows, err := readRows(ctx, db, t, cols, query, args)
	if err != nil || len(rows) == 0 {
		return rows, err
	}
	if err := db.WaitDurable(ctx); err != nil {
		return nil, err
	}
	return rows, nil
}

func isDate(t sqldb.Type) bool { return t.Kind == sqldb.KindDate || t.Kind == sqldb.KindTimestamp }

// zeroDate is the zero-date policy, for a value read from (or bound for)
// column c: a MySQL zero date ('0000-00-00', or a date with a zero month
// or day, which the sql_mode may allow) names no day, so it becomes NULL
// where the column allows it. In a NOT NULL column it stays, and
// converting it fails: the change is rejected, naming table, key and
// column, and handled by the table's on_error policy.
func zeroDate(c sqldb.Column, v any) any {
	if c.Nullable && isDate(c.Type) && sqldb.IsZeroDate(v) {
		return nil
	}
	return v
}

// keyOf returns the normalized primary key of a row of t scanned with cols.
func keyOf(t sqldb.Table, cols []string, r scannedRow) ([]any, error) {
	key := make([]any, len(t.PrimaryKey))
	for i, k := range t.PrimaryKey {
		idx := indexOf(cols, k)
		c, _ := t.Column(k)
		v, err := sqldb.Normalize(c.Type, r[idx])
		if err != nil {
			return nil, fmt.Errorf("replicate: %s: key column %s: %w", t.Name, k, err)
		}
		key[i] = v
	}
	return key, nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// countRows returns SELECT COUNT(*).
func countRows(ctx context.Context, q sqldb.Querier, d sqldb.Dialect, table string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+d.Quote(table)).Scan(&n)
	return n, err
}

var _ sqldb.Querier = (*sql.Tx)(nil)
