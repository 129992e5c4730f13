package replicate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// LogPruner is implemented by source drivers whose change log lives in the
// database and is trimmed by its consumers (a trigger-fed change table),
// unlike a server's own log (binlog, WAL) that the server keeps. PruneLog
// drops the changes at or before upTo from db's log and returns how many;
// ComparePositions orders two positions of the driver's log.
type LogPruner interface {
	PruneLog(ctx context.Context, db *sqldb.DB, upTo Position) (int64, error)
	ComparePositions(a, b Position) (int, error)
}

// Reader is one consumer of a database's change log: the name its
// checkpoint is kept under (a stream's name) and the database that keeps
// it (the stream's target). A nil At means the position the reader
// confirmed in the log's own database (ConfirmPosition), for a trimmer
// that cannot see the reader's target (another process, another cloud).
type Reader struct {
	Name string
	At   *sqldb.DB
}

// ReadersTable keeps, in a database whose change log its readers trim,
// the position each reader has applied (ConfirmPosition).
const ReadersTable = "_ic_readers"

var readersDef = sqldb.Table{
	Name: ReadersTable,
	Columns: []sqldb.Column{
		{Name: "reader", Type: sqldb.Type{Kind: sqldb.KindString, Length: 190}},
		{Name: "position", Type: sqldb.Type{Kind: sqldb.KindText}},
		{Name: "updated_at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
	},
	PrimaryKey: []string{"reader"},
}

// ConfirmPosition records in db (the source) that reader has applied
// every change of db's log up to pos. A reader confirms only what its
// target has committed, so the recorded position may lag, never lead.
func ConfirmPosition(ctx context.Context, db *sqldb.DB, reader string, pos Position) error {
	if err := db.EnsureTable(ctx, readersDef); err != nil {
		return fmt.Errorf("replicate: confirm %s: %w", reader, err)
	}
	now, err := db.Dialect.Value(readersDef.Columns[2].Type, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("replicate: confirm %s: %w", reader, err)
	}
	if _, err := db.ExecContext(ctx, db.Dialect.Upsert(readersDef, 1), reader, string(pos), now); err != nil {
		return fmt.Errorf("replicate: confirm %s: %w", reader, err)
	}
	return nil
}

// ConfirmedPosition returns the position reader last confirmed in db;
// ok is false when it never did.
func ConfirmedPosition(ctx context.Context, db *sqldb.DB, reader string) (pos Position, ok bool, err error) {
	if err := db.EnsureTable(ctx, readersDef); err != nil {
		return "", false, fmt.Errorf("replicate: confirmed %s: %w", reader, err)
	}
	d := db.Dialect
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", d.Quote("position"), d.Quote(ReadersTable), d.Quote("reader"), d.Placeholder(1))
	var s string
	switch err := db.QueryRowContext(ctx, q, reader).Scan(&s); {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("replicate: confirmed %s: %w", reader, err)
	}
	return Position(s), true, nil
}

// PruneLog trims db's change log up to the lowest position all readers
// have applied, when db's source driver keeps a log its consumers trim
// (LogPruner). pruned is false when it did nothing: the driver keeps no
// such log, there is no reader, or a reader has no change-capture
// checkpoint yet (it still needs the whole log). Only a caller that knows
// every reader of the log may call it.
func PruneLog(ctx context.Context, db *sqldb.DB, readers []Reader) (n int64, pruned bool, err error) {
	return PruneLogMode(ctx, db, SourceLog, readers)
}

// PruneLogMode is PruneLog for the readers of db in a source mode ("" is
// SourceLog): the poll mode's change table is trimmed the same way.
func PruneLogMode(ctx context.Context, db *sqldb.DB, mode string, readers []Reader) (n int64, pruned bool, err error) {
	d, err := driverFor(db, mode)
	if err != nil {
		return 0, false, err
	}
	lp, ok := d.(LogPruner)
	if !ok || len(readers) == 0 {
		return 0, false, nil
	}
	var lowest Position
	for i, r := range readers {
		var pos Position
		if r.At == nil {
			p, ok, err := ConfirmedPosition(ctx, db, r.Name)
			if err != nil || !ok {
				return 0, false, err
			}
			pos = p
		} else {
			cp, err := LoadCheckpoint(ctx, r.At, r.At.Dialect, r.Name)
			if err != nil {
				return 0, false, err
			}
			if cp.Phase != PhaseCDC {
				return 0, false, nil
			}
			// The log is trimmed up to a checkpoint that lasts: a
			// commit can be visible before it is durable
			// (sqldb.DB.WaitDurable), and a power loss that took the
			// checkpoint back would leave its changes trimmed.
			if err := r.At.WaitDurable(ctx); err != nil {
				return 0, false, fmt.Errorf("replicate: prune %s: reader %s: %w", db.Name, r.Name, err)
			}
			pos = cp.Position
		}
		if i == 0 {
			lowest = pos
			continue
		}
		c, err := lp.ComparePositions(pos, lowest)
		if err != nil {
			return 0, false, fmt.Errorf("replicate: prune %s: reader %s: %w", db.Name, r.Name, err)
		}
		if c < 0 {
			lowest = pos
		}
	}
	n, err = lp.PruneLog(ctx, db, lowest)
	if err != nil {
		return 0, false, fmt.Errorf("replicate: prune %s: %w", db.Name, err)
	}
	return n, true, nil
}
