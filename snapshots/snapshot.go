package snapshots

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
)

// ErrNotFound is returned by Store.Get when there is no snapshot of the
// aggregate.
var ErrNotFound = errors.New("snapshots: not found")

// ErrStale is returned (wrapped) by Store.Put when the store already holds a
// snapshot of the aggregate at a higher version. The store keeps the newer
// one.
var ErrStale = errors.New("snapshots: stale snapshot")

// ErrCorrupt is returned (wrapped) by decoders and stores when stored bytes
// cannot be decoded into a snapshot: truncated, foreign or of an unknown
// schema.
var ErrCorrupt = errors.New("snapshots: corrupt snapshot")

// Snapshot is the state of one aggregate at one version.
type Snapshot struct {
	AggregateID   uuid.UUID
	AggregateType string
	// Version is the aggregate version the state is at: the version of the
	// last event the snapshot includes.
	Version int64
	// SchemaVersion is the aggregate type's declared state schema version
	// when the snapshot was taken. Loads use a snapshot only when it equals
	// the type's current schema version.
	SchemaVersion int
	CreatedAt     time.Time
	// Position is the log position of the event at Version: the last event
	// the snapshot includes. Loads read the log after it.
	Position log.Position
	// Save is the save that wrote the event at Position (log.Event.Save). A
	// load that starts reading after Position needs it to apply the winner
	// rule to the rest of that save, if it has more events.
	Save uuid.UUID
	// State is the aggregate state as a record: field names to plain Go
	// values (string, bool, int32, int64, float32, float64, []byte,
	// time.Time, nil, []any and map[string]any of these). See Marshal.
	State map[string]any
}

func (s Snapshot) String() string {
	return fmt.Sprintf("%s %s v%d (schema %d, at %s)", s.AggregateType, s.AggregateID, s.Version, s.SchemaVersion, s.Position)
}

// Store keeps the latest snapshot of each aggregate.
//
// Implementations are safe for concurrent use. A Store never replaces a
// snapshot with one of a lower version: such a Put returns an error wrapping
// ErrStale and changes nothing. A Put at the same or a higher version
// replaces the snapshot.
type Store interface {
	// Get returns the latest snapshot of the aggregate, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (Snapshot, error)
	// Put stores a snapshot.
	Put(ctx context.Context, s Snapshot) error
	// Delete removes the aggregate's snapshot; deleting a missing one is not
	// an error.
	Delete(ctx context.Context, aggregateType string, aggregateID uuid.UUID) error
}

// CheckpointReader is implemented by stores that keep the snapshotter's
// checkpoints (see Checkpoint). A repository whose store implements it
// starts loads at the checkpoint of the aggregate's partition when that is
// past the aggregate's snapshot, or when the aggregate has no snapshot.
type CheckpointReader interface {
	// CheckpointOf returns the latest checkpoint of the partition that holds
	// the aggregate, or an error wrapping ErrNotFound.
	CheckpointOf(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (Checkpoint, error)
}

// Validate reports what is missing from a snapshot that a Store needs.
func (s Snapshot) Validate() error {
	var errs []error
	if s.AggregateType == "" {
		errs = append(errs, errors.New("empty aggregate type"))
	}
	if s.AggregateID == uuid.Nil {
		errs = append(errs, errors.New("nil aggregate id"))
	}
	if s.Version <= 0 {
		errs = append(errs, fmt.Errorf("version %d is not positive", s.Version))
	}
	if s.SchemaVersion <= 0 {
		errs = append(errs, fmt.Errorf("schema version %d is not positive", s.SchemaVersion))
	}
	if s.Position.Offset < 0 {
		errs = append(errs, fmt.Errorf("position %s has no offset", s.Position))
	}
	if s.State == nil {
		errs = append(errs, errors.New("nil state"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("snapshots: invalid snapshot of %s %s: %w", s.AggregateType, s.AggregateID, errors.Join(errs...))
	}
	return nil
}
