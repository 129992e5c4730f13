package topology

import (
	"context"
	"time"

	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/publish"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// addReader records one more consumer of db's change log, besides those
// the topology file implies (see readersOf), with its checkpoint in at.
func (t *Topology) addReader(db *sqldb.DB, name string, at *sqldb.DB) {
	if t.readers == nil {
		t.readers = map[*sqldb.DB][]replicate.Reader{}
	}
	t.readers[db] = append(t.readers[db], replicate.Reader{Name: name, At: at})
}

// How often the change logs the consumers trim are trimmed, raw objects
// past their retention deleted, and the central log store held to its
// limits. A trim deletes in chunks (sqlitesrc.Prune) and often, so that
// each is small: the writers of a busy database wait for one chunk at a
// time, never for the changes of half a minute at once.
var (
	pruneEvery  = 5 * time.Second
	expireEvery = 10 * time.Minute
	limitEvery  = time.Minute
)

// pruneLoop trims a cloud's change log (embedded SQLite's change tables)
// up to the position every consumer has applied, and deletes the loaded
// raw objects past their retention. It runs in the process that holds the
// cloud's "prune" lease.
func (t *Topology) pruneLoop(ctx context.Context, c *Cloud) {
	ctx = sqldb.WithWriter(ctx, "prune")
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	t.expireRaw(ctx, c)
	lastExpire := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.pruneCloud(ctx, c)
			if time.Since(lastExpire) >= expireEvery {
				t.expireRaw(ctx, c)
				lastExpire = time.Now()
			}
		}
	}
}

// expireRaw deletes a cloud's loaded raw objects older than
// retention.raw (load.DefaultRawRetention), unless retention.keep_raw.
func (t *Topology) expireRaw(ctx context.Context, c *Cloud) {
	r := t.cfg.Retention
	if r.KeepRaw {
		return
	}
	keep := r.Raw.D()
	if keep == 0 {
		keep = load.DefaultRawRetention
	}
	ex, err := c.Loader.Expire(ctx, time.Now().Add(-keep))
	switch {
	case err != nil && ctx.Err() == nil:
		t.log.Warn("raw objects past their retention not deleted; retried later", "cloud", c.Name, "err", err)
	case ex.Objects > 0 || ex.Kept > 0:
		t.log.Info("raw objects past their retention deleted", "cloud", c.Name, "objects", ex.Objects, "bytes", ex.Bytes,
			"kept_unloaded", ex.Kept, "retention", keep.String())
	}
}

// limitLogs holds the central log store to logs.max_age and
// logs.max_bytes.
func (t *Topology) limitLogs(ctx context.Context) {
	tick := time.NewTicker(limitEvery)
	defer tick.Stop()
	for {
		n, err := t.logs.Limit(ctx, t.cfg.Logs.MaxAge.D(), t.cfg.Logs.MaxBytes)
		switch {
		case err != nil && ctx.Err() == nil:
			t.log.Warn("central log store not held to its limits", "err", err)
		case n > 0:
			t.log.Info("central log store trimmed", "lines", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// prune trims the change log of every cloud this process runs, once.
func (t *Topology) prune(ctx context.Context) {
	for _, name := range t.cfg.CloudNames() {
		if c := t.clouds[name]; c != nil {
			t.pruneCloud(ctx, c)
		}
	}
}

// pruneCloud trims one cloud's change log once, through its source driver
// (server logs such as a binlog or WAL are the server's to keep).
func (t *Topology) pruneCloud(ctx context.Context, c *Cloud) {
	rs, err := t.readersOf(ctx, c)
	if err != nil {
		t.log.Warn("change log not pruned", "db", c.DB.Name, "err", err)
		return
	}
	n, pruned, err := replicate.PruneLogMode(ctx, c.DB, SourceMode(t.cfg, c.DB), rs)
	switch {
	case err != nil:
		t.log.Warn("change log not pruned", "db", c.DB.Name, "err", err)
	case pruned && n > 0:
		t.log.Debug("change log pruned", "db", c.DB.Name, "changes", n)
	}
}

// readersOf lists every consumer of a cloud's change log that the
// topology file implies, wherever it runs: the stream out of the cloud,
// the reverse stream when it carries tables, and publish. A stream whose
// target this process opens is read from its checkpoint; one that runs
// elsewhere from the position it confirmed in the cloud's own database.
func (t *Topology) readersOf(ctx context.Context, c *Cloud) ([]replicate.Reader, error) {
	r := t.cfg.Replication
	at := func(cloud string) *sqldb.DB {
		if o := t.clouds[cloud]; o != nil {
			return o.DB
		}
		return nil
	}
	var rs []replicate.Reader
	if c.Name == r.From {
		rs = append(rs, replicate.Reader{Name: r.From + "-to-" + r.To, At: at(r.To)})
	}
	if c.Name == r.To && r.ReverseEnabled() {
		tables, err := ReverseMapping(t.cfg).Tables(ctx, c.DB)
		if err != nil {
			return nil, err
		}
		if len(tables) > 0 {
			rs = append(rs, replicate.Reader{Name: r.To + "-to-" + r.From, At: at(r.From)})
		}
	}
	if c.Publish != nil {
		rs = append(rs, replicate.Reader{Name: publish.StreamName, At: c.DB})
	}
	return append(rs, t.readers[c.DB]...), nil
}
