package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/intercloud/intercloud/sqldb"
)

var (
	_ sqldb.Copier      = Dialect{}
	_ sqldb.NewerCopier = Dialect{}
)

// CopyUpsert implements sqldb.Copier with COPY, inside the transaction open
// on conn. It first copies the rows straight into t (the fast path when
// every key is new, as for inserts); when a key exists already, that copy
// is undone (a savepoint) and the rows are copied into a temporary staging
// table, then moved into t with one INSERT ... SELECT ... ON CONFLICT DO
// UPDATE. The staging table, one per table shape and session, is created
// with CREATE TEMP TABLE ... (LIKE t) and emptied by the statement that
// reads it.
func (d Dialect) CopyUpsert(ctx context.Context, conn *sql.Conn, t sqldb.Table, rows [][]any) error {
	_, err := d.copyUpsertOn(ctx, conn, t, rows, nil)
	return err
}

// CopyUpsertNewer implements sqldb.NewerCopier as CopyUpsert does, the
// staging table's rows overwriting only older rows (the condition of
// UpsertNewer). When every key is new, every row is written.
func (d Dialect) CopyUpsertNewer(ctx context.Context, conn *sql.Conn, t sqldb.Table, rows [][]any, version []string) (int64, error) {
	if len(version) == 0 {
		return 0, fmt.Errorf("postgres: copy upsert into %s: no version columns", t.Name)
	}
	return d.copyUpsertOn(ctx, conn, t, rows, version)
}

// copyUpsertOn is CopyUpsert, or CopyUpsertNewer when version is set, on
// conn's pgx connection; it returns the rows written.
func (d Dialect) copyUpsertOn(ctx context.Context, conn *sql.Conn, t sqldb.Table, rows [][]any, version []string) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	if len(t.PrimaryKey) == 0 {
		return 0, fmt.Errorf("postgres: copy upsert into %s: no primary key", t.Name)
	}
	var written int64
	err := conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres: copy upsert into %s: connection is a %T, not pgx", t.Name, dc)
		}
		c := sc.Conn()
		if st := c.PgConn().TxStatus(); st != 'T' {
			return fmt.Errorf("postgres: copy upsert into %s: no open transaction on the connection (status %q)", t.Name, st)
		}
		var err error
		written, err = d.copyUpsert(ctx, c, t, rows, version)
		return err
	})
	return written, err
}

func (d Dialect) copyUpsert(ctx context.Context, c *pgx.Conn, t sqldb.Table, rows [][]any, version []string) (int64, error) {
	const sp = "_ic_copy"
	if _, err := c.Exec(ctx, "SAVEPOINT "+sp); err != nil {
		return 0, fmt.Errorf("postgres: copy into %s: %w", t.Name, err)
	}
	n, err := copyRows(ctx, c, t.Name, t, rows)
	if err == nil {
		if n != int64(len(rows)) {
			return 0, fmt.Errorf("postgres: copy into %s: %d of %d rows copied", t.Name, n, len(rows))
		}
		if _, err := c.Exec(ctx, "RELEASE SAVEPOINT "+sp); err != nil {
			return 0, fmt.Errorf("postgres: copy into %s: %w", t.Name, err)
		}
		return n, nil
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		return 0, fmt.Errorf("postgres: copy into %s: %w", t.Name, err)
	}
	// A key exists (or another unique constraint objects, which the upsert
	// then reports): undo the copy and upsert through the staging table.
	if _, err := c.Exec(ctx, "ROLLBACK TO SAVEPOINT "+sp); err != nil {
		return 0, fmt.Errorf("postgres: copy into %s: %w", t.Name, err)
	}
	if _, err := c.Exec(ctx, "RELEASE SAVEPOINT "+sp); err != nil {
		return 0, fmt.Errorf("postgres: copy into %s: %w", t.Name, err)
	}
	stage := stageName(t)
	if _, err := c.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s) ON COMMIT DELETE ROWS", d.Quote(stage), d.Quote(t.Name))); err != nil {
		return 0, fmt.Errorf("postgres: staging table for %s: %w", t.Name, err)
	}
	if n, err := copyRows(ctx, c, stage, t, rows); err != nil {
		return 0, fmt.Errorf("postgres: copy into staging table for %s: %w", t.Name, err)
	} else if n != int64(len(rows)) {
		return 0, fmt.Errorf("postgres: copy into staging table for %s: %d of %d rows copied", t.Name, n, len(rows))
	}
	tag, err := c.Exec(ctx, d.upsertFromStage(t, stage, version))
	if err != nil {
		return 0, fmt.Errorf("postgres: upsert %d rows into %s: %w", len(rows), t.Name, err)
	}
	return tag.RowsAffected(), nil
}

// upsertFromStage moves the staging table's rows into t, emptying it; with
// version, a row overwrites only an older one (UpsertNewer's condition).
func (d Dialect) upsertFromStage(t sqldb.Table, stage string, version []string) string {
	list := sqldb.QuoteList(d, t.ColumnNames())
	var set []string
	for _, c := range t.Columns {
		if !t.IsPrimaryKey(c.Name) {
			q := d.Quote(c.Name)
			set = append(set, q+" = EXCLUDED."+q)
		}
	}
	conflict := "DO NOTHING"
	if len(set) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(set, ", ")
		if len(version) > 0 {
			conflict += " WHERE " + sqldb.NewerCondition(version,
				func(c string) string { return "EXCLUDED." + d.Quote(c) },
				func(c string) string { return d.Quote(t.Name) + "." + d.Quote(c) })
		}
	}
	return fmt.Sprintf("WITH s AS (DELETE FROM %s RETURNING %s) INSERT INTO %s (%s) SELECT %s FROM s ON CONFLICT (%s) %s",
		d.Quote(stage), list, d.Quote(t.Name), list, list, sqldb.QuoteList(d, t.PrimaryKey), conflict)
}

// stageName names the staging table of a table shape: a schema change
// gives a new one.
func stageName(t sqldb.Table) string {
	h := sha256.New()
	h.Write([]byte(t.Name))
	for _, c := range t.Columns {
		fmt.Fprintf(h, "\x00%s\x00%+v\x00%v", c.Name, c.Type, c.Nullable)
	}
	return "_ic_stage_" + hex.EncodeToString(h.Sum(nil)[:12])
}

// copyRows copies rows (with t's columns) into table: in COPY's text
// format, which the server parses with the columns' own input functions,
// or, when a value has a Go type the text encoder does not know, through
// pgx's binary COPY.
func copyRows(ctx context.Context, c *pgx.Conn, table string, t sqldb.Table, rows [][]any) (int64, error) {
	buf := make([]byte, 0, 64*len(rows)*len(t.Columns))
	var ok bool
	for _, r := range rows {
		if len(r) != len(t.Columns) {
			return 0, fmt.Errorf("row has %d values for %d columns", len(r), len(t.Columns))
		}
		for i, v := range r {
			if i > 0 {
				buf = append(buf, '\t')
			}
			if buf, ok = appendCopyText(buf, t.Columns[i].Type, v); !ok {
				return c.CopyFrom(ctx, pgx.Identifier{table}, t.ColumnNames(), pgx.CopyFromRows(rows))
			}
		}
		buf = append(buf, '\n')
	}
	q := "COPY " + Dialect{}.Quote(table) + " (" + sqldb.QuoteList(Dialect{}, t.ColumnNames()) + ") FROM STDIN"
	tag, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(buf), q)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// appendCopyText appends v in COPY's text format for a column of type t;
// it reports false for a value it cannot write exactly.
func appendCopyText(b []byte, t sqldb.Type, v any) ([]byte, bool) {
	k := t.Kind
	switch x := v.(type) {
	case nil:
		return append(b, `\N`...), true
	case string:
		if k == sqldb.KindBytes && !t.Spatial { // a PostGIS geometry's hex text goes as it is
			return b, false
		}
		return appendCopyEscaped(b, x), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case int32:
		return strconv.AppendInt(b, int64(x), 10), true
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case uint64:
		return strconv.AppendUint(b, x, 10), true
	case bool:
		if x {
			return append(b, 't'), true
		}
		return append(b, 'f'), true
	case float64:
		switch {
		case math.IsNaN(x):
			return append(b, "NaN"...), true
		case math.IsInf(x, 1):
			return append(b, "Infinity"...), true
		case math.IsInf(x, -1):
			return append(b, "-Infinity"...), true
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64), true
	case []byte:
		if k != sqldb.KindBytes {
			return b, false
		}
		b = append(b, `\\x`...)
		return hex.AppendEncode(b, x), true
	case time.Time:
		if y := x.Year(); y < 1 || y > 9999 {
			return b, false
		}
		switch k {
		case sqldb.KindTimestamp:
			return x.AppendFormat(b, "2006-01-02 15:04:05.999999-07:00"), true
		case sqldb.KindDate:
			return x.AppendFormat(b, "2006-01-02"), true
		}
	}
	return b, false
}

// appendCopyEscaped appends s with COPY text format's escapes.
func appendCopyEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc byte
		switch s[i] {
		case '\\':
			esc = '\\'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		case '\t':
			esc = 't'
		default:
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, '\\', esc)
		start = i + 1
	}
	return append(b, s[start:]...)
}
