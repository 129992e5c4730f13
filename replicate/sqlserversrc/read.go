package sqlserversrc

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// CDC's __$operation codes.
const (
	opDelete       = 1
	opInsert       = 2
	opUpdateBefore = 3
	opUpdateAfter  = 4
)

// row is one row of cdc.fn_cdc_get_all_changes_<instance>: its commit LSN
// (__$start_lsn), its order within the transaction (__$seqval), the
// operation, and the captured columns' values in the table's order.
type row struct {
	start, seq LSN
	op         int
	vals       []any
}

// instance is a captured table and the capture instance read for it.
type instance struct {
	table string
	name  string // the capture instance
	def   sqldb.Table
}

// changeReader is what a read needs of the database: sqlReader runs the
// statements of sql.go; tests replay recorded result sets.
type changeReader interface {
	// maxLSN is sys.fn_cdc_get_max_lsn().
	maxLSN(ctx context.Context) (LSN, error)
	// bounds are sys.fn_cdc_increment_lsn(pos) and
	// sys.fn_cdc_get_min_lsn(instance).
	bounds(ctx context.Context, inst string, pos LSN) (next, min LSN, err error)
	// columns are the columns the instance captures and the table's
	// columns now.
	columns(ctx context.Context, in *instance) (captured, now []string, err error)
	// changes are the instance's changes in [from, to] in log order, at
	// most top (0: all).
	changes(ctx context.Context, in *instance, from, to LSN, top int) ([]row, error)
	// lsnTime is sys.fn_cdc_map_lsn_to_time(l).
	lsnTime(ctx context.Context, l LSN) (time.Time, error)
}

// checkSchema fails, permanently, when a table's columns are no longer
// the ones its capture instance captures: CDC keeps capturing the
// columns the instance was created with, so a column added is never
// captured and a column dropped reads as NULL, until a new capture
// instance is made.
func checkSchema(in *instance, captured, now []string) error {
	if len(captured) == 0 {
		return replicate.Permanent(fmt.Errorf("sqlserversrc: table %s: capture instance %s is gone (CDC disabled on the table?); "+
			"enable it again (EXEC sys.sp_cdc_enable_table) and resync the table", in.table, in.name))
	}
	if slices.Equal(captured, now) {
		return nil
	}
	return replicate.Permanent(fmt.Errorf("sqlserversrc: table %s changed: its columns are now %v but capture instance %s captures %v; "+
		"CDC does not follow schema changes: create a new capture instance (EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'%s', "+
		"@role_name = NULL, @capture_instance = N'%s_2'), then drop the old one (EXEC sys.sp_cdc_disable_table ... @capture_instance = N'%s') "+
		"and resync the table; the stream stopped before any change after the schema change",
		in.table, now, in.name, captured, in.table, in.name, in.name))
}

// fromLSN is where a read of an instance starts after pos: the LSN after
// it (next), or the instance's oldest (min) when pos is the beginning. A
// pos whose next LSN is older than the instance's oldest was lost: the
// CDC cleanup job removed changes the stream has not applied.
func fromLSN(in string, pos, next, min LSN) (LSN, error) {
	if min.IsZero() {
		return LSN{}, replicate.Permanent(fmt.Errorf("sqlserversrc: capture instance %s does not exist (CDC disabled on its table?)", in))
	}
	if pos.IsZero() {
		return min, nil
	}
	if next.Compare(min) < 0 {
		return LSN{}, replicate.Permanent(fmt.Errorf("sqlserversrc: position %s is lost: capture instance %s holds changes from %s on "+
			"(the CDC cleanup job removed older ones, see its retention: sys.sp_cdc_change_job @job_type = N'cleanup', @retention); "+
			"resync the stream from a full load", pos, in, min))
	}
	return next, nil
}

// cut is where a read of several instances ends so that the batch holds
// whole transactions: every instance read in full (fewer than max rows)
// is complete up to to; one that returned max rows is complete only
// before the transaction of its last row. end is the last commit LSN
// the batch holds whole; whole says no transaction is complete before
// it: the transaction at end must be read alone without a row limit (a
// transaction larger than max).
func cut(got [][]row, max int, to LSN) (end LSN, whole, short bool) {
	var limit LSN
	for _, rows := range got {
		if max > 0 && len(rows) >= max {
			if l := rows[len(rows)-1].start; !short || l.Compare(limit) < 0 {
				limit = l
			}
			short = true
		}
	}
	if !short {
		return to, false, false
	}
	var last LSN
	for _, rows := range got {
		for _, r := range rows {
			if r.start.Compare(limit) < 0 && r.start.Compare(last) > 0 {
				last = r.start
			}
		}
	}
	if last.IsZero() {
		return limit, true, true
	}
	return last, false, true
}

// mapChange turns a CDC row into a change: 1 (delete) an OpDelete of the
// deleted row's key, 2 (insert) and 4 (update, after image) an OpUpsert
// of the row; 3 (update, before image) is skipped (ok false).
func mapChange(d sqldb.Dialect, in *instance, r row) (ch replicate.Change, ok bool, err error) {
	switch r.op {
	case opUpdateBefore:
		return ch, false, nil
	case opDelete, opInsert, opUpdateAfter:
	default:
		return ch, false, replicate.Permanent(fmt.Errorf("sqlserversrc: %s at %s: unknown __$operation %d", in.table, r.start, r.op))
	}
	if len(r.vals) != len(in.def.Columns) {
		return ch, false, fmt.Errorf("sqlserversrc: %s at %s: %d values for %d columns", in.table, r.start, len(r.vals), len(in.def.Columns))
	}
	vals := make(map[string]any, len(r.vals))
	ch = replicate.Change{Table: in.table, Op: replicate.OpUpsert}
	for i, c := range in.def.Columns {
		v, err := sqldb.Read(d, c.Type, r.vals[i])
		if err != nil {
			return ch, false, fmt.Errorf("sqlserversrc: read %s.%s: %w", in.table, c.Name, err)
		}
		vals[c.Name] = v
		if c.Name == "_trace_id" {
			switch x := v.(type) {
			case string:
				ch.TraceID = x
			case []byte:
				ch.TraceID = string(x)
			}
		}
	}
	for _, k := range in.def.PrimaryKey {
		ch.Key = append(ch.Key, vals[k])
	}
	if r.op == opDelete {
		ch.Op = replicate.OpDelete
		return ch, true, nil
	}
	ch.Row = vals
	return ch, true, nil
}

// origins are the commit LSNs of transactions an applier tagged with its
// origin: the inserts (2) into the mark table with a non-empty origin.
func origins(mark []row) map[LSN]bool {
	out := map[LSN]bool{}
	for _, r := range mark {
		if r.op != opInsert || len(r.vals) < 2 {
			continue
		}
		var o string
		switch x := r.vals[1].(type) {
		case string:
			o = x
		case []byte:
			o = string(x)
		}
		if o != "" {
			out[r.start] = true
		}
	}
	return out
}

// tagged is one instance's row, for the merge into log order.
type tagged struct {
	in *instance
	r  row
}

// readBatch reads the changes after pos: each table's capture instance
// (after checking its columns) from the LSN after pos up to the highest
// captured LSN, at most opts.MaxBatch rows each, cut to whole
// transactions (cut); mark, when set and opts.SkipReplicated, is the
// mark table's instance whose tagged transactions are skipped. It
// returns the batch, the position after it and whether it was cut short
// (read again at once).
func readBatch(ctx context.Context, r changeReader, d sqldb.Dialect, pos LSN, tables []*instance, mark *instance, opts replicate.StreamOptions) (replicate.Batch, LSN, bool, error) {
	var b replicate.Batch
	to, err := r.maxLSN(ctx)
	if err != nil {
		return b, pos, false, err
	}
	if to.Compare(pos) <= 0 {
		return b, pos, false, nil
	}
	froms := make([]LSN, len(tables))
	got := make([][]row, len(tables))
	for i, in := range tables {
		captured, now, err := r.columns(ctx, in)
		if err != nil {
			return b, pos, false, err
		}
		if err := checkSchema(in, captured, now); err != nil {
			return b, pos, false, err
		}
		next, lo, err := r.bounds(ctx, in.name, pos)
		if err != nil {
			return b, pos, false, err
		}
		if froms[i], err = fromLSN(in.name, pos, next, lo); err != nil {
			return b, pos, false, err
		}
		if froms[i].Compare(to) > 0 {
			continue
		}
		if got[i], err = r.changes(ctx, in, froms[i], to, opts.MaxBatch); err != nil {
			return b, pos, false, err
		}
	}
	end, whole, short := cut(got, opts.MaxBatch, to)
	if whole {
		// One transaction larger than MaxBatch: read it alone, whole.
		for i, in := range tables {
			got[i] = nil
			if froms[i].Compare(end) > 0 {
				continue
			}
			if got[i], err = r.changes(ctx, in, froms[i], end, 0); err != nil {
				return b, pos, false, err
			}
		}
	}
	var all []tagged
	for i, rows := range got {
		for _, x := range rows {
			// start > pos guards a position between two LSNs of one
			// transaction's rows; start <= end drops what cut left out.
			if x.start.Compare(pos) > 0 && x.start.Compare(end) <= 0 {
				all = append(all, tagged{tables[i], x})
			}
		}
	}
	slices.SortStableFunc(all, func(a, b tagged) int {
		return cmp.Or(a.r.start.Compare(b.r.start), a.r.seq.Compare(b.r.seq))
	})
	var skip map[LSN]bool
	if mark != nil && opts.SkipReplicated && len(all) > 0 {
		next, lo, err := r.bounds(ctx, mark.name, pos)
		if err != nil {
			return b, pos, false, err
		}
		from, err := fromLSN(mark.name, pos, next, lo)
		if err != nil {
			return b, pos, false, err
		}
		if from.Compare(end) <= 0 {
			rows, err := r.changes(ctx, mark, from, end, 0)
			if err != nil {
				return b, pos, false, err
			}
			skip = origins(rows)
		}
	}
	for _, x := range all {
		if skip[x.r.start] {
			continue
		}
		ch, ok, err := mapChange(d, x.in, x.r)
		if err != nil {
			return b, pos, false, err
		}
		if ok {
			b.Changes = append(b.Changes, ch)
		}
	}
	if len(all) > 0 {
		if b.CommitTime, err = r.lsnTime(ctx, all[len(all)-1].r.start); err != nil {
			return b, pos, false, err
		}
	}
	b.Position = end.Position()
	return b, end, short, nil
}
