package replicate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/intercloud/intercloud/sqldb"
)

// SchemaMode says which of the source's schema objects a stream creates
// on the target.
type SchemaMode string

// The schema modes.
const (
	// SchemaTables (the default) creates each table with its columns and
	// primary key, like a migration service.
	SchemaTables SchemaMode = "tables"
	// SchemaFull also creates, once the full load is done, the source's
	// secondary indexes (unique or not), column defaults and foreign keys.
	// On a PostgreSQL target foreign keys are DEFERRABLE INITIALLY
	// DEFERRED, so the order changes are applied in within a source
	// transaction cannot break them, and created NOT VALID, then validated
	// (a failed validation leaves them NOT VALID, and says so). What
	// cannot be converted is listed in Status.Schema and logged.
	SchemaFull SchemaMode = "full"
)

// Validate checks the mode; empty means SchemaTables.
func (m SchemaMode) Validate() error {
	switch m {
	case "", SchemaTables, SchemaFull:
		return nil
	}
	return fmt.Errorf("schema %q is neither %q nor %q", string(m), SchemaTables, SchemaFull)
}

// SchemaReport is what schema: full did on the target.
type SchemaReport struct {
	// Created counts the objects created (or found already there).
	Created int `json:"created"`
	// NotConverted are the objects the target did not get, or got only
	// in part (a foreign key left NOT VALID), and why.
	NotConverted []SchemaIssue `json:"not_converted,omitempty"`
}

// SchemaIssue is a source schema object the target did not get as it is.
type SchemaIssue struct {
	Table  string `json:"table"`
	Kind   string `json:"kind"` // "index", "default", "foreign key"
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// srcIndex is a secondary index of a source table.
type srcIndex struct {
	name   string
	unique bool
	cols   []string
	why    string // set when it cannot be converted
}

// srcDefault is a column default: expr is portable SQL (a quoted string,
// a number, CURRENT_TIMESTAMP), or why says why there is none.
type srcDefault struct {
	col, expr, why string
}

// srcFK is a foreign key of a source table.
type srcFK struct {
	name               string
	cols               []string
	refTable           string
	refCols            []string
	onDelete, onUpdate string // SQL actions: "NO ACTION", "CASCADE", ...
}

type srcObjects struct {
	indexes  []srcIndex
	defaults []srcDefault
	fks      []srcFK
}

// readObjects reads a source table's secondary indexes, defaults and
// foreign keys.
func readObjects(ctx context.Context, db *sqldb.DB, table string) (srcObjects, error) {
	var o srcObjects
	var err error
	switch db.Dialect.Name() {
	case "mysql":
		err = readMySQLObjects(ctx, db, table, &o)
	case "postgres":
		err = readPostgresObjects(ctx, db, table, &o)
	case "sqlite":
		err = readSQLiteObjects(ctx, db, table, &o)
	default:
		return o, fmt.Errorf("replicate: schema: full: reading %s schema objects is not supported", db.Dialect.Name())
	}
	if err != nil {
		return o, fmt.Errorf("replicate: schema objects of %s: %w", table, err)
	}
	return o, nil
}

// scanRows runs a query and calls fn for each row.
func scanRows(ctx context.Context, db *sqldb.DB, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// addIndexColumn appends a column to the last index when it has that name,
// or starts a new one.
func addIndexColumn(o *srcObjects, name string, unique bool, col string, why string) {
	if n := len(o.indexes); n > 0 && o.indexes[n-1].name == name {
		ix := &o.indexes[n-1]
		ix.cols = append(ix.cols, col)
		if ix.why == "" {
			ix.why = why
		}
		return
	}
	o.indexes = append(o.indexes, srcIndex{name: name, unique: unique, cols: []string{col}, why: why})
}

// addFKColumn appends a column pair to the last foreign key when it has
// that name, or starts a new one.
func addFKColumn(o *srcObjects, fk srcFK, col, refCol string) {
	if n := len(o.fks); n > 0 && o.fks[n-1].name == fk.name {
		o.fks[n-1].cols = append(o.fks[n-1].cols, col)
		o.fks[n-1].refCols = append(o.fks[n-1].refCols, refCol)
		return
	}
	fk.cols, fk.refCols = []string{col}, []string{refCol}
	o.fks = append(o.fks, fk)
}

func readMySQLObjects(ctx context.Context, db *sqldb.DB, table string, o *srcObjects) error {
	err := scanRows(ctx, db, `SELECT INDEX_NAME, NON_UNIQUE, COALESCE(COLUMN_NAME, ''), INDEX_TYPE FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME <> 'PRIMARY' ORDER BY INDEX_NAME, SEQ_IN_INDEX`, []any{table}, func(r *sql.Rows) error {
		var name, col, typ string
		var nonUnique int
		if err := r.Scan(&name, &nonUnique, &col, &typ); err != nil {
			return err
		}
		why := ""
		switch {
		case col == "":
			why = "an index on an expression"
		case typ != "BTREE" && typ != "HASH":
			why = "a " + typ + " index"
		}
		addIndexColumn(o, name, nonUnique == 0, col, why)
		return nil
	})
	if err != nil {
		return err
	}
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return err
	}
	mariadb := strings.Contains(strings.ToLower(version), "mariadb")
	err = scanRows(ctx, db, `SELECT COLUMN_NAME, COLUMN_DEFAULT, EXTRA FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_DEFAULT IS NOT NULL ORDER BY ORDINAL_POSITION`, []any{table}, func(r *sql.Rows) error {
		var col, def, extra string
		if err := r.Scan(&col, &def, &extra); err != nil {
			return err
		}
		// MariaDB shows literals as SQL (quoted strings, numbers, NULL)
		// and expressions as they are; MySQL shows literals as their text
		// and marks expressions DEFAULT_GENERATED.
		expression := strings.Contains(strings.ToUpper(extra), "DEFAULT_GENERATED")
		switch {
		case mariadb && def == "NULL":
			return nil
		case mariadb:
			o.defaults = append(o.defaults, portableDefault(col, def))
		case expression:
			o.defaults = append(o.defaults, portableDefault(col, def))
		default:
			o.defaults = append(o.defaults, srcDefault{col: col, expr: quoteString(def)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return scanRows(ctx, db, `SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE
FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r
  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME
WHERE k.TABLE_SCHEMA = DATABASE() AND k.TABLE_NAME = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL
ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION`, []any{table}, func(r *sql.Rows) error {
		var fk srcFK
		var col, refCol string
		if err := r.Scan(&fk.name, &col, &fk.refTable, &refCol, &fk.onDelete, &fk.onUpdate); err != nil {
			return err
		}
		addFKColumn(o, fk, col, refCol)
		return nil
	})
}

func readPostgresObjects(ctx context.Context, db *sqldb.DB, table string, o *srcObjects) error {
	err := scanRows(ctx, db, `SELECT ic.relname, i.indisunique, COALESCE(a.attname, ''), (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL), am.amname
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum AND k.attnum > 0
WHERE n.nspname = current_schema() AND c.relname = $1 AND NOT i.indisprimary
ORDER BY ic.relname, k.ord`, []any{table}, func(r *sql.Rows) error {
		var name, col, am string
		var unique, partial bool
		if err := r.Scan(&name, &unique, &col, &partial, &am); err != nil {
			return err
		}
		why := ""
		switch {
		case partial || col == "":
			why = "an index on an expression or with a WHERE clause"
		case am != "btree" && am != "hash":
			why = "a " + am + " index"
		}
		addIndexColumn(o, name, unique, col, why)
		return nil
	})
	if err != nil {
		return err
	}
	err = scanRows(ctx, db, `SELECT column_name, column_default FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = $1 AND column_default IS NOT NULL ORDER BY ordinal_position`, []any{table}, func(r *sql.Rows) error {
		var col, def string
		if err := r.Scan(&col, &def); err != nil {
			return err
		}
		if strings.HasPrefix(def, "nextval(") {
			return nil // a serial column: the source numbers its rows
		}
		o.defaults = append(o.defaults, portableDefault(col, def))
		return nil
	})
	if err != nil {
		return err
	}
	actions := map[string]string{"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
	return scanRows(ctx, db, `SELECT con.conname, a.attname, rc.relname, ra.attname, con.confdeltype, con.confupdtype
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = con.confrelid
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(att, ratt, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.att
JOIN pg_attribute ra ON ra.attrelid = rc.oid AND ra.attnum = k.ratt
WHERE con.contype = 'f' AND n.nspname = current_schema() AND c.relname = $1 ORDER BY con.conname, k.ord`, []any{table}, func(r *sql.Rows) error {
		var fk srcFK
		var col, refCol, del, upd string
		if err := r.Scan(&fk.name, &col, &fk.refTable, &refCol, &del, &upd); err != nil {
			return err
		}
		fk.onDelete, fk.onUpdate = actions[del], actions[upd]
		addFKColumn(o, fk, col, refCol)
		return nil
	})
}

func readSQLiteObjects(ctx context.Context, db *sqldb.DB, table string, o *srcObjects) error {
	type ix struct {
		name   string
		unique bool
	}
	var list []ix
	err := scanRows(ctx, db, `SELECT name, "unique", origin, partial FROM pragma_index_list(?) ORDER BY name`, []any{table}, func(r *sql.Rows) error {
		var name, origin string
		var unique, partial int
		if err := r.Scan(&name, &unique, &origin, &partial); err != nil {
			return err
		}
		if origin != "pk" {
			list = append(list, ix{name, unique != 0})
			if partial != 0 {
				o.indexes = append(o.indexes, srcIndex{name: name, why: "an index with a WHERE clause"})
				list = list[:len(list)-1]
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, x := range list {
		err := scanRows(ctx, db, `SELECT COALESCE(name, '') FROM pragma_index_info(?) ORDER BY seqno`, []any{x.name}, func(r *sql.Rows) error {
			var col string
			if err := r.Scan(&col); err != nil {
				return err
			}
			why := ""
			if col == "" {
				why = "an index on an expression"
			}
			addIndexColumn(o, x.name, x.unique, col, why)
			return nil
		})
		if err != nil {
			return err
		}
	}
	err = scanRows(ctx, db, `SELECT name, dflt_value FROM pragma_table_info(?) WHERE dflt_value IS NOT NULL ORDER BY cid`, []any{table}, func(r *sql.Rows) error {
		var col, def string
		if err := r.Scan(&col, &def); err != nil {
			return err
		}
		if strings.EqualFold(def, "NULL") {
			return nil
		}
		o.defaults = append(o.defaults, portableDefault(col, def))
		return nil
	})
	if err != nil {
		return err
	}
	return scanRows(ctx, db, `SELECT id, "table", "from", COALESCE("to", ''), on_delete, on_update FROM pragma_foreign_key_list(?) ORDER BY id, seq`, []any{table}, func(r *sql.Rows) error {
		var id int
		var fk srcFK
		var col, refCol string
		if err := r.Scan(&id, &fk.refTable, &col, &refCol, &fk.onDelete, &fk.onUpdate); err != nil {
			return err
		}
		fk.name = table + "_fk" + strconv.Itoa(id)
		addFKColumn(o, fk, col, refCol)
		return nil
	})
}

var (
	numberRE  = regexp.MustCompile(`^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`)
	pgCastRE  = regexp.MustCompile(`^('(?:[^']|'')*')::[a-z0-9_ ]+(?:\[\])?(?:\([0-9, ]+\))?$`)
	nowExprRE = regexp.MustCompile(`(?i)^(current_timestamp|now|localtimestamp|transaction_timestamp)(\s*\(\s*[0-6]?\s*\))?$`)
)

// portableDefault turns a default as a source shows it (SQL text) into
// SQL any target understands: a quoted string, a number, TRUE/FALSE,
// CURRENT_TIMESTAMP; anything else is not converted.
func portableDefault(col, def string) srcDefault {
	d := strings.TrimSpace(def)
	for strings.HasPrefix(d, "(") && strings.HasSuffix(d, ")") {
		d = strings.TrimSpace(d[1 : len(d)-1])
	}
	if m := pgCastRE.FindStringSubmatch(d); m != nil {
		d = m[1]
	}
	switch {
	case strings.HasPrefix(d, "'") && strings.HasSuffix(d, "'") && len(d) >= 2:
		inner := d[1 : len(d)-1]
		if strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
			break
		}
		return srcDefault{col: col, expr: quoteString(strings.ReplaceAll(inner, "''", "'"))}
	case numberRE.MatchString(d):
		return srcDefault{col: col, expr: d}
	case strings.EqualFold(d, "true") || strings.EqualFold(d, "false"):
		return srcDefault{col: col, expr: strings.ToUpper(d)}
	case nowExprRE.MatchString(d):
		return srcDefault{col: col, expr: "CURRENT_TIMESTAMP"}
	}
	return srcDefault{col: col, why: fmt.Sprintf("the expression %q has no portable form", def)}
}

// quoteString quotes s as a SQL string literal.
func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// targetIndexName names a target index after its table and the source
// index (index names are per schema in some databases, per table in
// others), within 63 bytes.
func targetIndexName(table, index string) string {
	n := table + "_" + index
	if len(n) <= 63 {
		return n
	}
	h := sha256.Sum256([]byte(n))
	return n[:50] + "_" + hex.EncodeToString(h[:6])
}

// alreadyThere reports whether err says the object exists already.
func alreadyThere(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "already exists") || strings.Contains(msg, "duplicate key name") || strings.Contains(msg, "duplicate foreign key") ||
		strings.Contains(msg, "errno: 121")
}

// createObjects creates the source's indexes, defaults and foreign keys of
// the tables on the target (SchemaFull), and reports what it could not.
func (a *applier) createObjects(ctx context.Context, tables []string) (SchemaReport, error) {
	s := a.s
	src, dst := s.cfg.Source, s.cfg.Target
	d := dst.Dialect
	var rep SchemaReport
	issue := func(table, kind, name, reason string) {
		rep.NotConverted = append(rep.NotConverted, SchemaIssue{Table: table, Kind: kind, Name: name, Reason: reason})
		s.log.Warn("schema object not converted", "table", table, "kind", kind, "name", name, "reason", reason)
	}
	// colsOf maps source columns to the target's, "" when one is not
	// replicated.
	colsOf := func(table string, cols []string) ([]string, string) {
		mt := a.maps[table]
		out := make([]string, len(cols))
		for i, c := range cols {
			out[i] = c
			if mt != nil {
				n, ok := mt.names[c]
				if !ok {
					return nil, fmt.Sprintf("column %s is not replicated (mapping)", c)
				}
				out[i] = n
			}
		}
		return out, ""
	}
	quoteAll := func(cols []string) string {
		q := make([]string, len(cols))
		for i, c := range cols {
			q[i] = d.Quote(c)
		}
		return strings.Join(q, ", ")
	}
	exec := func(q string) error {
		_, err := dst.ExecContext(ctx, q)
		return err
	}
	for _, table := range tables {
		tp := a.w.tables[table]
		if tp == nil || s.isStopped(table) {
			continue
		}
		target := tp.dst.Name
		objs, err := readObjects(ctx, src, table)
		if err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			issue(table, "table", table, err.Error())
			continue
		}
		for _, ix := range objs.indexes {
			if ix.why != "" {
				issue(table, "index", ix.name, ix.why)
				continue
			}
			cols, why := colsOf(table, ix.cols)
			if why != "" {
				issue(table, "index", ix.name, why)
				continue
			}
			kw := "INDEX"
			if ix.unique {
				kw = "UNIQUE INDEX"
			}
			ifNot := ""
			if d.Name() == "postgres" || d.Name() == "sqlite" {
				ifNot = "IF NOT EXISTS "
			}
			q := fmt.Sprintf("CREATE %s %s%s ON %s (%s)", kw, ifNot, d.Quote(targetIndexName(target, ix.name)), d.Quote(target), quoteAll(cols))
			if err := exec(q); err != nil && !alreadyThere(err) {
				if ctx.Err() != nil {
					return rep, err
				}
				issue(table, "index", ix.name, err.Error())
				continue
			}
			rep.Created++
		}
		for _, df := range objs.defaults {
			if df.why != "" {
				issue(table, "default", df.col, df.why)
				continue
			}
			cols, why := colsOf(table, []string{df.col})
			if why != "" {
				continue // the column is not on the target
			}
			var q string
			switch d.Name() {
			case "postgres", "mysql":
				q = fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", d.Quote(target), d.Quote(cols[0]), df.expr)
			case "sqlserver":
				q = fmt.Sprintf("ALTER TABLE %s ADD DEFAULT %s FOR %s", d.Quote(target), df.expr, d.Quote(cols[0]))
			default:
				issue(table, "default", df.col, d.Name()+" cannot change a column's default without rebuilding the table")
				continue
			}
			if err := exec(q); err != nil && !alreadyThere(err) {
				if ctx.Err() != nil {
					return rep, err
				}
				issue(table, "default", df.col, err.Error())
				continue
			}
			rep.Created++
		}
	}
	// Foreign keys last: every table they reference is loaded.
	for _, table := range tables {
		tp := a.w.tables[table]
		if tp == nil || s.isStopped(table) {
			continue
		}
		objs, err := readObjects(ctx, src, table)
		if err != nil {
			continue // reported above
		}
		for _, fk := range objs.fks {
			if d.Name() != "postgres" {
				issue(table, "foreign key", fk.name, d.Name()+" checks foreign keys at once and cannot defer them to commit, so the order changes are applied in could break them")
				continue
			}
			rt := a.w.tables[fk.refTable]
			if rt == nil || !slices.Contains(tables, fk.refTable) {
				issue(table, "foreign key", fk.name, "it references "+fk.refTable+", which is not replicated")
				continue
			}
			cols, why := colsOf(table, fk.cols)
			if why == "" {
				var rc []string
				rc, why = colsOf(fk.refTable, fk.refCols)
				if why == "" {
					err = a.createForeignKey(ctx, tp.dst.Name, rt.dst.Name, fk, cols, rc, quoteAll)
				}
			}
			switch {
			case why != "":
				issue(table, "foreign key", fk.name, why)
			case errors.Is(err, errNotValidated):
				rep.Created++
				issue(table, "foreign key", fk.name, err.Error())
			case err != nil:
				if ctx.Err() != nil {
					return rep, err
				}
				issue(table, "foreign key", fk.name, err.Error())
			default:
				rep.Created++
			}
		}
	}
	return rep, nil
}

var errNotValidated = errors.New("created NOT VALID: the target's existing rows do not satisfy it")

// createForeignKey adds a foreign key on a PostgreSQL target: deferrable
// to commit, NOT VALID, then validated.
func (a *applier) createForeignKey(ctx context.Context, table, refTable string, fk srcFK, cols, refCols []string, quoteAll func([]string) string) error {
	dst := a.s.cfg.Target
	d := dst.Dialect
	var exists bool
	if err := dst.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2)`,
		d.Quote(table), fk.name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		action := func(a string) string {
			if a == "" {
				return "NO ACTION"
			}
			return a
		}
		q := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s) ON DELETE %s ON UPDATE %s DEFERRABLE INITIALLY DEFERRED NOT VALID",
			d.Quote(table), d.Quote(fk.name), quoteAll(cols), d.Quote(refTable), quoteAll(refCols), action(fk.onDelete), action(fk.onUpdate))
		if _, err := dst.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if _, err := dst.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", d.Quote(table), d.Quote(fk.name))); err != nil {
		return fmt.Errorf("%w: %v", errNotValidated, err)
	}
	return nil
}
