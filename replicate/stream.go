package replicate

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/retry"
	"github.com/intercloud/intercloud/sqldb"
)

// Defaults for Config.
const (
	DefaultBatchSize = 2000
	DefaultPoll      = 50 * time.Millisecond
	maxBackoff       = 10 * time.Second
	pruneEvery       = 5 * time.Second
)

// Config configures a Stream.
type Config struct {
	// Name names the stream (e.g. "aws-to-azure"); it keys the checkpoint
	// in the target.
	Name string
	// Origin is the tag the target's OriginMarker writes with every applied
	// change (e.g. "aws"); default Name.
	Origin string
	// Source and Target are the databases; the Source's dialect must have a
	// registered source driver.
	Source *sqldb.DB
	Target *sqldb.DB
	// Tables are the replicated tables, loaded in this order. With a
	// Mapping, an empty Tables means the tables the mapping selects from
	// the source (resolved each time the stream connects).
	Tables []string
	// Mapping renames tables and columns, leaves columns out and filters
	// rows on their way to the target; nil copies the tables unchanged.
	Mapping *Mapping
	// BatchSize bounds the rows of one full-load chunk and the changes of
	// one CDC batch (default 2000).
	BatchSize int
	// Poll is how often an idle polling source is asked for changes
	// (default 50ms).
	Poll time.Duration
	// SkipReplicated skips source changes that replication wrote; set it on
	// both streams of a bidirectional pair.
	SkipReplicated bool
	// ReplicatedInserts, when set, lets the source leave out the inserts
	// only the other stream of the pair writes (see ReplicatedInserts);
	// set it with SkipReplicated.
	ReplicatedInserts *ReplicatedInserts
	// SkipFullLoad starts a stream without a checkpoint at the beginning of
	// the source's change log instead of with a full load. Use it for the
	// second stream of a bidirectional pair (a full load copies every row
	// the source holds, including rows replicated into it, so they would
	// echo once), on a source whose capture was installed (Prepare) before
	// anything wrote to it.
	SkipFullLoad bool
	// PruneSource lets the stream trim the source's change log up to the
	// position it has applied (every few seconds). Set it only when this
	// stream is the sole consumer of the source's log; otherwise whoever
	// knows every consumer prunes, with PruneLog.
	PruneSource bool
	// PruneEvery is how often PruneSource trims, and how often the applied
	// position is confirmed to a source whose log its readers trim
	// (ConfirmPosition; default 5s).
	PruneEvery time.Duration
	// Version names the columns by which the same key written on both
	// sides of a bidirectional pair converges (last writer wins): a row
	// overwrites the target's row only when its version, compared column
	// by column, is greater (e.g. the acknowledgement time, then the
	// cloud's name to break ties). Tables without every version column
	// are upserted unconditionally. Empty: plain upserts.
	Version []string
	// Observe, when set, is told after each committed target transaction
	// the greatest value of the first Version column among the rows it
	// carried (applied or not), when that column holds timestamps: the
	// receive rule of a hybrid logical clock (package hlc), so that what
	// the target's side acknowledges afterwards is versioned after them.
	Observe func(time.Time)
	// Fence, when set, runs inside every target transaction that commits a
	// checkpoint, before it: an error (a lease lost to another process)
	// rolls the transaction back, so a deposed stream writes nothing.
	Fence func(ctx context.Context, tx *sql.Tx) error
	// OnError is what the stream does with a change its target rejects
	// (default OnErrorStop); TableOnError overrides it per source table
	// (by name, or by path.Match pattern; a plain name wins).
	OnError      ErrorPolicy
	TableOnError map[string]ErrorPolicy
	// RejectRetries is how often a transaction the target rejects is
	// retried, with backoff from RejectBackoff, before its changes are
	// applied one by one and the rejected ones handled by OnError
	// (defaults 3 and 200ms).
	RejectRetries int
	RejectBackoff time.Duration
	// Schema says which schema objects the target gets (default
	// SchemaTables; SchemaFull adds indexes, defaults and foreign keys
	// after the full load).
	Schema SchemaMode
	// LoadParallel is how many tables the full load copies at once
	// (default 4); one table that fails holds back no other.
	LoadParallel int
	// OnApplied is called after each applied batch (a committed target
	// transaction, or a batch that only moved the position, checkpointed
	// later: see positionSaveEvery), full load chunks included
	// (Batch.Snapshot); it must not block long, and
	// during the full load it is called from several goroutines at once.
	OnApplied func(Batch)
	// SourceMode is how the source's changes are read: SourceLog (the
	// default) or another registered mode such as SourcePoll.
	SourceMode string
	// TargetMode is how the other stream of a bidirectional pair reads
	// Target (default SourceMode): the writes this stream applies are
	// origin-tagged where that mode looks (MarkerForMode), so its
	// SkipReplicated skips them.
	TargetMode string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("replicate: config: Name is required")
	case c.Source == nil:
		return errors.New("replicate: config: Source is required")
	case c.Target == nil:
		return errors.New("replicate: config: Target is required")
	case len(c.Tables) == 0 && c.Mapping == nil:
		return errors.New("replicate: config: Tables is empty")
	case c.BatchSize < 0:
		return errors.New("replicate: config: BatchSize is negative")
	case c.Poll < 0:
		return errors.New("replicate: config: Poll is negative")
	case c.LoadParallel < 0:
		return errors.New("replicate: config: LoadParallel is negative")
	case c.RejectRetries < 0:
		return errors.New("replicate: config: RejectRetries is negative")
	case c.RejectBackoff < 0:
		return errors.New("replicate: config: RejectBackoff is negative")
	}
	if err := c.OnError.Validate(); err != nil {
		return fmt.Errorf("replicate: config: %w", err)
	}
	for _, m := range []string{c.SourceMode, c.TargetMode} {
		if m != "" && m != SourceLog {
			if _, err := modes.Lookup(m); err != nil {
				return fmt.Errorf("replicate: config: source mode: %w", err)
			}
		}
	}
	if err := c.Schema.Validate(); err != nil {
		return fmt.Errorf("replicate: config: %w", err)
	}
	for p, pol := range c.TableOnError {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return fmt.Errorf("replicate: config: on_error table %q is not a valid name or pattern", p)
		}
		if err := pol.Validate(); err != nil {
			return fmt.Errorf("replicate: config: table %q: %w", p, err)
		}
	}
	if err := c.Mapping.Validate(); err != nil {
		return fmt.Errorf("replicate: config: %w", err)
	}
	seen := map[string]bool{}
	for _, t := range c.Tables {
		if t == "" {
			return errors.New("replicate: config: Tables has an empty name")
		}
		if seen[t] {
			return fmt.Errorf("replicate: config: Tables lists %q twice", t)
		}
		seen[t] = true
	}
	return nil
}

// Status is a stream's progress, for operators and metrics.
type Status struct {
	Name  string `json:"name"`
	Phase string `json:"phase"` // "starting", "snapshot", "cdc", "stopped"
	// SourceMode is how the source is read (SourceLog, SourcePoll).
	SourceMode string `json:"source_mode"`
	// Table is the tables being loaded during the full load (comma
	// separated).
	Table    string   `json:"table,omitempty"`
	Position Position `json:"position"`
	// SnapshotRows and CDCRows count rows written to the target since the
	// stream started (in this process).
	SnapshotRows int64 `json:"snapshot_rows"`
	CDCRows      int64 `json:"cdc_rows"`
	// RowsPerSec is the write rate over the last seconds.
	RowsPerSec float64 `json:"rows_per_sec"`
	// SourceLag is how old the last batch was when it was read (read time
	// minus its source commit time); TargetLag how old when it committed
	// on the target. Both keep their last value while the source is idle.
	// While the stream is reconnecting they grow with the outage: the
	// source lag while the source is unreachable (the age of the last
	// read), the target lag while changes cannot be applied.
	SourceLag time.Duration `json:"source_lag_ns"`
	TargetLag time.Duration `json:"target_lag_ns"`
	// State is what the stream does, in words: "streaming", "full load of
	// TABLE", "reconnecting since T, N changes pending (target
	// unreachable)", "stopped: ERROR".
	State string `json:"state"`
	// ReconnectingSince is when the running stream lost its source or
	// target; zero while it runs.
	ReconnectingSince time.Time `json:"reconnecting_since,omitzero"`
	// Unreachable names what did not answer the last check while
	// reconnecting: "source", "target" or "source and target".
	Unreachable string `json:"unreachable,omitempty"`
	// PendingChanges counts the source's changes not applied yet, for
	// sources that can count them; -1 when unknown.
	PendingChanges int64 `json:"pending_changes"`
	// SourceBacklogBytes is how much of the source's change log is not yet
	// confirmed by the stream, for sources that implement Lagger (polled
	// every few seconds); 0 otherwise.
	SourceBacklogBytes int64 `json:"source_backlog_bytes,omitempty"`
	// Conflicts counts the rows not applied because the target held the
	// same key at the same or a greater version (Config.Version): the
	// conflicts last-writer-wins resolved in the target's favour.
	Conflicts int64 `json:"conflicts"`
	// AppliedAt is when the last target transaction committed.
	AppliedAt time.Time `json:"applied_at,omitzero"`
	// StoppedTables are the tables stopped by a change the target
	// rejected (OnErrorStop) or a schema that cannot be replicated; the
	// other tables go on.
	StoppedTables []TableError `json:"stopped_tables,omitempty"`
	// Schema is what Config.Schema SchemaFull created on the target, and
	// what it could not convert; nil before it ran.
	Schema *SchemaReport `json:"schema,omitempty"`
	// RenamedTables are the latest tables renamed on the source during
	// change data capture, followed on the target or leaving the stream
	// (see TableRename).
	RenamedTables []TableRename `json:"renamed_tables,omitempty"`
	// ApplyExceptions counts the rejected changes written to
	// ExceptionsTable (OnErrorSkip) since the stream started.
	ApplyExceptions int64 `json:"apply_exceptions"`
	// LastError is the last failure (retried), LastErrorAt when it was.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Writer names a stream's database writes, on its target and its source
// (sqldb.WithWriter): "replicate:" and the stream's name.
func Writer(stream string) string { return "replicate:" + stream }

// Stream replicates tables from a source to a target database.
type Stream struct {
	cfg     Config
	log     *slog.Logger
	resolve bool // Tables come from the Mapping

	mu      sync.Mutex
	status  Status
	samples []rateSample
	stopped map[string]TableError // tables left out (s.mu)
	started bool                  // runOnce ran before in this process
	objects bool                  // SchemaFull objects were created (s.mu)
	// saved is the CDC checkpoint last saved or loaded: a batch that only
	// moves the position is checkpointed at most every positionSaveEvery
	// (see applyBatch).
	saved SavedPosition
	// unsaved is the position of the last batch applied but not yet
	// checkpointed ("": none), saved by saveLoop if no batch follows
	// (s.mu). applyMu serialises applyBatch and saveLoop's saves, so a
	// checkpoint never moves back.
	unsaved Position
	applyMu sync.Mutex
}

// positionSaveEvery is how often a stream checkpoints batches that only
// move its position (every change skipped: the other direction's
// replicated writes, tables not replicated), and how long the last of
// them waits for a batch after it before saveLoop saves it. Each was a
// transaction on the target (origin marks, fence, checkpoint), about as
// many as the other direction applied; after a restart the stream reads
// them again, which changes nothing.
const positionSaveEvery = time.Second

// setSaved records a saved checkpoint's position.
func (s *Stream) setSaved(pos Position, at time.Time) {
	s.saved.Set(pos, at)
	s.mu.Lock()
	s.unsaved = ""
	s.mu.Unlock()
}

// savePosition checkpoints pos, read at at, in a transaction of its own
// (fenced, without origin marks: it writes nothing else).
func (s *Stream) savePosition(ctx context.Context, pos Position, at time.Time) error {
	err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
		return s.saveCheckpoint(ctx, tx, Checkpoint{Phase: PhaseCDC, Position: pos})
	})
	if err == nil {
		s.setSaved(pos, at)
	}
	return err
}

// saveLoop checkpoints a position left unsaved (see positionSaveEvery)
// once it has waited positionSaveEvery with no batch after it, so an
// idle stream's checkpoint, and what its source keeps for it, catch up.
func (s *Stream) saveLoop(ctx context.Context) {
	tick := time.NewTicker(positionSaveEvery / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.applyMu.Lock()
		s.mu.Lock()
		pos := s.unsaved
		s.mu.Unlock()
		if pos != "" && time.Since(s.saved.At()) >= positionSaveEvery {
			if err := s.savePosition(ctx, pos, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("checkpoint of an idle position not saved; tried again", "position", string(pos), "err", err)
			}
		}
		s.applyMu.Unlock()
	}
}

type rateSample struct {
	at   time.Time
	rows int64
}

// New checks cfg and returns a stream; it does no I/O.
func New(cfg Config) (*Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Origin == "" {
		cfg.Origin = cfg.Name
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.PruneEvery <= 0 {
		cfg.PruneEvery = pruneEvery
	}
	if cfg.LoadParallel == 0 {
		cfg.LoadParallel = DefaultLoadParallel
	}
	if cfg.RejectRetries == 0 {
		cfg.RejectRetries = DefaultRejectRetries
	}
	if cfg.RejectBackoff == 0 {
		cfg.RejectBackoff = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Tables = append([]string(nil), cfg.Tables...)
	s := &Stream{
		cfg:     cfg,
		resolve: len(cfg.Tables) == 0,
		log:     cfg.Logger.With("component", "replicate", "stream", cfg.Name),
		status:  Status{Name: cfg.Name, SourceMode: cmp.Or(cfg.SourceMode, SourceLog), Phase: "starting", PendingChanges: -1},
	}
	return s, nil
}

// Status returns the stream's progress.
func (s *Stream) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	honestLag(&st, time.Now())
	if n := len(s.samples); n >= 2 {
		first, last := s.samples[0], s.samples[n-1]
		if d := last.at.Sub(first.at).Seconds(); d > 0 {
			st.RowsPerSec = float64(last.rows-first.rows) / d
		}
		if time.Since(last.at) > 10*time.Second {
			st.RowsPerSec = 0
		}
	}
	return st
}

// stopForSchema stops table c.Table at a schema change the target cannot
// follow, keeping the stop on the target like a rejected change's.
func (a *applier) stopForSchema(ctx context.Context, c Change, pos Position, cause error) error {
	s := a.s
	te := TableError{Table: c.Table, Op: "schema", Error: cause.Error(), Position: pos, At: time.Now().UTC()}
	if err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
		return saveTableState(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, c.Table, TableState{State: tableStopped, Err: te})
	}); err != nil {
		return err
	}
	s.stopTable(te)
	return nil
}

// errTableCreated ends runOnce when a table the stream's globs select was
// created on the source: the next run loads it, then streams it too.
var errTableCreated = errors.New("replicate: a new table matches the table globs")

// created handles a schema change of a table the stream does not have:
// CREATE TABLE of a table the Mapping selects (Tables given as globs)
// marks the table as loading on the target and ends the run, so that the
// next one loads it (a full load of that table, from the stream's
// position) and adds it to change data capture. Anything else about
// tables outside the stream is ignored.
func (a *applier) created(ctx context.Context, c Change) error {
	s := a.s
	w := ddlWords(c.DDL)
	if !s.resolve || len(w) < 2 || w[0] != "CREATE" || !slices.Contains(w[:min(len(w), 4)], "TABLE") {
		return nil
	}
	tables, err := s.cfg.Mapping.Tables(ctx, s.cfg.Source)
	if err != nil {
		return err
	}
	if !slices.Contains(tables, c.Table) {
		return nil
	}
	return a.pickUp(ctx, c.Table, "new source table matches the table globs")
}

// Run does the full load when the target has no checkpoint for the stream
// (or resumes it), then applies changes until ctx is cancelled, and returns
// nil then. Failures of either database are logged, kept in Status and
// retried with backoff; only configuration and schema errors (a missing
// table, a table without primary key) end Run with an error.
func (s *Stream) Run(ctx context.Context) error {
	ctx = sqldb.WithWriter(ctx, Writer(s.cfg.Name))
	policy := retry.Policy{Base: 100 * time.Millisecond, Max: maxBackoff}
	failures := 0
	for {
		applied := s.applied()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			s.setPhase("stopped")
			return nil
		}
		if err == nil {
			err = errors.New("replicate: source stream ended")
		}
		if errors.Is(err, errTableCreated) {
			continue // at once: the next run loads the new table
		}
		s.mu.Lock()
		s.status.LastError = err.Error()
		s.status.LastErrorAt = time.Now()
		s.mu.Unlock()
		if isPermanent(err) {
			s.setPhase("stopped")
			s.log.Error("replication stopped", "err", err)
			return err
		}
		s.mu.Lock()
		if s.status.ReconnectingSince.IsZero() {
			s.status.ReconnectingSince = s.status.LastErrorAt
		}
		s.mu.Unlock()
		s.checkSides(ctx)
		if s.applied() > applied {
			failures = 0
		}
		failures++
		backoff := policy.Delay(failures)
		st := s.Status()
		s.log.Warn("replication failed; retrying", "err", err, "retry_in", backoff.Round(time.Millisecond).String(), "state", st.State,
			"source_lag", st.SourceLag.Round(time.Millisecond).String(), "target_lag", st.TargetLag.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			s.setPhase("stopped")
			return nil
		case <-time.After(backoff):
		}
	}
}

func (s *Stream) applied() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status.SnapshotRows + s.status.CDCRows
}

func (s *Stream) setPhase(p string) {
	s.mu.Lock()
	s.status.Phase = p
	s.mu.Unlock()
}

// runOnce connects, loads and streams until an error or ctx ends.
func (s *Stream) runOnce(ctx context.Context) error {
	if err := EnsureCheckpoints(ctx, s.cfg.Target); err != nil {
		return err
	}
	if err := ensureStateTables(ctx, s.cfg.Target); err != nil {
		return err
	}
	if s.resolve {
		tables, err := s.cfg.Mapping.Tables(ctx, s.cfg.Source)
		if err != nil {
			return err
		}
		if len(tables) == 0 {
			return permanent(fmt.Errorf("replicate: no source table matches %v (excluding %v)", s.cfg.Mapping.Include, s.cfg.Mapping.Exclude))
		}
		s.cfg.Tables = tables
	}
	states, err := LoadTableStates(ctx, s.cfg.Target, s.cfg.Name)
	if err != nil {
		return err
	}
	// Tables stopped in an earlier run are loaded afresh now (the cause
	// may be fixed); in this process they stay stopped across reconnects.
	var reload []string
	s.mu.Lock()
	first := !s.started
	s.started = true
	s.mu.Unlock()
	for _, name := range s.cfg.Tables {
		st, ok := states[name]
		if !ok || st.State != tableStopped {
			continue
		}
		if first {
			reload = append(reload, name)
			delete(states, name)
			continue
		}
		if !s.isStopped(name) {
			s.stopTable(st.Err)
		}
	}
	w := &writer{d: s.cfg.Target.Dialect, tables: map[string]*tablePair{}, version: s.cfg.Version}
	maps := map[string]*mappedTable{}
	var live []string
	var failed []error
	// A table that joins a stream at a restart (no state, no target table
	// yet: created or renamed on the source while the stream was away) is
	// loaded in full before change data capture goes on.
	fresh := map[string]bool{}
	for _, name := range s.cfg.Tables {
		if s.isStopped(name) {
			continue
		}
		if _, known := states[name]; !known && !s.cfg.SkipFullLoad {
			_, err := s.cfg.Target.Dialect.Describe(ctx, s.cfg.Target, s.cfg.Mapping.Target(name))
			switch {
			case errors.Is(err, sqldb.ErrNoTable):
				fresh[name] = true
			case err != nil:
				return fmt.Errorf("replicate: describe target %s: %w", s.cfg.Mapping.Target(name), err)
			}
		}
		tp, mt, err := describeFor(ctx, s.cfg.Source, s.cfg.Target, name, s.cfg.Mapping, true)
		if err != nil {
			if !isPermanent(err) {
				return err
			}
			// A table that cannot be replicated stops alone.
			failed = append(failed, err)
			te := TableError{Table: name, Error: err.Error(), At: time.Now().UTC()}
			if err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
				return saveTableState(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, name, TableState{State: tableStopped, Err: te})
			}); err != nil {
				return err
			}
			s.stopTable(te)
			continue
		}
		w.tables[name] = tp
		if mt != nil {
			maps[name] = mt
		}
		live = append(live, name)
	}
	if len(live) == 0 {
		for _, te := range s.Status().StoppedTables {
			if !slices.ContainsFunc(failed, func(e error) bool { return e.Error() == te.Error }) {
				failed = append(failed, errors.New(te.Error))
			}
		}
		return permanent(fmt.Errorf("replicate: every table is stopped: %w", errors.Join(failed...)))
	}
	src, err := OpenSourceMode(ctx, s.cfg.Source, s.cfg.SourceMode, SourceConfig{Name: s.cfg.Name, Tables: live, ReplicatedInserts: s.cfg.ReplicatedInserts, Logger: s.log})
	if err != nil {
		if errors.Is(err, ErrNoSourceDriver) {
			return permanent(err)
		}
		return fmt.Errorf("replicate: open source: %w", err)
	}
	defer src.Close()
	defer s.watchLag(ctx, src)()
	marker := MarkerForMode(s.cfg.Target, cmp.Or(s.cfg.TargetMode, s.cfg.SourceMode))
	if setup, ok := marker.(OriginSetup); ok {
		if err := setup.Setup(ctx, s.cfg.Target); err != nil {
			return fmt.Errorf("replicate: origin marker setup: %w", err)
		}
	}
	a := &applier{s: s, w: w, marker: marker, maps: maps, fresh: fresh, stated: map[string]bool{}}
	for name := range states {
		a.stated[name] = true
	}

	cp, err := LoadCheckpoint(ctx, s.cfg.Target, s.cfg.Target.Dialect, s.cfg.Name)
	if err != nil {
		return err
	}
	if cp.Phase == "" && s.cfg.SkipFullLoad {
		cp = Checkpoint{Phase: PhaseCDC}
		if err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
			return s.saveCheckpoint(ctx, tx, cp)
		}); err != nil {
			return err
		}
		s.log.Info("change data capture from the start of the log, without full load")
	}
	if cp.Phase == "" {
		// The start position comes first: every change after it is
		// replayed after the load, so nothing written during it is missed.
		pos, err := src.Current(ctx)
		if err != nil {
			return fmt.Errorf("replicate: source position: %w", err)
		}
		cp = Checkpoint{Phase: PhaseSnapshot, Snapshot: &SnapshotState{Start: pos}}
		if err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
			if err := resetTableStates(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name); err != nil {
				return err
			}
			return s.saveCheckpoint(ctx, tx, cp)
		}); err != nil {
			return err
		}
		states = map[string]TableState{}
		s.log.Info("full load starting", "start", pos, "tables", live)
	}
	if cp.Phase == PhaseSnapshot {
		if err := a.snapshot(ctx, *cp.Snapshot, live, states); err != nil {
			return err
		}
		cp = Checkpoint{Phase: PhaseCDC, Position: cp.Snapshot.Start}
	} else {
		// Load the tables stopped before, and finish loading those whose
		// load was cut short; replaying the log from the checkpoint after
		// that is what a full load does too.
		var load []string
		for _, name := range live {
			if slices.Contains(reload, name) || states[name].State == tableLoading || fresh[name] {
				load = append(load, name)
			}
		}
		if len(load) > 0 {
			s.log.Info("loading stopped, unfinished and new tables afresh", "tables", load)
			if err := a.loadTables(ctx, load, cp.Position, states); err != nil {
				return err
			}
		}
	}
	if s.cfg.Schema == SchemaFull {
		s.mu.Lock()
		done := s.objects
		s.mu.Unlock()
		if !done {
			rep, err := a.createObjects(ctx, live)
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.objects, s.status.Schema = true, &rep
			s.mu.Unlock()
			s.log.Info("schema objects created", "created", rep.Created, "not_converted", len(rep.NotConverted))
		}
	}
	s.mu.Lock()
	s.status.Phase = PhaseCDC
	s.status.Table = ""
	s.status.Position = cp.Position
	s.connectedLocked()
	s.mu.Unlock()
	s.log.Info("change data capture", "from", cp.Position)
	s.setSaved(cp.Position, time.Now())
	opts := StreamOptions{
		Tables:         live,
		SkipReplicated: s.cfg.SkipReplicated,
		MaxBatch:       s.cfg.BatchSize,
		Poll:           s.cfg.Poll,
		// Positions are checkpointed later than accepted (positionSaveEvery).
		Durable: s.saved.Position,
	}
	var pruner Pruner
	if s.cfg.PruneSource {
		pruner, _ = src.(Pruner)
	}
	lastPrune := time.Now()
	// On a log its readers trim, the stream confirms what it applied
	// where the source's trimmer can read it.
	if _, ok := s.sourceLogPruner(); ok {
		cctx, stop := context.WithCancel(ctx)
		defer stop()
		go s.confirmLoop(cctx, cp.Position)
	}
	sctx, stopSaves := context.WithCancel(ctx)
	defer stopSaves()
	go s.saveLoop(sctx)
	return src.Stream(ctx, cp.Position, opts, func(ctx context.Context, b Batch) error {
		if err := a.applyBatch(ctx, b); err != nil {
			return err
		}
		if pruner != nil && time.Since(lastPrune) >= s.cfg.PruneEvery {
			lastPrune = time.Now()
			if err := pruner.Prune(ctx, s.saved.Position()); err != nil {
				s.log.Warn("prune source change log", "err", err)
			}
		}
		return nil
	})
}

// saveCheckpoint fences the transaction (Config.Fence) and writes the
// stream's checkpoint in it.
func (s *Stream) saveCheckpoint(ctx context.Context, tx *sql.Tx, cp Checkpoint) error {
	if s.cfg.Fence != nil {
		if err := s.cfg.Fence(ctx, tx); err != nil {
			return err
		}
	}
	return SaveCheckpoint(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, cp)
}

// sourceLogPruner returns the source driver's LogPruner, if its log is
// one its readers trim.
func (s *Stream) sourceLogPruner() (LogPruner, bool) {
	d, err := driverFor(s.cfg.Source, s.cfg.SourceMode)
	if err != nil {
		return nil, false
	}
	lp, ok := d.(LogPruner)
	return lp, ok
}

// confirmLoop records the applied position in the source
// (ConfirmPosition) at the start and every PruneEvery while it moves; a
// failure only delays trimming.
func (s *Stream) confirmLoop(ctx context.Context, from Position) {
	var confirmed Position
	confirm := func(pos Position) {
		if pos == "" || pos == confirmed {
			return
		}
		if err := ConfirmPosition(ctx, s.cfg.Source, s.cfg.Name, pos); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("applied position not confirmed to the source; its change log is trimmed later", "err", err)
			}
			return
		}
		confirmed = pos
	}
	confirm(from)
	tick := time.NewTicker(s.cfg.PruneEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			confirm(s.saved.Position())
		}
	}
}

// applier writes to the target for one run of the stream.
type applier struct {
	s      *Stream
	w      *writer
	marker OriginMarker
	maps   map[string]*mappedTable // tables a Mapping rule applies to
	fresh  map[string]bool         // tables whose target table this run created
	stated map[string]bool         // tables with a state on the target at the run's start
}

// txOn runs fn in a target transaction tagged with the stream's origin,
// writing through w (one writer per concurrent transaction).
func (a *applier) txOn(ctx context.Context, w *writer, fn func(tx *sql.Tx) error) error {
	if _, ok := a.s.cfg.Target.Dialect.(sqldb.Copier); ok {
		// The writer copies rows on the transaction's own connection.
		return a.s.cfg.Target.ConnTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
			w.conn = conn
			defer func() { w.conn = nil }()
			return a.markedTx(ctx, tx, fn)
		})
	}
	return a.s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error { return a.markedTx(ctx, tx, fn) })
}

// markedTx runs fn in tx between the stream's origin marks.
func (a *applier) markedTx(ctx context.Context, tx *sql.Tx, fn func(tx *sql.Tx) error) error {
	return marked(ctx, tx, a.marker, a.s.cfg.Origin, fn)
}

// marked runs fn in tx between marker's marks of origin, so that what fn
// writes is logged as written by replication from origin (not captured as
// a local write); a nil marker runs fn alone.
func marked(ctx context.Context, tx *sql.Tx, marker OriginMarker, origin string, fn func(tx *sql.Tx) error) error {
	if marker != nil {
		if err := marker.MarkOrigin(ctx, tx, origin); err != nil {
			return fmt.Errorf("replicate: mark origin: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if marker != nil {
		if err := marker.UnmarkOrigin(ctx, tx); err != nil {
			return fmt.Errorf("replicate: unmark origin: %w", err)
		}
	}
	return nil
}

// snapshot loads the tables not loaded yet (states says where each is),
// then switches the checkpoint to CDC at the load's start position.
func (a *applier) snapshot(ctx context.Context, st SnapshotState, tables []string, states map[string]TableState) error {
	s := a.s
	if st.Table != "" && len(states) == 0 {
		// A checkpoint of a load that ran one table after the other: the
		// tables before st.Table are loaded.
		at := indexOf(s.cfg.Tables, st.Table)
		for i, name := range s.cfg.Tables {
			switch {
			case i < at:
				states[name] = TableState{State: tableLoaded}
			case i == at:
				states[name] = TableState{State: tableLoading, LastKey: st.LastKey}
			}
		}
	}
	if err := a.loadTables(ctx, tables, st.Start, states); err != nil {
		return err
	}
	cp := Checkpoint{Phase: PhaseCDC, Position: st.Start}
	if err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
		return s.saveCheckpoint(ctx, tx, cp)
	}); err != nil {
		return err
	}
	s.log.Info("full load done", "start", st.Start)
	return nil
}

// loadTables copies the tables whose state is not loaded, LoadParallel at
// once, each chunk committed with its table's progress. A table stopped by
// a rejected row holds back no other; a failure that is not a rejection
// (a database down) ends the load with that error once the running
// chunks are done.
func (a *applier) loadTables(ctx context.Context, tables []string, start Position, states map[string]TableState) error {
	s := a.s
	var todo []string
	for _, name := range tables {
		if st := states[name]; st.State == tableLoaded || st.State == tableStopped || s.isStopped(name) {
			continue
		}
		todo = append(todo, name)
	}
	if len(todo) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu      sync.Mutex
		loading []string
		next    int
		wg      sync.WaitGroup
	)
	setLoading := func(name string, on bool) {
		mu.Lock()
		if on {
			loading = append(loading, name)
		} else if i := indexOf(loading, name); i >= 0 {
			loading = append(loading[:i], loading[i+1:]...)
		}
		names := strings.Join(loading, ", ")
		mu.Unlock()
		s.mu.Lock()
		s.status.Phase = PhaseSnapshot
		s.status.Table = names
		s.status.Position = start
		s.connectedLocked()
		s.mu.Unlock()
	}
	// The budget of LoadParallel connections goes to the tables first;
	// what is left writes chunks of the same table side by side.
	workers := min(s.cfg.LoadParallel, len(todo))
	perTable := max(1, s.cfg.LoadParallel/workers)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				if next >= len(todo) || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				name := todo[next]
				next++
				mu.Unlock()
				setLoading(name, true)
				err := a.loadTable(ctx, name, start, states[name].LastKey, perTable)
				setLoading(name, false)
				if err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// loadTable copies one table from after lastKey, chunk by chunk: a reader
// reads the chunks in key order while up to writers chunks are written to
// the target at once, each in its own transaction. The table's progress
// (the last key of the chunks written without a gap before them) is saved
// as chunks commit, so a restart resumes after it; rows written past it
// are written again, which upserts make harmless.
func (a *applier) loadTable(ctx context.Context, name string, start Position, lastKey []string, writers int) error {
	s := a.s
	tp := a.w.tables[name]
	var last []any
	if len(lastKey) > 0 {
		var err error
		if last, err = decodeKey(tp.src, lastKey); err != nil {
			return permanent(err)
		}
	}
	s.log.Info("full load of table", "table", name, "resume_after", lastKey, "writers", writers)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chunks := make(chan loadChunk, writers)
	var readErr error
	complete := false // the reader reached the table's end
	go func() {
		defer close(chunks)
		for seq := 0; ; seq++ {
			c, err := a.readChunk(ctx, tp, last)
			if err != nil {
				readErr = err
				return
			}
			if len(c.changes) == 0 {
				complete = true
				return
			}
			c.seq = seq
			select {
			case chunks <- c:
			case <-ctx.Done():
				readErr = ctx.Err()
				return
			}
			if len(c.changes) < s.cfg.BatchSize {
				complete = true
				return
			}
			last = c.changes[len(c.changes)-1].Key
		}
	}()
	var (
		mu   sync.Mutex
		done = map[int][]string{} // committed chunks past the progress: seq → last key
		next int                  // the first chunk not known committed
		wg   sync.WaitGroup
	)
	for range writers {
		wg.Go(func() {
			w := &writer{d: a.w.d, tables: a.w.tables, version: a.w.version}
			for c := range chunks {
				if ctx.Err() != nil || s.isStopped(name) {
					continue // drain what the reader sent until it stops
				}
				var save func(tx *sql.Tx) error
				if writers == 1 {
					// One writer: the progress commits with the rows.
					save = func(tx *sql.Tx) error {
						return saveTableState(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, name, TableState{State: tableLoading, LastKey: c.lastKey})
					}
				}
				if err := a.writeChunk(ctx, w, tp, start, c, save); err != nil {
					cancel(err)
					continue
				}
				if writers == 1 {
					continue
				}
				// Save the progress when this chunk closes a gap; one save
				// at a time, so a later key is never overwritten by an
				// earlier one.
				mu.Lock()
				done[c.seq] = c.lastKey
				var upTo []string
				for k, ok := done[next]; ok; k, ok = done[next] {
					upTo = k
					delete(done, next)
					next++
				}
				if upTo != nil {
					err := s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
						return saveTableState(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, name, TableState{State: tableLoading, LastKey: upTo})
					})
					if err != nil {
						cancel(err)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if s.isStopped(name) {
		return nil
	}
	if !complete {
		// Only a table read to its end is loaded.
		if readErr == nil {
			readErr = errors.New("the read stopped early")
		}
		return fmt.Errorf("replicate: full load of %s: %w", name, readErr)
	}
	return s.cfg.Target.Tx(ctx, func(tx *sql.Tx) error {
		return saveTableState(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, name, TableState{State: tableLoaded})
	})
}

// loadChunk is up to BatchSize rows of a table read for the full load.
type loadChunk struct {
	seq     int // its place in the table, from 0
	changes []Change
	lastKey []string // the text of the last key, for the table's progress
}

// readChunk reads the rows after last (up to BatchSize).
func (a *applier) readChunk(ctx context.Context, tp *tablePair, last []any) (loadChunk, error) {
	s := a.s
	mt := a.maps[tp.src.Name]
	cols := tp.src.ColumnNames()
	var q string
	var qargs []any
	var err error
	if mt != nil {
		q, qargs, err = mt.readQuery(s.cfg.Source.Dialect, last, nil, s.cfg.BatchSize)
	} else {
		q, qargs, err = rangeQuery(s.cfg.Source.Dialect, tp.src, cols, last, nil, s.cfg.BatchSize)
	}
	if err != nil {
		return loadChunk{}, permanent(err)
	}
	rows, err := readSourceRows(ctx, s.cfg.Source, tp.src, cols, q, qargs)
	if err != nil {
		return loadChunk{}, fmt.Errorf("replicate: read %s: %w", tp.src.Name, err)
	}
	if len(rows) == 0 {
		return loadChunk{}, nil
	}
	var changes []Change
	if mt != nil {
		if changes, err = mt.rowChanges(rows); err != nil {
			return loadChunk{}, err
		}
	} else {
		changes = make([]Change, len(rows))
		for i, r := range rows {
			key, err := keyOf(tp.src, cols, r)
			if err != nil {
				return loadChunk{}, err
			}
			row := make(map[string]any, len(cols))
			for j, c := range cols {
				row[c] = r[j]
			}
			changes[i] = Change{Table: tp.src.Name, Op: OpUpsert, Key: key, Row: row, TraceID: traceID(row)}
		}
	}
	lastKey, err := encodeKey(tp.src, changes[len(changes)-1].Key)
	if err != nil {
		return loadChunk{}, err
	}
	return loadChunk{changes: changes, lastKey: lastKey}, nil
}

// writeChunk writes a chunk in one transaction, with save when set.
func (a *applier) writeChunk(ctx context.Context, w *writer, tp *tablePair, start Position, c loadChunk, save func(tx *sql.Tx) error) error {
	s := a.s
	written, err := a.commit(ctx, w, c.changes, start, save)
	if err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	s.status.SnapshotRows += int64(written)
	s.status.AppliedAt = now
	s.sampleLocked(now)
	s.mu.Unlock()
	if s.cfg.OnApplied != nil {
		s.cfg.OnApplied(Batch{Changes: c.changes, Position: start, Snapshot: true})
	}
	return nil
}

// applyBatch applies one CDC batch and its position in one transaction.
func (a *applier) applyBatch(ctx context.Context, b Batch) error {
	s := a.s
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	read := b.ReadAt
	if read.IsZero() {
		read = time.Now()
	}
	var written int
	changes := s.withoutStopped(b.Changes)
	// A schema change splits the batch: what came before is committed,
	// the target follows the change, then the rest applies with the new
	// columns (and the checkpoint).
	for i := 0; i < len(changes); i++ {
		if changes[i].Op != OpSchema {
			continue
		}
		if i > 0 {
			seg, err := mapChanges(a.maps, changes[:i])
			if err != nil {
				return permanent(err)
			}
			n, err := a.applySegment(ctx, seg, b.Position)
			written += n
			if err != nil {
				return err
			}
		}
		if changes[i].NewTable != "" {
			if err := a.renamed(ctx, changes[i], b.Position); err != nil {
				return err
			}
		} else if err := a.followSchema(ctx, changes[i]); err != nil {
			if !errors.Is(err, errNotFollowed) {
				return err
			}
			if err := a.stopForSchema(ctx, changes[i], b.Position, err); err != nil {
				return err
			}
		}
		changes, i = s.withoutStopped(changes[i+1:]), -1
	}
	changes, err := mapChanges(a.maps, changes)
	if err != nil {
		return permanent(err)
	}
	switch {
	case len(b.Changes) == 0 && read.Sub(s.saved.At()) < positionSaveEvery:
		// Only the position moved: checkpointed with a later batch, or
		// by saveLoop.
		s.mu.Lock()
		s.unsaved = b.Position
		s.mu.Unlock()
	case len(b.Changes) == 0:
		if err := s.savePosition(ctx, b.Position, read); err != nil {
			return err
		}
	default:
		n, err := a.commit(ctx, a.w, changes, b.Position, func(tx *sql.Tx) error {
			// commit fenced the transaction.
			return SaveCheckpoint(ctx, tx, s.cfg.Target.Dialect, s.cfg.Name, Checkpoint{Phase: PhaseCDC, Position: b.Position})
		})
		written += n
		if err != nil {
			return err
		}
		s.setSaved(b.Position, read)
	}
	now := time.Now()
	s.mu.Lock()
	s.status.Position = b.Position
	s.status.CDCRows += int64(written)
	s.status.AppliedAt = now
	if !b.CommitTime.IsZero() && len(b.Changes) > 0 {
		s.status.SourceLag = max(0, read.Sub(b.CommitTime))
		s.status.TargetLag = max(0, now.Sub(b.CommitTime))
	}
	s.sampleLocked(now)
	s.mu.Unlock()
	if len(b.Changes) > 0 {
		s.log.Debug("batch applied", "changes", len(b.Changes), "position", b.Position)
	}
	if s.cfg.OnApplied != nil {
		b.Applied, b.AppliedAt = now.Sub(read), now
		s.cfg.OnApplied(b)
	}
	return nil
}

// sampleLocked records the applied total for the rate, keeping ~10 s.
func (s *Stream) sampleLocked(now time.Time) {
	total := s.status.SnapshotRows + s.status.CDCRows
	s.samples = append(s.samples, rateSample{at: now, rows: total})
	i := 0
	for i < len(s.samples)-2 && now.Sub(s.samples[i].at) > 10*time.Second {
		i++
	}
	if i > 0 || len(s.samples) > 1024 {
		if len(s.samples)-i > 1024 {
			i = len(s.samples) - 1024
		}
		s.samples = append(s.samples[:0], s.samples[i:]...)
	}
}

// traceID returns a row's _trace_id when it has one.
func traceID(row map[string]any) string {
	switch v := row["_trace_id"].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
