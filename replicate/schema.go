package replicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/intercloud/intercloud/sqldb"
)

// Schema changes (OpSchema) are followed on the target: added columns
// (with their constant default, so rows already there get it, and NOT NULL
// with it), dropped columns, renamed columns (RENAME COLUMN, CHANGE), type
// changes (the target converts the values; one it cannot hold fails the
// statement), TRUNCATE (the target's rows are deleted) and DROP TABLE (the
// target table is dropped and the table leaves the stream); renamed
// tables are followed by name (rename.go). What cannot be
// followed — a changed primary key, a replaced table, a
// change that both adds and drops columns without a statement to tell a
// rename apart — stops that table with an error that names the table and
// the statement (in status, /metrics and an ERROR log line, as a rejected
// change does), rather than letting the target silently diverge; the
// other tables go on.

// errNotFollowed marks a schema change the target cannot follow: it stops
// that table (as a rejected change does), and the others go on.
var errNotFollowed = errors.New("not followed; the table is stopped")

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
		return fmt.Errorf("replicate: table %q: %s: %s: %w", c.Table, what, why, errNotFollowed)
	}
	words := ddlWords(c.DDL)
	if c.DDL != "" {
		if why := unsupportedDDL(c.DDL); why != "" {
			return fail(why)
		}
	}
	target := s.cfg.Target
	exec := func(stmts ...string) error {
		for _, q := range stmts {
			if _, err := target.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("replicate: follow %s on target %s: %s: %w", what, tp.dst.Name, q, err)
			}
		}
		return nil
	}
	if len(words) > 0 && words[0] == "TRUNCATE" {
		if err := exec("DELETE FROM " + target.Dialect.Quote(tp.dst.Name)); err != nil {
			return err
		}
		s.log.Info("truncate followed", "table", c.Table, "target", tp.dst.Name)
		return nil
	}
	st, err := s.cfg.Source.Dialect.Describe(ctx, s.cfg.Source, c.Table)
	if errors.Is(err, sqldb.ErrNoTable) {
		if len(words) > 1 && words[0] == "DROP" && (words[1] == "TABLE" || words[1] == "TEMPORARY") {
			if err := exec("DROP TABLE IF EXISTS " + target.Dialect.Quote(tp.dst.Name)); err != nil {
				return err
			}
			delete(a.w.tables, c.Table)
			s.log.Warn("drop table followed: the table left the stream", "table", c.Table, "target", tp.dst.Name)
			return nil
		}
		return fail("the source table no longer exists")
	}
	if err != nil {
		return fmt.Errorf("replicate: describe source %s: %w", c.Table, err)
	}
	if strings.Join(st.PrimaryKey, "\x00") != strings.Join(tp.src.PrimaryKey, "\x00") {
		return fail(fmt.Sprintf("the primary key changed from (%s) to (%s)", strings.Join(tp.src.PrimaryKey, ", "), strings.Join(st.PrimaryKey, ", ")))
	}
	alt, canAlter := target.Dialect.(sqldb.Alterer)
	// Renames first, by the statement's own words: the source's schema
	// as described now may already reflect later statements.
	var renamed [][2]string
	for _, rn := range columnRenames(c.DDL) {
		from, to := rn[0], rn[1]
		if from == to {
			continue
		}
		_, had := tp.src.Column(from)
		_, onTarget := tp.dst.Column(from)
		_, taken := tp.dst.Column(to)
		if !had || !onTarget || taken {
			continue
		}
		if !canAlter {
			return fail(fmt.Sprintf("the %s target cannot alter tables", target.Dialect.Name()))
		}
		if err := exec(alt.RenameColumn(tp.dst.Name, from, to)...); err != nil {
			return err
		}
		renamed = append(renamed, rn)
		src := tp.src
		src.Columns = slices.Clone(src.Columns)
		for i := range src.Columns {
			if src.Columns[i].Name == from {
				src.Columns[i].Name = to
			}
		}
		dt, err := target.Dialect.Describe(ctx, target, tp.dst.Name)
		if err != nil {
			return fmt.Errorf("replicate: describe target %s: %w", tp.dst.Name, err)
		}
		tp = &tablePair{src: src, dst: dt}
		a.w.tables[c.Table] = tp
	}
	// With a statement, only the columns it names change: the source as
	// described now may already show later statements' changes, which
	// their own events follow.
	named := func(string) bool { return true }
	if c.DDL != "" {
		mentioned := map[string]bool{}
		for _, t := range ddlTokens(c.DDL) {
			mentioned[strings.ToLower(t.text)] = true
		}
		named = func(col string) bool { return mentioned[strings.ToLower(col)] }
	}
	var added, dropped []sqldb.Column
	var changed []sqldb.Column
	for _, col := range st.Columns {
		if !named(col.Name) {
			continue
		}
		old, had := tp.src.Column(col.Name)
		_, onTarget := tp.dst.Column(col.Name)
		switch {
		case !had && !onTarget:
			added = append(added, col)
		case had && !old.Type.Equal(col.Type):
			tc := col
			if dc, ok := tp.dst.Column(col.Name); ok {
				tc.Nullable = dc.Nullable
			}
			changed = append(changed, tc)
		}
	}
	for _, col := range tp.src.Columns {
		if _, still := st.Column(col.Name); still || !named(col.Name) {
			continue
		}
		if _, onTarget := tp.dst.Column(col.Name); !onTarget {
			continue
		}
		dropped = append(dropped, col)
	}
	if len(added) > 0 && len(dropped) > 0 && c.DDL == "" {
		return fail(fmt.Sprintf("columns %v added and %v dropped at once (a rename?)", names(added), names(dropped)))
	}
	if len(added)+len(dropped)+len(changed) > 0 && !canAlter {
		return fail(fmt.Sprintf("the %s target cannot alter tables", target.Dialect.Name()))
	}
	if err := checkTypes(st, added, target.Dialect); err != nil {
		return err
	}
	if err := checkTypes(st, changed, target.Dialect); err != nil {
		return err
	}
	var stmts []string
	for _, col := range added {
		stmts = append(stmts, alt.AddColumn(tp.dst.Name, col)...)
	}
	for _, col := range dropped {
		stmts = append(stmts, alt.DropColumn(tp.dst.Name, col.Name)...)
	}
	for _, col := range changed {
		if old, _ := tp.src.Column(col.Name); !Widens(old.Type, col.Type) && target.Dialect.Name() == "sqlite" {
			return fail(fmt.Sprintf("column %s changes type from %s to %s, and SQLite cannot change a column's type", col.Name, old.Type, col.Type))
		}
		stmts = append(stmts, alt.WidenColumn(tp.dst.Name, col)...)
	}
	if err := exec(stmts...); err != nil {
		return err
	}
	dt, err := target.Dialect.Describe(ctx, target, tp.dst.Name)
	if err != nil {
		return fmt.Errorf("replicate: describe target %s: %w", tp.dst.Name, err)
	}
	// The source as of this change: columns the statement names as the
	// source has them now, the others as they were (a later statement's
	// changes are its own event's).
	now := st
	now.Columns = nil
	for _, col := range st.Columns {
		old, had := tp.src.Column(col.Name)
		switch {
		case named(col.Name):
			now.Columns = append(now.Columns, col)
		case had:
			now.Columns = append(now.Columns, old)
		}
	}
	for _, col := range tp.src.Columns {
		if _, still := st.Column(col.Name); !still && !named(col.Name) {
			now.Columns = append(now.Columns, col)
		}
	}
	a.w.tables[c.Table] = &tablePair{src: now, dst: dt}
	if len(stmts)+len(renamed) > 0 {
		s.log.Info("schema change followed", "table", c.Table, "ddl", c.DDL, "added", names(added), "dropped", names(dropped),
			"changed", names(changed), "renamed", renamed, "statements", len(stmts))
	}
	return nil
}

func names(cols []sqldb.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// columnRenames finds the column renames of an ALTER TABLE statement:
// RENAME COLUMN a TO b, and CHANGE [COLUMN] a b (which may also retype).
func columnRenames(stmt string) [][2]string {
	toks := ddlTokens(stmt)
	var out [][2]string
	up := func(i int) string {
		if i < len(toks) && !toks[i].quoted {
			return strings.ToUpper(toks[i].text)
		}
		return ""
	}
	if up(0) != "ALTER" {
		return nil
	}
	for i := 0; i < len(toks); i++ {
		switch up(i) {
		case "RENAME":
			if up(i+1) == "COLUMN" && i+4 < len(toks) && up(i+3) == "TO" {
				out = append(out, [2]string{toks[i+2].text, toks[i+4].text})
				i += 4
			}
		case "CHANGE":
			j := i + 1
			if up(j) == "COLUMN" {
				j++
			}
			if up(j) == "IF" && up(j+1) == "EXISTS" {
				j += 2
			}
			if j+1 < len(toks) {
				out = append(out, [2]string{toks[j].text, toks[j+1].text})
				i = j + 1
			}
		}
	}
	return out
}

type ddlToken struct {
	text   string
	quoted bool
}

// ddlTokens splits a statement into words and quoted identifiers (strings,
// comments and punctuation left out), keeping their case.
func ddlTokens(stmt string) []ddlToken {
	var out []ddlToken
	r := []rune(stmt)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case c == '`' || c == '"':
			var b strings.Builder
			j := i + 1
			for j < len(r) {
				if r[j] == c {
					if j+1 < len(r) && r[j+1] == c {
						b.WriteRune(c)
						j += 2
						continue
					}
					break
				}
				b.WriteRune(r[j])
				j++
			}
			out = append(out, ddlToken{text: b.String(), quoted: true})
			i = j + 1
		case c == '\'':
			j := i + 1
			for j < len(r) && r[j] != '\'' {
				if r[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '/' && i+1 < len(r) && r[i+1] == '*':
			j := i + 2
			for j+1 < len(r) && !(r[j] == '*' && r[j+1] == '/') {
				j++
			}
			i = j + 2
		case c == '-' && i+1 < len(r) && r[i+1] == '-', c == '#':
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case unicode.IsLetter(c) || c == '_' || unicode.IsDigit(c):
			j := i
			for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_' || r[j] == '$') {
				j++
			}
			out = append(out, ddlToken{text: string(r[i:j])})
			i = j
		default:
			i++
		}
	}
	return out
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

// unsupportedDDL says why a statement cannot be followed by comparing
// columns, or "" when it can: replaced tables and primary-key changes
// leave no trace a column comparison would see. (A renamed table comes
// as a change of its own, with Change.NewTable: see rename.go.)
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
