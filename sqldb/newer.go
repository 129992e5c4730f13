package sqldb

import (
	"context"
	"database/sql"
	"strings"
)

// NewerUpserter is implemented by dialects that can write a row only when
// it is newer than the row it would replace: the rule by which the same
// key written on two clouds converges to one row (last writer wins).
type NewerUpserter interface {
	// UpsertNewer is like Upsert, except that an existing row is
	// overwritten only when the incoming row's version columns are
	// greater, compared in order (the first column decides, the next one
	// breaks its ties, and so on); otherwise the existing row is left
	// unchanged. Every version column must be a non-key column of t.
	UpsertNewer(t Table, rows int, version []string) string
}

// NewerCopier is implemented by dialects that can write many rows the way
// UpsertNewer does faster than multi-row statements (PostgreSQL COPY).
type NewerCopier interface {
	// CopyUpsertNewer writes rows (each with every column of t in order,
	// as Value converts them, with distinct primary keys) as UpsertNewer
	// does, and returns how many it wrote (inserted, or overwrote as
	// newer). Like Copier.CopyUpsert it runs inside the transaction open
	// on conn and fails when none is; an error leaves that transaction
	// failed, to be rolled back.
	CopyUpsertNewer(ctx context.Context, conn *sql.Conn, t Table, rows [][]any, version []string) (int64, error)
}

// NewerCondition returns the SQL condition "the incoming version is
// greater than the existing one", lexicographic over the version columns:
// (i1 > e1) OR (i1 = e1 AND i2 > e2) OR ... . incoming and existing
// render a column of either row; an existing NULL counts as the smallest
// value.
func NewerCondition(version []string, incoming, existing func(col string) string) string {
	var terms []string
	for i, c := range version {
		var and []string
		for _, p := range version[:i] {
			and = append(and, incoming(p)+" = "+existing(p))
		}
		and = append(and, "("+incoming(c)+" > "+existing(c)+" OR ("+existing(c)+" IS NULL AND "+incoming(c)+" IS NOT NULL))")
		terms = append(terms, "("+strings.Join(and, " AND ")+")")
	}
	return "(" + strings.Join(terms, " OR ") + ")"
}
