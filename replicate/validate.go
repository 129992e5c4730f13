package replicate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/intercloud/intercloud/sqldb"
)

// DefaultValidateChunk is the rows per checksummed key range when Validate
// is given no chunk size.
const DefaultValidateChunk = 10000

// Report is the result of Validate.
type Report struct {
	Tables []TableReport `json:"tables"`
}

// TableReport compares one table.
type TableReport struct {
	Table string `json:"table"`
	// Target is the target table's name when a mapping renames it.
	Target     string `json:"target,omitempty"`
	SourceRows int64  `json:"source_rows"`
	TargetRows int64  `json:"target_rows"`
	// CountsDiffer is set when the row counts differ.
	CountsDiffer bool `json:"counts_differ"`
	// Missing is set when the target has no such table.
	Missing bool `json:"missing,omitempty"`
	// Ranges are the key ranges whose rows differ.
	Ranges []RangeDiff `json:"ranges,omitempty"`
	// DifferingRows counts the rows that differ (missing on either side
	// or with different values); Rows lists the first of them.
	DifferingRows int64     `json:"differing_rows"`
	Rows          []RowDiff `json:"rows,omitempty"`

	fixCount int      // fixes kept in Ranges for Resync
	keys     []string // the differing rows' keys (Key joined by NUL), as many as fixes
	fixesCut bool     // more rows differ than fixes were kept
}

// RangeDiff is a primary-key range whose rows differ: keys after From
// (exclusive; nil = from the first key) up to To (inclusive; nil = to the
// end). Keys are normalized values (see Normalize) in primary-key order.
type RangeDiff struct {
	From       []any `json:"from"`
	To         []any `json:"to"`
	SourceRows int   `json:"source_rows"`
	TargetRows int   `json:"target_rows"`
	// Differing counts the range's differing rows.
	Differing int `json:"differing_rows"`

	fixes []Change // what repairs the range's differing rows
}

// OK reports whether the table matches.
func (t TableReport) OK() bool { return !t.CountsDiffer && !t.Missing && len(t.Ranges) == 0 }

// OK reports whether every table matches.
func (r Report) OK() bool {
	for _, t := range r.Tables {
		if !t.OK() {
			return false
		}
	}
	return true
}

// String summarises the report, one line per table.
func (r Report) String() string {
	var b strings.Builder
	for _, t := range r.Tables {
		if t.Target != "" {
			t.Table += " → " + t.Target
		}
		switch {
		case t.Missing:
			fmt.Fprintf(&b, "%s: missing on target (source %d rows)\n", t.Table, t.SourceRows)
		case t.OK():
			fmt.Fprintf(&b, "%s: ok (%d rows)\n", t.Table, t.SourceRows)
		default:
			fmt.Fprintf(&b, "%s: differs: source %d rows, target %d rows", t.Table, t.SourceRows, t.TargetRows)
			if t.CountsDiffer {
				b.WriteString(" (counts differ)")
			}
			b.WriteString("\n")
			for _, d := range t.Ranges {
				fmt.Fprintf(&b, "  keys %s: source %d rows, target %d rows, %d differ\n", d.Describe(), d.SourceRows, d.TargetRows, d.Differing)
			}
			for _, d := range t.Rows {
				fmt.Fprintf(&b, "    %s\n", d)
			}
			if n := t.DifferingRows - int64(len(t.Rows)); n > 0 {
				fmt.Fprintf(&b, "    ... and %d more differing rows\n", n)
			}
		}
	}
	return b.String()
}

// Describe renders the range, e.g. "(10, 20]" or "(-∞, 5]".
func (d RangeDiff) Describe() string {
	key := func(k []any) string {
		parts := make([]string, len(k))
		for i, v := range k {
			switch x := v.(type) {
			case []byte:
				parts[i] = fmt.Sprintf("%x", x)
			case string:
				parts[i] = strconv.Quote(x)
			default:
				parts[i] = fmt.Sprint(x)
			}
		}
		return strings.Join(parts, ", ")
	}
	from, to := "-∞", "+∞"
	if d.From != nil {
		from = key(d.From)
	}
	if d.To != nil {
		to = key(d.To)
	}
	return "(" + from + " .. " + to + "]"
}

// Validate compares tables of src and dst: row counts, and a checksum per
// primary-key range of chunk source rows (in source key order). Checksums
// are computed in Go over every column's canonical value (see Canonical)
// and are independent of row order, so the same logical rows match across
// dialects. A range whose checksums differ is compared row by row: the
// report counts the differing rows and lists the first DefaultMaxRowDiffs
// of them with the columns that differ.
func Validate(ctx context.Context, src, dst *sqldb.DB, tables []string, chunk int) (Report, error) {
	return ValidateWith(ctx, src, dst, tables, ValidateOptions{Chunk: chunk})
}

// ValidateWith is Validate with options.
func ValidateWith(ctx context.Context, src, dst *sqldb.DB, tables []string, opts ValidateOptions) (Report, error) {
	opts = opts.withDefaults()
	var rep Report
	for _, name := range tables {
		tr, err := validateTable(ctx, src, dst, name, opts)
		if err != nil {
			return Report{}, err
		}
		rep.Tables = append(rep.Tables, tr)
	}
	return rep, nil
}

func validateTable(ctx context.Context, src, dst *sqldb.DB, name string, opts ValidateOptions) (TableReport, error) {
	chunk := opts.Chunk
	tr := TableReport{Table: name}
	tp, err := describePair(ctx, src, dst, name, false)
	if errors.Is(err, sqldb.ErrNoTable) {
		n, err := countRows(ctx, src, src.Dialect, name)
		if err != nil {
			return tr, fmt.Errorf("replicate: validate %s: count source: %w", name, err)
		}
		tr.SourceRows, tr.Missing, tr.CountsDiffer = n, true, n != 0
		tr.Ranges = []RangeDiff{{SourceRows: int(n)}}
		return tr, nil
	}
	if err != nil {
		return tr, fmt.Errorf("replicate: validate: %w", err)
	}
	if tr.SourceRows, err = countRows(ctx, src, src.Dialect, name); err != nil {
		return tr, fmt.Errorf("replicate: validate %s: count source: %w", name, err)
	}
	if tr.TargetRows, err = countRows(ctx, dst, dst.Dialect, name); err != nil {
		return tr, fmt.Errorf("replicate: validate %s: count target: %w", name, err)
	}
	tr.CountsDiffer = tr.SourceRows != tr.TargetRows
	cols := tp.src.ColumnNames()
	var from []any
	for {
		q, qargs, err := rangeQuery(src.Dialect, tp.src, cols, from, nil, chunk)
		if err != nil {
			return tr, err
		}
		srows, err := readSourceRows(ctx, src, tp.src, cols, q, qargs)
		if err != nil {
			return tr, fmt.Errorf("replicate: validate %s: read source: %w", name, err)
		}
		var to []any
		if len(srows) == chunk {
			if to, err = keyOf(tp.src, cols, srows[len(srows)-1]); err != nil {
				return tr, err
			}
		}
		ssum, err := checksum(tp.src, cols, srows)
		if err != nil {
			return tr, err
		}
		q, qargs, err = rangeQuery(dst.Dialect, tp.dst, cols, from, to, 0)
		if err != nil {
			return tr, err
		}
		trows, err := readRows(ctx, dst, tp.dst, cols, q, qargs)
		if err != nil {
			return tr, fmt.Errorf("replicate: validate %s: read target: %w", name, err)
		}
		tsum, err := checksum(tp.dst, cols, trows)
		if err != nil {
			return tr, err
		}
		if ssum != tsum || len(srows) != len(trows) {
			rd := RangeDiff{From: from, To: to, SourceRows: len(srows), TargetRows: len(trows)}
			if err := diffRows(&tr, &rd, tp, nil, cols, srows, trows, opts.MaxRows); err != nil {
				return tr, err
			}
			tr.Ranges = append(tr.Ranges, rd)
		}
		if to == nil {
			return tr, nil
		}
		from = to
	}
}

// checksum is an order-independent digest of rows: the lane-wise sum of
// each row's SHA-256 over its canonical values.
func checksum(t sqldb.Table, cols []string, rows []scannedRow) ([4]uint64, error) {
	var sum [4]uint64
	types := make([]sqldb.Type, len(cols))
	for i, c := range cols {
		col, _ := t.Column(c)
		types[i] = col.Type
	}
	var buf []byte
	for _, r := range rows {
		buf = buf[:0]
		for i, v := range r {
			if v == nil {
				buf = append(buf, 'N')
				continue
			}
			s := comparable(types[i], v)
			buf = append(buf, 'V')
			buf = strconv.AppendInt(buf, int64(len(s)), 10)
			buf = append(buf, ':')
			buf = append(buf, s...)
		}
		h := sha256.Sum256(buf)
		for i := range sum {
			sum[i] += binary.BigEndian.Uint64(h[i*8:])
		}
	}
	return sum, nil
}

// Resync repairs what a report found different, from src to dst: exactly
// the differing rows it found (the source's row upserted, a row only the
// target has deleted), or, for a missing table or more differing rows than
// a report keeps (100000 per table), the ranges again: it upserts the
// source's rows of each range and deletes the target's rows in the range
// that the source does not have, a chunk per transaction. A missing target
// table is created. The writes are origin-tagged "resync"
// where the target dialect can tag, so a reverse stream with
// SkipReplicated does not send them back. Validate again to confirm; rows
// changing meanwhile are brought in line by the running stream.
func Resync(ctx context.Context, src, dst *sqldb.DB, report Report) error {
	return ResyncMapping(ctx, src, dst, nil, report)
}

// ResyncMapping is Resync through a mapping (see ValidateMapping): the
// source rows of a mapped table are filtered and renamed as the stream
// writes them, and target rows the filter excludes are deleted.
func ResyncMapping(ctx context.Context, src, dst *sqldb.DB, m *Mapping, report Report) error {
	return ResyncMappingMode(ctx, src, dst, m, report, SourceLog)
}

// ResyncMappingMode is ResyncMapping for a target that the reverse stream
// reads in a source mode ("" is SourceLog): the writes are tagged where
// that mode looks (MarkerForMode).
func ResyncMappingMode(ctx context.Context, src, dst *sqldb.DB, m *Mapping, report Report, targetMode string) error {
	const chunk = 1000
	marker := MarkerForMode(dst, targetMode)
	if setup, ok := marker.(OriginSetup); ok {
		if err := setup.Setup(ctx, dst); err != nil {
			return fmt.Errorf("replicate: resync: origin marker setup: %w", err)
		}
	}
	for _, tr := range report.Tables {
		if tr.OK() {
			continue
		}
		tp, mt, err := describeFor(ctx, src, dst, tr.Table, m, true)
		if err != nil {
			return fmt.Errorf("replicate: resync: %w", err)
		}
		w := &writer{d: dst.Dialect, tables: map[string]*tablePair{tr.Table: tp}}
		if !tr.Missing && !tr.fixesCut && tr.fixCount > 0 {
			// Exactly the differing rows, key by key.
			var fixes []Change
			for _, rg := range tr.Ranges {
				fixes = append(fixes, rg.fixes...)
			}
			if err := resyncKeys(ctx, dst, w, marker, fixes); err != nil {
				return fmt.Errorf("replicate: resync %s: %w", tr.Table, err)
			}
			continue
		}
		ranges := tr.Ranges
		if len(ranges) == 0 { // counts differ but no range listed: whole table
			ranges = []RangeDiff{{}}
		}
		for _, rg := range ranges {
			if err := resyncRange(ctx, src, dst, w, tp, mt, marker, rg, chunk); err != nil {
				return err
			}
		}
	}
	return nil
}

func resyncRange(ctx context.Context, src, dst *sqldb.DB, w *writer, tp *tablePair, mt *mappedTable, marker OriginMarker, rg RangeDiff, chunk int) error {
	cols := tp.src.ColumnNames()
	cursor := rg.From
	for {
		var q string
		var qargs []any
		var err error
		if mt != nil {
			q, qargs, err = mt.readQuery(src.Dialect, cursor, rg.To, chunk)
		} else {
			q, qargs, err = rangeQuery(src.Dialect, tp.src, cols, cursor, rg.To, chunk)
		}
		if err != nil {
			return err
		}
		srows, err := readSourceRows(ctx, src, tp.src, cols, q, qargs)
		if err != nil {
			return fmt.Errorf("replicate: resync %s: read source: %w", tp.src.Name, err)
		}
		hi := rg.To
		if len(srows) == chunk {
			if hi, err = keyOf(tp.src, cols, srows[len(srows)-1]); err != nil {
				return err
			}
		}
		var mapped []Change
		if mt != nil {
			if mapped, err = mt.rowChanges(srows); err != nil {
				return err
			}
		}
		var changes []Change
		have := map[string]bool{}
		for _, r := range srows {
			key, err := keyOf(tp.src, cols, r)
			if err != nil {
				return err
			}
			ks, err := canonicalKey(tp.src, key)
			if err != nil {
				return err
			}
			have[ks] = true
			if mt != nil {
				changes = append(changes, mapped[len(changes)])
				continue
			}
			row := make(map[string]any, len(cols))
			for j, c := range cols {
				row[c] = r[j]
			}
			changes = append(changes, Change{Table: tp.src.Name, Op: OpUpsert, Key: key, Row: row})
		}
		q, qargs, err = rangeQuery(dst.Dialect, tp.dst, tp.dst.PrimaryKey, cursor, hi, 0)
		if err != nil {
			return err
		}
		tkeys, err := queryRows(ctx, dst, q, qargs, len(tp.dst.PrimaryKey))
		if err != nil {
			return fmt.Errorf("replicate: resync %s: read target: %w", tp.src.Name, err)
		}
		for _, r := range tkeys {
			key, err := keyOf(tp.dst, tp.dst.PrimaryKey, r)
			if err != nil {
				return err
			}
			ks, err := canonicalKey(tp.dst, key)
			if err != nil {
				return err
			}
			if !have[ks] {
				changes = append(changes, Change{Table: tp.src.Name, Op: OpDelete, Key: key})
			}
		}
		if err := applyMarked(ctx, dst, w, marker, changes); err != nil {
			return fmt.Errorf("replicate: resync %s: %w", tp.src.Name, err)
		}
		if len(srows) < chunk {
			return nil
		}
		cursor = hi
	}
}

// canonicalKey is a key's identity across dialects.
func canonicalKey(t sqldb.Table, key []any) (string, error) {
	var b strings.Builder
	for i, v := range key {
		c, _ := t.Column(t.PrimaryKey[i])
		s, err := sqldb.Text(c.Type, v)
		if err != nil {
			return "", fmt.Errorf("replicate: %s: key column %s: %w", t.Name, c.Name, err)
		}
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String(), nil
}
