package replicate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// A table renamed on the source (an OpSchema change with NewTable) is
// followed by what the new name means to the stream:
//
//   - the stream replicates the table and still selects it under the new
//     name (its table globs match it, or Config.Tables lists it): the
//     target table is renamed (to the Mapping's target name of the new
//     name), with the table's state in TableStateTable, and change data
//     capture goes on under the new name from the change after the rename,
//     with nothing skipped or applied twice. When the target already has
//     a table of the new target name, the table is stopped under its new
//     name with an error naming both tables, and the target is left alone;
//   - the stream does not select the new name: the table leaves the
//     stream (as after DROP TABLE, the changes after the rename are not
//     read), its target table is kept as it is, and a WARN log line and
//     Status.RenamedTables say so;
//   - the stream did not replicate the old name and selects the new one:
//     it is picked up as a created table is (a full load of that table,
//     then change data capture, without a restart). When the target
//     already has a table of the new target name, that table is not the
//     stream's: nothing is loaded into it, and the renamed table is
//     stopped under its new name with an error naming both;
//   - neither name concerns the stream: nothing happens.
//
// A stopped table is renamed on the target too, and stays stopped under
// its new name. Rows the skipped-change table ExceptionsTable holds keep
// the name the table had when they were written.

// TableRename is a source table renamed during change data capture, as
// Status.RenamedTables lists it.
type TableRename struct {
	// From and To are the source table's old and new names.
	From string `json:"from"`
	To   string `json:"to"`
	// Target is the target table's name after the rename (unchanged
	// when the table left the stream).
	Target string `json:"target"`
	// Left is set when the new name is not one the stream selects: the
	// table is no longer replicated.
	Left bool      `json:"left,omitempty"`
	At   time.Time `json:"at"`
}

// maxRenames bounds Status.RenamedTables (the latest are kept).
const maxRenames = 100

// selects reports whether the stream replicates a source table of that
// name: its Mapping's globs match it, or Config.Tables lists it.
func (s *Stream) selects(table string) bool {
	if s.resolve {
		return s.cfg.Mapping.Includes(table)
	}
	return slices.Contains(s.cfg.Tables, table)
}

// renamed follows the rename of table c.Table to c.NewTable at position
// pos (see above).
func (a *applier) renamed(ctx context.Context, c Change, pos Position) error {
	s := a.s
	from, to := c.Table, c.NewTable
	if from == to {
		return nil
	}
	tp, had := a.w.tables[from]
	wasStopped := s.isStopped(from)
	_, has := a.w.tables[to]
	switch {
	case has && !had && !wasStopped:
		// Followed before (a replay after a restart), or the stream
		// restarted after the rename and loaded the new name in full.
		return a.forgetOld(ctx, from, to, pos)
	case !had && !wasStopped:
		if !s.resolve || !s.selects(to) {
			return nil
		}
		// The stream did not have the old name in this run (it was not
		// replicated, or the run's listing of the source missed it while
		// the rename ran): a target table of the new name is not the
		// stream's, and nothing is loaded into it.
		newDst := s.cfg.Mapping.Target(to)
		_, err := s.cfg.Target.Dialect.Describe(ctx, s.cfg.Target, newDst)
		switch {
		case err == nil:
			cause := errTargetHas(from, to, newDst)
			if a.stated[from] {
				cause = errTargetTaken(from, to, s.cfg.Mapping.Target(from), newDst)
			}
			return a.stopRenamed(ctx, from, to, pos, cause)
		case !errors.Is(err, sqldb.ErrNoTable):
			return fmt.Errorf("replicate: describe target %s: %w", newDst, err)
		}
		return a.pickUp(ctx, to, "a table renamed into the table globs")
	case !s.selects(to):
		return a.leave(ctx, from, to, tp)
	}
	d := s.cfg.Target.Dialect
	oldDst := s.cfg.Mapping.Target(from)
	if tp != nil {
		oldDst = tp.dst.Name
	}
	newDst := s.cfg.Mapping.Target(to)
	var stmts []string
	if newDst != oldDst {
		_, err := d.Describe(ctx, s.cfg.Target, newDst)
		switch {
		case err == nil:
			return a.stopRenamed(ctx, from, to, pos, errTargetTaken(from, to, oldDst, newDst))
		case !errors.Is(err, sqldb.ErrNoTable):
			return fmt.Errorf("replicate: describe target %s: %w", newDst, err)
		}
		if _, err := d.Describe(ctx, s.cfg.Target, oldDst); err == nil {
			alt, ok := d.(sqldb.Alterer)
			if !ok {
				return a.stopRenamed(ctx, from, to, pos, fmt.Errorf("replicate: table %q renamed to %q on the source: the %s target cannot rename tables", from, to, d.Name()))
			}
			stmts = alt.RenameTable(oldDst, newDst)
		} else if !errors.Is(err, sqldb.ErrNoTable) {
			return fmt.Errorf("replicate: describe target %s: %w", oldDst, err)
		}
	}
	if err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("replicate: follow rename of %s to %s on target: %s: %w", from, to, q, err)
			}
		}
		return renameTableState(ctx, tx, d, s.cfg.Name, from, to)
	}); err != nil {
		return err
	}
	if wasStopped {
		s.moveStopped(from, to)
	}
	if tp != nil {
		delete(a.w.tables, from)
		delete(a.maps, from)
		if s.cfg.Mapping.Rule(from) != nil || s.cfg.Mapping.Rule(to) != nil {
			ntp, mt, err := describeFor(ctx, s.cfg.Source, s.cfg.Target, to, s.cfg.Mapping, true)
			if err != nil {
				return err
			}
			a.w.tables[to] = ntp
			if mt != nil {
				a.maps[to] = mt
			}
		} else {
			dt, err := d.Describe(ctx, s.cfg.Target, newDst)
			if err != nil {
				return fmt.Errorf("replicate: describe target %s: %w", newDst, err)
			}
			src := tp.src
			src.Name = to
			a.w.tables[to] = &tablePair{src: src, dst: dt}
		}
	}
	s.renameConfigured(from, to)
	s.noteRename(TableRename{From: from, To: to, Target: newDst})
	s.log.Info("table rename followed", "table", from, "renamed_to", to, "target", newDst, "target_was", oldDst, "ddl", c.DDL)
	return nil
}

// leave takes a table renamed to a name the stream does not select out of
// the stream, keeping its target table as it is.
func (a *applier) leave(ctx context.Context, from, to string, tp *tablePair) error {
	s := a.s
	if err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
		return deleteTableState(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, from)
	}); err != nil {
		return err
	}
	target := s.cfg.Mapping.Target(from)
	if tp != nil {
		target = tp.dst.Name
	}
	delete(a.w.tables, from)
	delete(a.maps, from)
	s.unstop(from)
	s.mu.Lock()
	if i := slices.Index(s.cfg.Tables, from); i >= 0 {
		s.cfg.Tables = slices.Delete(slices.Clone(s.cfg.Tables), i, i+1)
	}
	s.mu.Unlock()
	s.noteRename(TableRename{From: from, To: to, Target: target, Left: true})
	s.log.Warn("table renamed to a name the stream does not select: it left the stream; its target table is kept as it is",
		"table", from, "renamed_to", to, "target", target)
	return nil
}

// errTargetTaken is why a table renamed onto a name the target has stops.
func errTargetTaken(from, to, oldDst, newDst string) error {
	return fmt.Errorf("replicate: table %q renamed to %q on the source: the target already has a table %q (the target's %q is kept as it is); drop or rename the target's %q, then restart the stream",
		from, to, newDst, oldDst, newDst)
}

// errTargetHas is why a table the stream did not replicate, renamed into
// its table globs onto a name the target has, stops.
func errTargetHas(from, to, newDst string) error {
	return fmt.Errorf("replicate: table %q renamed to %q on the source: the target already has a table %q that the stream did not create (kept as it is); drop or rename the target's %q, then restart the stream",
		from, to, newDst, newDst)
}

// forgetOld handles the rename of a table whose new name the stream
// already has: followed before (a replay after a restart), or renamed on
// the source while the stream was away, so that this run took the new name
// as a table of its own. In that case the target table of the old name is
// still there, with the old name's state: when this run created the new
// name's target table (and loaded it in full), the old one is kept as it
// is, and said so; when the target had a table of the new name before, it
// is not the stream's, and the renamed table stops as for any rename onto
// a target table that exists.
func (a *applier) forgetOld(ctx context.Context, from, to string, pos Position) error {
	s := a.s
	oldDst, newDst := s.cfg.Mapping.Target(from), s.cfg.Mapping.Target(to)
	if oldDst != newDst && a.stated[from] {
		if _, err := s.cfg.Target.Dialect.Describe(ctx, s.cfg.Target, oldDst); err == nil {
			if !a.fresh[to] {
				return a.stopRenamed(ctx, from, to, pos, errTargetTaken(from, to, oldDst, newDst))
			}
			s.log.Warn("table renamed on the source while the stream was away: its new name was loaded in full; the target table of the old name is kept as it is",
				"table", from, "renamed_to", to, "target", newDst, "kept", oldDst)
		}
	}
	return s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
		return deleteTableState(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, from)
	})
}

// stopRenamed stops a renamed table under its new name, the old one
// leaving the stream.
func (a *applier) stopRenamed(ctx context.Context, from, to string, pos Position, cause error) error {
	s := a.s
	te := TableError{Table: to, Op: "schema", Error: cause.Error(), Position: pos, At: time.Now().UTC()}
	d := s.cfg.Target.Dialect
	if err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
		if err := deleteTableState(ctx, tx, d, s.cfg.Name, from); err != nil {
			return err
		}
		return saveTableState(ctx, tx, d, s.cfg.Name, to, TableState{State: tableStopped, Err: te})
	}); err != nil {
		return err
	}
	delete(a.w.tables, from)
	delete(a.maps, from)
	s.unstop(from)
	s.renameConfigured(from, to)
	s.stopTable(te)
	return nil
}

// pickUp marks a table the stream does not have yet as loading and ends
// the run, so that the next one loads it (a full load of that table from
// the stream's position) and adds it to change data capture.
func (a *applier) pickUp(ctx context.Context, table, why string) error {
	s := a.s
	if err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
		return saveTableState(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, table, TableState{State: tableLoading})
	}); err != nil {
		return err
	}
	s.log.Info(why+": loading it, then streaming it", "table", table)
	return fmt.Errorf("%w: %s", errTableCreated, table)
}

// renameConfigured replaces a table's old name by its new one in
// Config.Tables, where the next run (a reconnect) looks for it.
func (s *Stream) renameConfigured(from, to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.cfg.Tables, from); i >= 0 {
		s.cfg.Tables = slices.Clone(s.cfg.Tables)
		if slices.Contains(s.cfg.Tables, to) {
			s.cfg.Tables = slices.Delete(s.cfg.Tables, i, i+1)
		} else {
			s.cfg.Tables[i] = to
		}
	}
}

// noteRename adds a rename to Status.RenamedTables.
func (s *Stream) noteRename(r TableRename) {
	r.At = time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.RenamedTables = append(s.status.RenamedTables, r)
	if n := len(s.status.RenamedTables); n > maxRenames {
		s.status.RenamedTables = slices.Clone(s.status.RenamedTables[n-maxRenames:])
	}
}

// unstop forgets that a table is stopped (in this process).
func (s *Stream) unstop(table string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.stopped[table]; ok {
		delete(s.stopped, table)
		s.status.StoppedTables = s.stoppedListLocked()
	}
}

// moveStopped keeps a stopped table stopped under its new name, with the
// error that stopped it (not a new stop: nothing is logged).
func (s *Stream) moveStopped(from, to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if te, ok := s.stopped[from]; ok {
		delete(s.stopped, from)
		te.Table = to
		s.stopped[to] = te
		s.status.StoppedTables = s.stoppedListLocked()
	}
}

// renameTableState moves a table's row of TableStateTable to its new name.
func renameTableState(ctx context.Context, tx sqldb.Querier, d sqldb.Dialect, stream, from, to string) error {
	if err := deleteTableState(ctx, tx, d, stream, to); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "UPDATE "+d.Quote(TableStateTable)+" SET "+d.Quote("table_name")+" = "+d.Placeholder(1)+
		" WHERE "+d.Quote("stream")+" = "+d.Placeholder(2)+" AND "+d.Quote("table_name")+" = "+d.Placeholder(3), to, stream, from)
	if err != nil {
		return fmt.Errorf("replicate: rename table state %s to %s: %w", from, to, err)
	}
	return nil
}

// deleteTableState forgets one table's state.
func deleteTableState(ctx context.Context, tx sqldb.Querier, d sqldb.Dialect, stream, table string) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM "+d.Quote(TableStateTable)+" WHERE "+d.Quote("stream")+" = "+d.Placeholder(1)+
		" AND "+d.Quote("table_name")+" = "+d.Placeholder(2), stream, table)
	if err != nil {
		return fmt.Errorf("replicate: forget table state of %s: %w", table, err)
	}
	return nil
}
