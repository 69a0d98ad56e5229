package snapshotter

import (
	"errors"
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

	initial func(id uuid.UUID) any
	apply   func(state any, e log.Event) (any, aggregate.Envelope, error)
	encode  func(state any) ([]byte, error)
	decode  func(b []byte) (any, error)
	err     error // what is wrong with the type's state schema
}

func (t *typeSpec) spec() *typeSpec             { return t }
func (t *typeSpec) Name() string                { return t.name }
func (t *typeSpec) StateSchema() string         { return t.stateSchema }
func (t *typeSpec) OlderStateSchemas() []string { return append([]string(nil), t.olderSchemas...) }

// Register makes an aggregate type known to the snapshotter: typ is the same
// aggregate.Type the application's repository uses (its apply function,
// registry, schema version and state schemas: the snapshots the
// snapshotter writes are the ones the repository reads).
func Register[S any](typ aggregate.Type[S]) Type {
	state, err := snapshots.ParseStateSchema(typ.StateSchema)
	if typ.StateSchema == "" {
		err = errors.New("no StateSchema")
	}
	sv := typ.SchemaVersion
	if sv == 0 {
		sv = 1
	}
	return &typeSpec{
		name:          typ.Name,
		schemaVersion: sv,
		stateSchema:   typ.StateSchema,
		olderSchemas:  typ.OlderStateSchemas,
		err:           err,
		initial: func(id uuid.UUID) any {
			if typ.Init == nil {
				var zero S
				return zero
			}
			return typ.Init(id)
		},
		apply: func(state any, le log.Event) (any, aggregate.Envelope, error) {
			if typ.Events == nil || typ.Apply == nil {
				return nil, aggregate.Envelope{}, fmt.Errorf("aggregate type %s has no Events registry or Apply", typ.Name)
			}
			ev, err := typ.Events.Decode(le.Type, le.ContentType, le.Payload)
			if err != nil {
				return nil, aggregate.Envelope{}, err
			}
			env := aggregate.Envelope{
				ID: le.ID, Type: le.Type, AggregateID: le.AggregateID, AggregateType: le.AggregateType,
				Version: le.AggregateVersion, OccurredAt: le.OccurredAt, Metadata: le.Metadata, Event: ev, Position: le.Position,
			}
			next, err := typ.Apply(state.(S), env)
			return next, env, err
		},
		encode: func(v any) ([]byte, error) { return state.Encode(v.(S)) },
		decode: func(b []byte) (any, error) {
			var v S
			err := state.Decode(b, &v)
			return v, err
		},
	}
}
