package topology

import (
	"context"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sqlitesrc"
	"github.com/intercloud/intercloud/sqldb"
)

// reader is one consumer of a database's change log: its name and the
// database that holds its checkpoint.
type reader struct {
	name string
	at   *sqldb.DB
}

// addReader records that a consumer reads db's change log.
func (t *Topology) addReader(db *sqldb.DB, name string, at *sqldb.DB) {
	if t.readers == nil {
		t.readers = map[*sqldb.DB][]reader{}
	}
	t.readers[db] = append(t.readers[db], reader{name, at})
}

// pruneEvery is how often the embedded change tables are trimmed.
const pruneEvery = 30 * time.Second

// pruneLoop trims the embedded (SQLite) change tables up to the position
// every consumer has applied. It runs only when this process runs every
// cloud, because only then does it know all the consumers.
func (t *Topology) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.prune(ctx)
		}
	}
}

// prune trims each SQLite change table once.
func (t *Topology) prune(ctx context.Context) {
	for db, rs := range t.readers {
		if db.Dialect.Name() != sqlitesrc.Dialect {
			continue // server logs (binlog, WAL) are the server's to keep
		}
		upTo, ok := t.applied(ctx, rs)
		if !ok {
			continue
		}
		n, err := sqlitesrc.Prune(ctx, db, sqlitesrc.FormatPosition(upTo))
		if err != nil {
			t.log.Warn("change table not pruned", "db", db.Name, "err", err)
		} else if n > 0 {
			t.log.Debug("change table pruned", "db", db.Name, "changes", n)
		}
	}
}

// applied returns the lowest change every reader has applied; ok is false
// while any of them has no change-capture checkpoint yet.
func (t *Topology) applied(ctx context.Context, rs []reader) (int64, bool) {
	var lowest int64 = -1
	for _, r := range rs {
		cp, err := replicate.LoadCheckpoint(ctx, r.at, r.at.Dialect, r.name)
		if err != nil || cp.Phase != replicate.PhaseCDC {
			return 0, false
		}
		seq, err := sqlitesrc.ParsePosition(cp.Position)
		if err != nil {
			return 0, false
		}
		if lowest < 0 || seq < lowest {
			lowest = seq
		}
	}
	return lowest, lowest >= 0
}
