package pollsrc

import (
	"strings"

	"github.com/intercloud/intercloud/sqldb"
)

// The statements the source runs besides install's, one function each so
// the golden test (testdata/*.golden) covers exactly what runs.

// maxSeqSQL reads the highest seq.
const maxSeqSQL = "SELECT MAX(seq) FROM " + LogTable

// seqsAfterSQL lists the seqs after a bound (bind: the bound).
func seqsAfterSQL(q sqldb.Dialect) string {
	return "SELECT seq FROM " + LogTable + " WHERE seq > " + q.Placeholder(1) + " ORDER BY seq"
}

// readSQL reads up to maxBatch changes after the mark (bind: the mark).
func readSQL(q sqldb.Dialect, maxBatch int) string {
	return "SELECT seq, tbl, pk, op, origin, at FROM " + LogTable + " WHERE seq > " + q.Placeholder(1) + " ORDER BY seq" + sqldb.Limit(q, maxBatch)
}

// pruneSQL deletes the changes up to a seq (bind: the seq).
func pruneSQL(q sqldb.Dialect) string {
	return "DELETE FROM " + LogTable + " WHERE seq <= " + q.Placeholder(1)
}

// backlogSQL counts the changes after a seq (bind: the seq).
func backlogSQL(q sqldb.Dialect) string {
	return "SELECT COUNT(*) FROM " + LogTable + " WHERE seq > " + q.Placeholder(1)
}

// columnsSQL returns no row, only a table's columns as they are now.
func columnsSQL(q sqldb.Dialect, table string) string {
	return "SELECT * FROM " + q.Quote(table) + " WHERE 1 = 0"
}

// rowSQL reads the current row of a key (binds: the key's values).
func rowSQL(q sqldb.Dialect, def sqldb.Table) string {
	where := make([]string, len(def.PrimaryKey))
	for i, k := range def.PrimaryKey {
		where[i] = q.Quote(k) + " = " + q.Placeholder(i+1)
	}
	return "SELECT " + sqldb.SelectList(q, def, def.ColumnNames()) + " FROM " + q.Quote(def.Name) + " WHERE " + strings.Join(where, " AND ")
}

// unmarkSQL deletes the session's origin mark.
func unmarkSQL(d dialect) string {
	return "DELETE FROM " + MarkTable + " WHERE conn = " + d.session
}

// rowsSQL reads the current rows of n keys (binds: the keys' values, key
// after key).
func rowsSQL(q sqldb.Dialect, def sqldb.Table, n int) string {
	sel := "SELECT " + sqldb.SelectList(q, def, def.ColumnNames()) + " FROM " + q.Quote(def.Name) + " WHERE "
	k := len(def.PrimaryKey)
	if k == 1 {
		ph := make([]string, n)
		for i := range ph {
			ph[i] = q.Placeholder(i + 1)
		}
		return sel + q.Quote(def.PrimaryKey[0]) + " IN (" + strings.Join(ph, ", ") + ")"
	}
	ors := make([]string, n)
	for i := range ors {
		and := make([]string, k)
		for j, col := range def.PrimaryKey {
			and[j] = q.Quote(col) + " = " + q.Placeholder(i*k+j+1)
		}
		ors[i] = "(" + strings.Join(and, " AND ") + ")"
	}
	return sel + strings.Join(ors, " OR ")
}
