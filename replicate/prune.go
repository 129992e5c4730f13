package replicate

import (
	"context"
	"fmt"

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
// it (the stream's target).
type Reader struct {
	Name string
	At   *sqldb.DB
}

// PruneLog trims db's change log up to the lowest position all readers
// have applied, when db's source driver keeps a log its consumers trim
// (LogPruner). pruned is false when it did nothing: the driver keeps no
// such log, there is no reader, or a reader has no change-capture
// checkpoint yet (it still needs the whole log). Only a caller that knows
// every reader of the log may call it.
func PruneLog(ctx context.Context, db *sqldb.DB, readers []Reader) (n int64, pruned bool, err error) {
	d, err := sourceDriver(db.Dialect.Name())
	if err != nil {
		return 0, false, err
	}
	lp, ok := d.(LogPruner)
	if !ok || len(readers) == 0 {
		return 0, false, nil
	}
	var lowest Position
	for i, r := range readers {
		cp, err := LoadCheckpoint(ctx, r.At, r.At.Dialect, r.Name)
		if err != nil {
			return 0, false, err
		}
		if cp.Phase != PhaseCDC {
			return 0, false, nil
		}
		if i == 0 {
			lowest = cp.Position
			continue
		}
		c, err := lp.ComparePositions(cp.Position, lowest)
		if err != nil {
			return 0, false, fmt.Errorf("replicate: prune %s: reader %s: %w", db.Name, r.Name, err)
		}
		if c < 0 {
			lowest = cp.Position
		}
	}
	n, err = lp.PruneLog(ctx, db, lowest)
	if err != nil {
		return 0, false, fmt.Errorf("replicate: prune %s: %w", db.Name, err)
	}
	return n, true, nil
}
