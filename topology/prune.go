package topology

import (
	"context"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// addReader records that a consumer (a stream, publish) reads db's change
// log and keeps its checkpoint in at.
func (t *Topology) addReader(db *sqldb.DB, name string, at *sqldb.DB) {
	if t.readers == nil {
		t.readers = map[*sqldb.DB][]replicate.Reader{}
	}
	t.readers[db] = append(t.readers[db], replicate.Reader{Name: name, At: at})
}

// pruneEvery is how often the change logs the consumers trim are trimmed.
const pruneEvery = 30 * time.Second

// pruneLoop trims the change logs that their consumers trim (embedded
// SQLite's change tables) up to the position every consumer has applied.
// It runs only when this process runs every cloud, because only then does
// it know all the consumers.
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

// prune trims each database's change log once, through its source driver
// (server logs such as a binlog or WAL are the server's to keep).
func (t *Topology) prune(ctx context.Context) {
	for db, rs := range t.readers {
		n, pruned, err := replicate.PruneLog(ctx, db, rs)
		switch {
		case err != nil:
			t.log.Warn("change log not pruned", "db", db.Name, "err", err)
		case pruned && n > 0:
			t.log.Debug("change log pruned", "db", db.Name, "changes", n)
		}
	}
}
