package replicate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// CheckpointTable is the target table holding each stream's checkpoint.
const CheckpointTable = "_ic_checkpoints"

// The phases of a stream.
const (
	PhaseSnapshot = "snapshot" // full load in progress
	PhaseCDC      = "cdc"      // applying changes
)

// Checkpoint is what a target has applied for one stream.
type Checkpoint struct {
	// Phase is PhaseSnapshot or PhaseCDC; empty when the stream has no
	// checkpoint yet.
	Phase string
	// Position is the source position applied (in PhaseCDC).
	Position Position
	// Snapshot is the full load's progress (in PhaseSnapshot).
	Snapshot *SnapshotState
	// UpdatedAt is when the checkpoint was saved.
	UpdatedAt time.Time
}

// SnapshotState is the progress of a full load.
type SnapshotState struct {
	// Start is the source position taken before the load read anything;
	// CDC starts there.
	Start Position `json:"start"`
	// Table is the table being loaded.
	Table string `json:"table"`
	// LastKey is the text of each value of the last primary key loaded
	// from Table (Canonical, except decimals, times and JSON kept as
	// stored); empty when none is.
	LastKey []string `json:"last_key,omitempty"`
}

var checkpointDef = sqldb.Table{
	Name: CheckpointTable,
	Columns: []sqldb.Column{
		{Name: "stream", Type: sqldb.Type{Kind: sqldb.KindString, Length: 200}},
		{Name: "position", Type: sqldb.Type{Kind: sqldb.KindText}},
		{Name: "phase", Type: sqldb.Type{Kind: sqldb.KindString, Length: 16}},
		{Name: "snapshot", Type: sqldb.Type{Kind: sqldb.KindText}, Nullable: true},
		{Name: "updated_at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
	},
	PrimaryKey: []string{"stream"},
}

// EnsureCheckpoints creates the checkpoint table in db if it is missing.
func EnsureCheckpoints(ctx context.Context, db *sqldb.DB) error {
	if err := db.EnsureTable(ctx, checkpointDef); err != nil {
		return fmt.Errorf("replicate: checkpoints: %w", err)
	}
	return nil
}

// LoadCheckpoint reads a stream's checkpoint; a stream without one gets the
// zero Checkpoint (empty Phase).
func LoadCheckpoint(ctx context.Context, q sqldb.Querier, d sqldb.Dialect, stream string) (Checkpoint, error) {
	query := fmt.Sprintf("SELECT %s, %s, %s, %s FROM %s WHERE %s = %s",
		d.Quote("position"), d.Quote("phase"), d.Quote("snapshot"), d.Quote("updated_at"),
		d.Quote(CheckpointTable), d.Quote("stream"), d.Placeholder(1))
	var pos, phase string
	var snap sql.NullString
	var updated any
	err := q.QueryRowContext(ctx, query, stream).Scan(&pos, &phase, &snap, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("replicate: load checkpoint %s: %w", stream, err)
	}
	cp := Checkpoint{Phase: phase, Position: Position(pos)}
	if t, err := sqldb.Normalize(sqldb.Type{Kind: sqldb.KindTimestamp}, updated); err == nil && t != nil {
		cp.UpdatedAt = t.(time.Time)
	}
	if snap.Valid && snap.String != "" {
		cp.Snapshot = new(SnapshotState)
		if err := json.Unmarshal([]byte(snap.String), cp.Snapshot); err != nil {
			return Checkpoint{}, fmt.Errorf("replicate: load checkpoint %s: snapshot state: %w", stream, err)
		}
	}
	switch cp.Phase {
	case PhaseCDC:
	case PhaseSnapshot:
		if cp.Snapshot == nil {
			return Checkpoint{}, fmt.Errorf("replicate: load checkpoint %s: snapshot phase without state", stream)
		}
	default:
		return Checkpoint{}, fmt.Errorf("replicate: load checkpoint %s: unknown phase %q", stream, cp.Phase)
	}
	return cp, nil
}

// SaveCheckpoint writes a stream's checkpoint inside tx, the transaction
// that applied what it covers.
func SaveCheckpoint(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, stream string, cp Checkpoint) error {
	if cp.Phase != PhaseSnapshot && cp.Phase != PhaseCDC {
		return fmt.Errorf("replicate: save checkpoint %s: unknown phase %q", stream, cp.Phase)
	}
	var snap any
	if cp.Snapshot != nil {
		b, err := json.Marshal(cp.Snapshot)
		if err != nil {
			return fmt.Errorf("replicate: save checkpoint %s: %w", stream, err)
		}
		snap = string(b)
	}
	now := cp.UpdatedAt
	if now.IsZero() {
		now = time.Now()
	}
	vals := []any{stream, string(cp.Position), cp.Phase, snap, now.UTC()}
	for i, c := range checkpointDef.Columns {
		v, err := d.Value(c.Type, vals[i])
		if err != nil {
			return fmt.Errorf("replicate: save checkpoint %s: %w", stream, err)
		}
		vals[i] = v
	}
	if _, err := tx.ExecContext(ctx, d.Upsert(checkpointDef, 1), vals...); err != nil {
		return fmt.Errorf("replicate: save checkpoint %s: %w", stream, err)
	}
	return nil
}

// SavedPosition is the position of a consumer's last saved checkpoint and
// when it was saved, safe for concurrent use; its Position method is a
// StreamOptions.Durable.
type SavedPosition struct {
	mu  sync.Mutex
	pos Position
	at  time.Time
}

// Set records a checkpoint of pos saved at at.
func (s *SavedPosition) Set(pos Position, at time.Time) {
	s.mu.Lock()
	s.pos, s.at = pos, at
	s.mu.Unlock()
}

// Position returns the saved position.
func (s *SavedPosition) Position() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// At returns when the position was saved.
func (s *SavedPosition) At() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at
}
