package snapshots

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snaplog/snaplog/log"
)

// DefaultPostgresSchema is the PostgreSQL schema that holds a Postgres
// store's tables unless WithPostgresSchema names another.
const DefaultPostgresSchema = "snaplog"

// ErrNotMigrated is reported (through errors.Is) by a Postgres store used
// on a database whose schema Migrate has not created, or has not brought to
// the store's migration yet.
var ErrNotMigrated = errors.New("snapshots: postgres schema not migrated")

// Postgres is a Store on PostgreSQL tables, through a pgx connection pool:
// one row per aggregate, keyed by aggregate type and id, holding the
// snapshot's version, schema version, creation time and log position
// (partition, offset, save) as columns and the snapshot itself as the
// AvroCodec's single-object encoding, byte for byte the value a Kafka
// store writes to its snapshot topic, so that every reader of either
// decodes both.
//
// The version guard is one SQL statement: an upsert that replaces a row
// only when its version is not higher than the new one
// (ON CONFLICT ... DO UPDATE ... WHERE snapshots.version <= EXCLUDED.version),
// so concurrent Puts, from any number of stores and processes, never lower
// an aggregate's version; a refused Put returns an error wrapping ErrStale
// naming both versions. Delete keeps a tombstone (the row, with its bytes
// cleared and deleted_at set), so that Get tells a deleted snapshot from
// one that never was (ErrNotFound with ErrDeleted; see Checkpoint.Unborn);
// a Put of any version after a Delete writes the snapshot again. Get
// decodes the bytes with the codec and checks them against the row's
// columns: bytes that do not decode, or that say something else than the
// columns, are reported with ErrCorrupt. Nothing in the table is trusted
// more than that: readers confirm a snapshot against the log
// (Snapshot.Confirm).
//
// Postgres implements CheckpointReader. A checkpoint row, keyed by events
// topic and events partition, holds a Checkpoint's fields; PutCheckpoint
// writes one. CheckpointOf returns the checkpoint of the partition that
// holds the aggregate's events, log.Partition(id, n) for the events topic's
// partition count n. The store cannot ask Kafka for n: it takes it from
// WithPostgresPartitions, and otherwise from the table of events topics,
// where every PutCheckpoint records the count it was configured with (and
// refuses a count other than the recorded one, as CheckpointOf refuses a
// configured count the record contradicts, with ErrTopicLayout). A
// checkpoint writer must therefore be configured with the count; a
// repository's store may be, and without it reads the writer's record.
// Where no checkpoint was ever written for the events topic, no count is
// needed: there is nothing to return, nor any owner to respect.
//
// Ownership follows the Kafka store's rules: a checkpoint's Owner names the
// snapshotter that writes its partition's snapshots. Put, DeleteType and
// PutCheckpoint refuse a partition whose checkpoint names an owner other
// than the store's (WithPostgresOwner) with ErrOwned; Delete and Remove
// refuse a partition whose checkpoint names any owner, whatever the
// store's. Each check and the write it allows are one statement that holds
// a share lock on the checkpoint row, so an owner cannot take a partition
// in the middle of a write; a partition's first checkpoint, written
// concurrently with a Put or Delete, may come after it, as the first
// checkpoint of a Kafka snapshot topic may.
//
// The store's tables live in one PostgreSQL schema (WithPostgresSchema,
// default DefaultPostgresSchema) that Migrate creates and upgrades; the
// constructor does no I/O and never migrates. A store used on a schema
// Migrate has not prepared returns errors wrapping ErrNotMigrated that say
// so. Postgres does not own its pool: the caller closes it. It is safe for
// concurrent use.
type Postgres struct {
	cfg   postgresConfig
	pool  *pgxpool.Pool
	codec *AvroCodec
	sql   postgresSQL
	// where names the schema-qualified snapshot table in errors.
	where string

	migrated atomic.Bool
	// recorded caches the partition counts of events topics found in the
	// events topics table (aggregate type to int32). A recorded count never
	// changes: PutCheckpoint refuses another.
	recorded sync.Map
}

var (
	_ Store            = (*Postgres)(nil)
	_ CheckpointReader = (*Postgres)(nil)
	_ Housekeeper      = (*Postgres)(nil)
	_ SchemaRegistrar  = (*Postgres)(nil)
)

type postgresConfig struct {
	schema      string
	owner       string
	eventPrefix string
	partitions  map[string]int32
	errs        []error
}

// PostgresOption configures a Postgres store.
type PostgresOption interface{ applyPostgres(*postgresConfig) }

type postgresOption func(*postgresConfig)

func (f postgresOption) applyPostgres(c *postgresConfig) { f(c) }

// WithPostgresSchema sets the PostgreSQL schema that holds the store's
// tables (snapshots, checkpoints, events_topics, schema_migrations).
// Stores on different schemas of one database are independent. Default:
// DefaultPostgresSchema ("snaplog").
func WithPostgresSchema(name string) PostgresOption {
	return postgresOption(func(c *postgresConfig) {
		switch {
		case name == "":
			c.errs = append(c.errs, errors.New("WithPostgresSchema: empty name"))
		case len(name) > 63:
			c.errs = append(c.errs, fmt.Errorf("WithPostgresSchema: %q is longer than PostgreSQL's 63-byte identifiers", name))
		case strings.ContainsRune(name, 0):
			c.errs = append(c.errs, fmt.Errorf("WithPostgresSchema: %q holds a NUL byte", name))
		}
		c.schema = name
	})
}

// WithPostgresOwner makes the store write as the named snapshotter, as
// WithOwner does for a Kafka store: it may write snapshots to partitions
// whose checkpoints name it, and its checkpoints carry the name. Default:
// none; the store refuses to write to owned partitions, which is what a
// repository's store must do.
func WithPostgresOwner(name string) PostgresOption {
	return postgresOption(func(c *postgresConfig) {
		if name == "" {
			c.errs = append(c.errs, errors.New("WithPostgresOwner: empty name"))
		}
		c.owner = name
	})
}

// WithPostgresPartitions sets the partition count of an aggregate type's
// events topic: the count its checkpoints are written for, that
// CheckpointOf finds an aggregate's partition with, and that Put checks a
// snapshot's position against. PutCheckpoint needs it; other methods use
// the count recorded by the checkpoints' writer when it is not given. Give
// it once per aggregate type.
func WithPostgresPartitions(aggregateType string, n int32) PostgresOption {
	return postgresOption(func(c *postgresConfig) {
		if aggregateType == "" {
			c.errs = append(c.errs, errors.New("WithPostgresPartitions: empty aggregate type"))
		}
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithPostgresPartitions: %s: partition count %d is not positive", aggregateType, n))
		}
		if have, ok := c.partitions[aggregateType]; ok && have != n {
			c.errs = append(c.errs, fmt.Errorf("WithPostgresPartitions: %s given %d and %d partitions", aggregateType, have, n))
		}
		c.partitions[aggregateType] = n
	})
}

// WithPostgresEventsTopicPrefix sets the prefix of the events topics that
// checkpoints name; it must be the event log's. Default:
// log.DefaultTopicPrefix ("snaplog.events.").
func WithPostgresEventsTopicPrefix(prefix string) PostgresOption {
	return postgresOption(func(c *postgresConfig) {
		if prefix == "" {
			c.errs = append(c.errs, errors.New("WithPostgresEventsTopicPrefix: empty prefix"))
		}
		c.eventPrefix = prefix
	})
}

// NewPostgres returns a Postgres store on pool that encodes with codec, as
// kadm.NewClient takes an existing client: the store does not close the
// pool. A nil codec is a new one: the repositories and snapshotters given
// the store register their aggregate types' schemas on it (Register). It
// validates every option and reports all problems at once; it does no I/O,
// and in particular does not migrate (see Migrate).
func NewPostgres(codec *AvroCodec, pool *pgxpool.Pool, opts ...PostgresOption) (*Postgres, error) {
	c := postgresConfig{
		schema:      DefaultPostgresSchema,
		eventPrefix: log.DefaultTopicPrefix,
		partitions:  make(map[string]int32),
	}
	for _, o := range opts {
		o.applyPostgres(&c)
	}
	if pool == nil {
		c.errs = append(c.errs, errors.New("nil pool"))
	}
	if len(c.errs) > 0 {
		return nil, fmt.Errorf("snapshots: new postgres store: %w", errors.Join(c.errs...))
	}
	if codec == nil {
		codec = NewAvroCodec()
	}
	schema := pgx.Identifier{c.schema}.Sanitize()
	return &Postgres{
		cfg:   c,
		pool:  pool,
		codec: codec,
		sql:   newPostgresSQL(schema),
		where: schema + ".snapshots",
	}, nil
}

// Register registers an aggregate type's state schemas on the store's codec
// (AvroCodec.Register). It implements SchemaRegistrar.
func (p *Postgres) Register(aggregateType, stateSchema string, olderStateSchemas ...string) error {
	return p.codec.Register(aggregateType, stateSchema, olderStateSchemas...)
}

// Schema returns the current state schema of an aggregate type registered
// on the store's codec, or nil.
func (p *Postgres) Schema(aggregateType string) *StateSchema { return p.codec.Schema(aggregateType) }

// DBSchema returns the name of the PostgreSQL schema that holds the store's
// tables.
func (p *Postgres) DBSchema() string { return p.cfg.schema }

// EventsTopic returns the name of the events topic whose checkpoints the
// store keeps for an aggregate type.
func (p *Postgres) EventsTopic(aggregateType string) string { return p.cfg.eventPrefix + aggregateType }

// postgresMigration is one step of the store's schema; {schema} stands for
// the quoted schema name.
type postgresMigration struct {
	version     int
	description string
	statements  []string
}

// postgresMigrations are applied in order by Migrate, each once, and never
// change once released: a change to the tables is a new migration.
var postgresMigrations = []postgresMigration{{
	version:     1,
	description: "snapshots, events topics and checkpoints",
	statements: []string{
		`CREATE TABLE {schema}.snapshots (
	aggregate_type text NOT NULL CHECK (aggregate_type <> ''),
	aggregate_id uuid NOT NULL,
	version bigint NOT NULL CHECK (version > 0),
	schema_version integer NOT NULL CHECK (schema_version > 0),
	created_at timestamptz NOT NULL,
	log_partition integer NOT NULL CHECK (log_partition >= 0),
	log_offset bigint NOT NULL CHECK (log_offset >= 0),
	save uuid NOT NULL,
	snapshot bytea,
	deleted_at timestamptz,
	written_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (aggregate_type, aggregate_id),
	CONSTRAINT snapshots_tombstone CHECK ((snapshot IS NULL) = (deleted_at IS NOT NULL))
)`,
		`CREATE INDEX snapshots_type_schema_version ON {schema}.snapshots (aggregate_type, schema_version) WHERE deleted_at IS NULL`,
		`CREATE TABLE {schema}.events_topics (
	events_topic text PRIMARY KEY CHECK (events_topic <> ''),
	partitions integer NOT NULL CHECK (partitions > 0),
	recorded_at timestamptz NOT NULL DEFAULT now()
)`,
		`CREATE TABLE {schema}.checkpoints (
	events_topic text NOT NULL REFERENCES {schema}.events_topics (events_topic),
	events_partition integer NOT NULL CHECK (events_partition >= 0),
	checkpoint_offset bigint NOT NULL CHECK (checkpoint_offset >= 0),
	owner text NOT NULL DEFAULT '',
	unsnapshotted uuid[] NOT NULL DEFAULT '{}',
	written_at timestamptz NOT NULL,
	PRIMARY KEY (events_topic, events_partition)
)`,
	},
}, {
	version:     2,
	description: "partition claims of snapshotters, and tombstones by partition",
	statements: []string{
		`CREATE TABLE {schema}.partition_claims (
	events_topic text NOT NULL REFERENCES {schema}.events_topics (events_topic),
	events_partition integer NOT NULL CHECK (events_partition >= 0),
	owner text NOT NULL CHECK (owner <> ''),
	epoch bigint NOT NULL CHECK (epoch > 0),
	consumed_offset bigint NOT NULL DEFAULT 0 CHECK (consumed_offset >= 0),
	claimed_at timestamptz NOT NULL DEFAULT now(),
	committed_at timestamptz,
	PRIMARY KEY (events_topic, events_partition)
)`,
		`CREATE INDEX snapshots_tombstones ON {schema}.snapshots (aggregate_type, log_partition) WHERE deleted_at IS NOT NULL`,
	},
}}

// postgresLatest is the migration the store's statements are written for.
var postgresLatest = postgresMigrations[len(postgresMigrations)-1].version

// postgresLockKey is the first key of the advisory lock that serializes
// Migrate runs on a database (the second is the schema name's hash).
const postgresLockKey = 0x736e6170 // "snap"

// Migrate creates the store's schema and tables, or brings them up to the
// store's version, in one transaction, under an advisory lock so that
// concurrent Migrates of one schema wait for each other. It records each
// step in the schema's schema_migrations table and applies only those not
// recorded, so running it again does nothing. A schema migrated by a newer
// version of snaplog is left as it is. The constructor never migrates: run
// Migrate at deployment, or at start-up, with a role that may create tables.
func (p *Postgres) Migrate(ctx context.Context) error {
	schema := pgx.Identifier{p.cfg.schema}.Sanitize()
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(postgresLockKey), p.cfg.schema); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, p.cfg.schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
				return fmt.Errorf("create schema: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+schema+`.schema_migrations (
	version integer PRIMARY KEY,
	description text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var at int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+schema+`.schema_migrations`).Scan(&at); err != nil {
			return err
		}
		for _, m := range postgresMigrations {
			if m.version <= at {
				continue
			}
			for _, stmt := range m.statements {
				if _, err := tx.Exec(ctx, strings.ReplaceAll(stmt, "{schema}", schema)); err != nil {
					return fmt.Errorf("migration %d (%s): %w", m.version, m.description, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.schema_migrations (version, description) VALUES ($1, $2)`, m.version, m.description); err != nil {
				return fmt.Errorf("migration %d (%s): record it: %w", m.version, m.description, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("snapshots: migrate postgres schema %s: %w", schema, err)
	}
	p.migrated.Store(true)
	return nil
}

// Ping checks that the database answers and that Migrate has brought the
// store's schema to the store's version (ErrNotMigrated otherwise).
func (p *Postgres) Ping(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("snapshots: postgres: %w", err)
	}
	return p.ready(ctx)
}

// ready checks, once per store, that Migrate has brought the schema to the
// store's version.
func (p *Postgres) ready(ctx context.Context) error {
	if p.migrated.Load() {
		return nil
	}
	schema := pgx.Identifier{p.cfg.schema}.Sanitize()
	var at int
	err := p.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+schema+`.schema_migrations`).Scan(&at)
	if isUndefined(err) {
		return fmt.Errorf("%w: schema %s has no snaplog tables: call (*snapshots.Postgres).Migrate first", ErrNotMigrated, schema)
	}
	if err != nil {
		return fmt.Errorf("snapshots: postgres schema %s: read its migrations: %w", schema, err)
	}
	if at < postgresLatest {
		return fmt.Errorf("%w: schema %s is at migration %d, the store needs %d: call (*snapshots.Postgres).Migrate first", ErrNotMigrated, schema, at, postgresLatest)
	}
	p.migrated.Store(true)
	return nil
}

// isUndefined reports a missing schema or table.
func isUndefined(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") // undefined_table, invalid_schema_name
}

// dbErr adds ErrNotMigrated to the error of a statement on a schema whose
// tables are gone, and makes the store check again before its next use.
func (p *Postgres) dbErr(err error) error {
	if isUndefined(err) {
		p.migrated.Store(false)
		return fmt.Errorf("%w: %w (call (*snapshots.Postgres).Migrate)", ErrNotMigrated, err)
	}
	return err
}

// partitions returns the partition count of the aggregate type's events
// topic: the configured one, else the one recorded by the checkpoints'
// writer, else 0 (no checkpoint of the topic was ever written).
func (p *Postgres) partitions(ctx context.Context, aggregateType string) (int32, error) {
	if n, ok := p.cfg.partitions[aggregateType]; ok {
		return n, nil
	}
	if n, ok := p.recorded.Load(aggregateType); ok {
		return n.(int32), nil
	}
	var n int32
	err := p.pool.QueryRow(ctx, p.sql.topicPartitions, p.EventsTopic(aggregateType)).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("snapshots: partition count of %s: %w", p.EventsTopic(aggregateType), p.dbErr(err))
	}
	p.recorded.Store(aggregateType, n)
	return n, nil
}

// Get implements Store.
func (p *Postgres) Get(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (Snapshot, error) {
	if err := p.ready(ctx); err != nil {
		return Snapshot{}, err
	}
	var (
		col     Snapshot
		value   []byte
		deleted bool
	)
	err := p.pool.QueryRow(ctx, p.sql.get, aggregateType, aggregateID).Scan(
		&col.Version, &col.SchemaVersion, &col.CreatedAt, &col.Position.Partition, &col.Position.Offset, &col.Save, &value, &deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, fmt.Errorf("%w: %s %s", ErrNotFound, aggregateType, aggregateID)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshots: get %s %s from %s: %w", aggregateType, aggregateID, p.where, p.dbErr(err))
	}
	if deleted {
		return Snapshot{}, fmt.Errorf("%w: %w: %s %s: its snapshot (version %d) in %s was deleted", ErrNotFound, ErrDeleted, aggregateType, aggregateID, col.Version, p.where)
	}
	snap, err := p.codec.Decode(value)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshots: get %s %s from %s: %w", aggregateType, aggregateID, p.where, err)
	}
	col.AggregateType, col.AggregateID = aggregateType, aggregateID
	if why := disagree(col, snap); why != "" {
		return Snapshot{}, fmt.Errorf("%w: get %s %s from %s: the row's columns and its bytes disagree: %s", ErrCorrupt, aggregateType, aggregateID, p.where, why)
	}
	return snap, nil
}

// disagree says how a row's columns and the snapshot its bytes hold differ,
// or returns "".
func disagree(col, snap Snapshot) string {
	var diffs []string
	if snap.AggregateID != col.AggregateID || snap.AggregateType != col.AggregateType {
		diffs = append(diffs, fmt.Sprintf("the bytes are a snapshot of %s %s", snap.AggregateType, snap.AggregateID))
	}
	if snap.Version != col.Version {
		diffs = append(diffs, fmt.Sprintf("version %d in the column, %d in the bytes", col.Version, snap.Version))
	}
	if snap.SchemaVersion != col.SchemaVersion {
		diffs = append(diffs, fmt.Sprintf("schema version %d in the column, %d in the bytes", col.SchemaVersion, snap.SchemaVersion))
	}
	if !snap.CreatedAt.Equal(col.CreatedAt) {
		diffs = append(diffs, fmt.Sprintf("created at %s in the column, %s in the bytes", col.CreatedAt.UTC().Format(time.RFC3339Nano), snap.CreatedAt.Format(time.RFC3339Nano)))
	}
	if snap.Position != col.Position {
		diffs = append(diffs, fmt.Sprintf("position %s in the columns, %s in the bytes", col.Position, snap.Position))
	}
	if snap.Save != col.Save {
		diffs = append(diffs, fmt.Sprintf("save %s in the column, %s in the bytes", col.Save, snap.Save))
	}
	return strings.Join(diffs, "; ")
}

// Put implements Store. It refuses a snapshot older than the one the table
// holds (ErrStale, naming both versions), one of a partition owned by
// another snapshotter (ErrOwned), and, when the events topic's partition
// count is known, one whose position is not in the aggregate's partition.
func (p *Postgres) Put(ctx context.Context, s Snapshot) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.Position.Partition < 0 {
		return fmt.Errorf("snapshots: put %s: negative partition", s)
	}
	if err := p.ready(ctx); err != nil {
		return err
	}
	n, err := p.partitions(ctx, s.AggregateType)
	if err != nil {
		return err
	}
	if n > 0 {
		if want := log.Partition(s.AggregateID, n); s.Position.Partition != want {
			return fmt.Errorf("snapshots: put %s: its last event is in partition %d, the aggregate's events are in partition %d of the %d of %s",
				s, s.Position.Partition, want, n, p.EventsTopic(s.AggregateType))
		}
	}
	value, err := p.codec.Encode(s)
	if err != nil {
		return err
	}
	var (
		written int64
		owner   *string
		have    *int64
	)
	err = p.pool.QueryRow(ctx, p.sql.put,
		s.AggregateType, s.AggregateID, s.Version, int32(s.SchemaVersion), s.CreatedAt,
		s.Position.Partition, s.Position.Offset, s.Save, value,
		p.EventsTopic(s.AggregateType), s.Position.Partition, p.cfg.owner,
	).Scan(&written, &owner, &have)
	if err != nil {
		return fmt.Errorf("snapshots: put %s into %s: %w", s, p.where, p.dbErr(err))
	}
	switch {
	case written == 1:
		return nil
	case owner != nil && *owner != "" && *owner != p.cfg.owner:
		return fmt.Errorf("%w: %s/%d belongs to snapshotter %q (its checkpoint says so); only it writes snapshots of %s there",
			ErrOwned, p.EventsTopic(s.AggregateType), s.Position.Partition, *owner, s)
	case have != nil:
		return fmt.Errorf("%w: %s %s: have version %d, refusing version %d", ErrStale, s.AggregateType, s.AggregateID, *have, s.Version)
	default:
		// The row was written by a transaction that committed after this
		// statement's snapshot was taken: its version is higher.
		return fmt.Errorf("%w: %s %s: a concurrent Put wrote a version higher than %d", ErrStale, s.AggregateType, s.AggregateID, s.Version)
	}
}

// Delete implements Store with a tombstone: the row stays, without its
// bytes, so that Get reports the aggregate with ErrDeleted. Deleting a
// missing or deleted snapshot is not an error. It refuses (ErrOwned) a
// partition a snapshotter owns, whatever the store's owner name, as the
// Kafka store does: the snapshotter's checkpoint promises that every
// aggregate with events before it has a snapshot.
func (p *Postgres) Delete(ctx context.Context, aggregateType string, aggregateID uuid.UUID) error {
	_, err := p.Remove(ctx, aggregateType, aggregateID)
	return err
}

// Remove implements Housekeeper: it is Delete, and reports whether the
// table held a snapshot of the aggregate.
func (p *Postgres) Remove(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (bool, error) {
	if aggregateType == "" {
		return false, errors.New("snapshots: empty aggregate type")
	}
	if err := p.ready(ctx); err != nil {
		return false, err
	}
	n, err := p.partitions(ctx, aggregateType)
	if err != nil {
		return false, err
	}
	partition := int32(-1) // no checkpoint of the topic exists
	if n > 0 {
		partition = log.Partition(aggregateID, n)
	}
	var (
		deleted int64
		owner   *string
		offset  *int64
	)
	err = p.pool.QueryRow(ctx, p.sql.remove, aggregateType, aggregateID, p.EventsTopic(aggregateType), partition).Scan(&deleted, &owner, &offset)
	if err != nil {
		return false, fmt.Errorf("snapshots: delete %s %s from %s: %w", aggregateType, aggregateID, p.where, p.dbErr(err))
	}
	if owner != nil && *owner != "" {
		return false, fmt.Errorf("%w: %s/%d: snapshotter %q checkpoints it, and its checkpoint promises a snapshot of every aggregate with events before offset %d; not deleting %s %s",
			ErrOwned, p.EventsTopic(aggregateType), partition, *owner, *offset, aggregateType, aggregateID)
	}
	return deleted == 1, nil
}

// Exists implements Housekeeper: whether the table holds a snapshot of the
// aggregate that is not deleted.
func (p *Postgres) Exists(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (bool, error) {
	if err := p.ready(ctx); err != nil {
		return false, err
	}
	var exists bool
	if err := p.pool.QueryRow(ctx, p.sql.exists, aggregateType, aggregateID).Scan(&exists); err != nil {
		return false, fmt.Errorf("snapshots: %s %s in %s: %w", aggregateType, aggregateID, p.where, p.dbErr(err))
	}
	return exists, nil
}

// CountType implements Housekeeper.
func (p *Postgres) CountType(ctx context.Context, aggregateType string, belowSchemaVersion int) (int, error) {
	if err := checkBelow(aggregateType, belowSchemaVersion); err != nil {
		return 0, err
	}
	if err := p.ready(ctx); err != nil {
		return 0, err
	}
	var n int64
	if err := p.pool.QueryRow(ctx, p.sql.countType, aggregateType, int64(belowSchemaVersion)).Scan(&n); err != nil {
		return 0, fmt.Errorf("snapshots: count snapshots of %s in %s: %w", aggregateType, p.where, p.dbErr(err))
	}
	return int(n), nil
}

// DeleteType implements Housekeeper with tombstones, in one statement: it
// deletes every matching snapshot or, when a checkpoint of the aggregate
// type's events topic names an owner other than the store's, none
// (ErrOwned, naming the partitions and owners). As with the Kafka store,
// Get then reports the deleted aggregates with ErrDeleted, so loads read
// them from the log, and their owner writes them again.
func (p *Postgres) DeleteType(ctx context.Context, aggregateType string, belowSchemaVersion int) (int, error) {
	if err := checkBelow(aggregateType, belowSchemaVersion); err != nil {
		return 0, err
	}
	if err := p.ready(ctx); err != nil {
		return 0, err
	}
	var (
		deleted    int64
		partitions []int32
		owners     []string
	)
	err := p.pool.QueryRow(ctx, p.sql.deleteType, aggregateType, int64(belowSchemaVersion), p.EventsTopic(aggregateType), p.cfg.owner).
		Scan(&deleted, &partitions, &owners)
	if err != nil {
		return 0, fmt.Errorf("snapshots: delete snapshots of %s from %s: %w", aggregateType, p.where, p.dbErr(err))
	}
	if len(partitions) > 0 {
		refused := make([]error, len(partitions))
		for i := range partitions {
			refused[i] = fmt.Errorf("%w: %s/%d belongs to snapshotter %q (its checkpoint says so)", ErrOwned, p.EventsTopic(aggregateType), partitions[i], owners[i])
		}
		return 0, fmt.Errorf("snapshots: not deleting snapshots of %s: %w", aggregateType, errors.Join(refused...))
	}
	return int(deleted), nil
}

// CheckpointOf implements CheckpointReader: the checkpoint of events
// partition log.Partition(aggregateID, n) of the aggregate type's events
// topic, n its partition count (see Postgres), or an error wrapping
// ErrNotFound when that partition has none.
func (p *Postgres) CheckpointOf(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (Checkpoint, error) {
	if aggregateType == "" {
		return Checkpoint{}, errors.New("snapshots: empty aggregate type")
	}
	if err := p.ready(ctx); err != nil {
		return Checkpoint{}, err
	}
	topic := p.EventsTopic(aggregateType)
	n, err := p.partitions(ctx, aggregateType)
	if err != nil {
		return Checkpoint{}, err
	}
	if n == 0 {
		return Checkpoint{}, fmt.Errorf("%w: no checkpoint for %s %s: none was written for %s", ErrNotFound, aggregateType, aggregateID, topic)
	}
	partition := log.Partition(aggregateID, n)
	var (
		recorded  int32
		offset    *int64
		owner     *string
		unsnap    []uuid.UUID
		writtenAt *time.Time
	)
	err = p.pool.QueryRow(ctx, p.sql.checkpointOf, topic, partition).Scan(&recorded, &offset, &owner, &unsnap, &writtenAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, fmt.Errorf("%w: no checkpoint for %s %s: none was written for %s", ErrNotFound, aggregateType, aggregateID, topic)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("snapshots: checkpoint of %s/%d: %w", topic, partition, p.dbErr(err))
	}
	if recorded != n {
		return Checkpoint{}, fmt.Errorf("%w: the checkpoints of %s were written for %d partitions, the store is configured with %d (WithPostgresPartitions)",
			ErrTopicLayout, topic, recorded, n)
	}
	if offset == nil {
		return Checkpoint{}, fmt.Errorf("%w: no checkpoint for %s %s in %s/%d", ErrNotFound, aggregateType, aggregateID, topic, partition)
	}
	cp := Checkpoint{EventsTopic: topic, EventsPartition: partition, Offset: *offset, Owner: *owner, WrittenAt: writtenAt.UTC()}
	if len(unsnap) > 0 {
		cp.Unsnapshotted = unsnap
	}
	return cp, nil
}

// PutCheckpoint writes the checkpoint of events partition cp.EventsPartition
// of the aggregate type's events topic, as the store's owner
// (WithPostgresOwner; cp.EventsTopic and cp.Owner are set by the store, and
// a zero cp.WrittenAt is now). The store must be configured with the events
// topic's partition count (WithPostgresPartitions), which the first
// checkpoint of the topic records and later ones must match
// (ErrTopicLayout). It refuses, with ErrOwned, a partition whose checkpoint
// names another owner. A snapshotter writes checkpoints in the transaction
// of the snapshots they cover; this is the plain write, for tools and
// tests.
func (p *Postgres) PutCheckpoint(ctx context.Context, aggregateType string, cp Checkpoint) error {
	if aggregateType == "" {
		return errors.New("snapshots: empty aggregate type")
	}
	topic := p.EventsTopic(aggregateType)
	n, ok := p.cfg.partitions[aggregateType]
	if !ok {
		return fmt.Errorf("snapshots: put checkpoint of %s/%d: the store needs the partition count of %s (WithPostgresPartitions)", topic, cp.EventsPartition, topic)
	}
	if cp.EventsPartition < 0 || cp.EventsPartition >= n {
		return fmt.Errorf("snapshots: checkpoint of partition %d: %s has %d partitions", cp.EventsPartition, topic, n)
	}
	cp.EventsTopic, cp.Owner = topic, p.cfg.owner
	if cp.WrittenAt.IsZero() {
		cp.WrittenAt = time.Now()
	}
	cp.WrittenAt = cp.WrittenAt.UTC().Truncate(time.Microsecond)
	if err := cp.validate(); err != nil {
		return fmt.Errorf("snapshots: put %s: %w", cp, err)
	}
	if err := p.ready(ctx); err != nil {
		return err
	}
	unsnap := cp.Unsnapshotted
	if unsnap == nil {
		unsnap = []uuid.UUID{}
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, p.sql.recordTopic, topic, n); err != nil {
			return err
		}
		var recorded int32
		if err := tx.QueryRow(ctx, p.sql.lockTopic, topic).Scan(&recorded); err != nil {
			return err
		}
		if recorded != n {
			return fmt.Errorf("%w: the checkpoints of %s were written for %d partitions, the store is configured with %d (WithPostgresPartitions)",
				ErrTopicLayout, topic, recorded, n)
		}
		var owner string
		err := tx.QueryRow(ctx, p.sql.putCheckpoint, topic, cp.EventsPartition, cp.Offset, cp.Owner, unsnap, cp.WrittenAt).Scan(&owner)
		if errors.Is(err, pgx.ErrNoRows) {
			if err := tx.QueryRow(ctx, p.sql.checkpointOwner, topic, cp.EventsPartition).Scan(&owner); err != nil {
				return err
			}
			return fmt.Errorf("%w: %s/%d belongs to snapshotter %q (its checkpoint says so); only it writes checkpoints there", ErrOwned, topic, cp.EventsPartition, owner)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("snapshots: put %s: %w", cp, p.dbErr(err))
	}
	p.recorded.Store(aggregateType, n)
	return nil
}

// postgresSQL holds the store's statements with its schema filled in.
type postgresSQL struct {
	get, put, remove, exists, countType, deleteType string
	topicPartitions, recordTopic, lockTopic         string
	checkpointOf, putCheckpoint, checkpointOwner    string
	lockCheckpoint, claim, lockClaim, putMany       string
	putReplace                                      string
	consumed, deleted                               string
}

// putManySQL upserts the rows of unnest's arrays, of one aggregate type.
const putManySQL = `INSERT INTO {schema}.snapshots (aggregate_type, aggregate_id, version, schema_version, created_at, log_partition, log_offset, save, snapshot, deleted_at, written_at)
SELECT $1::text, u.id, u.version, u.schema_version, u.created_at, u.log_partition, u.log_offset, u.save, u.snapshot, NULL, now()
FROM unnest($2::uuid[], $3::bigint[], $4::integer[], $5::timestamptz[], $6::integer[], $7::bigint[], $8::uuid[], $9::bytea[])
	AS u(id, version, schema_version, created_at, log_partition, log_offset, save, snapshot)
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
	version = EXCLUDED.version, schema_version = EXCLUDED.schema_version, created_at = EXCLUDED.created_at,
	log_partition = EXCLUDED.log_partition, log_offset = EXCLUDED.log_offset, save = EXCLUDED.save,
	snapshot = EXCLUDED.snapshot, deleted_at = NULL, written_at = EXCLUDED.written_at`

func newPostgresSQL(schema string) postgresSQL {
	s := func(q string) string { return strings.ReplaceAll(q, "{schema}", schema) }
	return postgresSQL{
		get: s(`SELECT version, schema_version, created_at, log_partition, log_offset, save, snapshot, deleted_at IS NOT NULL
FROM {schema}.snapshots WHERE aggregate_type = $1 AND aggregate_id = $2`),

		// The version guard: the upsert replaces a row only when its version
		// is not higher (or it is a tombstone), and writes nothing when the
		// partition's checkpoint names an owner other than $12. The last
		// column reads the row as of the statement's start, for the error.
		put: s(`WITH cp AS (
	SELECT owner FROM {schema}.checkpoints WHERE events_topic = $10::text AND events_partition = $11::integer FOR SHARE
), up AS (
	INSERT INTO {schema}.snapshots (aggregate_type, aggregate_id, version, schema_version, created_at, log_partition, log_offset, save, snapshot, deleted_at, written_at)
	SELECT $1::text, $2::uuid, $3::bigint, $4::integer, $5::timestamptz, $6::integer, $7::bigint, $8::uuid, $9::bytea, NULL, now()
	WHERE NOT EXISTS (SELECT 1 FROM cp WHERE cp.owner <> '' AND cp.owner <> $12::text)
	ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
		version = EXCLUDED.version, schema_version = EXCLUDED.schema_version, created_at = EXCLUDED.created_at,
		log_partition = EXCLUDED.log_partition, log_offset = EXCLUDED.log_offset, save = EXCLUDED.save,
		snapshot = EXCLUDED.snapshot, deleted_at = NULL, written_at = EXCLUDED.written_at
	WHERE snapshots.version <= EXCLUDED.version OR snapshots.deleted_at IS NOT NULL
	RETURNING 1
)
SELECT (SELECT count(*) FROM up), (SELECT owner FROM cp),
	(SELECT version FROM {schema}.snapshots WHERE aggregate_type = $1::text AND aggregate_id = $2::uuid AND deleted_at IS NULL)`),

		remove: s(`WITH cp AS (
	SELECT owner, checkpoint_offset FROM {schema}.checkpoints WHERE events_topic = $3::text AND events_partition = $4::integer FOR SHARE
), del AS (
	UPDATE {schema}.snapshots SET snapshot = NULL, deleted_at = now(), written_at = now()
	WHERE aggregate_type = $1::text AND aggregate_id = $2::uuid AND deleted_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM cp WHERE cp.owner <> '')
	RETURNING 1
)
SELECT (SELECT count(*) FROM del), (SELECT owner FROM cp), (SELECT checkpoint_offset FROM cp)`),

		exists: s(`SELECT EXISTS (SELECT 1 FROM {schema}.snapshots WHERE aggregate_type = $1 AND aggregate_id = $2 AND deleted_at IS NULL)`),

		countType: s(`SELECT count(*) FROM {schema}.snapshots
WHERE aggregate_type = $1 AND deleted_at IS NULL AND ($2::bigint = 0 OR schema_version < $2::bigint)`),

		deleteType: s(`WITH owned AS (
	SELECT events_partition, owner FROM {schema}.checkpoints
	WHERE events_topic = $3::text AND owner <> '' AND owner <> $4::text FOR SHARE
), del AS (
	UPDATE {schema}.snapshots SET snapshot = NULL, deleted_at = now(), written_at = now()
	WHERE aggregate_type = $1::text AND deleted_at IS NULL AND ($2::bigint = 0 OR schema_version < $2::bigint)
		AND NOT EXISTS (SELECT 1 FROM owned)
	RETURNING 1
)
SELECT (SELECT count(*) FROM del),
	coalesce((SELECT array_agg(events_partition ORDER BY events_partition) FROM owned), '{}'),
	coalesce((SELECT array_agg(owner ORDER BY events_partition) FROM owned), '{}')`),

		topicPartitions: s(`SELECT partitions FROM {schema}.events_topics WHERE events_topic = $1`),
		recordTopic:     s(`INSERT INTO {schema}.events_topics (events_topic, partitions) VALUES ($1, $2) ON CONFLICT (events_topic) DO NOTHING`),
		lockTopic:       s(`SELECT partitions FROM {schema}.events_topics WHERE events_topic = $1 FOR SHARE`),

		checkpointOf: s(`SELECT t.partitions, c.checkpoint_offset, c.owner, c.unsnapshotted, c.written_at
FROM {schema}.events_topics t
LEFT JOIN {schema}.checkpoints c ON c.events_topic = t.events_topic AND c.events_partition = $2
WHERE t.events_topic = $1`),

		putCheckpoint: s(`INSERT INTO {schema}.checkpoints (events_topic, events_partition, checkpoint_offset, owner, unsnapshotted, written_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (events_topic, events_partition) DO UPDATE SET
	checkpoint_offset = EXCLUDED.checkpoint_offset, owner = EXCLUDED.owner,
	unsnapshotted = EXCLUDED.unsnapshotted, written_at = EXCLUDED.written_at
WHERE checkpoints.owner = '' OR checkpoints.owner = EXCLUDED.owner
RETURNING owner`),

		checkpointOwner: s(`SELECT owner FROM {schema}.checkpoints WHERE events_topic = $1 AND events_partition = $2`),

		lockCheckpoint: s(`SELECT checkpoint_offset, owner, unsnapshotted, written_at FROM {schema}.checkpoints
WHERE events_topic = $1 AND events_partition = $2 FOR UPDATE`),

		// A claim raises the partition's epoch; the row lock it takes waits
		// for a write under the previous claim to end.
		claim: s(`INSERT INTO {schema}.partition_claims (events_topic, events_partition, owner, epoch) VALUES ($1, $2, $3, 1)
ON CONFLICT (events_topic, events_partition) DO UPDATE SET
	epoch = partition_claims.epoch + 1, owner = EXCLUDED.owner, claimed_at = now()
RETURNING epoch, consumed_offset`),

		lockClaim: s(`SELECT epoch, owner FROM {schema}.partition_claims WHERE events_topic = $1 AND events_partition = $2 FOR UPDATE`),

		// The version guard of put, for many rows of one aggregate type;
		// putReplace is the same upsert without the guard, for the rows
		// the partition's owner replaces.
		putMany: s(putManySQL + `
WHERE snapshots.version <= EXCLUDED.version OR snapshots.deleted_at IS NOT NULL
RETURNING aggregate_id`),
		putReplace: s(putManySQL + `
RETURNING aggregate_id`),

		consumed: s(`UPDATE {schema}.partition_claims SET consumed_offset = $3, committed_at = now()
WHERE events_topic = $1 AND events_partition = $2`),

		deleted: s(`SELECT aggregate_id FROM {schema}.snapshots
WHERE aggregate_type = $1 AND log_partition = $2 AND deleted_at IS NOT NULL ORDER BY aggregate_id`),
	}
}
