package sqlserversrc

import (
	"fmt"

	"github.com/intercloud/intercloud/sqldb"
)

// Every statement the source sends, one constant or function each, so
// the golden test (testdata/sqlserver.golden) covers exactly what runs.

// cdcEnabledSQL says whether CDC is enabled on the current database
// (sys.sp_cdc_enable_db ran).
const cdcEnabledSQL = "SELECT is_cdc_enabled FROM sys.databases WHERE database_id = DB_ID()"

// instanceSQL returns the newest capture instance of a table in the
// current schema (bind: the table).
const instanceSQL = `SELECT TOP (1) ct.capture_instance FROM cdc.change_tables ct
WHERE ct.source_object_id = OBJECT_ID(QUOTENAME(SCHEMA_NAME()) + N'.' + QUOTENAME(@p1)) ORDER BY ct.create_date DESC`

// enableTableSQL enables CDC on a table of the current schema with the
// default capture instance name (schema_table), all columns, no gating
// role (bind: the table). It needs db_owner.
const enableTableSQL = `DECLARE @schema sysname = SCHEMA_NAME();
EXEC sys.sp_cdc_enable_table @source_schema = @schema, @source_name = @p1, @role_name = NULL, @supports_net_changes = 0`

// maxLSNSQL reads the highest LSN CDC has captured.
const maxLSNSQL = "SELECT sys.fn_cdc_get_max_lsn()"

// boundsSQL reads the LSN after a position and the oldest LSN a capture
// instance still holds (binds: the position, the instance).
const boundsSQL = "SELECT sys.fn_cdc_increment_lsn(@p1), sys.fn_cdc_get_min_lsn(@p2)"

// capturedSQL lists the columns a capture instance captures, in order
// (bind: the instance).
const capturedSQL = `SELECT cc.column_name FROM cdc.captured_columns cc
JOIN cdc.change_tables ct ON ct.object_id = cc.object_id
WHERE ct.capture_instance = @p1 ORDER BY cc.column_ordinal`

// tableColumnsSQL lists a table's columns now, in order (bind: the
// table).
const tableColumnsSQL = `SELECT c.name FROM sys.columns c
WHERE c.object_id = OBJECT_ID(QUOTENAME(SCHEMA_NAME()) + N'.' + QUOTENAME(@p1)) ORDER BY c.column_id`

// lsnTimeSQL maps an LSN to its commit time (bind: the LSN).
const lsnTimeSQL = "SELECT sys.fn_cdc_map_lsn_to_time(@p1)"

// changesSQL reads a capture instance's changes in [from, to], in log
// order, at most top rows (0: all) (binds: from, to).
func changesSQL(q sqldb.Dialect, inst string, def sqldb.Table, top int) string {
	lim := ""
	if top > 0 {
		lim = fmt.Sprintf("TOP (%d) ", top)
	}
	return "SELECT " + lim + "__$start_lsn, __$seqval, __$operation, " + sqldb.SelectList(q, def, def.ColumnNames()) +
		" FROM cdc." + q.Quote("fn_cdc_get_all_changes_"+inst) + "(@p1, @p2, N'all') ORDER BY __$start_lsn, __$seqval"
}
