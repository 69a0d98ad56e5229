package snapshots

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kread"
	"github.com/snaplog/snaplog/log"
)

// DefaultTopicPrefix is the default prefix of snapshot topic names: the
// snapshots of aggregate type T live in DefaultTopicPrefix + T.
const DefaultTopicPrefix = "snaplog.snapshots."

// ErrOwned is reported (through errors.Is) by Put, Delete, Remove and
// DeleteType on a partition whose checkpoints declare a snapshotter owner
// other than the store's own (WithOwner): only that snapshotter writes
// there. Delete and Remove refuse a partition a snapshotter owns whatever
// the store's owner.
var ErrOwned = errors.New("snapshots: snapshot topic is owned by a snapshotter")

// missingFor is how long the store takes an aggregate type's snapshot topic
// to be missing before it asks the cluster again (when reading; a write
// creates the topic at once).
const missingFor = 5 * time.Second

// ErrTopicLayout is reported (through errors.Is) for a snapshot topic that
// cannot serve: not compacted, not partitioned like its events topic, or
// replicated so that it can lose acknowledged snapshots and checkpoints
// (unclean.leader.election.enable=true, or min.insync.replicas below 2 with
// 3 or more replicas; see WithUnsafeTopicSettings).
var ErrTopicLayout = errors.New("snapshots: snapshot topic layout")

// Kafka is a Store on log-compacted Kafka topics, one per aggregate type,
// co-partitioned with the aggregate type's events topic: same partition
// count, same key (the aggregate id), so an aggregate's snapshot lives in
// the partition number of its events. Values are the AvroCodec's
// single-object encoding; a tombstone deletes a snapshot.
//
// Each partition of a snapshot topic also holds the snapshotter's
// checkpoints, under the key CheckpointKey: "every aggregate of events
// partition p with events before offset C has a snapshot here that includes
// them" (see Checkpoint). Kafka implements CheckpointReader, so a repository
// on it starts loads at the checkpoint when that is past the snapshot. A
// checkpoint's Owner declares the snapshotter that writes the topic; Put and
// DeleteType refuse to write to a partition owned by someone else, Delete
// and Remove to an owned partition (ErrOwned).
//
// Reads come from a materialized view. A partition is restored on its first
// use (read from its start to its end as of then) and kept current by one
// goroutine that tails every restored partition. The view keeps, per
// aggregate, the version, schema version and offset of its latest snapshot
// (83 bytes an aggregate), and the encoded value while the cache budget
// (WithViewCacheBytes) allows; a value beyond the budget is fetched from
// Kafka when asked for. So the view's memory is 83 bytes times the
// aggregates of the restored partitions, plus at most the budget. Like
// compaction, it takes a key's last record as its snapshot (Put refuses to
// write a version lower than the view's, ErrStale); it skips, counts and
// logs (with topic, partition and offset) records it cannot decode or that
// name another aggregate. Nothing in the topic is trusted: a repository
// uses a snapshot only once the log confirms its last event
// (Snapshot.Confirm).
//
// Kafka owns its clients, built from the options given to NewKafka, and
// closes them in Close. It is safe for concurrent use.
type Kafka struct {
	cfg kafkaConfig
	cl  *kgo.Client
	adm *kadm.Client
	rd  *kread.Reader
	// poll has a client of its own: a broker answers one request per
	// connection at a time, and the tailing long poll must not hold up
	// restores and reads.
	poll  *kread.Reader
	codec *AvroCodec

	mu      sync.Mutex
	types   map[string]*kafkaType
	missing map[string]time.Time // types found without a snapshot topic, and when
	tailing bool

	// putLocks serialize the Puts of an aggregate (by the first byte of its
	// id): the view's version check and the write it allows are one step,
	// so this store never writes a version below one it wrote.
	putLocks [64]sync.Mutex

	cached  atomic.Int64 // bytes of values the view holds
	skipped atomic.Uint64

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ Store            = (*Kafka)(nil)
	_ CheckpointReader = (*Kafka)(nil)
	_ Housekeeper      = (*Kafka)(nil)
)

type kafkaType struct {
	name        string // aggregate type
	topic       *kread.Topic
	eventsTopic string
	parts       []*viewPart
}

// viewPart is the view of one partition of a snapshot topic.
type viewPart struct {
	p int32

	mu         sync.RWMutex
	restored   bool
	restoring  chan struct{} // closed when a restore ends
	restoreErr error
	entries    map[uuid.UUID]*viewEntry
	deleted    map[uuid.UUID]int64 // keys whose last record is a tombstone, and its offset
	checkpoint *Checkpoint
	next       int64 // the offset the view has read up to
}

// viewEntry is what the view keeps of one aggregate: 83 bytes with its map
// slot (BenchmarkViewMemory), plus the value and about 20 bytes more while
// the cache budget allows. (The schema version fills the 48-byte allocation
// the other fields take anyway.)
type viewEntry struct {
	version       int64
	offset        int64
	value         []byte
	schemaVersion int32
}

type kafkaConfig struct {
	shared      *kgo.Client // WithClient
	clientOpts  []kgo.Opt
	prefix      string
	eventPrefix string
	replication int16
	owner       string
	cacheBytes  int64
	topicConfig map[string]string
	unsafe      []string // settings accepted with WithUnsafeTopicSettings
	poll        time.Duration
	logger      *slog.Logger
	errs        []error
}

// KafkaOption configures a Kafka store.
type KafkaOption interface{ applyKafka(*kafkaConfig) }

type kafkaOption func(*kafkaConfig)

func (f kafkaOption) applyKafka(c *kafkaConfig) { f(c) }

// WithClient gives the store an existing client, as kadm.NewClient takes one:
// its admin, metadata and read requests go through cl, and the clients it
// needs settings of its own for (producing with acks=all and explicit
// partitions, long polls on connections of their own) are made from
// cl's options (cl.Opts()) and the KafkaClient options, if any. cl must be
// a client of connection settings only: one in a consumer group, consuming
// topics or partitions, or transactional is refused, since the clients
// made from it would consume or be fenced along. The store does not close cl.
func WithClient(cl *kgo.Client) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		opts, err := kread.SharedOpts(cl)
		if err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.shared = cl
		c.clientOpts = append(opts, c.clientOpts...)
	})
}

// KafkaClient sets the franz-go options of the store's client: seed
// brokers, TLS, SASL and the like: at least kgo.SeedBrokers, unless WithClient
// gives them. The
// store adds acks=all, idempotence, no linger and explicit partitioning.
func KafkaClient(opts ...kgo.Opt) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithTopicPrefix sets the prefix of snapshot topic names. Default:
// DefaultTopicPrefix ("snaplog.snapshots.").
func WithTopicPrefix(p string) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.prefix = p })
}

// WithEventsTopicPrefix sets the prefix of the events topics the snapshot
// topics are co-partitioned with; it must be the event log's. Default:
// log.DefaultTopicPrefix ("snaplog.events.").
func WithEventsTopicPrefix(p string) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.eventPrefix = p })
}

// WithReplicationFactor sets the replication factor of the snapshot topics
// the store creates: n replicas, or the broker's default.replication.factor
// for -1. Default: log.DefaultReplicationFactor of the cluster's brokers
// when the topic is created (min(3, brokers)). A topic created with 3 or
// more replicas (known beforehand for -1 from a validate-only creation)
// also gets min.insync.replicas=2 unless WithTopicConfig sets it; a topic
// with fewer replicas does not (it could not take writes with a broker
// down).
func WithReplicationFactor(n int16) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if n == 0 || n < -1 {
			c.errs = append(c.errs, fmt.Errorf("WithReplicationFactor: must be positive or -1, got %d", n))
		}
		c.replication = n
	})
}

// WithOwner makes the store write as the named snapshotter: it may write to
// partitions whose checkpoints name it as owner, and its checkpoints carry
// the name. Default: none; the store refuses to write to owned partitions,
// which is what a repository's store must do.
func WithOwner(name string) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if name == "" {
			c.errs = append(c.errs, errors.New("WithOwner: empty name"))
		}
		c.owner = name
	})
}

// WithViewCacheBytes bounds the encoded snapshot values the view keeps in
// memory; beyond it, a Get fetches the value from Kafka. Default: 64 MiB.
func WithViewCacheBytes(n int64) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if n < 0 {
			c.errs = append(c.errs, fmt.Errorf("WithViewCacheBytes: negative %d", n))
		}
		c.cacheBytes = n
	})
}

// WithTopicConfig sets configs of the snapshot topics the store creates,
// over the defaults: cleanup.policy=compact, min.compaction.lag.ms=0,
// min.cleanable.dirty.ratio=0.5, segment.ms=3600000 (an hour) and
// delete.retention.ms=86400000 (tombstones kept a day). cleanup.policy must
// stay compact.
func WithTopicConfig(cfg map[string]string) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		for k, v := range cfg {
			if k == "cleanup.policy" && v != "compact" {
				c.errs = append(c.errs, fmt.Errorf("WithTopicConfig: cleanup.policy must be compact, got %q", v))
			}
			c.topicConfig[k] = v
		}
	})
}

// WithUnsafeTopicSettings makes the store accept snapshot topics whose
// named settings can lose acknowledged snapshots and checkpoints:
// log.SettingUncleanLeaderElection ("unclean.leader.election.enable") set to
// true, log.SettingMinInSyncReplicas ("min.insync.replicas") below 2 with 3
// or more replicas, whether the topic exists or WithTopicConfig asks for
// them. Default: none; such a topic (or topic config) is refused with
// ErrTopicLayout. Other names are refused by NewKafka.
func WithUnsafeTopicSettings(settings ...string) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		for _, s := range settings {
			if s != log.SettingUncleanLeaderElection && s != log.SettingMinInSyncReplicas {
				c.errs = append(c.errs, fmt.Errorf("WithUnsafeTopicSettings: unknown setting %q (known: %s, %s)", s, log.SettingUncleanLeaderElection, log.SettingMinInSyncReplicas))
				continue
			}
			c.unsafe = append(c.unsafe, s)
		}
	})
}

// WithLogger sets the store's logger. Default: nothing is logged.
func WithLogger(l *slog.Logger) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if l == nil {
			c.errs = append(c.errs, errors.New("WithLogger: nil logger"))
		}
		c.logger = l
	})
}

// NewKafka returns a Kafka store that encodes with codec. A nil codec is a
// new one: the repositories and snapshotters given the store register their
// aggregate types' schemas on it (Register), so that a type's schema is
// given once, on its aggregate.Type. It validates every option and reports
// all problems at once; it does no I/O.
func NewKafka(codec *AvroCodec, opts ...KafkaOption) (*Kafka, error) {
	c := kafkaConfig{
		prefix:      DefaultTopicPrefix,
		eventPrefix: log.DefaultTopicPrefix,
		replication: 0, // log.DefaultReplicationFactor of the cluster's brokers
		cacheBytes:  64 << 20,
		poll:        500 * time.Millisecond,
		logger:      slog.New(slog.DiscardHandler),
		topicConfig: map[string]string{
			"cleanup.policy":            "compact",
			"min.compaction.lag.ms":     "0",
			"min.cleanable.dirty.ratio": "0.5",
			"segment.ms":                "3600000",
			"delete.retention.ms":       "86400000",
		},
	}
	for _, o := range opts {
		o.applyKafka(&c)
	}
	if codec == nil {
		codec = NewAvroCodec()
	}
	if len(c.clientOpts) == 0 {
		c.errs = append(c.errs, errors.New("KafkaClient or WithClient: no client options (seed brokers are required)"))
	}
	if c.prefix == c.eventPrefix {
		c.errs = append(c.errs, fmt.Errorf("snapshot and events topics share the prefix %q", c.prefix))
	}
	// A topic config that can lose acknowledged records, as far as the
	// replication is known now (createTopic checks again with the factor).
	if err := checkReplication("WithTopicConfig", int(max(c.replication, 0)), c.configLookup(), c.unsafe); err != nil {
		c.errs = append(c.errs, err)
	}
	if len(c.errs) > 0 {
		return nil, fmt.Errorf("snapshots: new kafka store: %w", errors.Join(c.errs...))
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), c.clientOpts...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, fmt.Errorf("snapshots: new kafka store: %w", err)
	}
	pollCl, err := kgo.NewClient(c.clientOpts...)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("snapshots: new kafka store: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	requests := cl // admin, metadata and reads
	if c.shared != nil {
		requests = c.shared
	}
	return &Kafka{
		cfg:     c,
		cl:      cl,
		adm:     kadm.NewClient(requests),
		rd:      kread.NewReader(requests),
		poll:    kread.NewReader(pollCl),
		codec:   codec,
		types:   make(map[string]*kafkaType),
		missing: make(map[string]time.Time),
		ctx:     ctx,
		cancel:  cancel,
	}, nil
}

// Register registers an aggregate type's state schemas on the store's codec
// (AvroCodec.Register). It implements SchemaRegistrar.
func (k *Kafka) Register(aggregateType, stateSchema string, olderStateSchemas ...string) error {
	return k.codec.Register(aggregateType, stateSchema, olderStateSchemas...)
}

// Schema returns the current state schema of an aggregate type registered
// on the store's codec, or nil.
func (k *Kafka) Schema(aggregateType string) *StateSchema { return k.codec.Schema(aggregateType) }

// Close stops tailing and closes the store's client. It is idempotent.
func (k *Kafka) Close() error {
	k.closeOnce.Do(func() {
		k.cancel()
		k.wg.Wait()
		k.poll.Client.Close()
		k.cl.Close()
	})
	return nil
}

// Topic returns the name of an aggregate type's snapshot topic.
func (k *Kafka) Topic(aggregateType string) string { return k.cfg.prefix + aggregateType }

// EnsureTopic creates the aggregate type's snapshot topic if it is missing,
// with the partition count of its events topic (which must exist), the
// compaction settings and the replication of WithReplicationFactor, and
// checks an existing one: it must be compacted (cleanup.policy=compact,
// nothing else: deleting old snapshots by age would break the checkpoints'
// promise), partitioned like the events topic, and unable to lose
// acknowledged records (no unclean.leader.election.enable=true, and
// min.insync.replicas at least 2 with 3 or more replicas, unless
// WithUnsafeTopicSettings accepts them).
func (k *Kafka) EnsureTopic(ctx context.Context, aggregateType string) error {
	_, err := k.kafkaType(ctx, aggregateType, true)
	return err
}

// kafkaType returns the checked topic of an aggregate type, creating it when
// create is set, or nil when it does not exist and create is not set.
func (k *Kafka) kafkaType(ctx context.Context, aggregateType string, create bool) (*kafkaType, error) {
	if aggregateType == "" {
		return nil, errors.New("snapshots: empty aggregate type")
	}
	k.mu.Lock()
	kt := k.types[aggregateType]
	missingSince, missing := k.missing[aggregateType]
	k.mu.Unlock()
	if kt != nil {
		return kt, nil
	}
	if !create && missing && time.Since(missingSince) < missingFor {
		return nil, nil // looked up a moment ago: loads need not ask again
	}
	name, eventsName := k.Topic(aggregateType), k.cfg.eventPrefix+aggregateType
	events, err := kread.Describe(ctx, k.cl, eventsName)
	if err != nil {
		return nil, fmt.Errorf("snapshots: events topic %s of %s: %w", eventsName, name, err)
	}
	t, err := kread.Describe(ctx, k.cl, name)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		if !create {
			k.mu.Lock()
			k.missing[aggregateType] = time.Now()
			k.mu.Unlock()
			return nil, nil
		}
		if err := k.createTopic(ctx, name, events.Partitions); err != nil {
			return nil, err
		}
		k.mu.Lock()
		delete(k.missing, aggregateType) // found missing a moment ago, created now
		k.mu.Unlock()
		return k.kafkaType(ctx, aggregateType, false)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots: describe topic %s: %w", name, err)
	}
	if t.Partitions != events.Partitions {
		return nil, fmt.Errorf("%w: %s has %d partitions, its events topic %s has %d: an aggregate's snapshot must live in the partition number of its events",
			ErrTopicLayout, name, t.Partitions, eventsName, events.Partitions)
	}
	if err := k.checkCompacted(ctx, name); err != nil {
		return nil, err
	}
	kt = &kafkaType{name: aggregateType, topic: t, eventsTopic: eventsName, parts: make([]*viewPart, t.Partitions)}
	for p := range kt.parts {
		kt.parts[p] = &viewPart{p: int32(p), entries: make(map[uuid.UUID]*viewEntry), deleted: make(map[uuid.UUID]int64)}
	}
	k.mu.Lock()
	if have := k.types[aggregateType]; have != nil {
		kt = have
	} else {
		k.types[aggregateType] = kt
	}
	k.mu.Unlock()
	return kt, nil
}

// configLookup looks a setting up in the config of the topics the store
// creates: the configured one, with the min.insync.replicas=2 that
// createTopic adds when it is not set.
func (c *kafkaConfig) configLookup() func(string) (string, bool) {
	return func(key string) (string, bool) {
		v, ok := c.topicConfig[key]
		if !ok && key == log.SettingMinInSyncReplicas {
			return "2", true
		}
		return v, ok
	}
}

func (k *Kafka) createTopic(ctx context.Context, name string, partitions int32) error {
	cfg := make(map[string]*string, len(k.cfg.topicConfig)+1)
	for key, v := range k.cfg.topicConfig {
		cfg[key] = kadm.StringPtr(v)
	}
	request, factor, err := kread.ReplicationFactor(ctx, k.adm, k.cfg.replication, name, partitions, cfg)
	if err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	if _, set := k.cfg.topicConfig[log.SettingMinInSyncReplicas]; factor >= 3 && !set {
		cfg[log.SettingMinInSyncReplicas] = kadm.StringPtr("2")
	}
	// Never create a topic the store would then refuse.
	if err := checkReplication("topic "+name, int(factor), func(key string) (string, bool) {
		if v := cfg[key]; v != nil {
			return *v, true
		}
		return "", false
	}, k.cfg.unsafe); err != nil {
		return fmt.Errorf("snapshots: not creating topic: %w", err)
	}
	_, err = k.adm.CreateTopic(ctx, partitions, request, cfg, name)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("snapshots: create topic %s: %w", name, err)
	}
	if err == nil {
		k.cfg.logger.Info("created snapshot topic", slog.String("topic", name), slog.Int("partitions", int(partitions)),
			slog.Int("replication", int(factor)))
	}
	for i := 0; i < 100; i++ {
		if t, err := kread.Describe(ctx, k.cl, name); err == nil && t.Led() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("snapshots: topic %s created but has no leaders", name)
}

// checkReplication reports, as an error wrapping ErrTopicLayout, every
// setting of what (a topic, or the configured topic config) with
// replicationFactor replicas that can lose acknowledged records:
// unclean.leader.election.enable=true, and min.insync.replicas below 2 with
// 3 or more replicas (a missing one is Kafka's default, 1). Settings in
// accepted are not refused.
func checkReplication(what string, replicationFactor int, lookup func(string) (string, bool), accepted []string) error {
	var errs []error
	for _, u := range log.UnsafeTopicSettings(replicationFactor, lookup) {
		if slices.Contains(accepted, u.Setting) {
			continue
		}
		errs = append(errs, fmt.Errorf("%w: %s has %s; to accept it, name it: snapshots.WithUnsafeTopicSettings(%q)",
			ErrTopicLayout, what, u, u.Setting))
	}
	return errors.Join(errs...)
}

// checkCompacted refuses a snapshot topic that is not compacted or can lose
// acknowledged records.
func (k *Kafka) checkCompacted(ctx context.Context, name string) error {
	lookup, rf, err := kread.TopicSettings(ctx, k.adm, name)
	if err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	var errs []error
	if v, ok := lookup("cleanup.policy"); !ok {
		errs = append(errs, fmt.Errorf("%w: topic %s has no cleanup.policy", ErrTopicLayout, name))
	} else if strings.TrimSpace(v) != "compact" {
		errs = append(errs, fmt.Errorf("%w: topic %s has cleanup.policy=%q, need \"compact\"", ErrTopicLayout, name, v))
	}
	errs = append(errs, checkReplication("topic "+name, rf, lookup, k.cfg.unsafe))
	return errors.Join(errs...)
}

// part returns the restored view of the partition that holds the aggregate,
// or nil when the aggregate type has no snapshot topic and create is not set.
func (k *Kafka) part(ctx context.Context, aggregateType string, id uuid.UUID, create bool) (*kafkaType, *viewPart, error) {
	kt, err := k.kafkaType(ctx, aggregateType, create)
	if err != nil || kt == nil {
		return nil, nil, err
	}
	vp := kt.parts[log.Partition(id, kt.topic.Partitions)]
	if err := k.restore(ctx, kt, vp); err != nil {
		return nil, nil, err
	}
	return kt, vp, nil
}

// restore reads a partition from its start to its end as of the call, once;
// concurrent callers wait for the one restoring.
func (k *Kafka) restore(ctx context.Context, kt *kafkaType, vp *viewPart) error {
	for {
		vp.mu.Lock()
		if vp.restored {
			vp.mu.Unlock()
			return nil
		}
		if ch := vp.restoring; ch != nil {
			vp.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ch := make(chan struct{})
		vp.restoring = ch
		vp.mu.Unlock()

		start := time.Now()
		next, err := k.restoreFrom(ctx, kt, vp)
		vp.mu.Lock()
		vp.restoring = nil
		if err == nil {
			vp.restored, vp.next = true, next
		}
		vp.mu.Unlock()
		close(ch)
		if err != nil {
			return fmt.Errorf("snapshots: restore %s/%d: %w", kt.topic.Name, vp.p, err)
		}
		k.cfg.logger.Info("restored snapshot partition", slog.String("topic", kt.topic.Name), slog.Int("partition", int(vp.p)),
			slog.Int("aggregates", vp.len()), slog.Duration("took", time.Since(start)))
		k.startTailing()
		return nil
	}
}

func (vp *viewPart) len() int {
	vp.mu.RLock()
	defer vp.mu.RUnlock()
	return len(vp.entries)
}

func (k *Kafka) restoreFrom(ctx context.Context, kt *kafkaType, vp *viewPart) (int64, error) {
	starts, err := k.adm.ListStartOffsets(ctx, kt.topic.Name)
	if err != nil {
		return 0, err
	}
	from := int64(0)
	if o, ok := starts.Lookup(kt.topic.Name, vp.p); ok && o.Err == nil {
		from = o.Offset
	}
	next, _, err := k.rd.ScanOne(ctx, kt.topic, vp.p, from, -1, func(r *kgo.Record) error {
		k.apply(kt, vp, r)
		return nil
	})
	return next, err
}

// startTailing starts the goroutine that keeps restored partitions current.
func (k *Kafka) startTailing() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tailing || k.ctx.Err() != nil {
		return
	}
	k.tailing = true
	k.wg.Add(1)
	go k.tail()
}

// tail long-polls every restored partition and applies what arrives.
func (k *Kafka) tail() {
	defer k.wg.Done()
	backoff := 100 * time.Millisecond
	for k.ctx.Err() == nil {
		k.mu.Lock()
		types := make([]*kafkaType, 0, len(k.types))
		for _, kt := range k.types {
			types = append(types, kt)
		}
		k.mu.Unlock()
		failed := false
		for _, kt := range types {
			ranges := map[int32]*kread.Range{}
			for _, vp := range kt.parts {
				vp.mu.RLock()
				if vp.restored {
					ranges[vp.p] = &kread.Range{Off: vp.next, Until: math.MaxInt64}
				}
				vp.mu.RUnlock()
			}
			byLeader := map[int32][]int32{}
			for p := range ranges {
				byLeader[kt.topic.Leader(p)] = append(byLeader[kt.topic.Leader(p)], p)
			}
			wait := k.cfg.poll / time.Duration(max(1, len(types)))
			for leader, ps := range byLeader {
				err := k.poll.Fetch(k.ctx, kt.topic, leader, ps, ranges, wait, func(p int32, r *kgo.Record) error {
					k.apply(kt, kt.parts[p], r)
					return nil
				})
				for _, p := range ps {
					vp := kt.parts[p]
					vp.mu.Lock()
					vp.next = max(vp.next, ranges[p].Off)
					vp.mu.Unlock()
				}
				if err != nil && k.ctx.Err() == nil {
					failed = true
					k.cfg.logger.Warn("tailing snapshot topic", slog.String("topic", kt.topic.Name), slog.Any("error", err))
					kt.topic.Refresh(k.ctx, k.cl)
				}
			}
		}
		if failed || len(types) == 0 {
			select {
			case <-k.ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		} else {
			backoff = 100 * time.Millisecond
		}
	}
}

// apply folds one record of partition vp into the view.
func (k *Kafka) apply(kt *kafkaType, vp *viewPart, r *kgo.Record) {
	skip := func(why string, err error) {
		k.skipped.Add(1)
		k.cfg.logger.Warn("skipped snapshot record", slog.String("topic", r.Topic), slog.Int("partition", int(r.Partition)),
			slog.Int64("offset", r.Offset), slog.String("why", why), slog.Any("error", err))
	}
	if IsCheckpointKey(r.Key) {
		if r.Value == nil {
			vp.mu.Lock()
			vp.checkpoint = nil
			vp.mu.Unlock()
			return
		}
		cp, err := DecodeCheckpoint(r.Value)
		switch {
		case err != nil:
			skip("undecodable checkpoint", err)
		case cp.EventsPartition != vp.p || cp.EventsTopic != kt.eventsTopic:
			skip("checkpoint of another partition", fmt.Errorf("checkpoint of %s/%d in partition %d", cp.EventsTopic, cp.EventsPartition, vp.p))
		default:
			vp.mu.Lock()
			vp.checkpoint = &cp
			vp.mu.Unlock()
		}
		return
	}
	id, err := uuid.ParseBytes(r.Key)
	if err != nil {
		skip("key is not an aggregate id", err)
		return
	}
	if r.Value == nil {
		k.forget(vp, id, r.Offset)
		return
	}
	// The view keeps only the version: the state is decoded when asked for.
	head, err := k.codec.DecodeHead(r.Value)
	switch {
	case err != nil:
		skip("undecodable snapshot", err)
		return
	case head.AggregateID != id || head.AggregateType != kt.name:
		skip("snapshot of another aggregate", fmt.Errorf("record of %s %s under key %s", head.AggregateType, head.AggregateID, id))
		return
	}
	k.remember(vp, id, head.Version, head.SchemaVersion, r.Offset, r.Value)
}

// remember records a snapshot in the view unless the view holds a later
// record of the aggregate. The view follows the topic, as compaction does:
// a key's last record is its snapshot, whatever its version. (Keeping the
// highest version instead would let one forged record block every real
// snapshot written after it; loads confirm what they use, see
// Snapshot.Confirm.)
func (k *Kafka) remember(vp *viewPart, id uuid.UUID, version int64, schemaVersion int, offset int64, value []byte) {
	vp.mu.Lock()
	defer vp.mu.Unlock()
	e := vp.entries[id]
	if e != nil && e.offset > offset {
		return
	}
	if e == nil {
		if at, deleted := vp.deleted[id]; deleted && at > offset {
			return // a later tombstone deleted it
		}
		e = &viewEntry{}
		vp.entries[id] = e
		delete(vp.deleted, id)
	}
	k.cached.Add(-int64(len(e.value)))
	e.version, e.schemaVersion, e.offset, e.value = version, int32(schemaVersion), offset, nil
	if k.cached.Load()+int64(len(value)) <= k.cfg.cacheBytes {
		e.value = bytes.Clone(value)
		k.cached.Add(int64(len(value)))
	}
}

// Get implements Store.
func (k *Kafka) Get(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (Snapshot, error) {
	kt, vp, err := k.part(ctx, aggregateType, aggregateID, false)
	if err != nil {
		return Snapshot{}, err
	}
	if vp == nil {
		return Snapshot{}, fmt.Errorf("%w: %s %s (no snapshot topic)", ErrNotFound, aggregateType, aggregateID)
	}
	vp.mu.RLock()
	e := vp.entries[aggregateID]
	var value []byte
	var offset int64
	if e != nil {
		value, offset = e.value, e.offset
	}
	vp.mu.RUnlock()
	if e == nil {
		vp.mu.RLock()
		_, deleted := vp.deleted[aggregateID]
		vp.mu.RUnlock()
		if deleted {
			return Snapshot{}, fmt.Errorf("%w: %w: %s %s: its snapshot in %s/%d was deleted by a tombstone", ErrNotFound, ErrDeleted, aggregateType, aggregateID, kt.topic.Name, vp.p)
		}
		return Snapshot{}, fmt.Errorf("%w: %s %s", ErrNotFound, aggregateType, aggregateID)
	}
	if value == nil {
		if value, err = k.fetchValue(ctx, kt, vp.p, offset); err != nil {
			return Snapshot{}, err
		}
	}
	snap, err := k.codec.Decode(value)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshots: get %s %s from %s/%d@%d: %w", aggregateType, aggregateID, kt.topic.Name, vp.p, offset, err)
	}
	return snap, nil
}

// fetchValue reads the value of the record at offset.
func (k *Kafka) fetchValue(ctx context.Context, kt *kafkaType, p int32, offset int64) ([]byte, error) {
	var value []byte
	_, _, err := k.rd.ScanOne(ctx, kt.topic, p, offset, offset+1, func(r *kgo.Record) error {
		if r.Offset == offset {
			value = r.Value
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshots: fetch %s/%d@%d: %w", kt.topic.Name, p, offset, err)
	}
	if value == nil {
		// Compaction removes a record only under a later one of its key,
		// which the view has not read yet: the aggregate has a snapshot,
		// so this is no ErrNotFound.
		return nil, fmt.Errorf("snapshots: %s/%d@%d is gone (compacted away under a later record the view has not read yet)", kt.topic.Name, p, offset)
	}
	return value, nil
}

// writable refuses a partition owned by another snapshotter; vp.mu is held.
func (k *Kafka) writable(kt *kafkaType, vp *viewPart) error {
	if cp := vp.checkpoint; cp != nil && cp.Owner != "" && cp.Owner != k.cfg.owner {
		return fmt.Errorf("%w: %s/%d belongs to snapshotter %q (its checkpoints say so); only it writes snapshots there",
			ErrOwned, kt.topic.Name, vp.p, cp.Owner)
	}
	return nil
}

// Put implements Store. It refuses a snapshot older than the one the view
// holds (ErrStale), one of an owned partition (ErrOwned), and one whose
// position is not in the aggregate's partition.
func (k *Kafka) Put(ctx context.Context, s Snapshot) error {
	if err := s.Validate(); err != nil {
		return err
	}
	kt, vp, err := k.part(ctx, s.AggregateType, s.AggregateID, true)
	if err != nil {
		return err
	}
	if s.Position.Partition != vp.p {
		return fmt.Errorf("snapshots: put %s: its last event is in partition %d, the aggregate's snapshots are in partition %d", s, s.Position.Partition, vp.p)
	}
	mu := &k.putLocks[s.AggregateID[0]%byte(len(k.putLocks))]
	mu.Lock()
	defer mu.Unlock()
	vp.mu.RLock()
	err = k.writable(kt, vp)
	if e := vp.entries[s.AggregateID]; err == nil && e != nil && e.version > s.Version {
		err = fmt.Errorf("%w: %s %s: have version %d, refusing version %d", ErrStale, s.AggregateType, s.AggregateID, e.version, s.Version)
	}
	vp.mu.RUnlock()
	if err != nil {
		return err
	}
	value, err := k.codec.Encode(s)
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: kt.topic.Name, Partition: vp.p, Key: log.Key(s.AggregateID), Value: value}
	if err := k.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("snapshots: put %s to %s/%d: %w", s, kt.topic.Name, vp.p, err)
	}
	k.remember(vp, s.AggregateID, s.Version, s.SchemaVersion, rec.Offset, value)
	return nil
}

// Delete implements Store with a tombstone. It refuses (ErrOwned) a
// partition a snapshotter owns, whatever the store's owner name: the
// snapshotter's checkpoint promises that every aggregate with events before
// it has a snapshot there, and a deleted snapshot would break that promise.
// (Loads survive a tombstone written all the same: they read the aggregate
// from the log; see aggregate.Repository.Load.) To drop the snapshots of an
// owned topic, delete them as its owner with DeleteType, or stop its
// snapshotters and rebuild.
func (k *Kafka) Delete(ctx context.Context, aggregateType string, aggregateID uuid.UUID) error {
	_, err := k.Remove(ctx, aggregateType, aggregateID)
	return err
}

// Remove implements Housekeeper: it is Delete, and reports whether the view
// held a snapshot of the aggregate when the tombstone was written. Like
// Delete it writes the tombstone either way (the view may not have read a
// snapshot just written by another store yet), unless the aggregate type
// has no snapshot topic.
func (k *Kafka) Remove(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (bool, error) {
	kt, vp, err := k.part(ctx, aggregateType, aggregateID, false)
	if err != nil || vp == nil {
		return false, err
	}
	vp.mu.RLock()
	existed := vp.entries[aggregateID] != nil
	if cp := vp.checkpoint; cp != nil && cp.Owner != "" {
		err = fmt.Errorf("%w: %s/%d: snapshotter %q checkpoints it, and its checkpoint promises a snapshot of every aggregate with events before offset %d; not deleting %s %s",
			ErrOwned, kt.topic.Name, vp.p, cp.Owner, cp.Offset, aggregateType, aggregateID)
	}
	vp.mu.RUnlock()
	if err != nil {
		return false, err
	}
	rec := &kgo.Record{Topic: kt.topic.Name, Partition: vp.p, Key: log.Key(aggregateID)}
	if err := k.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return false, fmt.Errorf("snapshots: delete %s %s from %s/%d: %w", aggregateType, aggregateID, kt.topic.Name, vp.p, err)
	}
	k.forget(vp, aggregateID, rec.Offset)
	return existed, nil
}

// Exists implements Housekeeper from the view: whether the last record of
// the aggregate's key that the view has read is a snapshot of it.
func (k *Kafka) Exists(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (bool, error) {
	_, vp, err := k.part(ctx, aggregateType, aggregateID, false)
	if err != nil || vp == nil {
		return false, err
	}
	vp.mu.RLock()
	defer vp.mu.RUnlock()
	return vp.entries[aggregateID] != nil, nil
}

// PartitionCount is what CountTypeByPartition and DeleteTypeByPartition
// report of one partition of an aggregate type's snapshot topic.
type PartitionCount struct {
	Partition int32
	// Snapshots is how many snapshots of the partition match
	// (CountTypeByPartition) or were deleted (DeleteTypeByPartition).
	Snapshots int
	// Owner is the owner the partition's latest checkpoint names: "" when
	// it has no checkpoint, or one without an owner.
	Owner string
}

// deleteBatch is how many tombstones DeleteTypeByPartition produces at
// once.
const deleteBatch = 4096

// CountType implements Housekeeper: CountTypeByPartition, summed.
func (k *Kafka) CountType(ctx context.Context, aggregateType string, belowSchemaVersion int) (int, error) {
	counts, err := k.CountTypeByPartition(ctx, aggregateType, belowSchemaVersion)
	return sumCounts(counts), err
}

// CountTypeByPartition restores every partition of the aggregate type's
// snapshot topic and returns, for each partition in order, how many of its
// snapshots DeleteType would delete now (see Housekeeper for what matches
// belowSchemaVersion), and the owner its checkpoint names. It writes
// nothing. For an aggregate type without a snapshot topic the result is
// empty.
func (k *Kafka) CountTypeByPartition(ctx context.Context, aggregateType string, belowSchemaVersion int) ([]PartitionCount, error) {
	kt, err := k.restoreType(ctx, aggregateType, belowSchemaVersion)
	if err != nil || kt == nil {
		return nil, err
	}
	counts := make([]PartitionCount, len(kt.parts))
	for i, vp := range kt.parts {
		ids, owner := vp.matching(belowSchemaVersion)
		counts[i] = PartitionCount{Partition: vp.p, Snapshots: len(ids), Owner: owner}
	}
	return counts, nil
}

// DeleteType implements Housekeeper: DeleteTypeByPartition, summed.
func (k *Kafka) DeleteType(ctx context.Context, aggregateType string, belowSchemaVersion int) (int, error) {
	counts, err := k.DeleteTypeByPartition(ctx, aggregateType, belowSchemaVersion)
	return sumCounts(counts), err
}

// DeleteTypeByPartition restores every partition of the aggregate type's
// snapshot topic and writes a tombstone for each snapshot the view holds
// that matches belowSchemaVersion (see Housekeeper); it returns, for each
// partition in order, how many it deleted. It never writes a tombstone
// under CheckpointKey, nor for a key whose records are no snapshot of the
// type: checkpoints and the records the view skips stay. For an aggregate
// type without a snapshot topic the result is empty.
//
// On a partition a snapshotter checkpoints, only that snapshotter's name
// may delete (WithOwner equal to the checkpoint's Owner): a store of
// another owner, or of none, gets ErrOwned, and when any partition refuses,
// DeleteTypeByPartition writes nothing at all. The tombstones break the
// checkpoint's promise for their aggregates only in a way loads survive:
// Get reports those aggregates with ErrDeleted, so Checkpoint.Unborn is
// false and loads and creations read them from the log, and the
// snapshotter writes their snapshots again, with the type's current schema
// version, at its next checkpoint (a running one within its checkpoint
// interval). That repair must come before compaction drops the tombstones
// (delete.retention.ms after the log cleaner reaches them, a day by
// default): delete from an owned topic while its snapshotters run, or
// start them well within that time.
//
// Snapshots written after the view read a partition are not deleted, and a
// snapshot written between the view's read and the tombstone is deleted in
// its place; the snapshotter writes it again as it does the others. A
// failure part way returns the counts of what was deleted and the error.
func (k *Kafka) DeleteTypeByPartition(ctx context.Context, aggregateType string, belowSchemaVersion int) ([]PartitionCount, error) {
	kt, err := k.restoreType(ctx, aggregateType, belowSchemaVersion)
	if err != nil || kt == nil {
		return nil, err
	}
	var refused []error
	for _, vp := range kt.parts {
		vp.mu.RLock()
		err := k.writable(kt, vp)
		vp.mu.RUnlock()
		if err != nil {
			refused = append(refused, err)
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("snapshots: not deleting snapshots of %s: %w", aggregateType, errors.Join(refused...))
	}
	counts := make([]PartitionCount, 0, len(kt.parts))
	for _, vp := range kt.parts {
		ids, owner := vp.matching(belowSchemaVersion)
		pc := PartitionCount{Partition: vp.p, Owner: owner}
		for batch := range slices.Chunk(ids, deleteBatch) {
			recs := make([]*kgo.Record, len(batch))
			for i, id := range batch {
				recs[i] = &kgo.Record{Topic: kt.topic.Name, Partition: vp.p, Key: log.Key(id)}
			}
			var failed error
			for _, res := range k.cl.ProduceSync(ctx, recs...) {
				if res.Err != nil {
					failed = cmp.Or(failed, res.Err)
					continue
				}
				if id, err := uuid.ParseBytes(res.Record.Key); err == nil {
					k.forget(vp, id, res.Record.Offset)
				}
				pc.Snapshots++
			}
			if failed != nil {
				counts = append(counts, pc)
				return counts, fmt.Errorf("snapshots: delete snapshots of %s from %s/%d (%d deleted there): %w",
					aggregateType, kt.topic.Name, vp.p, pc.Snapshots, failed)
			}
		}
		counts = append(counts, pc)
	}
	return counts, nil
}

// restoreType checks the arguments of CountType and DeleteType and restores
// every partition of the aggregate type's snapshot topic; it returns nil
// when the type has no snapshot topic.
func (k *Kafka) restoreType(ctx context.Context, aggregateType string, belowSchemaVersion int) (*kafkaType, error) {
	if err := checkBelow(aggregateType, belowSchemaVersion); err != nil {
		return nil, err
	}
	kt, err := k.kafkaType(ctx, aggregateType, false)
	if err != nil || kt == nil {
		return nil, err
	}
	errs := make([]error, len(kt.parts))
	sem := make(chan struct{}, 8) // partitions restored at once
	var wg sync.WaitGroup
	for i, vp := range kt.parts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = k.restore(ctx, kt, vp)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return kt, nil
}

// matching returns the aggregates of the partition whose snapshot matches
// belowSchemaVersion, and the owner its checkpoint names.
func (vp *viewPart) matching(belowSchemaVersion int) ([]uuid.UUID, string) {
	vp.mu.RLock()
	defer vp.mu.RUnlock()
	var ids []uuid.UUID
	for id, e := range vp.entries {
		if matchesBelow(int(e.schemaVersion), belowSchemaVersion) {
			ids = append(ids, id)
		}
	}
	var owner string
	if vp.checkpoint != nil {
		owner = vp.checkpoint.Owner
	}
	return ids, owner
}

func sumCounts(counts []PartitionCount) int {
	n := 0
	for _, c := range counts {
		n += c.Snapshots
	}
	return n
}

// forget applies the tombstone at offset to the view: the aggregate has no
// snapshot, and had one (Get says so with ErrDeleted), unless the view
// already holds a later record of the key.
func (k *Kafka) forget(vp *viewPart, id uuid.UUID, offset int64) {
	vp.mu.Lock()
	defer vp.mu.Unlock()
	if e := vp.entries[id]; e != nil {
		if e.offset > offset {
			return
		}
		k.cached.Add(-int64(len(e.value)))
		delete(vp.entries, id)
	}
	if at, ok := vp.deleted[id]; !ok || at < offset {
		vp.deleted[id] = offset
	}
}

// CheckpointOf implements CheckpointReader.
func (k *Kafka) CheckpointOf(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (Checkpoint, error) {
	_, vp, err := k.part(ctx, aggregateType, aggregateID, false)
	if err != nil {
		return Checkpoint{}, err
	}
	if vp != nil {
		vp.mu.RLock()
		cp := vp.checkpoint
		vp.mu.RUnlock()
		if cp != nil {
			return *cp, nil
		}
	}
	return Checkpoint{}, fmt.Errorf("%w: no checkpoint for %s %s", ErrNotFound, aggregateType, aggregateID)
}

// Deleted returns the aggregates of a partition of the aggregate type's
// snapshot topic whose last record is a tombstone, as the view knows it (a
// restored partition; nil otherwise). A snapshotter uses it to write their
// snapshots again: its checkpoints promise one for every aggregate with
// events before them.
func (k *Kafka) Deleted(aggregateType string, partition int32) []uuid.UUID {
	k.mu.Lock()
	kt := k.types[aggregateType]
	k.mu.Unlock()
	if kt == nil || partition < 0 || int(partition) >= len(kt.parts) {
		return nil
	}
	vp := kt.parts[partition]
	vp.mu.RLock()
	defer vp.mu.RUnlock()
	if len(vp.deleted) == 0 {
		return nil
	}
	out := make([]uuid.UUID, 0, len(vp.deleted))
	for id := range vp.deleted {
		out = append(out, id)
	}
	return out
}

// Partitions returns the partition count of the aggregate type's snapshot
// topic (and events topic), creating the snapshot topic if it is missing.
func (k *Kafka) Partitions(ctx context.Context, aggregateType string) (int32, error) {
	kt, err := k.kafkaType(ctx, aggregateType, true)
	if err != nil {
		return 0, err
	}
	return kt.topic.Partitions, nil
}

// RestorePartition restores the view of one partition of the aggregate
// type's snapshot topic (if it is not restored yet) and returns its latest
// checkpoint, or an error wrapping ErrNotFound when it has none.
func (k *Kafka) RestorePartition(ctx context.Context, aggregateType string, partition int32) (Checkpoint, error) {
	kt, err := k.kafkaType(ctx, aggregateType, true)
	if err != nil {
		return Checkpoint{}, err
	}
	if partition < 0 || partition >= kt.topic.Partitions {
		return Checkpoint{}, fmt.Errorf("snapshots: %s has no partition %d", kt.topic.Name, partition)
	}
	vp := kt.parts[partition]
	if err := k.restore(ctx, kt, vp); err != nil {
		return Checkpoint{}, err
	}
	vp.mu.RLock()
	defer vp.mu.RUnlock()
	if vp.checkpoint == nil {
		return Checkpoint{}, fmt.Errorf("%w: no checkpoint in %s/%d", ErrNotFound, kt.topic.Name, partition)
	}
	return *vp.checkpoint, nil
}

// PutCheckpoint writes a checkpoint of events partition cp.EventsPartition
// into the same partition of the aggregate type's snapshot topic, as the
// store's owner (WithOwner; cp.Owner is set from it). A snapshotter writes
// checkpoints inside its transactions; this is the plain write, for tools
// and tests.
func (k *Kafka) PutCheckpoint(ctx context.Context, aggregateType string, cp Checkpoint) error {
	kt, err := k.kafkaType(ctx, aggregateType, true)
	if err != nil {
		return err
	}
	if cp.EventsPartition < 0 || cp.EventsPartition >= kt.topic.Partitions {
		return fmt.Errorf("snapshots: checkpoint of partition %d: %s has %d partitions", cp.EventsPartition, kt.topic.Name, kt.topic.Partitions)
	}
	vp := kt.parts[cp.EventsPartition]
	if err := k.restore(ctx, kt, vp); err != nil {
		return err
	}
	vp.mu.RLock()
	err = k.writable(kt, vp)
	vp.mu.RUnlock()
	if err != nil {
		return err
	}
	cp.EventsTopic, cp.Owner = kt.eventsTopic, k.cfg.owner
	if cp.WrittenAt.IsZero() {
		cp.WrittenAt = time.Now().UTC()
	}
	value, err := EncodeCheckpoint(cp)
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: kt.topic.Name, Partition: vp.p, Key: []byte(CheckpointKey), Value: value}
	if err := k.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("snapshots: put checkpoint to %s/%d: %w", kt.topic.Name, vp.p, err)
	}
	vp.mu.Lock()
	if vp.next <= rec.Offset {
		vp.checkpoint = &cp
	}
	vp.mu.Unlock()
	return nil
}

// KafkaStats describes a Kafka store's view.
type KafkaStats struct {
	Aggregates         int    // aggregates with a snapshot in the restored partitions
	CachedBytes        int64  // encoded values held in memory
	RestoredPartitions int    // partitions restored and tailed
	Skipped            uint64 // records skipped: undecodable, foreign, misplaced
}

// Stats returns the view's figures.
func (k *Kafka) Stats() KafkaStats {
	st := KafkaStats{CachedBytes: k.cached.Load(), Skipped: k.skipped.Load()}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, kt := range k.types {
		for _, vp := range kt.parts {
			vp.mu.RLock()
			if vp.restored {
				st.RestoredPartitions++
				st.Aggregates += len(vp.entries)
			}
			vp.mu.RUnlock()
		}
	}
	return st
}

// Caught waits until the view has read every partition it restored up to
// its end as of the call: what was written before Caught was called is in
// the view when it returns.
func (k *Kafka) Caught(ctx context.Context) error {
	k.mu.Lock()
	types := make([]*kafkaType, 0, len(k.types))
	for _, kt := range k.types {
		types = append(types, kt)
	}
	k.mu.Unlock()
	for _, kt := range types {
		ends, err := k.adm.ListEndOffsets(ctx, kt.topic.Name)
		if err != nil {
			return err
		}
		for _, vp := range kt.parts {
			o, ok := ends.Lookup(kt.topic.Name, vp.p)
			if !ok || o.Err != nil {
				continue
			}
			for {
				vp.mu.RLock()
				done := !vp.restored || vp.next >= o.Offset
				vp.mu.RUnlock()
				if done {
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
	}
	return nil
}
