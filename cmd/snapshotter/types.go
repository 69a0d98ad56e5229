package main

import (
	"fmt"
	"log/slog"

	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// codecOf returns an Avro codec that decodes the snapshots of t, written
// with its current or an older state schema.
func codecOf(t snapshotter.Type) (*snapshots.AvroCodec, error) {
	c := snapshots.NewAvroCodec()
	if err := c.Register(t.Name(), t.StateSchema(), t.OlderStateSchemas()...); err != nil {
		return nil, fmt.Errorf("aggregate type %s: %w", t.Name(), err)
	}
	return c, nil
}

// store returns a Kafka snapshot store of the configured cluster and topics
// that decodes t's snapshots, with the extra options.
func (c config) store(t snapshotter.Type, logger *slog.Logger, extra ...snapshots.KafkaOption) (*snapshots.Kafka, error) {
	codec, err := codecOf(t)
	if err != nil {
		return nil, err
	}
	return snapshots.NewKafka(codec, append([]snapshots.KafkaOption{
		snapshots.KafkaClient(c.KafkaOpts...),
		snapshots.WithTopicPrefix(c.SnapshotsPrefix),
		snapshots.WithEventsTopicPrefix(c.EventsPrefix),
		snapshots.WithLogger(logger),
	}, extra...)...)
}

func typeNames(types []snapshotter.Type) []string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.Name()
	}
	return names
}

func findType(types []snapshotter.Type, name string) (snapshotter.Type, bool) {
	for _, t := range types {
		if t.Name() == name {
			return t, true
		}
	}
	return nil, false
}
