package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/intercloud/intercloud/internal/redact"
	"github.com/intercloud/intercloud/sqldb"
)

// DefaultMaxRowDiffs is how many differing rows a table's report lists
// when Validate is given no limit.
const DefaultMaxRowDiffs = 20

// maxFixes bounds the differing rows of one table that a report keeps for
// Resync to repair key by key; past it, Resync copies the ranges again.
const maxFixes = 100000

// maxValueText bounds a value's text in a RowDiff.
const maxValueText = 200

// The kinds of RowDiff.
const (
	// RowMissing is a source row the target lacks.
	RowMissing = "missing on target"
	// RowExtra is a target row the source lacks.
	RowExtra = "only on target"
	// RowDiffers is a row both have with different values.
	RowDiffers = "differs"
)

// RowDiff is one row that differs between source and target.
type RowDiff struct {
	// Key is the row's primary key, each value's canonical text.
	Key []string `json:"key"`
	// Kind is RowMissing, RowExtra or RowDiffers.
	Kind string `json:"kind"`
	// Columns are the columns that differ (RowDiffers only).
	Columns []ColumnDiff `json:"columns,omitempty"`
}

// ColumnDiff is one column's values on both sides: the canonical text,
// quoted, or NULL; long values are cut. Values of columns whose name says
// they hold secrets (password, token, ...) are shown as [redacted].
type ColumnDiff struct {
	Column string `json:"column"`
	Source string `json:"source"`
	Target string `json:"target"`
}

// ValidateOptions tune ValidateWith.
type ValidateOptions struct {
	// Chunk is the source rows per checksummed key range (default
	// DefaultValidateChunk).
	Chunk int
	// MaxRows bounds the differing rows listed per table (default
	// DefaultMaxRowDiffs); every differing row is counted.
	MaxRows int
}

func (o ValidateOptions) withDefaults() ValidateOptions {
	if o.Chunk <= 0 {
		o.Chunk = DefaultValidateChunk
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRowDiffs
	}
	return o
}

// diffRows compares the rows of a key range that checksums found
// different, row by row (by canonical key, so the sides' sort orders do not
// matter), and records in tr the differing rows, counted, listed up to
// maxRows, and kept as fixes for Resync.
func diffRows(tr *TableReport, rd *RangeDiff, tp *tablePair, mt *mappedTable, cols []string, srows, trows []scannedRow, maxRows int) error {
	stypes, dtypes := make([]sqldb.Type, len(cols)), make([]sqldb.Type, len(cols))
	for i, c := range cols {
		sc, _ := tp.src.Column(c)
		dc, ok := tp.dst.Column(c)
		if !ok {
			dc = sc
		}
		stypes[i], dtypes[i] = sc.Type, dc.Type
	}
	canon := func(types []sqldb.Type, r scannedRow) ([]string, error) {
		out := make([]string, len(r))
		for i, v := range r {
			if v == nil {
				out[i] = "\x00NULL"
				continue
			}
			out[i] = comparable(types[i], v)
		}
		return out, nil
	}
	type side struct {
		row   scannedRow
		canon []string
		key   []any
	}
	target := make(map[string]side, len(trows))
	var order []string
	for _, r := range trows {
		key, err := keyOf(tp.dst, cols, r)
		if err != nil {
			return err
		}
		ks, err := canonicalKey(tp.dst, key)
		if err != nil {
			return err
		}
		c, err := canon(dtypes, r)
		if err != nil {
			return err
		}
		target[ks] = side{row: r, canon: c, key: key}
		order = append(order, ks)
	}
	keyTexts := func(t sqldb.Table, key []any) []string {
		if s, err := encodeKey(t, key); err == nil {
			return s
		}
		out := make([]string, len(key))
		for i, v := range key {
			out[i] = fmt.Sprint(v)
		}
		return out
	}
	add := func(d RowDiff, fix Change) {
		tr.DifferingRows++
		rd.Differing++
		if len(tr.Rows) < maxRows {
			tr.Rows = append(tr.Rows, d)
		}
		if tr.fixCount < maxFixes {
			rd.fixes = append(rd.fixes, fix)
			tr.keys = append(tr.keys, strings.Join(d.Key, "\x00"))
			tr.fixCount++
		} else {
			tr.fixesCut = true
		}
	}
	seen := make(map[string]bool, len(srows))
	for _, r := range srows {
		key, err := keyOf(tp.src, cols, r)
		if err != nil {
			return err
		}
		ks, err := canonicalKey(tp.src, key)
		if err != nil {
			return err
		}
		seen[ks] = true
		sc, err := canon(stypes, r)
		if err != nil {
			return err
		}
		fix, err := upsertOf(tp, mt, cols, r, key)
		if err != nil {
			return err
		}
		t, ok := target[ks]
		if !ok {
			add(RowDiff{Key: keyTexts(tp.src, key), Kind: RowMissing}, fix)
			continue
		}
		var diffs []ColumnDiff
		for i, c := range cols {
			if sc[i] != t.canon[i] {
				diffs = append(diffs, ColumnDiff{Column: c, Source: shownValue(c, sc[i]), Target: shownValue(c, t.canon[i])})
			}
		}
		if len(diffs) > 0 {
			add(RowDiff{Key: keyTexts(tp.src, key), Kind: RowDiffers, Columns: diffs}, fix)
		}
	}
	for _, ks := range order {
		if seen[ks] {
			continue
		}
		t := target[ks]
		add(RowDiff{Key: keyTexts(tp.dst, t.key), Kind: RowExtra}, Change{Table: tp.src.Name, Op: OpDelete, Key: t.key})
	}
	return nil
}

// upsertOf is the change that writes source row r (read with cols) to the
// target.
func upsertOf(tp *tablePair, mt *mappedTable, cols []string, r scannedRow, key []any) (Change, error) {
	if mt != nil {
		ch, err := mt.rowChanges([]scannedRow{r})
		if err != nil {
			return Change{}, err
		}
		return ch[0], nil
	}
	row := make(map[string]any, len(cols))
	for j, c := range cols {
		row[c] = r[j]
	}
	return Change{Table: tp.src.Name, Op: OpUpsert, Key: key, Row: row}, nil
}

// shownValue renders a canonical value for a report: quoted, NULL, cut
// when long, [redacted] for a secret column.
func shownValue(col, canon string) string {
	if canon == "\x00NULL" {
		return "NULL"
	}
	if strings.HasPrefix(canon, "\x00invalid ") {
		return canon[1:]
	}
	if redact.SecretName(col) {
		return "[redacted]"
	}
	if len(canon) > maxValueText {
		cut := maxValueText
		for cut > 0 && !utf8.RuneStart(canon[cut]) {
			cut--
		}
		return strconv.Quote(canon[:cut]) + fmt.Sprintf("… (%d bytes)", len(canon))
	}
	return strconv.Quote(canon)
}

// String renders a row difference on one line.
func (d RowDiff) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "key (%s): %s", strings.Join(d.Key, ", "), d.Kind)
	for i, c := range d.Columns {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s source %s, target %s", c.Column, c.Source, c.Target)
	}
	return b.String()
}

// resyncKeys writes the fixes of a table's differing rows: the source's
// row for each key it has, a delete for each key only the target has.
func resyncKeys(ctx context.Context, dst *sqldb.DB, w *writer, marker OriginMarker, fixes []Change) error {
	const chunk = 1000
	for len(fixes) > 0 {
		n := min(chunk, len(fixes))
		part := fixes[:n]
		fixes = fixes[n:]
		if err := applyMarked(ctx, dst, w, marker, part); err != nil {
			return err
		}
	}
	return nil
}

// applyMarked applies a resync's changes to dst in one transaction marked
// with the origin "resync" (see marked), so that a reverse stream does not
// carry them back as local writes.
func applyMarked(ctx context.Context, dst *sqldb.DB, w *writer, marker OriginMarker, changes []Change) error {
	return dst.Tx(ctx, func(tx *sql.Tx) error {
		return marked(ctx, tx, marker, "resync", func(tx *sql.Tx) error {
			_, err := w.apply(ctx, tx, changes)
			return err
		})
	})
}
