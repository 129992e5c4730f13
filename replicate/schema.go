package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/intercloud/intercloud/sqldb"
)

// Schema changes (OpSchema) are followed on the target when they only add
// columns, drop columns, or widen a column's type (a longer string or
// binary, a wider integer, a decimal with more digits on either side of
// the point); columns added on the target are nullable. Everything else —
// renames, narrowing or other type changes, a changed primary key,
// TRUNCATE, DROP TABLE, a change that both adds and drops columns without
// a statement to tell a rename apart — stops the stream with an error that
// names the statement, rather than letting the target silently diverge.

// applySchema reconciles the target table with the source table as it is
// now, after the schema change c.
func (a *applier) applySchema(ctx context.Context, c Change) error {
	s := a.s
	tp, ok := a.w.tables[c.Table]
	if !ok {
		return nil
	}
	what := "schema change"
	if c.DDL != "" {
		what = fmt.Sprintf("schema change %q", c.DDL)
	}
	fail := func(why string) error {
		return permanent(fmt.Errorf("replicate: table %q: %s: %s; replication stopped (only added or dropped columns and widened types are followed)", c.Table, what, why))
	}
	if c.DDL != "" {
		if why := unsupportedDDL(c.DDL); why != "" {
			return fail(why)
		}
	}
	st, err := s.cfg.Source.Dialect.Describe(ctx, s.cfg.Source, c.Table)
	if errors.Is(err, sqldb.ErrNoTable) {
		return fail("the source table no longer exists")
	}
	if err != nil {
		return fmt.Errorf("replicate: describe source %s: %w", c.Table, err)
	}
	if strings.Join(st.PrimaryKey, "\x00") != strings.Join(tp.src.PrimaryKey, "\x00") {
		return fail(fmt.Sprintf("the primary key changed from (%s) to (%s)", strings.Join(tp.src.PrimaryKey, ", "), strings.Join(st.PrimaryKey, ", ")))
	}
	var stmts []string
	alt, canAlter := s.cfg.Target.Dialect.(sqldb.Alterer)
	need := func() error {
		if !canAlter {
			return fail(fmt.Sprintf("the %s target cannot alter tables", s.cfg.Target.Dialect.Name()))
		}
		return nil
	}
	var added, dropped []string
	for _, col := range st.Columns {
		old, had := tp.src.Column(col.Name)
		_, onTarget := tp.dst.Column(col.Name)
		switch {
		case !had && !onTarget:
			if err := need(); err != nil {
				return err
			}
			if err := checkTypes(st, []sqldb.Column{col}, s.cfg.Target.Dialect); err != nil {
				return err
			}
			added = append(added, col.Name)
			stmts = append(stmts, alt.AddColumn(c.Table, col)...)
		case had && !old.Type.Equal(col.Type):
			if !Widens(old.Type, col.Type) {
				return fail(fmt.Sprintf("column %s changes type from %s to %s, which is not a widening", col.Name, typeText(old.Type), typeText(col.Type)))
			}
			if err := need(); err != nil {
				return err
			}
			tc := col
			if dc, ok := tp.dst.Column(col.Name); ok {
				tc.Nullable = dc.Nullable
			}
			stmts = append(stmts, alt.WidenColumn(c.Table, tc)...)
		}
	}
	for _, col := range tp.src.Columns {
		if _, still := st.Column(col.Name); still {
			continue
		}
		if _, onTarget := tp.dst.Column(col.Name); !onTarget {
			continue
		}
		if err := need(); err != nil {
			return err
		}
		dropped = append(dropped, col.Name)
		stmts = append(stmts, alt.DropColumn(c.Table, col.Name)...)
	}
	if len(added) > 0 && len(dropped) > 0 && c.DDL == "" {
		return fail(fmt.Sprintf("columns %v added and %v dropped at once (a rename?)", added, dropped))
	}
	for _, q := range stmts {
		if _, err := s.cfg.Target.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("replicate: follow %s on target %s: %s: %w", what, c.Table, q, err)
		}
	}
	dt, err := s.cfg.Target.Dialect.Describe(ctx, s.cfg.Target, c.Table)
	if err != nil {
		return fmt.Errorf("replicate: describe target %s: %w", c.Table, err)
	}
	a.w.tables[c.Table] = &tablePair{src: st, dst: dt}
	if len(stmts) > 0 {
		s.log.Info("schema change followed", "table", c.Table, "ddl", c.DDL, "added", added, "dropped", dropped, "statements", len(stmts))
	}
	return nil
}

// addMissingColumns adds to the target the source columns it lacks (a
// schema change the stream stopped before following), when the target
// dialect can.
func addMissingColumns(ctx context.Context, dst *sqldb.DB, st, dt sqldb.Table) (bool, error) {
	alt, ok := dst.Dialect.(sqldb.Alterer)
	if !ok {
		return false, nil
	}
	changed := false
	for _, c := range st.Columns {
		if _, ok := dt.Column(c.Name); ok {
			continue
		}
		for _, q := range alt.AddColumn(dt.Name, c) {
			if _, err := dst.ExecContext(ctx, q); err != nil {
				return changed, fmt.Errorf("replicate: add column %s to target %s: %w", c.Name, dt.Name, err)
			}
		}
		changed = true
	}
	return changed, nil
}

// Widens reports whether every value of type from fits type to: a longer
// or unbounded string or binary, a wider integer, a decimal with at least
// as many digits before and after the point.
func Widens(from, to sqldb.Type) bool {
	longer := func() bool {
		return to.Length == 0 || (from.Length != 0 && to.Length >= from.Length)
	}
	switch {
	case from.Kind == sqldb.KindString && to.Kind == sqldb.KindString:
		return longer()
	case from.Kind == sqldb.KindString && to.Kind == sqldb.KindText:
		return true
	case from.Kind == sqldb.KindBytes && to.Kind == sqldb.KindBytes:
		return longer()
	case from.Kind == sqldb.KindInt && to.Kind == sqldb.KindInt:
		fb, tb := intBits(from), intBits(to)
		if from.Unsigned == to.Unsigned {
			return tb >= fb
		}
		return from.Unsigned && !to.Unsigned && tb > fb
	case from.Kind == sqldb.KindDecimal && to.Kind == sqldb.KindDecimal:
		if to.Precision <= 0 {
			return true
		}
		if from.Precision <= 0 {
			return false
		}
		return to.Scale >= from.Scale && to.Precision-to.Scale >= from.Precision-from.Scale
	}
	return false
}

func intBits(t sqldb.Type) int {
	if t.Bits == 0 {
		return 64
	}
	return t.Bits
}

func typeText(t sqldb.Type) string {
	switch t.Kind {
	case sqldb.KindString, sqldb.KindBytes:
		if t.Length > 0 {
			return fmt.Sprintf("%s(%d)", t.Kind, t.Length)
		}
	case sqldb.KindDecimal:
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	case sqldb.KindInt:
		u := ""
		if t.Unsigned {
			u = " unsigned"
		}
		return fmt.Sprintf("int%d%s", intBits(t), u)
	}
	return t.Kind.String()
}

// unsupportedDDL says why a statement cannot be followed by comparing
// columns, or "" when it can: renames, TRUNCATE, DROP TABLE and primary-key
// changes leave no trace a column comparison would see, or would be
// mistaken for a drop and an add.
func unsupportedDDL(stmt string) string {
	w := ddlWords(stmt)
	has := func(seq ...string) bool {
	outer:
		for i := 0; i+len(seq) <= len(w); i++ {
			for j, s := range seq {
				if w[i+j] != s {
					continue outer
				}
			}
			return true
		}
		return false
	}
	switch {
	case len(w) > 0 && w[0] == "TRUNCATE":
		return "TRUNCATE is not replicated"
	case len(w) > 1 && w[0] == "DROP" && (w[1] == "TABLE" || has("TEMPORARY", "TABLE")):
		return "the table is dropped"
	case has("RENAME"):
		return "renames are not followed"
	case len(w) > 0 && w[0] == "ALTER" && has("CHANGE"):
		return "CHANGE COLUMN (a rename or redefinition) is not followed"
	case len(w) > 0 && w[0] == "ALTER" && has("PRIMARY", "KEY"):
		return "primary-key changes are not followed"
	case has("CREATE", "OR", "REPLACE"):
		return "the table is replaced"
	}
	return ""
}

// ddlWords returns a statement's unquoted words in upper case, without
// comments, strings and quoted identifiers.
func ddlWords(stmt string) []string {
	var out []string
	r := []rune(stmt)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(r) && r[j] != c {
				if r[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '/' && i+1 < len(r) && r[i+1] == '*' && !(i+2 < len(r) && r[i+2] == '!'):
			j := i + 2
			for j+1 < len(r) && !(r[j] == '*' && r[j+1] == '/') {
				j++
			}
			i = j + 2
		case c == '-' && i+1 < len(r) && r[i+1] == '-', c == '#':
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case unicode.IsLetter(c) || c == '_':
			j := i
			for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_' || r[j] == '$') {
				j++
			}
			out = append(out, strings.ToUpper(string(r[i:j])))
			i = j
		default:
			i++
		}
	}
	return out
}

// applySegment applies changes (no schema changes among them) in one
// target transaction without moving the checkpoint: a restart replays
// them, idempotently.
func (a *applier) applySegment(ctx context.Context, changes []Change, pos Position) (int, error) {
	return a.commit(ctx, a.w, changes, pos, nil)
}
