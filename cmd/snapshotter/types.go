package main

import (
	"fmt"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// aggregateType is an aggregate type the binary serves: the snapshotter's
// registration, and the name and state schemas that inspect needs to decode
// the type's snapshots.
type aggregateType struct {
	name        string
	stateSchema string
	older       []string
	snap        snapshotter.Type
}

// register makes an aggregate type known to the binary. Its arguments are
// those of snapshotter.Register: the aggregate.Type the application's
// repository uses, the Avro schema of its state, and the earlier state
// schemas whose snapshots may still be in the topic.
func register[S any](typ aggregate.Type[S], stateSchema string, olderStateSchemas ...string) aggregateType {
	return aggregateType{
		name:        typ.Name,
		stateSchema: stateSchema,
		older:       olderStateSchemas,
		snap:        snapshotter.Register(typ, stateSchema, olderStateSchemas...),
	}
}

// codec returns an Avro codec that decodes the type's snapshots, written
// with its current or an older state schema.
func (t aggregateType) codec() (*snapshots.AvroCodec, error) {
	c := snapshots.NewAvroCodec()
	if err := c.Register(t.name, t.stateSchema); err != nil {
		return nil, fmt.Errorf("aggregate type %s: %w", t.name, err)
	}
	for _, older := range t.older {
		if err := c.RegisterWriter(t.name, older); err != nil {
			return nil, fmt.Errorf("aggregate type %s: older state schema: %w", t.name, err)
		}
	}
	return c, nil
}

func typeNames(types []aggregateType) []string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.name
	}
	return names
}

func findType(types []aggregateType, name string) (aggregateType, bool) {
	for _, t := range types {
		if t.name == name {
			return t, true
		}
	}
	return aggregateType{}, false
}
