package topology

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// clockTable holds, per cloud, the greatest version any process of the
// cloud stamped or saw applied by a stream (its clock's Last). Every
// replica writes its own when it grew and raises its clock to the row's
// every clockSyncEvery, so that the replicas of a cloud stamp in order
// with each other, and one that runs no stream does not acknowledge, with
// a physical clock behind the other cloud's, a write that loses to one
// its cloud already applied (the process running the stream raises its
// own clock at once).
var clockTable = sqldb.Table{Name: "_ic_clock", PrimaryKey: []string{"cloud"}, Columns: []sqldb.Column{
	{Name: "cloud", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
	{Name: "last", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
}}

// clockSyncEvery is how often a replica shares its clock and reads the
// others'.
const clockSyncEvery = 200 * time.Millisecond

// syncClock shares and reads the cloud's applied versions until ctx ends.
// A database that does not answer is reported by the health checks; the
// clock waits for it.
func (t *Topology) syncClock(ctx context.Context, c *Cloud) {
	ctx = sqldb.WithWriter(ctx, "clock")
	log := t.logger(c.Name, "clock")
	var written time.Time
	tick := time.NewTicker(clockSyncEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := syncClockOnce(ctx, c, &written); err != nil && ctx.Err() == nil {
			log.Debug("clock: sharing applied versions failed", "err", err)
		}
	}
}

// syncClockOnce writes the clock's Last when it grew since the last write
// (never lowering the row), then raises the clock to the row's.
func syncClockOnce(ctx context.Context, c *Cloud, written *time.Time) error {
	d := c.DB.Dialect
	if last := c.Clock.Last(); last.After(*written) {
		nu, ok := d.(sqldb.NewerUpserter)
		if !ok {
			return fmt.Errorf("clock: dialect %s cannot upsert newer rows", d.Name())
		}
		vals := []any{c.Name, last}
		for i, col := range clockTable.Columns {
			v, err := d.Value(col.Type, vals[i])
			if err != nil {
				return fmt.Errorf("clock: %w", err)
			}
			vals[i] = v
		}
		if _, err := c.DB.ExecContext(ctx, nu.UpsertNewer(clockTable, 1, []string{"last"}), vals...); err != nil {
			return fmt.Errorf("clock: share: %w", err)
		}
		*written = last
	}
	var at any
	q := "SELECT " + d.Quote("last") + " FROM " + d.Quote(clockTable.Name) + " WHERE " + d.Quote("cloud") + " = " + d.Placeholder(1)
	err := c.DB.QueryRowContext(ctx, q, c.Name).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clock: read: %w", err)
	}
	n, err := sqldb.Normalize(sqldb.Type{Kind: sqldb.KindTimestamp}, at)
	if err != nil {
		return fmt.Errorf("clock: read: %w", err)
	}
	if ts, ok := n.(time.Time); ok {
		c.Clock.Observe(ts)
	}
	return nil
}
