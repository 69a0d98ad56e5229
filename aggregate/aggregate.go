package aggregate

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
)

// Metadata travels with an event without being part of its payload:
// correlation id, causation id and free key/values.
type Metadata = log.Metadata

// Envelope is one event of an aggregate with everything known about it.
type Envelope struct {
	ID            uuid.UUID
	Type          string // the registered name of Event's type
	AggregateID   uuid.UUID
	AggregateType string
	// Version is the aggregate's version once this event is applied; the
	// first event of an aggregate has version 1.
	Version    int64
	OccurredAt time.Time // UTC
	Metadata   Metadata
	// Event is the domain event: a value of a type registered in the
	// aggregate type's Registry.
	Event any
	// Position is where the event is stored in the log; it is the zero
	// Position for an event that is not saved yet.
	Position log.Position
}

// Type describes an aggregate type: its name, its events, how events change
// its state, and how its state is snapshotted.
type Type[S any] struct {
	// Name is the aggregate type's name, e.g. "Order". The log keeps each
	// aggregate type's events apart by it. Required.
	Name string
	// SchemaVersion is the version of the state's shape. Increase it when S
	// changes in a way old snapshots cannot be read into: loads then ignore
	// snapshots taken with another schema version and replay events
	// instead. Zero means 1.
	SchemaVersion int
	// Events registers the aggregate's event types. Required.
	Events *Registry
	// Init returns the state of a new aggregate, before its first event.
	// Nil means the zero S.
	Init func(id uuid.UUID) S
	// Apply returns the state after event. It must be deterministic and
	// must not keep references into e.Event that the caller may change.
	// An error means the event cannot be applied: for a new event the
	// aggregate is unchanged, for a stored one the load fails. Required.
	Apply func(state S, e Envelope) (S, error)
	// StateSchema is the Avro schema of S in snapshots: the JSON text of a
	// record schema (such as schemas.OrderState()) whose fields S's
	// `avro:"name"` struct tags name, encoded and decoded by hamba/avro (see
	// snapshots.StateSchema). It is the one registration of the type's
	// snapshots: the repository, the Kafka snapshot store it is given and
	// the snapshotter all take it from here. Required when snapshots are
	// used.
	StateSchema string
	// OlderStateSchemas are state schemas the type's snapshots may have been
	// written with before StateSchema. A snapshot store that reads encoded
	// snapshots resolves them to StateSchema by the Avro specification's
	// rules; snapshots of any other schema are not used.
	OlderStateSchemas []string
}

func (t *Type[S]) validate() error {
	var errs []error
	if t.Name == "" {
		errs = append(errs, errors.New("empty Name"))
	}
	if t.SchemaVersion < 0 {
		errs = append(errs, fmt.Errorf("negative SchemaVersion %d", t.SchemaVersion))
	}
	if t.Events == nil {
		errs = append(errs, errors.New("nil Events registry"))
	}
	if t.Apply == nil {
		errs = append(errs, errors.New("nil Apply"))
	}
	return errors.Join(errs...)
}

func (t *Type[S]) schemaVersion() int {
	if t.SchemaVersion == 0 {
		return 1
	}
	return t.SchemaVersion
}

func (t *Type[S]) initial(id uuid.UUID) S {
	if t.Init == nil {
		var zero S
		return zero
	}
	return t.Init(id)
}

// Root is one aggregate: its identity, its state at its current version, and
// the events applied since it was loaded or last saved. Domain types embed a
// *Root and add command methods that check rules and call Apply.
//
// A Root is not safe for concurrent use.
type Root[S any] struct {
	typ   *Type[S]
	now   func() time.Time
	id    uuid.UUID
	state S

	version     int64 // including uncommitted events
	committed   int64 // version of the last stored event
	uncommitted []Envelope

	last   log.Position // position of the event at version committed
	save   uuid.UUID    // the save of that event
	readTo int64        // where the log is known to hold the aggregate at committed (log.Expected.ReadTo)

	// snapVersion and snapAt are the version and time of the aggregate's
	// latest snapshot this root knows of: loaded from, or written. The
	// snapshot policy decides on them.
	snapVersion int64
	snapAt      time.Time

	// unsettled is the save whose Append ended without a verdict (a
	// timeout, a broker failure): its first n uncommitted events may or may
	// not be stored. The next Save sends exactly that save again, under the
	// same id, to learn its outcome before anything else.
	unsettled *unsettledSave
}

type unsettledSave struct {
	id     uuid.UUID
	n      int
	readTo int64 // the Expected.ReadTo it was sent with; a retry sends the same
}

func newRoot[S any](typ *Type[S], now func() time.Time, id uuid.UUID) *Root[S] {
	return &Root[S]{typ: typ, now: now, id: id, state: typ.initial(id), last: log.Position{Offset: log.NoOffset}}
}

// ID returns the aggregate id.
func (r *Root[S]) ID() uuid.UUID { return r.id }

// Type returns the aggregate type's name.
func (r *Root[S]) Type() string { return r.typ.Name }

// SchemaVersion returns the aggregate type's state schema version.
func (r *Root[S]) SchemaVersion() int { return r.typ.schemaVersion() }

// Version returns the aggregate's version including events not saved yet;
// 0 for an aggregate with no events.
func (r *Root[S]) Version() int64 { return r.version }

// CommittedVersion returns the version of the last saved event.
func (r *Root[S]) CommittedVersion() int64 { return r.committed }

// NextVersion returns the version the next applied event will have.
func (r *Root[S]) NextVersion() int64 { return r.version + 1 }

// State returns the current state. Change it only through Apply.
func (r *Root[S]) State() S { return r.state }

// Uncommitted returns the events applied since the aggregate was loaded or
// last saved, oldest first.
func (r *Root[S]) Uncommitted() []Envelope { return append([]Envelope(nil), r.uncommitted...) }

// Position returns the log position of the last saved event, with offset
// log.NoOffset when nothing is saved.
func (r *Root[S]) Position() log.Position { return r.last }

// Apply records a new event: it names it from the registry, applies it to
// the state, and adds it to the uncommitted events. On error the aggregate
// is unchanged.
func (r *Root[S]) Apply(event any) error { return r.ApplyWith(event, Metadata{}) }

// ApplyWith is Apply with metadata for the event.
func (r *Root[S]) ApplyWith(event any, md Metadata) error {
	name, err := r.typ.Events.NameOf(event)
	if err != nil {
		return fmt.Errorf("aggregate: apply to %s %s: %w", r.typ.Name, r.id, err)
	}
	e := Envelope{
		ID:            uuid.New(),
		Type:          name,
		AggregateID:   r.id,
		AggregateType: r.typ.Name,
		Version:       r.version + 1,
		OccurredAt:    r.now().UTC(),
		Metadata:      md,
		Event:         event,
	}
	state, err := r.typ.Apply(r.state, e)
	if err != nil {
		return fmt.Errorf("aggregate: apply %s to %s %s at version %d: %w", name, r.typ.Name, r.id, e.Version, err)
	}
	r.state = state
	r.version = e.Version
	r.uncommitted = append(r.uncommitted, e)
	return nil
}
