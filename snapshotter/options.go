package snapshotter

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/internal/kread"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// Defaults of the snapshotter's options.
const (
	DefaultThreshold          = 100
	DefaultCheckpointInterval = 5 * time.Second
	DefaultMaxStates          = 100_000
)

type config struct {
	clientOpts  []kgo.Opt
	shared      *kgo.Client // WithClient
	sharedOpts  []kgo.Opt   // its options
	eventPrefix string
	snapPrefix  string
	replication int16
	policy      aggregate.Policy
	interval    time.Duration
	maxStates   int
	txnID       string
	fromScratch bool
	logger      *slog.Logger
	hooks       Hooks
	placements  []log.KafkaOption // log.WithPlacement, for the events log
	pgPool      *pgxpool.Pool     // WithPostgres
	pgOpts      []snapshots.PostgresOption
	set         map[string]bool // options given, by name, for the conflicts newConfig reports
	errs        []error
}

// Option configures a Snapshotter.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithClient gives the snapshotter an existing client of connection
// settings only (seed brokers, TLS, SASL): its snapshot store and events log
// send their admin and read requests through it (snapshots.WithClient,
// log.WithClient), and the clients that need settings of their own (the
// group's transactional session, producers, long polls) are made from its
// options and the KafkaClient ones. A client in a consumer group, consuming
// or transactional is refused. The snapshotter does not close cl.
func WithClient(cl *kgo.Client) Option {
	return optionFunc(func(c *config) {
		opts, err := kread.SharedOpts(cl)
		if err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.shared, c.sharedOpts = cl, opts
	})
}

// KafkaClient sets the franz-go options of the snapshotter's clients: seed
// brokers, TLS, SASL and the like: at least kgo.SeedBrokers, unless
// WithClient gives them.
func KafkaClient(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithEventsTopicPrefix sets the prefix of the events topics; it must be the
// event log's. Default: log.DefaultTopicPrefix.
func WithEventsTopicPrefix(p string) Option {
	return optionFunc(func(c *config) { c.eventPrefix = p })
}

// WithSnapshotsTopicPrefix sets the prefix of the snapshot topics; it must
// be the repositories' snapshot store's. Default:
// snapshots.DefaultTopicPrefix.
func WithSnapshotsTopicPrefix(p string) Option {
	return optionFunc(func(c *config) { c.snapPrefix = p; c.set["WithSnapshotsTopicPrefix"] = true })
}

// WithPostgres keeps the snapshots and checkpoints in PostgreSQL instead of
// the snapshot topics: in a snapshots.Postgres store on pool, made with
// opts (snapshots.WithPostgresSchema, for one) and as the group's owner
// (snapshots.WithPostgresOwner(group) and the events topic prefix are set
// by the snapshotter). The schema must have been migrated
// ((*snapshots.Postgres).Migrate, or `snapshotter migrate`); Run refuses
// one that is not, with snapshots.ErrNotMigrated.
//
// The group then consumes without transactions: each checkpoint interval,
// a partition's snapshots, its checkpoint and the offset it has consumed
// to are written in one database transaction, under the partition's claim
// (snapshots.Postgres.Claim) taken at its assignment, so that an instance
// rebalanced away or paused past its session cannot write after another
// took the partition; an assigned partition resumes from the checkpoint
// kept in PostgreSQL. The consumed offsets are committed to the group in
// Kafka as well, after each database transaction, for the lag tools that
// read them; the snapshotter does not read them back. The snapshotter does
// not close pool.
func WithPostgres(pool *pgxpool.Pool, opts ...snapshots.PostgresOption) Option {
	return optionFunc(func(c *config) {
		if pool == nil {
			c.errs = append(c.errs, errors.New("WithPostgres: nil pool"))
		}
		c.pgPool, c.pgOpts = pool, append(c.pgOpts, opts...)
		c.set["WithPostgres"] = true
	})
}

// WithReplicationFactor sets the replication factor of the snapshot topics
// the snapshotter creates; -1 is the broker's default.replication.factor.
// Default: the snapshot store's, min(3, brokers), with
// min.insync.replicas=2 from 3 replicas on (see snapshots.WithReplicationFactor).
func WithReplicationFactor(n int16) Option {
	return optionFunc(func(c *config) {
		c.set["WithReplicationFactor"] = true
		if n == 0 || n < -1 {
			c.errs = append(c.errs, fmt.Errorf("WithReplicationFactor: must be positive or -1, got %d", n))
		}
		c.replication = n
	})
}

// WithThreshold makes the snapshotter snapshot an aggregate when its
// version crosses a multiple of n (the repository's rule):
// WithPolicy(aggregate.Every(n)). n must be positive. Default:
// DefaultThreshold (100).
func WithThreshold(n int64) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithThreshold: must be positive, got %d", n))
		}
		c.policy = aggregate.Every(n)
	})
}

// WithPolicy sets when the snapshotter snapshots an aggregate between its
// checkpoints (at a checkpoint it snapshots every aggregate that changed,
// whatever the policy): the policies of package aggregate, asked after each
// save the snapshotter applies, with the state after it. A When policy of
// another state type than an aggregate type's is never due for it. A policy
// that fails its validation, or that is due only after loads
// (aggregate.AfterCostlyLoad: the snapshotter loads nothing), is refused.
// Default: aggregate.Every(DefaultThreshold).
func WithPolicy(p aggregate.Policy) Option {
	return optionFunc(func(c *config) {
		if err := aggregate.ValidatePolicy(p); err != nil {
			c.errs = append(c.errs, fmt.Errorf("WithPolicy: %w", err))
		} else if aggregate.PolicyLoads(p) {
			c.errs = append(c.errs, fmt.Errorf("WithPolicy: %v: the snapshotter loads no aggregate, so a policy due after loads is never due", p))
		}
		c.policy = p
	})
}

// WithCheckpointInterval sets how often the snapshotter snapshots every
// aggregate still dirty in a partition and writes the partition's
// checkpoint. A load reads at most the records written to its partition
// since the last checkpoint, so this bounds loads. Default:
// DefaultCheckpointInterval (5s).
func WithCheckpointInterval(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithCheckpointInterval: must be positive, got %s", d))
		}
		c.interval = d
	})
}

// WithMaxStates bounds how many aggregate states the snapshotter holds in
// memory. Clean states (snapshotted) are evicted first and reloaded from
// their snapshot when needed; when only dirty states remain, the snapshotter
// checkpoints early to make them clean. Default: DefaultMaxStates (100,000).
func WithMaxStates(n int) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithMaxStates: must be positive, got %d", n))
		}
		c.maxStates = n
	})
}

// WithTransactionalID sets the transactional id of the snapshotter's
// producer. Each running instance needs its own. Default: the group name,
// "-" and a random id.
func WithTransactionalID(id string) Option {
	return optionFunc(func(c *config) {
		c.set["WithTransactionalID"] = true
		if id == "" {
			c.errs = append(c.errs, errors.New("WithTransactionalID: empty id"))
		}
		c.txnID = id
	})
}

// FromScratch makes the snapshotter ignore existing snapshots and
// checkpoints: it reads every partition from its start and snapshots every
// aggregate anew (with the current state schema and schema version), then
// checkpoints as usual. Rebuild uses it. Default: off.
func FromScratch() Option {
	return optionFunc(func(c *config) { c.fromScratch = true })
}

// WithPlacement declares the partition count the aggregates of an events
// topic written before snaplog recorded placements were placed with, as
// log.WithPlacement does for the log; without it such a topic is refused.
// Default: none; each topic's placement is read from the topic.
func WithPlacement(aggregateType string, partitions int32) Option {
	return optionFunc(func(c *config) {
		if err := log.CheckDeclaredPlacement(aggregateType, partitions); err != nil {
			c.errs = append(c.errs, err)
		}
		c.placements = append(c.placements, log.WithPlacement(aggregateType, partitions))
	})
}

// placementOptions returns the events log's WithPlacement options.
func (c *config) placementOptions() []log.KafkaOption {
	return append([]log.KafkaOption(nil), c.placements...)
}

// WithLogger sets the logger. Default: nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			c.errs = append(c.errs, errors.New("WithLogger: nil logger"))
		}
		c.logger = l
	})
}

// WithHooks sets functions called on the snapshotter's events, for metrics.
// Default: none.
func WithHooks(h Hooks) Option {
	return optionFunc(func(c *config) { c.hooks = h })
}

// Hooks are called synchronously from the snapshotter's loop; they must be
// fast and safe for concurrent use. Nil hooks are skipped.
type Hooks struct {
	// SnapshotsWritten is called after a transaction committed n snapshots
	// of the aggregate type.
	SnapshotsWritten func(aggregateType string, n int)
	// CheckpointWritten is called after a checkpoint of an events
	// partition committed.
	CheckpointWritten func(topic string, partition int32, offset int64)
	// ApplyFailed is called when an event cannot be applied (or is not a
	// snaplog event); the aggregate is no longer snapshotted.
	ApplyFailed func(topic string, partition int32, offset int64, aggregateID uuid.UUID, err error)
	// Restored is called when an assigned partition has been restored.
	Restored func(topic string, partition int32, took time.Duration)
	// Aborted is called when a transaction was aborted (a rebalance, or
	// fenced by a newer generation of the group).
	Aborted func(err error)
}

func newConfig(group string, opts []Option) (config, error) {
	c := config{
		eventPrefix: log.DefaultTopicPrefix,
		snapPrefix:  snapshots.DefaultTopicPrefix,
		replication: 0, // the store's default
		policy:      aggregate.Every(DefaultThreshold),
		interval:    DefaultCheckpointInterval,
		maxStates:   DefaultMaxStates,
		txnID:       group + "-" + uuid.NewString(),
		logger:      slog.New(slog.DiscardHandler),
		set:         make(map[string]bool),
	}
	if group == "" {
		c.errs = append(c.errs, errors.New("empty group"))
	}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.set["WithPostgres"] {
		for _, o := range []string{"WithSnapshotsTopicPrefix", "WithReplicationFactor", "WithTransactionalID"} {
			if c.set[o] {
				c.errs = append(c.errs, fmt.Errorf("%s configures the snapshot topics, which WithPostgres replaces", o))
			}
		}
	}
	if len(c.clientOpts) == 0 && c.shared == nil {
		c.errs = append(c.errs, errors.New("KafkaClient or WithClient: no client options (seed brokers are required)"))
	}
	return c, errors.Join(c.errs...)
}

// allClientOpts returns the options of the clients the snapshotter makes:
// the shared client's (WithClient), then KafkaClient's.
func (c *config) allClientOpts() []kgo.Opt {
	return append(append([]kgo.Opt(nil), c.sharedOpts...), c.clientOpts...)
}

// storeClient and logClient give the store and the log the snapshotter's
// client settings.
func (c *config) storeClient() []snapshots.KafkaOption {
	opts := []snapshots.KafkaOption{snapshots.KafkaClient(c.clientOpts...)}
	if c.shared != nil {
		opts = append(opts, snapshots.WithClient(c.shared))
	}
	return opts
}

func (c *config) logClient() []log.KafkaOption {
	opts := []log.KafkaOption{log.KafkaClient(c.clientOpts...)}
	if c.shared != nil {
		opts = append(opts, log.WithClient(c.shared))
	}
	return opts
}
