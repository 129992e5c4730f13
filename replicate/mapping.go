package replicate

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/intercloud/intercloud/replicate/rowfilter"
	"github.com/intercloud/intercloud/sqldb"
)

// InternalPrefix starts the names of replication's own tables (checkpoints,
// change tables); they are never replicated.
const InternalPrefix = rowfilter.InternalPrefix

// TableVar is replaced by the source table's name in Rule.Rename.
const TableVar = rowfilter.TableVar

// Mapping selects the tables a stream replicates and says how each lands on
// the target, like a migration service's table-mapping rules.
//
// A source table is replicated when it matches an Include pattern, matches
// no Exclude pattern and does not start with InternalPrefix. Patterns are
// path.Match globs ("orders_*"); a plain name is taken as is, whether or not
// the source has it yet (a missing one is an error when the stream starts),
// while a glob matches the tables the source has when the stream starts.
//
// The first Rule whose Table pattern matches a table applies to it; a table
// no rule matches is copied unchanged. A mapped table is created on the
// target from the mapped schema, and its rows are read, filtered and
// renamed the same way by the full load, by change data capture and by
// Validate. Checkpoints are unaffected. A schema change of a mapped source
// table adds the new columns on the target (under their mapped names);
// dropped columns stay on the target and are written NULL.
type Mapping struct {
	Include []string
	Exclude []string
	Rules   []Rule
}

// Rule maps the source tables matching Table.
type Rule struct {
	// Table is a path.Match pattern of source table names.
	Table string
	// Rename is the target table's name, TableVar standing for the source
	// table's name ("copy_{table}"); empty keeps the name.
	Rename string
	// Columns renames source columns (source name → target name).
	Columns map[string]string
	// ExcludeColumns are source columns not replicated; a primary-key
	// column cannot be excluded.
	ExcludeColumns []string
	// Filter selects the rows replicated; nil selects all. A row that stops
	// matching after an update is deleted from the target, one that starts
	// matching is written.
	Filter *Filter
	// Types overrides the portable type of source columns (source name →
	// type): the target column is created with it and values are
	// converted to it, a value it cannot hold stopping the table (a
	// TINYINT(1) holding 5 overridden to bool).
	Types map[string]sqldb.Type
}

// Validate checks the patterns, templates and column names.
func (m *Mapping) Validate() error {
	if m == nil {
		return nil
	}
	for i, p := range m.Include {
		if err := rowfilter.CheckPattern(p); err != nil {
			return fmt.Errorf("replicate: mapping: include[%d]: %w", i, err)
		}
	}
	for i, p := range m.Exclude {
		if err := rowfilter.CheckPattern(p); err != nil {
			return fmt.Errorf("replicate: mapping: exclude[%d]: %w", i, err)
		}
	}
	for i, r := range m.Rules {
		if err := r.validate(); err != nil {
			return fmt.Errorf("replicate: mapping: rules[%d]: %w", i, err)
		}
	}
	return nil
}

func (r Rule) validate() error {
	if err := rowfilter.CheckPattern(r.Table); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	if err := rowfilter.CheckRename(r.Rename); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	targets := map[string]string{}
	for from, to := range r.Columns {
		if from == "" || to == "" {
			return errors.New("columns: empty column name")
		}
		if prev, dup := targets[to]; dup {
			a, b := min(prev, from), max(prev, from)
			return fmt.Errorf("columns: %q and %q both renamed to %q", a, b, to)
		}
		targets[to] = from
	}
	for c, t := range r.Types {
		if c == "" {
			return errors.New("types: empty column name")
		}
		if t.Kind == 0 {
			return fmt.Errorf("types: %q: no type", c)
		}
		if slices.Contains(r.ExcludeColumns, c) {
			return fmt.Errorf("types: %q is also excluded", c)
		}
	}
	for _, c := range r.ExcludeColumns {
		if c == "" {
			return errors.New("exclude_columns: empty column name")
		}
		if _, ok := r.Columns[c]; ok {
			return fmt.Errorf("exclude_columns: %q is also renamed", c)
		}
	}
	return nil
}

// Includes reports whether the mapping replicates the table.
func (m *Mapping) Includes(table string) bool {
	if strings.HasPrefix(table, InternalPrefix) {
		return false
	}
	if m == nil {
		return true
	}
	in := false
	for _, p := range m.Include {
		if ok, _ := path.Match(p, table); ok {
			in = true
			break
		}
	}
	if !in {
		return false
	}
	for _, p := range m.Exclude {
		if ok, _ := path.Match(p, table); ok {
			return false
		}
	}
	return true
}

// Rule returns the rule that applies to a source table, nil when none does
// (the table is copied unchanged).
func (m *Mapping) Rule(table string) *Rule {
	if m == nil {
		return nil
	}
	for i := range m.Rules {
		if ok, _ := path.Match(m.Rules[i].Table, table); ok {
			return &m.Rules[i]
		}
	}
	return nil
}

// Target returns the target table's name for a source table.
func (m *Mapping) Target(table string) string {
	r := m.Rule(table)
	if r == nil || r.Rename == "" {
		return table
	}
	return strings.ReplaceAll(r.Rename, TableVar, table)
}

// Tables resolves the mapping against the source database: the plain
// included names in order, then the tables matching each glob (sorted),
// without excluded and internal ones, each once.
func (m *Mapping) Tables(ctx context.Context, db *sqldb.DB) ([]string, error) {
	var listed []string
	var out []string
	seen := map[string]bool{}
	add := func(t string) {
		if !seen[t] && m.Includes(t) {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, p := range m.Include {
		if !rowfilter.IsPattern(p) {
			add(p)
			continue
		}
		if listed == nil {
			var err error
			if listed, err = ListTables(ctx, db); err != nil {
				return nil, err
			}
		}
		for _, t := range listed {
			if ok, _ := path.Match(p, t); ok {
				add(t)
			}
		}
	}
	return out, nil
}

// ListTables returns the base tables of the database's current schema,
// sorted.
func ListTables(ctx context.Context, db *sqldb.DB) ([]string, error) {
	var q string
	switch db.Dialect.Name() {
	case "sqlite":
		q = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
	case "mysql":
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'`
	case "postgres":
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	case "sqlserver":
		q = `SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA = SCHEMA_NAME()`
	default:
		return nil, fmt.Errorf("replicate: list tables: dialect %q not supported", db.Dialect.Name())
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("replicate: list tables of %s: %w", db.Name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("replicate: list tables of %s: %w", db.Name, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replicate: list tables of %s: %w", db.Name, err)
	}
	sort.Strings(out)
	return out, nil
}

// mappedTable is one source table under a rule, resolved against its
// schema.
type mappedTable struct {
	real   sqldb.Table       // the source table as the database has it
	cols   []string          // the source columns replicated, in order
	names  map[string]string // source column → target column, for cols
	filter *compiledFilter   // nil: every row
}

// describeFor is describePair through the mapping: a table no rule applies
// to is described as is (and its mappedTable is nil); a mapped one gets a
// tablePair whose src is the mapped view of the source (target column
// names, excluded columns left out, the source's types and table name).
func describeFor(ctx context.Context, src, dst *sqldb.DB, name string, m *Mapping, create bool) (*tablePair, *mappedTable, error) {
	rule := m.Rule(name)
	if rule == nil {
		tp, err := describePair(ctx, src, dst, name, create)
		return tp, nil, err
	}
	st, err := src.Dialect.Describe(ctx, src, name)
	if err != nil {
		if errors.Is(err, sqldb.ErrNoTable) {
			return nil, nil, permanent(fmt.Errorf("replicate: source table %q does not exist", name))
		}
		return nil, nil, fmt.Errorf("replicate: describe source %s: %w", name, err)
	}
	if len(st.PrimaryKey) == 0 {
		return nil, nil, permanent(fmt.Errorf("replicate: table %q %w", name, ErrNoPrimaryKey))
	}
	mt, view, err := mapTable(st, rule)
	if err != nil {
		return nil, nil, permanent(err)
	}
	if err := checkTypes(st, view.Columns, dst.Dialect); err != nil {
		return nil, nil, err
	}
	target := m.Target(name)
	view.Name = target
	dt, err := dst.Dialect.Describe(ctx, dst, target)
	if errors.Is(err, sqldb.ErrNoTable) && create {
		if err := dst.EnsureTable(ctx, view); err != nil {
			return nil, nil, fmt.Errorf("replicate: create target %s: %w", target, err)
		}
		dt, err = dst.Dialect.Describe(ctx, dst, target)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("replicate: describe target %s: %w", target, err)
	}
	if len(dt.PrimaryKey) == 0 {
		return nil, nil, permanent(fmt.Errorf("replicate: target table %q %w", target, ErrNoPrimaryKey))
	}
	if !slices.Equal(dt.PrimaryKey, view.PrimaryKey) {
		return nil, nil, permanent(fmt.Errorf("replicate: table %q → %q: target primary key (%s) differs from the mapped source's (%s)",
			name, target, strings.Join(dt.PrimaryKey, ", "), strings.Join(view.PrimaryKey, ", ")))
	}
	if create {
		if added, err := addMissingColumns(ctx, dst, view, dt); err != nil {
			return nil, nil, err
		} else if added {
			if dt, err = dst.Dialect.Describe(ctx, dst, target); err != nil {
				return nil, nil, fmt.Errorf("replicate: describe target %s: %w", target, err)
			}
		}
	}
	for _, c := range view.Columns {
		if _, ok := dt.Column(c.Name); !ok {
			return nil, nil, permanent(fmt.Errorf("replicate: table %q → %q: target has no column %q", name, target, c.Name))
		}
	}
	view.Name = name
	return &tablePair{src: view, dst: dt}, mt, nil
}

// mapTable applies a rule to a source schema: what is read, and the view
// of it under target names.
func mapTable(st sqldb.Table, r *Rule) (*mappedTable, sqldb.Table, error) {
	mt := &mappedTable{real: st, names: map[string]string{}}
	view := sqldb.Table{Name: st.Name}
	used := map[string]string{}
	for _, c := range st.Columns {
		if slices.Contains(r.ExcludeColumns, c.Name) {
			if st.IsPrimaryKey(c.Name) {
				return nil, view, fmt.Errorf("replicate: table %q: primary-key column %q cannot be excluded", st.Name, c.Name)
			}
			continue
		}
		to := c.Name
		if n, ok := r.Columns[c.Name]; ok {
			to = n
		}
		if prev, dup := used[to]; dup {
			return nil, view, fmt.Errorf("replicate: table %q: columns %q and %q both map to %q", st.Name, prev, c.Name, to)
		}
		used[to] = c.Name
		mt.cols = append(mt.cols, c.Name)
		mt.names[c.Name] = to
		vc := c
		vc.Name = to
		if t, ok := r.Types[c.Name]; ok {
			vc.Type, vc.Default = t, nil
		}
		view.Columns = append(view.Columns, vc)
	}
	for _, k := range st.PrimaryKey {
		view.PrimaryKey = append(view.PrimaryKey, mt.names[k])
	}
	if r.Filter != nil {
		f, err := compileFilter(r.Filter, st)
		if err != nil {
			return nil, view, fmt.Errorf("replicate: table %q: %w", st.Name, err)
		}
		mt.filter = f
	}
	return mt, view, nil
}

// mapRow renames a source row image to target columns, leaving out the
// excluded ones.
func (mt *mappedTable) mapRow(row map[string]any) map[string]any {
	out := make(map[string]any, len(mt.cols))
	for _, c := range mt.cols {
		if v, ok := row[c]; ok {
			out[mt.names[c]] = v
		}
	}
	return out
}

// mapChange maps one change of the table: an upsert whose row does not
// pass the filter becomes a delete of its key (the row may have left the
// filtered set; deleting a missing row does nothing).
func (mt *mappedTable) mapChange(c Change) (Change, error) {
	if c.Op != OpUpsert {
		return c, nil
	}
	if mt.filter != nil {
		ok, err := mt.filter.match(c.Row)
		if err != nil {
			return c, fmt.Errorf("replicate: %s: %w", mt.real.Name, err)
		}
		if !ok {
			return Change{Table: c.Table, Op: OpDelete, Key: c.Key, TraceID: c.TraceID}, nil
		}
	}
	c.Row = mt.mapRow(c.Row)
	return c, nil
}

// mapChanges maps the changes of mapped tables; others pass unchanged.
func mapChanges(maps map[string]*mappedTable, changes []Change) ([]Change, error) {
	if len(maps) == 0 {
		return changes, nil
	}
	out := make([]Change, len(changes))
	for i, c := range changes {
		mt := maps[c.Table]
		if mt == nil {
			out[i] = c
			continue
		}
		var err error
		if out[i], err = mt.mapChange(c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readQuery builds the source query of a mapped table's rows after and up
// to keys (nil = unbounded), filtered, in key order, with an optional
// limit. It reads mt.cols.
func (mt *mappedTable) readQuery(d sqldb.Dialect, after, upTo []any, limit int) (string, []any, error) {
	a := &args{d: d}
	t := mt.real
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
	if mt.filter != nil {
		f, err := mt.filter.sql(d, a)
		if err != nil {
			return "", nil, fmt.Errorf("replicate: %s: %w", t.Name, err)
		}
		where = append(where, f)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %s", sqldb.SelectList(d, t, mt.cols), d.Quote(t.Name))
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY " + sqldb.QuoteList(d, t.PrimaryKey))
	if limit > 0 {
		b.WriteString(sqldb.Limit(d, limit))
	}
	return b.String(), a.vals, nil
}

// count returns the source rows that pass the filter.
func (mt *mappedTable) count(ctx context.Context, db *sqldb.DB) (int64, error) {
	a := &args{d: db.Dialect}
	q := "SELECT COUNT(*) FROM " + db.Dialect.Quote(mt.real.Name)
	if mt.filter != nil {
		f, err := mt.filter.sql(db.Dialect, a)
		if err != nil {
			return 0, fmt.Errorf("replicate: %s: %w", mt.real.Name, err)
		}
		q += " WHERE " + f
	}
	var n int64
	err := db.QueryRowContext(ctx, q, a.vals...).Scan(&n)
	return n, err
}

// rowChanges turns rows read by readQuery into mapped upserts.
func (mt *mappedTable) rowChanges(rows []scannedRow) ([]Change, error) {
	changes := make([]Change, len(rows))
	for i, r := range rows {
		key, err := keyOf(mt.real, mt.cols, r)
		if err != nil {
			return nil, err
		}
		row := make(map[string]any, len(mt.cols))
		for j, c := range mt.cols {
			row[mt.names[c]] = r[j]
		}
		changes[i] = Change{Table: mt.real.Name, Op: OpUpsert, Key: key, Row: row, TraceID: traceID(row)}
	}
	return changes, nil
}

// followSchema follows a schema change on the target. For a mapped table
// the mapping is resolved again against the source's new schema: new
// columns are added on the target under their mapped names; dropped ones
// stay there and are written NULL.
func (a *applier) followSchema(ctx context.Context, c Change) error {
	if _, ok := a.w.tables[c.Table]; !ok {
		return a.created(ctx, c)
	}
	if _, ok := a.maps[c.Table]; !ok {
		return a.applySchema(ctx, c)
	}
	if c.DDL != "" {
		if why := unsupportedDDL(c.DDL); why != "" {
			return fmt.Errorf("replicate: table %q: schema change %q: %s: %w", c.Table, c.DDL, why, errNotFollowed)
		}
	}
	tp, mt, err := describeFor(ctx, a.s.cfg.Source, a.s.cfg.Target, c.Table, a.s.cfg.Mapping, true)
	if err != nil {
		return err
	}
	a.w.tables[c.Table], a.maps[c.Table] = tp, mt
	a.s.log.Info("schema change of a mapped table followed", "table", c.Table, "target", tp.dst.Name, "ddl", c.DDL)
	return nil
}

// ValidateMapping is Validate through a mapping: it compares the tables
// the mapping selects from src (Mapping.Tables) with their mapped target
// tables, reading only the source rows that pass a rule's filter and
// comparing the replicated columns under their target names.
func ValidateMapping(ctx context.Context, src, dst *sqldb.DB, m *Mapping, chunk int) (Report, error) {
	return ValidateMappingWith(ctx, src, dst, m, ValidateOptions{Chunk: chunk})
}

// ValidateMappingWith is ValidateMapping with options.
func ValidateMappingWith(ctx context.Context, src, dst *sqldb.DB, m *Mapping, opts ValidateOptions) (Report, error) {
	opts = opts.withDefaults()
	tables, err := m.Tables(ctx, src)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	for _, name := range tables {
		var tr TableReport
		if m.Rule(name) == nil {
			tr, err = validateTable(ctx, src, dst, name, opts)
		} else {
			tr, err = validateMapped(ctx, src, dst, m, name, opts)
		}
		if err != nil {
			return Report{}, err
		}
		rep.Tables = append(rep.Tables, tr)
	}
	return rep, nil
}

func validateMapped(ctx context.Context, src, dst *sqldb.DB, m *Mapping, name string, opts ValidateOptions) (TableReport, error) {
	chunk := opts.Chunk
	tr := TableReport{Table: name}
	if t := m.Target(name); t != name {
		tr.Target = t
	}
	tp, mt, err := describeFor(ctx, src, dst, name, m, false)
	if errors.Is(err, sqldb.ErrNoTable) {
		// Count what would be replicated: map against the source alone.
		st, err := src.Dialect.Describe(ctx, src, name)
		if err != nil {
			return tr, fmt.Errorf("replicate: validate %s: %w", name, err)
		}
		mt, _, err := mapTable(st, m.Rule(name))
		if err != nil {
			return tr, fmt.Errorf("replicate: validate: %w", err)
		}
		n, err := mt.count(ctx, src)
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
	if tr.SourceRows, err = mt.count(ctx, src); err != nil {
		return tr, fmt.Errorf("replicate: validate %s: count source: %w", name, err)
	}
	if tr.TargetRows, err = countRows(ctx, dst, dst.Dialect, tp.dst.Name); err != nil {
		return tr, fmt.Errorf("replicate: validate %s: count target: %w", tp.dst.Name, err)
	}
	tr.CountsDiffer = tr.SourceRows != tr.TargetRows
	cols := tp.src.ColumnNames() // target names, in mt.cols order
	var from []any
	for {
		q, qargs, err := mt.readQuery(src.Dialect, from, nil, chunk)
		if err != nil {
			return tr, err
		}
		srows, err := readSourceRows(ctx, src, tp.src, cols, q, qargs)
		if err != nil {
			return tr, fmt.Errorf("replicate: validate %s: read source: %w", name, err)
		}
		var to []any
		if len(srows) == chunk {
			if to, err = keyOf(mt.real, mt.cols, srows[len(srows)-1]); err != nil {
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
			return tr, fmt.Errorf("replicate: validate %s: read target: %w", tp.dst.Name, err)
		}
		tsum, err := checksum(tp.dst, cols, trows)
		if err != nil {
			return tr, err
		}
		if ssum != tsum || len(srows) != len(trows) {
			rd := RangeDiff{From: from, To: to, SourceRows: len(srows), TargetRows: len(trows)}
			if err := diffRows(&tr, &rd, tp, mt, cols, srows, trows, opts.MaxRows); err != nil {
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
