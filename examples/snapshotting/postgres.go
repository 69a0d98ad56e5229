package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// postgresBackend keeps the scenarios' snapshots in PostgreSQL, in a
// schema of each scenario's own (named after the run), with the in-memory
// event log, like eventsource-py's production setup (PostgreSQL snapshots)
// with events kept where the application keeps them. It drops its schemas
// at the end unless keep.
type postgresBackend struct {
	pool       *pgxpool.Pool
	run        string // the run's schema prefix
	partitions int32
	schemas    []string
}

func newPostgresBackend(ctx context.Context, url string, partitions int32) (*postgresBackend, error) {
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
	return &postgresBackend{pool: pool, run: "snaplog_example_" + hex.EncodeToString(b[:]), partitions: partitions}, nil
}

// backend opens a fresh memory log and a PostgreSQL store in a new schema,
// migrated.
func (pb *postgresBackend) backend(ctx context.Context) (aggregate.EventLog, snapshots.Store, error) {
	events, err := log.NewMemory(log.WithMemoryPartitions(pb.partitions))
	if err != nil {
		return nil, nil, err
	}
	schema := fmt.Sprintf("%s_%d", pb.run, len(pb.schemas)+1)
	store, err := snapshots.NewPostgres(nil, pb.pool, snapshots.WithPostgresSchema(schema),
		snapshots.WithPostgresPartitions(order.TypeName, pb.partitions))
	if err != nil {
		return nil, nil, err
	}
	pb.schemas = append(pb.schemas, schema)
	if err := store.Migrate(ctx); err != nil {
		return nil, nil, err
	}
	return events, store, nil
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

// runOnPostgres runs the scenarios with snapshots in PostgreSQL.
func runOnPostgres(ctx context.Context, w, info io.Writer, url string, partitions int32) error {
	pb, err := newPostgresBackend(ctx, url, partitions)
	if err != nil {
		return err
	}
	fmt.Fprintf(info, "snapshotting: on the in-memory event log, snapshots in PostgreSQL (schemas %s_*)\n", pb.run)
	err = runOn(ctx, w, pb.backend)
	if cerr := pb.close(context.WithoutCancel(ctx)); err == nil {
		err = cerr
	}
	return err
}
