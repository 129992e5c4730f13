package pollsrc

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// dialect is what differs between the supported databases.
type dialect struct {
	logDDL  string
	markDDL string
	addCol  string // adds the origin column to a change table without it
	session string // the id of the session (connection) running a statement
	mark    string // sets the session's origin (bind: the origin)
	jsonArr string // function building a JSON array
	hex     func(string) string
	// key, when set, builds a row's key text itself (instead of jsonArr
	// over the key columns, BLOBs through hex).
	key      func(def sqldb.Table, q func(string) string, row string) string
	triggers func(def sqldb.Table, q func(string) string, key func(row string) string) []string
	// readTx are the options of the read transaction (nil: the
	// driver's default).
	readTx *sql.TxOptions
	// count counts the capture triggers of a table (binds: the table,
	// then the trigger names: one, or want of them).
	count string
	want  int
}

// installed reports whether a table's capture triggers all exist.
func (d dialect) installed(ctx context.Context, tx *sql.Tx, tbl string) (bool, error) {
	if d.count == "" {
		return false, nil
	}
	var n int
	args := []any{tbl, "_ic_poll_" + tbl}
	if d.want == 3 {
		args = []any{tbl, "_ic_poll_" + tbl + "_ins", "_ic_poll_" + tbl + "_upd", "_ic_poll_" + tbl + "_del"}
	}
	if err := tx.QueryRowContext(ctx, d.count, args...).Scan(&n); err != nil {
		return false, err
	}
	return n == d.want, nil
}

var dialects = map[string]dialect{
	"sqlite": {
		logDDL: `CREATE TABLE IF NOT EXISTS ` + LogTable + ` (seq INTEGER PRIMARY KEY AUTOINCREMENT,
			tbl TEXT NOT NULL, pk TEXT NOT NULL, op TEXT NOT NULL, origin TEXT NOT NULL DEFAULT '',
			at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))`,
		markDDL: `CREATE TABLE IF NOT EXISTS ` + MarkTable + ` (conn INTEGER PRIMARY KEY, origin TEXT NOT NULL)`,
		addCol:  `ALTER TABLE ` + LogTable + ` ADD COLUMN origin TEXT NOT NULL DEFAULT ''`,
		session: "0", // one writer at a time
		mark:    `INSERT INTO ` + MarkTable + ` (conn, origin) VALUES (0, ?) ON CONFLICT (conn) DO UPDATE SET origin = excluded.origin`,
		jsonArr: "json_array",
		hex:     func(x string) string { return "hex(" + x + ")" },
		triggers: func(def sqldb.Table, q func(string) string, key func(string) string) []string {
			ins := func(row, op string) string {
				return fmt.Sprintf("INSERT INTO %s (tbl, pk, op, origin) VALUES (%s, %s, '%s', %s);", LogTable, sqlString(def.Name), key(row), op, originOf("0"))
			}
			name := func(s string) string { return q("_ic_poll_" + def.Name + "_" + s) }
			return []string{
				"DROP TRIGGER IF EXISTS " + name("ins"),
				"DROP TRIGGER IF EXISTS " + name("upd"),
				"DROP TRIGGER IF EXISTS " + name("del"),
				fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s BEGIN %s END", name("ins"), q(def.Name), ins("NEW", "I")),
				fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s BEGIN %s %s END", name("upd"), q(def.Name),
					fmt.Sprintf("INSERT INTO %s (tbl, pk, op, origin) SELECT %s, %s, 'D', %s WHERE %s;", LogTable, sqlString(def.Name), key("OLD"), originOf("0"), keyChanged(def, q, " IS NOT ")),
					ins("NEW", "U")),
				fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s BEGIN %s END", name("del"), q(def.Name), ins("OLD", "D")),
			}
		},
	},
	"mysql": {
		logDDL: `CREATE TABLE IF NOT EXISTS ` + LogTable + ` (seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
			tbl VARCHAR(255) NOT NULL, pk TEXT NOT NULL, op CHAR(1) NOT NULL, origin VARCHAR(64) NOT NULL DEFAULT '',
			at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
		markDDL: `CREATE TABLE IF NOT EXISTS ` + MarkTable + ` (conn BIGINT UNSIGNED NOT NULL PRIMARY KEY, origin VARCHAR(64) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
		addCol:  `ALTER TABLE ` + LogTable + ` ADD COLUMN origin VARCHAR(64) NOT NULL DEFAULT ''`,
		session: "CONNECTION_ID()",
		mark:    `INSERT INTO ` + MarkTable + ` (conn, origin) VALUES (CONNECTION_ID(), ?) ON DUPLICATE KEY UPDATE origin = VALUES(origin)`,
		jsonArr: "JSON_ARRAY",
		readTx:  &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead},
		count: `SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ?
			AND TRIGGER_NAME IN (?, ?, ?)`,
		want: 3,
		hex:  func(x string) string { return "HEX(" + x + ")" },
		triggers: func(def sqldb.Table, q func(string) string, key func(string) string) []string {
			ins := func(row, op string) string {
				return fmt.Sprintf("INSERT INTO %s (tbl, pk, op, origin) VALUES (%s, %s, '%s', %s);", LogTable, sqlString(def.Name), key(row), op, originOf("CONNECTION_ID()"))
			}
			name := func(s string) string { return q("_ic_poll_" + def.Name + "_" + s) }
			return []string{
				"DROP TRIGGER IF EXISTS " + name("ins"),
				"DROP TRIGGER IF EXISTS " + name("upd"),
				"DROP TRIGGER IF EXISTS " + name("del"),
				fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s FOR EACH ROW %s", name("ins"), q(def.Name), strings.TrimSuffix(ins("NEW", "I"), ";")),
				fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s FOR EACH ROW BEGIN IF %s THEN %s END IF; %s END", name("upd"), q(def.Name),
					keyChangedMy(def, q), ins("OLD", "D"), ins("NEW", "U")),
				fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s FOR EACH ROW %s", name("del"), q(def.Name), strings.TrimSuffix(ins("OLD", "D"), ";")),
			}
		},
	},
	"postgres": {
		logDDL: `CREATE TABLE IF NOT EXISTS ` + LogTable + ` (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			tbl TEXT NOT NULL, pk TEXT NOT NULL, op CHAR(1) NOT NULL, origin TEXT NOT NULL DEFAULT '',
			at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())`,
		markDDL: `CREATE TABLE IF NOT EXISTS ` + MarkTable + ` (conn BIGINT PRIMARY KEY, origin TEXT NOT NULL)`,
		addCol:  `ALTER TABLE ` + LogTable + ` ADD COLUMN IF NOT EXISTS origin TEXT NOT NULL DEFAULT ''`,
		session: "pg_backend_pid()",
		mark:    `INSERT INTO ` + MarkTable + ` (conn, origin) VALUES (pg_backend_pid(), $1) ON CONFLICT (conn) DO UPDATE SET origin = EXCLUDED.origin`,
		jsonArr: "json_build_array",
		readTx:  &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead},
		count: `SELECT COUNT(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
			WHERE c.relname = $1 AND pg_table_is_visible(c.oid) AND t.tgname = $2`,
		want: 1,
		hex:  func(x string) string { return "encode(" + x + ", 'hex')" },
		triggers: func(def sqldb.Table, q func(string) string, key func(string) string) []string {
			fn := q("_ic_poll_" + def.Name)
			ins := func(row, op string) string {
				return fmt.Sprintf("INSERT INTO %s (tbl, pk, op, origin) VALUES (%s, %s::text, %s, %s);", LogTable, sqlString(def.Name), key(row), op, originOf("pg_backend_pid()"))
			}
			return []string{
				fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (%s)) THEN %s END IF;
  IF TG_OP <> 'DELETE' THEN %s END IF;
  RETURN NULL;
END $f$`, fn, keyChanged(def, q, " IS DISTINCT FROM "), ins("OLD", "'D'"), ins("NEW", "left(TG_OP, 1)")),
				fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", fn, q(def.Name)),
				fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()", fn, q(def.Name), fn),
			}
		},
	},
	// SQL Server and Azure SQL Database: statement-level AFTER triggers
	// over the inserted and deleted pseudo-tables; the key text is built
	// by hand (JSON_ARRAY is SQL Server 2022 and later); the read runs in
	// READ COMMITTED (REPEATABLE READ would hold shared locks against the
	// writers; under read committed snapshot, an uncommitted change is a
	// gap the hold-back waits for, without it the read waits for its
	// commit). IDENTITY values may jump after a server restart (its
	// identity cache): a gap the hold-back passes once.
	"sqlserver": {
		logDDL: `IF OBJECT_ID(N'` + LogTable + `', N'U') IS NULL CREATE TABLE ` + LogTable + ` (seq BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
			tbl NVARCHAR(128) NOT NULL, pk NVARCHAR(MAX) NOT NULL, op CHAR(1) NOT NULL, origin NVARCHAR(64) NOT NULL DEFAULT N'',
			at DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME())`,
		markDDL: `IF OBJECT_ID(N'` + MarkTable + `', N'U') IS NULL CREATE TABLE ` + MarkTable + ` (conn INT NOT NULL PRIMARY KEY, origin NVARCHAR(64) NOT NULL)`,
		addCol:  `ALTER TABLE ` + LogTable + ` ADD origin NVARCHAR(64) NOT NULL DEFAULT N''`,
		session: "@@SPID",
		mark:    `DELETE FROM ` + MarkTable + ` WHERE conn = @@SPID; INSERT INTO ` + MarkTable + ` (conn, origin) VALUES (@@SPID, @p1)`,
		key:     sqlServerKey,
		readTx:  &sql.TxOptions{Isolation: sql.LevelReadCommitted},
		count:   `SELECT COUNT(*) FROM sys.triggers WHERE parent_id = OBJECT_ID(QUOTENAME(@p1)) AND name = @p2`,
		want:    1,
		triggers: func(def sqldb.Table, q func(string) string, key func(string) string) []string {
			name := q("_ic_poll_" + def.Name)
			var on []string
			for _, k := range def.PrimaryKey {
				on = append(on, "i."+q(k)+" = d."+q(k))
			}
			return []string{fmt.Sprintf(`CREATE OR ALTER TRIGGER %s ON %s AFTER INSERT, UPDATE, DELETE AS
BEGIN
  SET NOCOUNT ON;
  DECLARE @origin NVARCHAR(64) = %s;
  INSERT INTO %s (tbl, pk, op, origin)
    SELECT %s, %s, 'D', @origin FROM deleted d WHERE NOT EXISTS (SELECT 1 FROM inserted i WHERE %s);
  INSERT INTO %s (tbl, pk, op, origin)
    SELECT %s, %s, CASE WHEN EXISTS (SELECT 1 FROM deleted) THEN 'U' ELSE 'I' END, @origin FROM inserted i;
END`, name, q(def.Name), originOf("@@SPID"), LogTable, "N"+sqlString(def.Name), key("d"), strings.Join(on, " AND "),
				LogTable, "N"+sqlString(def.Name), key("i"))}
		},
	},
}

// originOf is the origin of the session whose id session gives: what the
// applier's Marker set in its transaction, ” for every other writer.
func originOf(session string) string {
	return "COALESCE((SELECT origin FROM " + MarkTable + " WHERE conn = " + session + "), '')"
}

func sqlString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func keyChanged(def sqldb.Table, q func(string) string, op string) string {
	var ors []string
	for _, k := range def.PrimaryKey {
		ors = append(ors, "OLD."+q(k)+op+"NEW."+q(k))
	}
	return strings.Join(ors, " OR ")
}

func keyChangedMy(def sqldb.Table, q func(string) string) string {
	var ors []string
	for _, k := range def.PrimaryKey {
		ors = append(ors, "NOT (OLD."+q(k)+" <=> NEW."+q(k)+")")
	}
	return strings.Join(ors, " OR ")
}

func dialectOf(db *sqldb.DB) (dialect, error) {
	d, ok := dialects[db.Dialect.Name()]
	if !ok {
		return d, replicate.Permanent(fmt.Errorf("pollsrc: database %s is %s; the poll source supports sqlite, mysql, postgres and sqlserver", db.Name, db.Dialect.Name()))
	}
	return d, nil
}

// keyText builds the key text of a row (row is NEW, OLD, or an alias) of
// a table: a JSON array of its key values, BLOBs as hex strings.
func (d dialect) keyText(def sqldb.Table, q func(string) string, row string) string {
	if d.key != nil {
		return d.key(def, q, row)
	}
	parts := make([]string, len(def.PrimaryKey))
	for i, k := range def.PrimaryKey {
		c, _ := def.Column(k)
		parts[i] = row + "." + q(k)
		if c.Type.Kind == sqldb.KindBytes {
			parts[i] = d.hex(parts[i])
		}
	}
	return d.jsonArr + "(" + strings.Join(parts, ", ") + ")"
}

// sqlServerKey is SQL Server's key text: numbers as they are, strings
// JSON-escaped (STRING_ESCAPE), binary as hex (CONVERT style 2).
func sqlServerKey(def sqldb.Table, q func(string) string, row string) string {
	parts := make([]string, len(def.PrimaryKey))
	for i, k := range def.PrimaryKey {
		c, _ := def.Column(k)
		col := row + "." + q(k)
		switch c.Type.Kind {
		case sqldb.KindInt, sqldb.KindDecimal:
			parts[i] = "CAST(" + col + " AS NVARCHAR(50))"
		case sqldb.KindBytes:
			parts[i] = `N'"' + CONVERT(NVARCHAR(MAX), CONVERT(VARCHAR(MAX), ` + col + `, 2)) + N'"'`
		default:
			parts[i] = `N'"' + STRING_ESCAPE(CAST(` + col + ` AS NVARCHAR(MAX)), 'json') + N'"'`
		}
	}
	return "N'[' + " + strings.Join(parts, " + N',' + ") + " + N']'"
}
