package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/snapshots"
)

// postgresBackend keeps the scenarios' snapshots in PostgreSQL, in a
// schema of each scenario's own (named after the run), next to an event log
// of any kind, like eventsource-py's production setup (PostgreSQL
// snapshots, Kafka events). It drops its schemas at the end.
type postgresBackend struct {
	pool    *pgxpool.Pool
	run     string // the run's schema prefix
	schemas []string
}

func newPostgresBackend(ctx context.Context, url string) (*postgresBackend, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	var b [4]byte
	rand.Read(b[:]) // never fails
	return &postgresBackend{pool: pool, run: "snaplog_example_" + hex.EncodeToString(b[:])}, nil
}

// openStore opens a PostgreSQL store for the scenario's log l in a new
// schema, migrated, configured with the partition count of l's events
// topic and, on Kafka, with its prefix, which checkpoints name.
func (pb *postgresBackend) openStore(ctx context.Context, l scenarioLog) (snapshots.Store, error) {
	schema := fmt.Sprintf("%s_%d", pb.run, len(pb.schemas)+1)
	opts := []snapshots.PostgresOption{
		snapshots.WithPostgresSchema(schema),
		snapshots.WithPostgresPartitions(order.TypeName, l.partitions),
	}
	if l.prefix != "" {
		opts = append(opts, snapshots.WithPostgresEventsTopicPrefix(l.prefix+"events."))
	}
	store, err := snapshots.NewPostgres(nil, pb.pool, opts...)
	if err != nil {
		return nil, err
	}
	pb.schemas = append(pb.schemas, schema)
	if err := store.Migrate(ctx); err != nil {
		return nil, err
	}
	return store, nil
}

// close drops the run's schemas and closes the pool.
func (pb *postgresBackend) close(ctx context.Context) error {
	defer pb.pool.Close()
	for _, s := range pb.schemas {
		if _, err := pb.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
			return fmt.Errorf("postgres: drop schema %s: %w", s, err)
		}
	}
	return nil
}
