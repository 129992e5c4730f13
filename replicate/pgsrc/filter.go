package pgsrc

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// # Filtered publications
//
// A consumer opened with replicate.SourceConfig.ReplicatedInserts (the
// reverse stream of a bidirectional pair) reads two publications of its
// own instead of "intercloud", so that the server's walsender leaves out
// the inserts the other stream applied before sending them:
//
//   - PubNames' first, WITH (publish = 'insert'): the consumer's tables
//     and the origin table, the filtered table with the row filter WHERE
//     (column IS DISTINCT FROM value);
//   - its second, WITH (publish = 'update, delete, truncate'): the same
//     tables without a filter.
//
// pgoutput publishes a change of a table in several publications when any
// of them publishes that action, and filters it only when every such
// publication has a filter for it: inserts are filtered, the rest is not.
// Only inserts are, because a filter on updates makes PostgreSQL send an
// update whose old row matches and whose new row does not as a delete (a
// local update that set the column to the other cloud would delete the
// row on the target), and because PostgreSQL 15 allows a filter on a
// column outside the replica identity only for a publication without
// updates and deletes (the replicated tables have REPLICA IDENTITY FULL,
// but the filter does not rely on it). The origin table stays unfiltered
// and the transaction skip of SkipReplicated stays the guarantee against
// echo; the filter only spares sending rows that would be skipped.
//
// pgoutput reads publications through the catalog as of the WAL it
// decodes: a transaction that started before a publication was created
// fails to decode with "publication does not exist". So the publications
// are created before the consumer's slot (Open installs them before
// EnsureSlot), and their comment records the position from which they may
// be read: the WAL position after every transaction that was running
// when they were created has ended (any transaction committing later
// started after them). A stream starting before that position (a slot
// that predates the publications: a deployment upgraded in place) reads
// the plain publication, and moves to the filtered ones by itself, on a
// new replication connection, once it has delivered past that position.
// A consumer whose user may not create the publications, or whose filtered
// table is not among its tables, reads the plain publication. DropSlot
// drops a consumer's two publications with its slot.

// filterComment starts the comment of a consumer's insert publication:
// the position it may be read from and the filter it holds follow.
const filterComment = "intercloud row filter from "

// PubNames returns the names of the two publications a consumer with a
// row filter reads (inserts, then updates, deletes and truncates): its
// slot's name (shortened with a hash of name when needed) with "_ins" and
// "_upd".
func PubNames(name string) (ins, upd string) {
	base := SlotName(name)
	if len(base) > 59 {
		sum := sha256.Sum256([]byte(name))
		base = base[:48] + "_" + hex.EncodeToString(sum[:5])
	}
	return base + "_ins", base + "_upd"
}

// literal returns s as an SQL string literal whatever
// standard_conforming_strings says (an escape string, E'...').
func literal(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// filterExpr is the row filter of f.
func filterExpr(f *replicate.ReplicatedInserts) string {
	return "(" + quote(f.Column) + " IS DISTINCT FROM " + literal(f.Value) + ")"
}

// pubTable is one table of the insert publication's TABLE list: the
// filtered one with its row filter.
func pubTable(t string, f *replicate.ReplicatedInserts) string {
	if t == f.Table {
		return quote(t) + " WHERE " + filterExpr(f)
	}
	return quote(t)
}

// installFiltered creates or completes the consumer's filtered
// publications for tables (see "Filtered publications") and returns their
// names and the position they may be read from; none when f is nil, its
// table is not among tables, or the user may not create them.
func installFiltered(ctx context.Context, db *sqldb.DB, name string, tables []string, f *replicate.ReplicatedInserts, log *slog.Logger) ([]string, pglogrepl.LSN, error) {
	if f == nil || !slices.Contains(tables, f.Table) || f.Table == OriginTable {
		return nil, 0, nil
	}
	if f.Column == "" {
		return nil, 0, fmt.Errorf("pgsrc: replicated inserts of %s: no column named", f.Table)
	}
	ins, upd := PubNames(name)
	sig := f.Table + "." + filterExpr(f)
	var comment sql.NullString
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('intercloud.pgsrc.install'))`); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		want := dedup(tables)
		var haveOrigin bool
		if err := tx.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, OriginTable).Scan(&haveOrigin); err != nil {
			return fmt.Errorf("%s: %w", OriginTable, err)
		}
		if haveOrigin && !slices.Contains(want, OriginTable) {
			want = append([]string{OriginTable}, want...)
		}
		for _, p := range []struct {
			name, publish string
			filter        bool
		}{{ins, "insert", true}, {upd, "update, delete, truncate", false}} {
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, p.name).Scan(&exists); err != nil {
				return fmt.Errorf("publication %s: %w", p.name, err)
			}
			list := func(ts []string) string {
				q := make([]string, len(ts))
				for i, t := range ts {
					q[i] = quote(t)
					if p.filter {
						q[i] = pubTable(t, f)
					}
				}
				return strings.Join(q, ", ")
			}
			if !exists {
				if _, err := tx.ExecContext(ctx, `CREATE PUBLICATION `+quote(p.name)+` FOR TABLE `+list(want)+` WITH (publish = '`+p.publish+`')`); err != nil {
					return fmt.Errorf("create publication %s: %w", p.name, err)
				}
				continue
			}
			have, err := publicationTables(ctx, tx, p.name)
			if err != nil {
				return err
			}
			var missing []string
			for _, t := range want {
				if !have[t] {
					missing = append(missing, t)
				}
			}
			if len(missing) > 0 {
				if _, err := tx.ExecContext(ctx, `ALTER PUBLICATION `+quote(p.name)+` ADD TABLE `+list(missing)); err != nil {
					return fmt.Errorf("add tables to publication %s: %w", p.name, err)
				}
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`, ins).Scan(&comment); err != nil {
			return fmt.Errorf("publication %s: comment: %w", ins, err)
		}
		if _, rest, ok := parseFilterComment(comment.String); ok && rest != sig {
			// Another filter (the other cloud renamed): replaced; the
			// position to read it from is taken anew below.
			comment.Valid = false
			if _, err := tx.ExecContext(ctx, `ALTER PUBLICATION `+quote(ins)+` DROP TABLE `+quote(f.Table)); err != nil {
				return fmt.Errorf("publication %s: replace the filter: %w", ins, err)
			}
			if _, err := tx.ExecContext(ctx, `ALTER PUBLICATION `+quote(ins)+` ADD TABLE `+pubTable(f.Table, f)); err != nil {
				return fmt.Errorf("publication %s: replace the filter: %w", ins, err)
			}
		}
		return nil
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
		log.Warn("the reverse stream reads the unfiltered publication: its user may not create the filtered ones", "publications", ins+", "+upd, "err", err)
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("pgsrc: install filtered publications: %w", err)
	}
	if from, rest, ok := parseFilterComment(comment.String); comment.Valid && ok && rest == sig {
		return []string{ins, upd}, from, nil
	}
	// New, or without the position (a crash between the two steps): any
	// position taken from now on is after every transaction that may have
	// started before the publications.
	from, err := settledLSN(ctx, db)
	if err != nil {
		return nil, 0, fmt.Errorf("pgsrc: filtered publications: %w", err)
	}
	text := filterComment + from.String() + " " + sig
	if _, err := db.ExecContext(ctx, `COMMENT ON PUBLICATION `+quote(ins)+` IS `+literal(text)); err != nil {
		if errors.As(err, &pe) && pe.Code == "42501" {
			log.Warn("the reverse stream reads the unfiltered publication: its user may not comment on the filtered one", "publication", ins, "err", err)
			return nil, 0, nil
		}
		return nil, 0, fmt.Errorf("pgsrc: filtered publications: comment: %w", err)
	}
	return []string{ins, upd}, from, nil
}

// dropFiltered drops the consumer's filtered publications: those named
// PubNames(name) that publish what installFiltered made them publish
// (inserts only; updates, deletes and truncates) for a list of tables. A
// publication of such a name that publishes anything else was not made
// here and stays. None is not an error.
func dropFiltered(ctx context.Context, db *sqldb.DB, name string) error {
	ins, upd := PubNames(name)
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('intercloud.pgsrc.install'))`); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT pubname FROM pg_publication WHERE NOT puballtables AND (
			(pubname = $1 AND pubinsert AND NOT pubupdate AND NOT pubdelete AND NOT pubtruncate) OR
			(pubname = $2 AND NOT pubinsert AND pubupdate AND pubdelete AND pubtruncate)) ORDER BY pubname`, ins, upd)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		var pubs []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return fmt.Errorf("list: %w", err)
			}
			pubs = append(pubs, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list: %w", err)
		}
		for _, p := range pubs {
			if _, err := tx.ExecContext(ctx, `DROP PUBLICATION `+quote(p)); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgsrc: drop filtered publications %s, %s: %w", ins, upd, err)
	}
	return nil
}

// parseFilterComment splits an insert publication's comment into the
// position it may be read from and the filter it holds.
func parseFilterComment(c string) (pglogrepl.LSN, string, bool) {
	rest, ok := strings.CutPrefix(c, filterComment)
	if !ok {
		return 0, "", false
	}
	pos, sig, ok := strings.Cut(rest, " ")
	if !ok {
		return 0, "", false
	}
	l, err := ParsePosition(replicate.Position(pos))
	if err != nil || l == 0 {
		return 0, "", false
	}
	return l, sig, true
}

// publicationTables returns the tables of a publication in the current
// schema.
func publicationTables(ctx context.Context, tx *sql.Tx, pub string) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT tablename FROM pg_publication_tables WHERE pubname = $1 AND schemaname = current_schema()`, pub)
	if err != nil {
		return nil, fmt.Errorf("publication %s tables: %w", pub, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("publication %s tables: %w", pub, err)
		}
		have[t] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("publication %s tables: %w", pub, err)
	}
	return have, nil
}

// waitRunning waits until every transaction running now has ended and is
// visible to new snapshots (it let go of the lock on its own ID).
func waitRunning(ctx context.Context, db *sqldb.DB) error {
	var running string
	if err := db.QueryRowContext(ctx, `SELECT coalesce(array_agg(transactionid::text), '{}')::text FROM pg_locks `+xactLocks).Scan(&running); err != nil {
		return fmt.Errorf("running transactions: %w", err)
	}
	for running != "{}" {
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks `+xactLocks+` AND transactionid::text = ANY($1::text[])`, running).Scan(&n)
		if err != nil {
			return fmt.Errorf("wait for running transactions: %w", err)
		}
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// settledLSN returns a WAL position after which every transaction that
// commits began after this call: the insert position read once every
// transaction running at the call has ended.
func settledLSN(ctx context.Context, db *sqldb.DB) (pglogrepl.LSN, error) {
	if err := waitRunning(ctx, db); err != nil {
		return 0, err
	}
	var lsn string
	if err := db.QueryRowContext(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("current position: %w", err)
	}
	return pglogrepl.ParseLSN(lsn)
}

// pubOption is the publication_names option of START_REPLICATION: the
// names as identifiers in a list, in a string literal.
func pubOption(pubs []string) string {
	q := make([]string, len(pubs))
	for i, p := range pubs {
		q[i] = quote(p)
	}
	return "publication_names '" + strings.ReplaceAll(strings.Join(q, ","), "'", "''") + "'"
}
