package snapshots

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
)

// ErrNotFound is returned by Store.Get when there is no snapshot of the
// aggregate.
var ErrNotFound = errors.New("snapshots: not found")

// ErrDeleted is reported (through errors.Is, with ErrNotFound) by a Get
// of an aggregate whose snapshot was deleted: a store that knows it tells a
// deleted snapshot from one that never was (see Checkpoint.Unborn).
var ErrDeleted = errors.New("snapshots: snapshot deleted")

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
	// State is the aggregate state in Avro binary encoding, in the current
	// state schema of its aggregate type (see StateSchema): the bytes the
	// envelope's last field holds in the snapshot's topic record, and what
	// the repository decodes into the state.
	State []byte
}

// ErrUnconfirmed is reported (through errors.Is) by Confirm for a snapshot
// the log does not confirm.
var ErrUnconfirmed = errors.New("snapshots: snapshot not confirmed by the log")

// ErrSchemaVersion is reported (through errors.Is) by For for a snapshot
// taken with another state schema version than the aggregate type's.
var ErrSchemaVersion = errors.New("snapshots: snapshot of another schema version")

// For checks that a store's snapshot is one a reader of the aggregate of
// that type and id, at that state schema version, may use, before the log
// confirms it (Confirm): of that aggregate, at a positive version and a
// log position, and taken with that schema version (an error wrapping
// ErrSchemaVersion otherwise). Repositories and the snapshotter apply it to
// what a Store's Get returns.
func (s Snapshot) For(aggregateType string, id uuid.UUID, schemaVersion int) error {
	if s.AggregateID != id || s.AggregateType != aggregateType || s.Version <= 0 || s.Position.Offset < 0 {
		return fmt.Errorf("snapshot %s does not belong to %s %s", s, aggregateType, id)
	}
	if s.SchemaVersion != schemaVersion {
		return fmt.Errorf("%w: snapshot schema version %d, %s schema version %d", ErrSchemaVersion, s.SchemaVersion, aggregateType, schemaVersion)
	}
	return nil
}

// Confirm checks a snapshot against e, the event the log holds at the
// snapshot's Position (log.Kafka.EventAt, or the first event of a Read from
// that offset): the same aggregate and type, version and save, at that
// position, and the last event of its save, since a snapshot never stands
// inside a save. It is the one check every reader applies before it uses a
// snapshot's version or state: a snapshot topic takes records from anyone,
// and a version the log does not hold where the snapshot says would give a
// load a version the aggregate does not have, and a save built on it could
// be lost. A snapshot of another log, of a repartitioned topic, or written
// by hand fails it, with an error wrapping ErrUnconfirmed that says why.
func (s Snapshot) Confirm(e log.Event) error {
	var why string
	switch {
	case e.AggregateID != s.AggregateID || e.AggregateType != s.AggregateType:
		why = fmt.Sprintf("the event there is of %s %s", e.AggregateType, e.AggregateID)
	case e.Position != s.Position:
		why = fmt.Sprintf("the event is at %s", e.Position)
	case e.AggregateVersion != s.Version:
		why = fmt.Sprintf("the event there is version %d", e.AggregateVersion)
	case e.Save != s.Save:
		why = fmt.Sprintf("the event there is of save %s, the snapshot names save %s", e.Save, s.Save)
	case e.AggregateVersion != e.Expected+int64(e.SaveEvents):
		why = fmt.Sprintf("the event there is event %d of the %d of its save", e.AggregateVersion-e.Expected, e.SaveEvents)
	default:
		return nil
	}
	return fmt.Errorf("%w: %s: %s", ErrUnconfirmed, s, why)
}

// Crossed is the threshold rule of snapshots, the one repositories and the
// snapshotter apply: a snapshot of an aggregate is due when its version went
// from before to after across a multiple of every (every > 0). Saves of
// several events that step over a multiple count, so snapshots are not
// skipped for aggregates whose versions never land on one. eventsource-py
// adopted this rule in 0.9.1; before it snapshotted only at a version that
// is a multiple.
func Crossed(before, after, every int64) bool {
	return every > 0 && after > before && after/every > before/every
}

// microsRange reports a time that Avro's timestamp-micros (an int64 of
// microseconds since the Unix epoch) cannot hold.
func microsRange(t time.Time) error {
	if t.Before(minMicros) || t.After(maxMicros) {
		return fmt.Errorf("%s is out of the range of a timestamp-micros", t)
	}
	return nil
}

var minMicros, maxMicros = time.UnixMicro(math.MinInt64), time.UnixMicro(math.MaxInt64)

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

// Housekeeper is implemented by stores that can tell whether they hold a
// snapshot and delete snapshots in bulk ([Memory] and [Kafka]): the
// housekeeping after a change to an aggregate type's state schema, when the
// snapshots taken with an older schema version can no longer be used
// (loads replay the aggregates' events instead, see Snapshot.For) and only
// take space.
//
// A snapshot matches belowSchemaVersion when belowSchemaVersion is 0 (every
// snapshot of the type) or when its SchemaVersion is lower than
// belowSchemaVersion; a negative belowSchemaVersion is an error. Snapshots
// of other aggregate types never match.
type Housekeeper interface {
	// Exists reports whether the store holds a snapshot of the aggregate,
	// without decoding it. A deleted snapshot does not exist.
	Exists(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (bool, error)
	// Remove is Store.Delete that reports whether the store held a
	// snapshot of the aggregate: false when there was none to delete,
	// which is not an error. It refuses what Delete refuses.
	Remove(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (bool, error)
	// CountType returns how many snapshots of the aggregate type
	// DeleteType with the same arguments would delete now; it deletes
	// nothing.
	CountType(ctx context.Context, aggregateType string, belowSchemaVersion int) (int, error)
	// DeleteType deletes every snapshot of the aggregate type that matches
	// belowSchemaVersion and returns how many it deleted. Loads of those
	// aggregates replay their events until a new snapshot is taken.
	DeleteType(ctx context.Context, aggregateType string, belowSchemaVersion int) (int, error)
}

// checkBelow refuses a negative belowSchemaVersion (see Housekeeper).
func checkBelow(aggregateType string, belowSchemaVersion int) error {
	if aggregateType == "" {
		return errors.New("snapshots: empty aggregate type")
	}
	if belowSchemaVersion < 0 {
		return fmt.Errorf("snapshots: schema version bound %d is negative (0 matches every schema version)", belowSchemaVersion)
	}
	return nil
}

// matchesBelow reports whether a snapshot taken with schemaVersion matches
// belowSchemaVersion (see Housekeeper).
func matchesBelow(schemaVersion, belowSchemaVersion int) bool {
	return belowSchemaVersion == 0 || schemaVersion < belowSchemaVersion
}

// SchemaRegistrar is implemented by stores that encode snapshots and so
// must know each aggregate type's state schema ([Kafka]). A repository
// registers its type's schemas with its store, and the snapshotter its
// types', so that an aggregate type is registered once, on its
// aggregate.Type. Register is AvroCodec.Register. A Store that wraps
// another (to add latency, metrics or a cache) forwards Register to it:
// otherwise the wrapped store is never told the schemas, and its Puts fail
// naming the aggregate type as not registered.
type SchemaRegistrar interface {
	Register(aggregateType, stateSchema string, olderStateSchemas ...string) error
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
	if s.SchemaVersion <= 0 || s.SchemaVersion > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("schema version %d is not a positive Avro int", s.SchemaVersion))
	}
	if err := microsRange(s.CreatedAt); err != nil {
		errs = append(errs, fmt.Errorf("created at: %w", err))
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
