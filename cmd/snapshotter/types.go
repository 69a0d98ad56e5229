package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

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

// commandStore is the snapshot store of inspect and purge: the snapshot
// topics (kafkaStore) or the tables of the PostgreSQL store
// (postgresStore).
type commandStore interface {
	Get(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (snapshots.Snapshot, error)
	CheckpointOf(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (snapshots.Checkpoint, error)
	Schema(aggregateType string) *snapshots.StateSchema
	// Where names where the aggregate type's snapshots are, for messages.
	Where(aggregateType string) string
	Close() error
}

// kafkaStore is the snapshot topics' store.
type kafkaStore struct{ *snapshots.Kafka }

func (k kafkaStore) Where(aggregateType string) string { return k.Topic(aggregateType) }

// postgresStore is the PostgreSQL store, on a pool of its own that Close
// closes.
type postgresStore struct {
	*snapshots.Postgres
	pg    postgresConfig
	pool  *pgxpool.Pool
	codec *snapshots.AvroCodec
	opts  []snapshots.PostgresOption // but for the schema, pg's
}

func (p postgresStore) Where(string) string { return p.DBSchema() + ".snapshots" }

func (p postgresStore) Close() error {
	p.pool.Close()
	return nil
}

// with returns a store on the same pool with the extra options.
func (p postgresStore) with(extra ...snapshots.PostgresOption) (*snapshots.Postgres, error) {
	return p.pg.store(p.pool, p.codec, append(append([]snapshots.PostgresOption(nil), p.opts...), extra...)...)
}

// store returns the configured snapshot store, decoding t's snapshots: the
// Kafka store of the cluster and snapshot topics, or the PostgreSQL store
// of the database and schema, checked to be migrated. A non-empty owner
// makes it write as that snapshotter (snapshots.WithOwner,
// snapshots.WithPostgresOwner). The caller closes it.
func (c config) store(ctx context.Context, t snapshotter.Type, logger *slog.Logger, owner string) (commandStore, error) {
	codec, err := codecOf(t)
	if err != nil {
		return nil, err
	}
	if c.SnapshotStore == storePostgres {
		pool, err := c.Postgres.pool(ctx)
		if err != nil {
			return nil, err
		}
		opts := []snapshots.PostgresOption{snapshots.WithPostgresEventsTopicPrefix(c.EventsPrefix)}
		if owner != "" {
			opts = append(opts, snapshots.WithPostgresOwner(owner))
		}
		store, err := c.Postgres.store(pool, codec, opts...)
		if err == nil {
			err = c.Postgres.ready(ctx, pool)
		}
		if err != nil {
			pool.Close()
			return nil, err
		}
		return postgresStore{Postgres: store, pg: c.Postgres, pool: pool, codec: codec, opts: opts}, nil
	}
	opts := []snapshots.KafkaOption{
		snapshots.KafkaClient(c.KafkaOpts...),
		snapshots.WithTopicPrefix(c.SnapshotsPrefix),
		snapshots.WithEventsTopicPrefix(c.EventsPrefix),
		snapshots.WithLogger(logger),
	}
	if owner != "" {
		opts = append(opts, snapshots.WithOwner(owner))
	}
	store, err := snapshots.NewKafka(codec, opts...)
	if err != nil {
		return nil, err
	}
	return kafkaStore{store}, nil
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
