package snapshotter

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// Type is an aggregate type the snapshotter snapshots. Make one with
// Register.
type Type interface {
	// Name is the aggregate type's name.
	Name() string
	// StateSchema is the Avro schema of its state, and OlderStateSchemas
	// the earlier ones its snapshots may have been written with.
	StateSchema() string
	OlderStateSchemas() []string
	spec() *typeSpec
}

// typeSpec is a registered aggregate type with its state type erased.
type typeSpec struct {
	name          string
	schemaVersion int
	stateSchema   string
	olderSchemas  []string

	initial    func(id uuid.UUID) any
	apply      func(state any, e log.Event) (any, error)
	toRecord   func(state any) (map[string]any, error)
	fromRecord func(rec map[string]any) (any, error)
}

func (t *typeSpec) spec() *typeSpec             { return t }
func (t *typeSpec) Name() string                { return t.name }
func (t *typeSpec) StateSchema() string         { return t.stateSchema }
func (t *typeSpec) OlderStateSchemas() []string { return append([]string(nil), t.olderSchemas...) }

// Register makes an aggregate type known to the snapshotter: typ is the same
// aggregate.Type the application's repository uses (its apply function,
// registry and schema version), stateSchema the Avro schema of its state
// (the record the repository's snapshots hold), and olderStateSchemas the
// earlier state schemas whose snapshots may still be in the topic.
func Register[S any](typ aggregate.Type[S], stateSchema string, olderStateSchemas ...string) Type {
	codec := typ.State
	if codec == nil {
		codec = structState[S]{}
	}
	sv := typ.SchemaVersion
	if sv == 0 {
		sv = 1
	}
	return &typeSpec{
		name:          typ.Name,
		schemaVersion: sv,
		stateSchema:   stateSchema,
		olderSchemas:  olderStateSchemas,
		initial: func(id uuid.UUID) any {
			if typ.Init == nil {
				var zero S
				return zero
			}
			return typ.Init(id)
		},
		apply: func(state any, le log.Event) (any, error) {
			if typ.Events == nil || typ.Apply == nil {
				return nil, fmt.Errorf("aggregate type %s has no Events registry or Apply", typ.Name)
			}
			ev, err := typ.Events.Decode(le.Type, le.ContentType, le.Payload)
			if err != nil {
				return nil, err
			}
			return typ.Apply(state.(S), aggregate.Envelope{
				ID: le.ID, Type: le.Type, AggregateID: le.AggregateID, AggregateType: le.AggregateType,
				Version: le.AggregateVersion, OccurredAt: le.OccurredAt, Metadata: le.Metadata, Event: ev, Position: le.Position,
			})
		},
		toRecord: func(state any) (map[string]any, error) { return codec.ToRecord(state.(S)) },
		fromRecord: func(rec map[string]any) (any, error) {
			s, err := codec.FromRecord(rec)
			return s, err
		},
	}
}

type structState[S any] struct{}

func (structState[S]) ToRecord(s S) (map[string]any, error) { return snapshots.Marshal(s) }

func (structState[S]) FromRecord(r map[string]any) (S, error) {
	var s S
	err := snapshots.Unmarshal(r, &s)
	return s, err
}
