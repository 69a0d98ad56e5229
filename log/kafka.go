package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/internal/kread"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Record headers of a stored event. The aggregate id is the record key, the
// payload is the record value and the record timestamp is the occurred-at
// time in milliseconds.
const (
	HeaderEventID       = "snaplog.event_id"
	HeaderEventType     = "snaplog.event_type"
	HeaderAggregateType = "snaplog.aggregate_type"
	HeaderVersion       = "snaplog.version"     // decimal
	HeaderExpected      = "snaplog.expected"    // decimal: the version the save expected
	HeaderSave          = "snaplog.save"        // the save's id (Expected.Save)
	HeaderSaveEvents    = "snaplog.save_events" // decimal: how many events the save has
	HeaderOccurredAt    = "snaplog.occurred_at"
	HeaderContentType   = "content-type"
	HeaderCorrelationID = "snaplog.correlation_id"
	HeaderCausationID   = "snaplog.causation_id"
	// HeaderMetaPrefix prefixes the keys of Metadata.Values.
	HeaderMetaPrefix = "snaplog.meta."
)

// ErrNotEvent is reported (through errors.Is) by FromRecord for a record
// that is not an event of any aggregate: its key is not an aggregate id in
// the canonical form of [Key], or its headers are not a snaplog event's.
// Every reader skips such records: Read counts them in Tail.Skipped,
// consumers dead-letter them, the snapshotter counts and logs them. None is
// ever applied to an aggregate, whatever its key resembles.
var ErrNotEvent = errors.New("log: not a snaplog event")

// ErrTopicConfig is reported (through errors.Is) when an events topic is
// configured so that it could lose events: compacted, with finite
// retention, or replicated so that it can lose acknowledged writes
// (unclean.leader.election.enable=true, or min.insync.replicas below 2 with
// 3 or more replicas; see CheckTopicReplication and
// WithUnsafeTopicSettings). The log refuses to write to such a topic.
var ErrTopicConfig = errors.New("log: events topic could lose events")

// DefaultTopicPrefix is the default prefix of events topic names: the topic
// of aggregate type T is DefaultTopicPrefix + T.
const DefaultTopicPrefix = "snaplog.events."

// Kafka is the event log on Apache Kafka. Each aggregate type has a topic
// (prefix + type name) whose records are keyed by aggregate id and
// partitioned by the Java client's default partitioner, so every client that
// partitions by key agrees on where an aggregate lives.
//
// Kafka has no conditional append. Kafka implements Append's optimistic
// concurrency with a rule that every reader applies (Sequencer): each record
// carries the version its save expected, the save's id and its event count;
// a save is decided when its last record arrives, and wins when the
// aggregate is then at the version it expected. After its records are
// acknowledged, Append reads the aggregate's partition from the caller's
// Expected.ReadTo up to its own last record to learn whether its save won
// (by these records or by an earlier copy of the same save: a retry), and
// reports a *ConflictError if it did not. (Records of its own one-event
// saves it need not read back: it knows them from their acknowledgements,
// so a partition this log alone writes costs no fetch; see topicChecker.)
// A one-event save is one record; a save of several events is one Kafka
// transaction, and Read uses read_committed.
//
// Producers are idempotent with acks=all. Kafka owns its clients, built from
// the kgo options given to NewKafka, and closes them in Close.
type Kafka struct {
	cfg kafkaConfig
	cl  *kgo.Client // non-transactional producer, metadata and fetches
	adm *kadm.Client
	rd  *kread.Reader
	// at reads single records (EventAt), on a client of its own: a load
	// asks for one while it reads a tail through rd, and the broker serves
	// two connections at once.
	at *kread.Reader
	// poll has a client of its own: a broker answers one request per
	// connection at a time, and a long poll must not hold up reads.
	poll *kread.Reader

	checkRead atomic.Uint64 // records read to decide Appends

	txns     chan *kgo.Client // idle transactional producers
	txnMu    sync.Mutex
	txnCount int

	mu         sync.Mutex
	topics     map[string]*kafkaTopic
	checkers   map[string]*topicChecker
	placements map[string]*topicPlacement // by aggregate type (placement.go)

	ctx       context.Context // ends at Close; bounds the goroutines the log owns
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type kafkaTopic = kread.Topic

type kafkaConfig struct {
	shared       *kgo.Client // WithClient
	clientOpts   []kgo.Opt
	prefix       string
	partitions   int32
	replication  int16
	autoCreate   bool
	txnProducers int
	txnTimeout   time.Duration
	txnPrefix    string
	logger       *slog.Logger
	placements   map[string]int32 // declared with WithPlacement, by aggregate type
	indexLimit   int
	unsafe       []string // settings accepted with WithUnsafeTopicSettings
	errs         []error
}

// KafkaOption configures a Kafka log.
type KafkaOption interface{ applyKafka(*kafkaConfig) }

type kafkaOption func(*kafkaConfig)

func (f kafkaOption) applyKafka(c *kafkaConfig) { f(c) }

// WithClient gives the log an existing client, as kadm.NewClient takes one:
// its admin, metadata and read requests go through cl, and the clients it
// needs settings of its own for (producing with acks=all and explicit
// partitions, transactions, long polls on connections of their own) are made from
// cl's options (cl.Opts()) and the KafkaClient options, if any. cl must be
// a client of connection settings only: one in a consumer group, consuming
// topics or partitions, or transactional is refused, since the clients
// made from it would consume or be fenced along. The log does not close cl.
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

// KafkaClient sets the franz-go options of the log's clients: seed brokers,
// TLS, SASL and the like: at least kgo.SeedBrokers, unless WithClient gives
// them. The log adds
// what it needs: acks=all, idempotence, no linger, explicit partitioning,
// and transactional ids for its transactional producers.
func KafkaClient(opts ...kgo.Opt) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithTopicPrefix sets the prefix of events topic names. Default:
// DefaultTopicPrefix ("snaplog.events.").
func WithTopicPrefix(p string) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.prefix = p })
}

// WithTopicPartitions sets the partition count of the topics the log
// creates. Default: 6. The partition count of an existing events topic must
// never change: it decides where each aggregate lives, and the log refuses a
// topic whose count changed (ErrPlacement).
func WithTopicPartitions(n int32) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithTopicPartitions: must be positive, got %d", n))
		}
		c.partitions = n
	})
}

// WithReplicationFactor sets the replication factor of the topics the log
// creates: n replicas, or the broker's default.replication.factor for -1.
// Default: DefaultReplicationFactor of the cluster's brokers when the topic
// is created (min(3, brokers)). A topic created with 3 or more replicas
// (known beforehand for -1 from a validate-only creation) also gets
// min.insync.replicas=2, so that an acknowledged event is on two brokers; a
// topic with fewer replicas does not (it could not take writes with a
// broker down).
func WithReplicationFactor(n int16) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if n == 0 || n < -1 {
			c.errs = append(c.errs, fmt.Errorf("WithReplicationFactor: must be positive or -1, got %d", n))
		}
		c.replication = n
	})
}

// Topic settings that can lose acknowledged events: the names
// WithUnsafeTopicSettings accepts.
const (
	// SettingUncleanLeaderElection is refused when true: an out-of-sync
	// replica may become leader and drop acknowledged events.
	SettingUncleanLeaderElection = "unclean.leader.election.enable"
	// SettingMinInSyncReplicas is refused below 2 on a topic with 3 or more
	// replicas: an event acknowledged by one replica is lost with it.
	SettingMinInSyncReplicas = "min.insync.replicas"
)

// WithUnsafeTopicSettings makes the log accept existing events topics whose
// named settings can lose acknowledged events: SettingUncleanLeaderElection
// ("unclean.leader.election.enable") set to true, SettingMinInSyncReplicas
// ("min.insync.replicas") below 2 with 3 or more replicas. Default: none;
// such a topic is refused with ErrTopicConfig. Other names are refused by
// NewKafka. The topics the log creates get the safe settings all the same.
func WithUnsafeTopicSettings(settings ...string) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		for _, s := range settings {
			if s != SettingUncleanLeaderElection && s != SettingMinInSyncReplicas {
				c.errs = append(c.errs, fmt.Errorf("WithUnsafeTopicSettings: unknown setting %q (known: %s, %s)", s, SettingUncleanLeaderElection, SettingMinInSyncReplicas))
				continue
			}
			c.unsafe = append(c.unsafe, s)
		}
	})
}

// WithAutoCreateTopics sets whether Append creates a missing events topic.
// Default: true. EnsureTopic creates topics explicitly either way.
func WithAutoCreateTopics(create bool) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) { c.autoCreate = create })
}

// WithTransactionalProducers sets how many transactional producers the log
// may use at once for saves of several events. Default: 2.
func WithTransactionalProducers(n int) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithTransactionalProducers: must be positive, got %d", n))
		}
		c.txnProducers = n
	})
}

// WithTransactionTimeout sets the transaction timeout of the log's
// transactional producers: how long a save of several events whose producer
// died mid-transaction holds up the appends and read_committed reads of its
// partition before the broker aborts it. Default: 10 s. It must exceed the
// time a save's records take to produce.
func WithTransactionTimeout(d time.Duration) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if d < time.Second {
			c.errs = append(c.errs, fmt.Errorf("WithTransactionTimeout: at least 1s, got %s", d))
		}
		c.txnTimeout = d
	})
}

// WithTransactionalIDPrefix sets the prefix of the log's transactional ids;
// each producer appends a number. Default: "snaplog-log-" and a random id,
// new for every Kafka value.
func WithTransactionalIDPrefix(p string) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if p == "" {
			c.errs = append(c.errs, errors.New("WithTransactionalIDPrefix: empty prefix"))
		}
		c.txnPrefix = p
	})
}

// WithIndexLimit bounds the aggregates of one partition the log indexes
// for its creation checks. An Append whose caller has not read the
// aggregate (Expected.ReadTo 0: a creation with nothing to bound it) must
// learn the aggregate's state from the whole partition; the log reads a
// partition from its start once, at the first such Append, and then keeps
// every aggregate's state in an index as the partition grows (about 40
// bytes an aggregate, BenchmarkIndexMemory). Past n aggregates it drops the
// partition's index, logs a warning naming topic and partition, and from
// then on each such Append reads the partition from its start. Default
// DefaultIndexLimit (10 million) per partition; 0 never indexes. A
// repository with a snapshotter's store bounds its creations by the
// checkpoint instead (see aggregate.Repository.Save).
func WithIndexLimit(n int) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if n < 0 {
			c.errs = append(c.errs, fmt.Errorf("WithIndexLimit: negative %d", n))
		}
		c.indexLimit = n
	})
}

// WithLogger sets the log's logger. Default: nothing is logged.
func WithLogger(l *slog.Logger) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if l == nil {
			c.errs = append(c.errs, errors.New("WithLogger: nil logger"))
		}
		c.logger = l
	})
}

// NewKafka returns a Kafka log. It validates every option and reports all
// problems at once; it does no I/O (see EnsureTopic and Ping).
func NewKafka(opts ...KafkaOption) (*Kafka, error) {
	c := kafkaConfig{
		prefix:       DefaultTopicPrefix,
		partitions:   6,
		replication:  0, // DefaultReplicationFactor of the cluster's brokers
		autoCreate:   true,
		txnProducers: 2,
		txnTimeout:   10 * time.Second,
		txnPrefix:    "snaplog-log-" + uuid.NewString() + "-",
		indexLimit:   DefaultIndexLimit,
		logger:       slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o.applyKafka(&c)
	}
	if len(c.clientOpts) == 0 {
		c.errs = append(c.errs, errors.New("KafkaClient or WithClient: no client options (seed brokers are required)"))
	}
	if len(c.errs) > 0 {
		return nil, fmt.Errorf("log: new kafka log: %w", errors.Join(c.errs...))
	}
	cl, err := kgo.NewClient(c.producerOpts()...)
	if err != nil {
		return nil, fmt.Errorf("log: new kafka log: %w", err)
	}
	pollCl, err := kgo.NewClient(c.clientOpts...)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("log: new kafka log: %w", err)
	}
	atCl, err := kgo.NewClient(c.clientOpts...)
	if err != nil {
		cl.Close()
		pollCl.Close()
		return nil, fmt.Errorf("log: new kafka log: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	requests := cl // admin, metadata and reads
	if c.shared != nil {
		requests = c.shared
	}
	return &Kafka{
		cfg:      c,
		cl:       cl,
		adm:      kadm.NewClient(requests),
		rd:       kread.NewReader(requests),
		at:       pointReader(atCl),
		poll:     kread.NewReader(pollCl),
		txns:     make(chan *kgo.Client, c.txnProducers),
		topics:   make(map[string]*kafkaTopic),
		checkers: make(map[string]*topicChecker),
		ctx:      ctx,
		cancel:   cancel,
	}, nil
}

func (c *kafkaConfig) producerOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := append([]kgo.Opt(nil), c.clientOpts...)
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	return append(opts, extra...)
}

// Close closes the log's clients. It is idempotent. Appends still waiting
// to learn their outcome fail.
func (k *Kafka) Close() error {
	k.closeOnce.Do(func() {
		k.cancel()
		k.wg.Wait()
		k.txnMu.Lock()
		defer k.txnMu.Unlock()
		for i := 0; i < k.txnCount; i++ {
			(<-k.txns).Close()
		}
		k.poll.Client.Close()
		k.at.Client.Close()
		k.cl.Close()
	})
	return nil
}

// Ping checks that the cluster answers.
func (k *Kafka) Ping(ctx context.Context) error {
	if err := k.cl.Ping(ctx); err != nil {
		return fmt.Errorf("log: ping kafka: %w", kread.Unanswered(k.cl, err))
	}
	return nil
}

// Topic returns the name of an aggregate type's events topic.
func (k *Kafka) Topic(aggregateType string) string { return k.cfg.prefix + aggregateType }

// EnsureTopic creates the aggregate type's events topic if it is missing,
// with the configured partitions and replication (WithReplicationFactor),
// retention.ms=-1, retention.bytes=-1, cleanup.policy=delete and, with 3 or
// more replicas, min.insync.replicas=2, and checks an existing one: a topic
// that is compacted, has finite retention or can lose acknowledged events
// (CheckTopicReplication) is refused with an error wrapping ErrTopicConfig
// that names the topic and the setting.
func (k *Kafka) EnsureTopic(ctx context.Context, aggregateType string) error {
	_, err := k.topic(ctx, aggregateType, true)
	return err
}

// Partitions returns the partition count of the aggregate type's topic.
func (k *Kafka) Partitions(ctx context.Context, aggregateType string) (int32, error) {
	t, err := k.topic(ctx, aggregateType, false)
	if err != nil {
		return 0, err
	}
	if t == nil {
		return 0, fmt.Errorf("log: topic %s does not exist", k.Topic(aggregateType))
	}
	return t.Partitions, nil
}

// topic returns the checked topic of an aggregate type, creating it when
// create is set, or nil when it does not exist and create is not set.
func (k *Kafka) topic(ctx context.Context, aggregateType string, create bool) (*kafkaTopic, error) {
	if aggregateType == "" {
		return nil, fmt.Errorf("%w: empty aggregate type", ErrInvalidEvent)
	}
	k.mu.Lock()
	t := k.topics[aggregateType]
	k.mu.Unlock()
	if t != nil {
		if err := k.recheckPlacement(ctx, aggregateType, t, false); err != nil {
			return nil, err // I9: the partition count changed
		}
		return t, nil
	}
	name := k.Topic(aggregateType)
	t, err := kread.Describe(ctx, k.cl, name)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		if !create {
			return nil, nil
		}
		if err := k.createTopic(ctx, name); err != nil {
			return nil, err
		}
		return k.topic(ctx, aggregateType, false)
	}
	if err != nil {
		return nil, fmt.Errorf("log: describe topic %s: %w", name, err)
	}
	if err := k.checkConfig(ctx, name); err != nil {
		return nil, err
	}
	if err := k.placeTopic(ctx, aggregateType, t); err != nil {
		return nil, err // I9: not partitioned as its aggregates were placed
	}
	k.mu.Lock()
	if have := k.topics[aggregateType]; have != nil {
		t = have
	} else {
		k.topics[aggregateType] = t
	}
	k.mu.Unlock()
	return t, nil
}

func (k *Kafka) createTopic(ctx context.Context, name string) error {
	cfg := map[string]*string{
		"cleanup.policy":  kadm.StringPtr("delete"),
		"retention.ms":    kadm.StringPtr("-1"),
		"retention.bytes": kadm.StringPtr("-1"),
	}
	request, factor, err := kread.ReplicationFactor(ctx, k.adm, k.cfg.replication, name, k.cfg.partitions, cfg)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	if factor >= 3 {
		cfg[SettingMinInSyncReplicas] = kadm.StringPtr("2")
	}
	_, err = k.adm.CreateTopic(ctx, k.cfg.partitions, request, cfg, name)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("log: create topic %s: %w", name, err)
	}
	created := err == nil
	if created {
		k.cfg.logger.Info("created events topic", slog.String("topic", name), slog.Int("partitions", int(k.cfg.partitions)),
			slog.Int("replication", int(factor)))
	}
	// Metadata reaches every broker shortly after creation.
	for i := 0; i < 100; i++ {
		if t, err := kread.Describe(ctx, k.cl, name); err == nil && t.Led() {
			if !created {
				return nil // its creator places it, or the first use does
			}
			// The topic's first record: its placement (placement.go).
			if _, err := writePlacement(ctx, k.cl, t); err != nil {
				return fmt.Errorf("log: topic %s created; write its placement record: %w", name, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("log: topic %s created but has no leaders", name)
}

// DefaultReplicationFactor is the replication factor of the topics the log
// and the snapshot store create when none is set, on a cluster of brokers
// brokers: min(3, brokers), and at least 1.
func DefaultReplicationFactor(brokers int) int16 { return kread.DefaultReplicationFactor(brokers) }

// checkConfig refuses a topic that could delete events (I1) or lose
// acknowledged ones.
func (k *Kafka) checkConfig(ctx context.Context, name string) error {
	lookup, rf, err := kread.TopicSettings(ctx, k.adm, name)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	return errors.Join(CheckTopicConfig(name, lookup), CheckTopicReplication(name, rf, lookup, k.cfg.unsafe...))
}

// CheckTopicConfig reports, as an error wrapping ErrTopicConfig, every
// setting of an events topic that could delete events: a cleanup.policy
// other than delete, a retention.ms or retention.bytes other than -1.
// lookup returns a setting's effective value.
func CheckTopicConfig(topic string, lookup func(key string) (string, bool)) error {
	var errs []error
	if v, ok := lookup("cleanup.policy"); !ok || strings.TrimSpace(v) != "delete" {
		errs = append(errs, fmt.Errorf("%w: topic %s has cleanup.policy=%q, need \"delete\" (compaction keeps only the latest event of each aggregate)", ErrTopicConfig, topic, v))
	}
	for _, key := range []string{"retention.ms", "retention.bytes"} {
		v, ok := lookup(key)
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); !ok || err != nil || n != -1 {
			errs = append(errs, fmt.Errorf("%w: topic %s has %s=%q, need -1 (events must be kept forever)", ErrTopicConfig, topic, key, v))
		}
	}
	return errors.Join(errs...)
}

// CheckTopicReplication reports, as an error wrapping ErrTopicConfig, every
// setting of an events topic that can lose acknowledged events:
// unclean.leader.election.enable=true (an out-of-sync replica may become
// leader), and min.insync.replicas below 2 on a topic whose
// replicationFactor (the most replicas of any of its partitions) is 3 or
// more (an event acknowledged by one replica is lost with that broker). A
// topic with 1 or 2 replicas is not refused for min.insync.replicas: it
// could not take writes with a broker down. lookup returns a setting's
// effective value; a missing unclean.leader.election.enable is false, a
// missing min.insync.replicas is 1 (Kafka's defaults). Settings named in
// accepted (WithUnsafeTopicSettings) are not refused.
func CheckTopicReplication(topic string, replicationFactor int, lookup func(key string) (string, bool), accepted ...string) error {
	var errs []error
	for _, u := range UnsafeTopicSettings(replicationFactor, lookup) {
		if slices.Contains(accepted, u.Setting) {
			continue
		}
		errs = append(errs, fmt.Errorf("%w: topic %s has %s; to accept it, name it: log.WithUnsafeTopicSettings(%q)",
			ErrTopicConfig, topic, u, u.Setting))
	}
	return errors.Join(errs...)
}

// UnsafeSetting is a topic setting that can lose acknowledged records.
type UnsafeSetting struct {
	Setting, Value string
	Need, Why      string // what it must be, and what happens otherwise
	// ReplicationFactor is the topic's, when the setting is unsafe only
	// with it (min.insync.replicas), else 0.
	ReplicationFactor int
}

func (u UnsafeSetting) String() string {
	with := ""
	if u.ReplicationFactor > 0 {
		with = fmt.Sprintf(" with replication factor %d", u.ReplicationFactor)
	}
	return fmt.Sprintf("%s=%q%s, need %s (%s)", u.Setting, u.Value, with, u.Need, u.Why)
}

// UnsafeTopicSettings is the rule by which the log refuses an events topic
// and the snapshot store a snapshot topic: it returns the settings of a
// topic with replicationFactor replicas (the most of any of its partitions)
// that can lose acknowledged records: unclean.leader.election.enable=true,
// and min.insync.replicas below 2 with 3 replicas or more. lookup returns a
// setting's effective value; a missing unclean.leader.election.enable is
// false, a missing min.insync.replicas is 1 (Kafka's defaults).
func UnsafeTopicSettings(replicationFactor int, lookup func(key string) (string, bool)) []UnsafeSetting {
	var out []UnsafeSetting
	if v, ok := lookup(SettingUncleanLeaderElection); ok && strings.EqualFold(strings.TrimSpace(v), "true") {
		out = append(out, UnsafeSetting{Setting: SettingUncleanLeaderElection, Value: v, Need: "false",
			Why: "an out-of-sync replica may become leader and drop acknowledged records"})
	}
	if replicationFactor >= 3 {
		v, ok := lookup(SettingMinInSyncReplicas)
		if !ok {
			v = "1" // Kafka's default
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n < 2 {
			out = append(out, UnsafeSetting{Setting: SettingMinInSyncReplicas, Value: v, Need: "at least 2", ReplicationFactor: replicationFactor,
				Why: "a record acknowledged by one replica is lost with that broker"})
		}
	}
	return out
}

// Append implements the log port; see the Kafka type for how.
//
// Expected.ReadTo must be the Tail.End of a Read of this aggregate that
// returned it at Expected.Version (or the end after the caller's last
// successful Append); 0 makes Append check the whole partition. An Append
// that fails with an error other than a conflict may or may not have stored
// its events: reload the aggregate to find out.
func (k *Kafka) Append(ctx context.Context, aggregateType string, aggregateID uuid.UUID, expected Expected, events []Event) ([]Event, error) {
	if err := Validate(aggregateType, aggregateID, expected.Version, events); err != nil {
		return nil, err
	}
	t, err := k.topic(ctx, aggregateType, k.cfg.autoCreate)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, fmt.Errorf("log: append %s %s: topic %s does not exist", aggregateType, aggregateID, k.Topic(aggregateType))
	}
	p := Partition(aggregateID, t.Partitions)
	key := Key(aggregateID)
	save := expected.Save
	if save == uuid.Nil {
		save = uuid.New()
	}
	recs := make([]*kgo.Record, len(events))
	for i := range events {
		events[i].Expected, events[i].Save, events[i].SaveEvents = expected.Version, save, len(events)
		recs[i] = toRecord(t.Name, p, key, &events[i])
	}
	tc := k.checker(t)
	done := make(chan error, 1) // the produce's, then the check's
	if len(recs) == 1 {
		// The promise tells the checker of the record (see topicChecker):
		// promises come in offset order, before ProduceSync would return.
		own := claimOf(recs[0])
		k.cl.Produce(ctx, recs[0], func(r *kgo.Record, err error) {
			if err == nil {
				own.offset, own.partition = r.Offset, r.Partition
				tc.acked(r.Partition, own)
			}
			done <- err
		})
		if err := <-done; err != nil {
			return nil, fmt.Errorf("log: append %s %s to %s/%d: %w", aggregateType, aggregateID, t.Name, p, err)
		}
	} else if err := k.produceTxn(ctx, recs); err != nil {
		return nil, fmt.Errorf("log: append %s %s (%d events) to %s/%d: %w", aggregateType, aggregateID, len(recs), t.Name, p, err)
	}
	first, last := recs[0].Offset, recs[len(recs)-1].Offset

	// Learn whether this save won: apply the winner rule to the aggregate's
	// records from where the caller read up to this save's last record. By
	// then the save is decided, by these records or by an earlier copy of
	// the same save (a retry).
	c := &check{id: aggregateID, key: key, p: p, from: expected.ReadTo, first: first, last: last, seq: Sequencer{Version: expected.Version}, events: events, done: done}
	if c.from <= 0 || c.from > first {
		c.from, c.seq = 0, Sequencer{}
	}
	c.own = make([]int64, len(recs))
	for i, r := range recs {
		c.own[i] = r.Offset
	}
	if err := tc.wait(ctx, k, c); err != nil {
		return nil, fmt.Errorf("log: append %s %s: check the outcome at %s/%d@%d: %w", aggregateType, aggregateID, t.Name, p, last, err)
	}
	if c.won == nil {
		return nil, &ConflictError{AggregateType: aggregateType, AggregateID: aggregateID, Expected: expected.Version, Actual: c.seq.Version}
	}
	out := make([]Event, len(events))
	for i, e := range events {
		e.Position = c.won[i].Position
		out[i] = e
	}
	return out, nil
}

// A check is one Append waiting to learn whether it won.
type check struct {
	id                uuid.UUID
	key               []byte
	p                 int32
	from, first, last int64
	own               []int64 // the offsets of the save's records, in order
	events            []Event // the save's events
	seq               Sequencer
	// indexed: seq came from the window's index (or a state it left in
	// states), so it rests on the partition's records alone.
	indexed bool
	won     []Event // the accepted events of the save, once decided so
	buf     []Event // AppendNext's buffer
	done    chan error

	attached bool  // owned by the topicChecker from here on
	err      error // a failure met while reading the check's range
}

// A topicChecker serves the checks of one topic. It tails the partitions
// that have checks waiting with long-polling fetches (read_committed), so a
// fetch is usually already waiting at the broker when an Append's record is
// acknowledged, and returns with it; one fetch request serves every
// partition and every Append waiting on the topic. It remembers the claims
// (offset, key, version, expected version, save) of the last checkWindow
// records it read per partition, so that an Append whose range is already
// read is answered at once.
//
// A check is answered only from records read with read_committed, and from
// the log's own one-record saves acknowledged right after them: an Append
// returns only once its own first record is visible to every reader (the
// partition's last stable offset is past it), so a load that starts after
// the Append returned sees the event.
//
// The log's own records: a one-record save is produced outside any
// transaction with acks=all, and the producer's promises come in offset
// order, so the log learns each such record's offset and content (the
// record as produced, decoded by FromRecord as any reader decodes it).
// When the records at the window's end, offset to, up to an Append's own
// are all such records of this log, no other record lies between, and the
// check needs no fetch. Visibility holds too, when every record below to
// is decided (the partition's last stable offset, as a fetch answered it,
// reached to): no transaction open at to or after it can start before
// these records, none of them is transactional, and each is acknowledged
// by every in-sync replica, so the last stable offset is past them. A
// record of another producer, or a transaction marker, leaves a gap in the
// offsets, and the check fetches as before.
type topicChecker struct {
	t       *kafkaTopic
	mu      sync.Mutex // guards pending, running
	pending []*check
	running bool

	wmu     sync.Mutex // guards windows
	windows map[int32]*claimWindow
	// scanning counts the reads before a window (attach, buildIndex) in
	// progress, which hold wmu for as long as they take.
	scanning atomic.Int32

	// ackMu guards acks: by partition and offset, the claims of the log's
	// own one-record saves acknowledged at or after their window's end.
	// The producer's promises add them (and must not wait for wmu, which
	// a check may hold while it scans a partition); absorb moves them into
	// the windows.
	ackMu sync.Mutex
	acks  map[int32][]claim // in offset order
	spare map[int32][]claim // absorb's other buffer
}

// claimWindow holds the claims of consecutive records of a partition: every
// record at offsets [start, to) that a read_committed reader sees.
type claimWindow struct {
	claims    []claim
	byKey     map[string][]claim // the same claims, by key
	start, to int64
	anchored  bool
	// stable: every record of the partition below it is decided (a fetch
	// answered a last stable offset this high, or the log's own records
	// continued from there; see topicChecker).
	stable int64
	// index, when not nil, is every aggregate's sequence state (the winner
	// rule applied to all its records) at offset start: it answers
	// creations without reading the partition from its start each time.
	// It is dropped, and not built again, beyond the log's index limit.
	index   *Index
	noIndex bool
	// states holds, by key, an aggregate's sequence state at an offset
	// in the window, as the last check of it that started from the index
	// left it: the next check of the aggregate that starts at or after
	// that offset starts there, instead of applying every claim of the
	// aggregate from the window's start again (a hot aggregate has
	// thousands). Kept only with an index; an entry is dropped when the
	// window's start passes its offset.
	states map[string]keyState
	buf    []Event   // AppendNext's buffer for the index
	busy   bool      // checks attached to the window are waiting
	used   time.Time // when a check of the partition last needed a fetch
}

// lingering reports whether a partition was appended to within
// checkLinger; tc.mu is held, and the windows are read under tc.wmu.
func (tc *topicChecker) lingering() bool {
	tc.wmu.Lock()
	defer tc.wmu.Unlock()
	now := time.Now()
	for _, w := range tc.windows {
		if w.anchored && now.Sub(w.used) < checkLinger {
			return true
		}
	}
	return false
}

// checkWindow is how many recent records' claims a topicChecker keeps per
// partition (about 100 bytes each).
const checkWindow = 8192

// checkPoll is how long a tailing fetch waits at the broker for new records,
// and checkLinger how long a topicChecker goes on tailing a partition after
// the last append to it that needed a fetch.
const (
	checkPoll   = 5 * time.Millisecond
	checkLinger = time.Second
)

// keyState is an aggregate's sequence state just before offset at.
type keyState struct {
	at  int64
	seq Sequencer // not changed once stored: a check starting from it clones it
}

// A claim is what the winner rule needs of a record: its event's envelope
// without payload, metadata or times (compact: a window holds thousands).
type claim struct {
	offset            int64
	partition         int32
	key               string
	id                uuid.UUID // the aggregate, when err is nil
	eventID, save     uuid.UUID
	version, expected int64
	saveEvents        int
	err               error // the record is not a snaplog event
}

// claimOf is what a check needs of a record.
func claimOf(r *kgo.Record) claim {
	e, err := fromRecord(r)
	return claim{offset: r.Offset, partition: r.Partition, key: string(r.Key), id: e.AggregateID, err: err,
		eventID: e.ID, save: e.Save, version: e.AggregateVersion, expected: e.Expected, saveEvents: e.SaveEvents}
}

// event is the claim as the Sequencer takes it.
func (cl *claim) event() Event {
	return Event{ID: cl.eventID, AggregateID: cl.id, AggregateVersion: cl.version,
		Position: Position{Partition: cl.partition, Offset: cl.offset},
		Expected: cl.expected, Save: cl.save, SaveEvents: cl.saveEvents}
}

func (k *Kafka) checker(t *kafkaTopic) *topicChecker {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.checkers[t.Name]
	if c == nil {
		c = &topicChecker{t: t, windows: make(map[int32]*claimWindow)}
		k.checkers[t.Name] = c
	}
	return c
}

// acked records the claim of one of the log's own one-record saves, at the
// offset and partition the broker acknowledged: called from the producer's
// promise, in offset order.
func (tc *topicChecker) acked(p int32, cl claim) {
	tc.ackMu.Lock()
	defer tc.ackMu.Unlock()
	if tc.acks == nil {
		tc.acks = make(map[int32][]claim)
	}
	as := tc.acks[p]
	if len(as) >= checkWindow || (len(as) > 0 && as[len(as)-1].offset >= cl.offset) {
		// Not absorbed for long (a gap no fetch has closed yet), or not
		// in order: forget them, the fetch reads the records.
		as = as[:0]
	}
	tc.acks[p] = append(as, cl)
}

// absorb moves into window w (of partition p) the acknowledged claims of
// the log's own records that continue it from its end while every record
// below is decided, feeding each to fn, and forgets the acknowledgements
// the window has passed. tc.wmu is held. It reports whether the window's
// index was dropped.
func (tc *topicChecker) absorb(k *Kafka, w *claimWindow, p int32, fn func(claim)) {
	// Take the acknowledgements and let the promises go on with a spare
	// buffer meanwhile: they are called one at a time for the whole
	// client, so holding them up holds up every produce.
	tc.ackMu.Lock()
	as := tc.acks[p]
	if len(as) == 0 {
		tc.ackMu.Unlock()
		return
	}
	if tc.spare == nil {
		tc.spare = make(map[int32][]claim)
	}
	tc.acks[p] = tc.spare[p][:0]
	tc.ackMu.Unlock()
	i, absorbed := 0, false
	for ; i < len(as) && as[i].offset < w.to; i++ {
		// passed: read by a fetch
	}
	for ; i < len(as) && w.anchored && w.stable >= w.to && as[i].offset == w.to; i++ {
		cl := as[i]
		if w.add(cl, k.cfg.indexLimit) {
			k.indexDropped(tc.t.Name, p)
		}
		w.to++
		w.stable = max(w.stable, w.to)
		if fn != nil {
			fn(cl)
		}
		absorbed = true
	}
	if absorbed && i == len(as) {
		// The records at the partition's end are the log's own: stop
		// tailing it (see step) until a check needs a fetch again.
		w.used = time.Time{}
	}
	n := copy(as, as[i:])
	clear(as[n:])
	tc.ackMu.Lock()
	newer := tc.acks[p]
	tc.acks[p] = append(as[:n], newer...)
	clear(newer)
	tc.spare[p] = newer[:0]
	tc.ackMu.Unlock()
}

// apply feeds one record's claim to a check.
func (c *check) apply(cl claim) error {
	if cl.offset < c.from || cl.offset > c.last || cl.key != string(c.key) {
		return nil
	}
	if cl.err != nil {
		if _, own := slices.BinarySearch(c.own, cl.offset); own {
			return cl.err // our own record must decode
		}
		return nil // not a snaplog event: no reader counts it
	}
	out, evs := c.seq.AppendNext(c.buf[:0], cl.event())
	c.buf = evs
	if out == Accepted && c.won == nil && sameSave(evs, c.events) {
		c.won = slices.Clone(evs)
	}
	return nil
}

// sameSave reports whether accepted events are those of an Append: the
// same save, the same event ids. A save id reused for other events is
// another save, which this Append did not win.
func sameSave(accepted, mine []Event) bool {
	if len(accepted) != len(mine) {
		return false
	}
	for i := range mine {
		if accepted[i].Save != mine[i].Save || accepted[i].ID != mine[i].ID {
			return false
		}
	}
	return true
}

// window returns partition p's window; tc.wmu is held.
func (tc *topicChecker) window(p int32) *claimWindow {
	w := tc.windows[p]
	if w == nil {
		w = &claimWindow{}
		tc.windows[p] = w
	}
	return w
}

// claimsFrom returns the window's claims of key at offsets from `from` on.
func (w *claimWindow) claimsFrom(key string, from int64) []claim {
	cs := w.byKey[key]
	i := sort.Search(len(cs), func(i int) bool { return cs[i].offset >= from })
	return cs[i:]
}

// add appends a claim read at the window's end. It reports whether the
// index was dropped for holding more than limit aggregates.
func (w *claimWindow) add(cl claim, limit int) (dropped bool) {
	w.claims = append(w.claims, cl)
	if w.byKey == nil {
		w.byKey = make(map[string][]claim)
	}
	w.byKey[cl.key] = append(w.byKey[cl.key], cl)
	if len(w.claims) > checkWindow {
		cut := len(w.claims) - checkWindow/2
		if w.index != nil {
			for _, old := range w.claims[:cut] {
				if old.err == nil {
					_, w.buf = w.index.Next(old.event(), w.buf)
				}
			}
			if w.index.Len() > limit {
				w.index, w.noIndex, dropped = nil, true, true
			}
		}
		w.claims = append(w.claims[:0], w.claims[cut:]...)
		w.start = w.claims[0].offset
		for key, st := range w.states {
			if st.at < w.start || w.index == nil {
				delete(w.states, key)
			}
		}
		clear(w.byKey)
		for _, cl := range w.claims {
			w.byKey[cl.key] = append(w.byKey[cl.key], cl)
		}
	}
	return dropped
}

// fromIndex starts check c at the window's start, from the aggregate's
// state in the window's index, when the window has one: the verdict then
// rests on the partition's records alone, not on the caller's word that the
// aggregate was at Expected.Version at Expected.ReadTo (a caller that read
// with read_uncommitted, or computed ReadTo itself, could be wrong). When
// an earlier check left the aggregate's state at an offset between the
// window's start and Expected.ReadTo, it starts there instead: the same
// state, without the claims before it. (Not past Expected.ReadTo: from
// there on the check looks for an earlier copy of its save, a retry's.)
func (w *claimWindow) fromIndex(c *check) {
	if w.index == nil || c.from <= w.start {
		return
	}
	if st, ok := w.states[string(c.key)]; ok && st.at >= w.start && st.at <= c.from {
		c.seq, c.from = st.seq.Clone(), st.at
	} else {
		c.seq, c.from = w.index.State(c.id), w.start
	}
	c.indexed = true
}

// decided records the state a check from the index left its aggregate in,
// just after the check's last record, for the aggregate's next check
// (fromIndex). tc.wmu is held; c's range is read without error.
func (w *claimWindow) decided(c *check) {
	if !c.indexed || w.index == nil || c.last+1 < w.start {
		return
	}
	if w.states == nil {
		w.states = make(map[string]keyState)
	}
	if st, ok := w.states[string(c.key)]; !ok || st.at < c.last+1 {
		w.states[string(c.key)] = keyState{at: c.last + 1, seq: c.seq}
	}
}

func (tc *topicChecker) wait(ctx context.Context, k *Kafka, c *check) error {
	// When the window already holds the check's range, answer it here:
	// wait for the windows unless a read before a window holds them.
	locked := tc.wmu.TryLock()
	if !locked && tc.scanning.Load() == 0 {
		tc.wmu.Lock()
		locked = true
	}
	if locked {
		w := tc.window(c.p)
		if !w.busy {
			// (With checks attached, the checker absorbs, so that they
			// get the claims too.)
			tc.absorb(k, w, c.p, nil)
		}
		if w.anchored && c.from >= w.start && c.last < w.to {
			w.fromIndex(c)
			var err error
			for _, cl := range w.claimsFrom(string(c.key), c.from) {
				if cl.offset > c.last {
					break
				}
				if err = c.apply(cl); err != nil {
					break
				}
			}
			if err == nil {
				w.decided(c)
			}
			tc.wmu.Unlock()
			return err
		}
		tc.wmu.Unlock()
	}
	tc.mu.Lock()
	tc.pending = append(tc.pending, c)
	if !tc.running {
		tc.running = true
		k.wg.Add(1)
		go tc.run(k)
	}
	tc.mu.Unlock()
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run answers checks until none is waiting.
func (tc *topicChecker) run(k *Kafka) {
	defer k.wg.Done()
	var waiting []*check
	backoff := 50 * time.Millisecond
	for {
		tc.mu.Lock()
		waiting = append(waiting, tc.pending...)
		tc.pending = nil
		if closed := k.ctx.Err(); closed != nil || (len(waiting) == 0 && !tc.lingering()) {
			tc.running = false
			tc.mu.Unlock()
			for _, c := range waiting {
				c.done <- fmt.Errorf("log closed: %w", closed)
			}
			return
		}
		tc.mu.Unlock()
		tc.wmu.Lock()
		var retry bool
		waiting, retry = tc.step(k, waiting)
		tc.wmu.Unlock()
		if retry {
			tc.t.Refresh(k.ctx, k.cl)
			select {
			case <-k.ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		} else {
			backoff = 50 * time.Millisecond
		}
	}
}

// step attaches new checks to their windows, fetches once for every
// partition with checks waiting, and answers the checks whose range is now
// read. It returns the checks still waiting, and whether a fetch failed in
// a way that retrying cures. It is called with tc.wmu held, and releases it
// while a fetch waits at the broker.
func (tc *topicChecker) step(k *Kafka, waiting []*check) ([]*check, bool) {
	done := func(c *check, err error) {
		if err == nil {
			tc.windows[c.p].decided(c)
		}
		c.done <- err
	}
	// answer answers the checks that failed or whose range is read, and
	// returns the others.
	answer := func(cs []*check) []*check {
		out := cs[:0]
		for _, c := range cs {
			switch {
			case c.err != nil:
				done(c, c.err)
			case c.last < tc.windows[c.p].to:
				done(c, nil)
			default:
				out = append(out, c)
			}
		}
		return out
	}
	for _, w := range tc.windows {
		w.busy = false
	}
	for _, c := range waiting {
		if c.attached {
			tc.windows[c.p].busy = true
		}
	}
	still := waiting[:0]
	now := time.Now()
	for _, c := range waiting {
		w := tc.window(c.p)
		if !c.attached {
			if err := tc.attach(k, w, c); err != nil {
				done(c, err)
				continue
			}
		}
		if c.last < w.to {
			done(c, nil)
			continue
		}
		still = append(still, c)
	}
	type partKey struct {
		p   int32
		key string
	}
	byKey := map[partKey][]*check{}
	for _, c := range still {
		byKey[partKey{c.p, string(c.key)}] = append(byKey[partKey{c.p, string(c.key)}], c)
	}
	feed := func(p int32, cl claim) {
		for _, c := range byKey[partKey{p, cl.key}] {
			if err := c.apply(cl); err != nil {
				c.err = err
			}
		}
	}
	// The log's own records acknowledged since: they may answer the
	// checks without a fetch.
	for p, w := range tc.windows {
		tc.absorb(k, w, p, func(cl claim) { feed(p, cl) })
	}
	still = answer(still)
	for _, w := range tc.windows {
		w.busy = false
	}
	ranges := map[int32]*kread.Range{}
	byPart := map[int32][]*check{}
	for _, c := range still {
		tc.windows[c.p].busy = true
		tc.windows[c.p].used = now
		byPart[c.p] = append(byPart[c.p], c)
		if ranges[c.p] == nil {
			ranges[c.p] = &kread.Range{Off: tc.windows[c.p].to, Until: math.MaxInt64}
		}
	}
	// Keep tailing the partitions whose appends needed a fetch lately, so
	// that a fetch is already waiting at the broker when the next append's
	// record lands. (Where the log's own acknowledgements answer the
	// checks, the partition is not tailed: the fetch would only read the
	// records again.)
	for p, w := range tc.windows {
		if ranges[p] == nil && w.anchored && now.Sub(w.used) < checkLinger {
			ranges[p] = &kread.Range{Off: w.to, Until: math.MaxInt64}
		}
	}
	if len(ranges) == 0 {
		return nil, false
	}
	byLeader := map[int32][]int32{}
	for p := range ranges {
		l := tc.t.Leader(p)
		byLeader[l] = append(byLeader[l], p)
	}
	retry := false
	type read struct {
		p  int32
		cl claim
	}
	for leader, ps := range byLeader {
		// The windows are not held while the fetch waits at the broker: an
		// Append whose records an earlier fetch already brought is answered
		// from its window at once (topicChecker.wait), instead of waiting
		// for this fetch to time out.
		ctx, cancel := context.WithTimeout(k.ctx, checkPoll+30*time.Second)
		var got []read
		tc.wmu.Unlock()
		err := k.poll.Fetch(ctx, tc.t, leader, ps, ranges, checkPoll, func(p int32, r *kgo.Record) error {
			got = append(got, read{p, claimOf(r)})
			return nil
		})
		tc.wmu.Lock()
		cancel()
		k.checkRead.Add(uint64(len(got)))
		for _, g := range got {
			w := tc.windows[g.p]
			if g.cl.offset < w.to {
				// Absorbed while the fetch waited, from the log's own
				// acknowledgements (topicChecker.wait; only where no
				// check waits).
				continue
			}
			if w.add(g.cl, k.cfg.indexLimit) {
				k.indexDropped(tc.t.Name, g.p)
			}
			w.to = g.cl.offset + 1
			feed(g.p, g.cl)
		}
		if err != nil {
			if !kread.Retriable(err) && k.ctx.Err() == nil {
				for _, p := range ps {
					for _, c := range byPart[p] {
						c.err = err
					}
				}
			} else {
				retry = true
			}
		}
		for _, p := range ps {
			w := tc.windows[p]
			w.to = max(w.to, ranges[p].Off)
			w.stable = max(w.stable, ranges[p].LastStable)
			tc.absorb(k, w, p, func(cl claim) { feed(p, cl) })
		}
	}
	out := answer(still)
	for _, w := range tc.windows {
		w.busy = false
	}
	for _, c := range out {
		tc.windows[c.p].busy = true
	}
	return out, retry
}

// attach starts a check on its partition's window: it applies the claims the
// window holds from the check's start, reading what lies before the window
// first when the check starts earlier.
func (tc *topicChecker) attach(k *Kafka, w *claimWindow, c *check) error {
	c.attached = true
	if !w.anchored || (c.from > w.to && !w.busy && w.index == nil) {
		// Start reading where the check starts rather than catch up on
		// records nobody waits for. (With an index, catching up keeps it
		// valid, which is cheaper than reading the partition from its
		// start again at the next creation.)
		w.anchored, w.start, w.to, w.claims = true, c.from, c.from, w.claims[:0]
		clear(w.byKey)
		clear(w.states)
		w.index = nil
		if c.from == 0 && !w.noIndex && k.cfg.indexLimit > 0 {
			w.index = NewIndex() // read from the start: index as we go
		}
		w.busy = true
		return nil
	}
	w.busy = true
	w.fromIndex(c)
	if c.from == 0 && w.start > 0 {
		// A check from the partition's start (a creation with nothing to
		// bound it): the index knows where the aggregate stands at the
		// window's start. A check from a later offset reads from there,
		// which costs what the caller's own read cost.
		if err := tc.buildIndex(k, w, c.p); err != nil {
			return err
		}
		if w.index != nil {
			c.seq, c.from, c.indexed = w.index.State(c.id), w.start, true
		}
	}
	if c.from < w.start {
		ctx, cancel := context.WithTimeout(k.ctx, 5*time.Minute)
		defer cancel()
		tc.scanning.Add(1)
		defer tc.scanning.Add(-1)
		_, n, err := k.rd.ScanOne(ctx, tc.t, c.p, c.from, w.start, func(r *kgo.Record) error {
			if string(r.Key) != string(c.key) {
				return nil
			}
			return c.apply(claimOf(r))
		})
		k.checkRead.Add(uint64(n))
		if err != nil {
			return err
		}
	}
	for _, cl := range w.claimsFrom(string(c.key), c.from) {
		if err := c.apply(cl); err != nil {
			return err
		}
	}
	return nil
}

// buildIndex reads partition p from its start to the window's start, so
// that w.index is every aggregate's sequence state at w.start. A partition
// with more aggregates than the log's index limit gets no index.
func (tc *topicChecker) buildIndex(k *Kafka, w *claimWindow, p int32) error {
	if w.index != nil || w.noIndex {
		return nil
	}
	if k.cfg.indexLimit == 0 {
		w.noIndex = true
		return nil
	}
	index := NewIndex()
	ctx, cancel := context.WithTimeout(k.ctx, 5*time.Minute)
	defer cancel()
	tc.scanning.Add(1)
	defer tc.scanning.Add(-1)
	_, n, err := k.rd.ScanOne(ctx, tc.t, p, 0, w.start, func(r *kgo.Record) error {
		cl := claimOf(r)
		if cl.err != nil {
			return nil // not a snaplog event: no reader counts it
		}
		_, w.buf = index.Next(cl.event(), w.buf)
		if index.Len() > k.cfg.indexLimit {
			return errTooManyKeys
		}
		return nil
	})
	k.checkRead.Add(uint64(n))
	if err != nil {
		if errors.Is(err, errTooManyKeys) {
			w.noIndex = true
			k.indexDropped(tc.t.Name, p)
			return nil
		}
		return err
	}
	w.index = index
	return nil
}

var errTooManyKeys = errors.New("log: too many aggregates to index")

// KafkaStats is a snapshot of a Kafka log's figures.
type KafkaStats struct {
	// CheckRecords counts the records the log read to decide Appends: an
	// Append's check reads its partition from the caller's Expected.ReadTo
	// (from the start for a creation with nothing to bound it, once per
	// partition while the partition's index holds) up to its own records,
	// except the log's own one-event saves, known from their
	// acknowledgements.
	CheckRecords uint64
	// IndexedPartitions is how many partitions have an index (see
	// WithIndexLimit).
	IndexedPartitions int
}

// Stats returns the log's figures.
func (k *Kafka) Stats() KafkaStats {
	st := KafkaStats{CheckRecords: k.checkRead.Load()}
	k.mu.Lock()
	checkers := make([]*topicChecker, 0, len(k.checkers))
	for _, tc := range k.checkers {
		checkers = append(checkers, tc)
	}
	k.mu.Unlock()
	for _, tc := range checkers {
		tc.wmu.Lock()
		for _, w := range tc.windows {
			if w.index != nil {
				st.IndexedPartitions++
			}
		}
		tc.wmu.Unlock()
	}
	return st
}

// indexDropped logs that a partition's index went past the limit.
func (k *Kafka) indexDropped(topic string, p int32) {
	k.cfg.logger.Warn("partition index dropped: more aggregates than the index limit; creations without a checkpoint now read the partition from its start",
		slog.String("topic", topic), slog.Int("partition", int(p)), slog.Int("limit", k.cfg.indexLimit))
}

func (k *Kafka) produceTxn(ctx context.Context, recs []*kgo.Record) error {
	cl, err := k.txnClient(ctx)
	if err != nil {
		return err
	}
	broken := false
	defer func() {
		if broken {
			// A producer whose transaction could not be ended (the broker
			// was away) stays in it for good. A new producer with the same
			// transactional id fences the old one and ends its transaction
			// when it initialises.
			id, _ := cl.OptValue(kgo.TransactionalID).(string)
			cl.Close()
			if fresh, err := k.newTxnClient(id); err == nil {
				cl = fresh
			}
		}
		k.txns <- cl
	}()
	if err := cl.BeginTransaction(); err != nil {
		broken = true
		return err
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		abortCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cl.AbortBufferedRecords(abortCtx)
		if aerr := cl.EndTransaction(abortCtx, kgo.TryAbort); aerr != nil {
			broken = true
			return errors.Join(err, fmt.Errorf("abort: %w", aerr))
		}
		return err
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		abortCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if aerr := cl.EndTransaction(abortCtx, kgo.TryAbort); aerr != nil {
			broken = true
			return errors.Join(fmt.Errorf("commit: %w", err), fmt.Errorf("abort: %w", aerr))
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (k *Kafka) newTxnClient(id string) (*kgo.Client, error) {
	return kgo.NewClient(k.cfg.producerOpts(kgo.TransactionalID(id), kgo.TransactionTimeout(k.cfg.txnTimeout))...)
}

// txnClient takes an idle transactional producer, creating one while fewer
// than the configured number exist.
func (k *Kafka) txnClient(ctx context.Context) (*kgo.Client, error) {
	select {
	case cl := <-k.txns:
		return cl, nil
	default:
	}
	k.txnMu.Lock()
	if k.txnCount < k.cfg.txnProducers {
		id := k.cfg.txnPrefix + strconv.Itoa(k.txnCount)
		cl, err := k.newTxnClient(id)
		if err != nil {
			k.txnMu.Unlock()
			return nil, err
		}
		k.txnCount++
		k.txnMu.Unlock()
		return cl, nil
	}
	k.txnMu.Unlock()
	select {
	case cl := <-k.txns:
		return cl, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Read implements the log port: the aggregate's records at offsets from
// `from` on, up to the partition's last stable offset as of the call, read
// with read_committed. Records of a save that lost are included (readers
// apply Sequencer). Records under the aggregate's key that are not snaplog
// events (FromRecord) are skipped, counted in Tail.Skipped and logged with
// their topic, partition and offset.
func (k *Kafka) Read(ctx context.Context, aggregateType string, aggregateID uuid.UUID, from int64) (Tail, error) {
	if from < 0 {
		return Tail{}, fmt.Errorf("log: read %s %s: negative offset %d", aggregateType, aggregateID, from)
	}
	t, err := k.topic(ctx, aggregateType, false)
	if err != nil {
		return Tail{}, err
	}
	if t == nil {
		if err := ctx.Err(); err != nil {
			return Tail{}, err
		}
		return Tail{}, nil
	}
	p := Partition(aggregateID, t.Partitions)
	key := Key(aggregateID)
	tail := Tail{Partition: p}
	end, scanned, err := k.rd.ScanOne(ctx, t, p, from, -1, func(r *kgo.Record) error {
		if !bytes.Equal(r.Key, key) {
			return nil
		}
		e, err := fromRecord(r)
		if err != nil {
			tail.Skipped++
			k.cfg.logger.Warn("record skipped", slog.String("topic", r.Topic), slog.Int("partition", int(r.Partition)),
				slog.Int64("offset", r.Offset), slog.Any("error", err))
			return nil
		}
		tail.Events = append(tail.Events, e)
		return nil
	})
	if err != nil {
		return Tail{}, fmt.Errorf("log: read %s %s: %w", aggregateType, aggregateID, err)
	}
	tail.End, tail.Scanned = end, scanned
	return tail, nil
}

// EventAt returns the aggregate's event stored at offset in its partition,
// or an error wrapping ErrNoEvent when the record there is not an event of
// the aggregate (another aggregate's, not a snaplog event, part of an
// aborted transaction, or no record at all). It reads one record batch with
// read_committed. A repository uses it to confirm the event a snapshot says
// it ends with, without reading the log from there on.
func (k *Kafka) EventAt(ctx context.Context, aggregateType string, aggregateID uuid.UUID, offset int64) (Event, error) {
	if offset < 0 {
		return Event{}, fmt.Errorf("%w: %s %s at negative offset %d", ErrNoEvent, aggregateType, aggregateID, offset)
	}
	t, err := k.topic(ctx, aggregateType, false)
	if err != nil {
		return Event{}, err
	}
	if t == nil {
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
		return Event{}, fmt.Errorf("%w: %s %s: topic %s does not exist", ErrNoEvent, aggregateType, aggregateID, k.Topic(aggregateType))
	}
	p := Partition(aggregateID, t.Partitions)
	rec, err := k.at.RecordAt(ctx, t, p, offset)
	switch {
	case errors.Is(err, kerr.OffsetOutOfRange):
		return Event{}, fmt.Errorf("%w: %s %s: %s/%d has no offset %d", ErrNoEvent, aggregateType, aggregateID, t.Name, p, offset)
	case err != nil:
		return Event{}, fmt.Errorf("log: read %s %s at %s/%d@%d: %w", aggregateType, aggregateID, t.Name, p, offset, err)
	case rec == nil:
		return Event{}, fmt.Errorf("%w: %s %s: %s/%d@%d holds no committed record", ErrNoEvent, aggregateType, aggregateID, t.Name, p, offset)
	case !bytes.Equal(rec.Key, Key(aggregateID)):
		return Event{}, fmt.Errorf("%w: %s %s: %s/%d@%d is keyed %q", ErrNoEvent, aggregateType, aggregateID, t.Name, p, offset, rec.Key)
	}
	e, err := fromRecord(rec)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %s %s: %s/%d@%d: %w", ErrNoEvent, aggregateType, aggregateID, t.Name, p, offset, err)
	}
	return e, nil
}

// pointReader is a Reader whose fetches return one record batch: the broker
// always returns the first batch at the offset asked for, however small the
// byte limit.
func pointReader(cl *kgo.Client) *kread.Reader {
	rd := kread.NewReader(cl)
	rd.FetchBytes = 1
	return rd
}

func toRecord(topic string, p int32, key []byte, e *Event) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, 10+len(e.Metadata.Values))
	add := func(k, v string) { h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderEventID, e.ID.String())
	add(HeaderEventType, e.Type)
	add(HeaderAggregateType, e.AggregateType)
	add(HeaderVersion, strconv.FormatInt(e.AggregateVersion, 10))
	add(HeaderExpected, strconv.FormatInt(e.Expected, 10))
	add(HeaderSave, e.Save.String())
	add(HeaderSaveEvents, strconv.Itoa(e.SaveEvents))
	add(HeaderOccurredAt, e.OccurredAt.UTC().Format(time.RFC3339Nano))
	if e.ContentType != "" {
		add(HeaderContentType, e.ContentType)
	}
	if e.Metadata.CorrelationID != uuid.Nil {
		add(HeaderCorrelationID, e.Metadata.CorrelationID.String())
	}
	if e.Metadata.CausationID != uuid.Nil {
		add(HeaderCausationID, e.Metadata.CausationID.String())
	}
	for k, v := range e.Metadata.Values {
		add(HeaderMetaPrefix+k, v)
	}
	return &kgo.Record{
		Topic:     topic,
		Partition: p,
		Key:       key,
		Value:     e.Payload,
		Headers:   h,
		Timestamp: e.OccurredAt,
	}
}

// Record returns the Kafka record an event is stored as in topic, at the
// event's position: the inverse of FromRecord.
func Record(topic string, e Event) *kgo.Record {
	r := toRecord(topic, e.Position.Partition, Key(e.AggregateID), &e)
	r.Offset = e.Position.Offset
	return r
}

// FromRecord decodes a snaplog event from a Kafka record. It is the one
// definition of which records are an aggregate's events, shared by every
// reader: the record's key is the aggregate id in the canonical form of
// [Key] (lower-case, with dashes), and its headers are a snaplog event's
// with consistent versions. Any other record is not an event: FromRecord
// returns an error wrapping ErrNotEvent that says why, and the record is
// never applied to an aggregate. A key in another spelling of an id (upper
// case, no dashes, braces) is not that aggregate's key: the record lies
// elsewhere in the partition order of other clients' partitioners, and
// readers that filter by key never see it.
func FromRecord(r *kgo.Record) (Event, error) { return fromRecord(r) }

func fromRecord(r *kgo.Record) (Event, error) {
	e, err := decodeRecord(r)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %s/%d@%d: %w", ErrNotEvent, r.Topic, r.Partition, r.Offset, err)
	}
	return e, nil
}

func decodeRecord(r *kgo.Record) (Event, error) {
	e := Event{
		Payload:  r.Value,
		Position: Position{Partition: r.Partition, Offset: r.Offset},
	}
	var err error
	if e.AggregateID, err = uuid.ParseBytes(r.Key); err != nil {
		return Event{}, fmt.Errorf("key %q is not an aggregate id", r.Key)
	}
	if canonical := Key(e.AggregateID); !bytes.Equal(canonical, r.Key) {
		return Event{}, fmt.Errorf("key %q is not an aggregate id in canonical form (%s)", r.Key, canonical)
	}
	seen := 0
	for _, h := range r.Headers {
		v := string(h.Value)
		bit := 0
		switch h.Key {
		case HeaderEventID:
			e.ID, err = uuid.Parse(v)
			bit = 1
		case HeaderEventType:
			e.Type = v
			bit = 2
		case HeaderAggregateType:
			e.AggregateType = v
			bit = 4
		case HeaderVersion:
			e.AggregateVersion, err = strconv.ParseInt(v, 10, 64)
			bit = 8
		case HeaderExpected:
			e.Expected, err = strconv.ParseInt(v, 10, 64)
			bit = 16
		case HeaderSave:
			e.Save, err = uuid.Parse(v)
			bit = 32
		case HeaderSaveEvents:
			e.SaveEvents, err = strconv.Atoi(v)
			bit = 128
		case HeaderOccurredAt:
			e.OccurredAt, err = time.Parse(time.RFC3339Nano, v)
			bit = 64
		case HeaderContentType:
			e.ContentType = v
		case HeaderCorrelationID:
			e.Metadata.CorrelationID, err = uuid.Parse(v)
		case HeaderCausationID:
			e.Metadata.CausationID, err = uuid.Parse(v)
		default:
			if k, ok := strings.CutPrefix(h.Key, HeaderMetaPrefix); ok {
				if e.Metadata.Values == nil {
					e.Metadata.Values = make(map[string]string)
				}
				e.Metadata.Values[k] = v
			}
		}
		if err != nil {
			return Event{}, fmt.Errorf("header %s=%q: %w", h.Key, v, err)
		}
		if seen&bit != 0 {
			return Event{}, fmt.Errorf("header %s repeated", h.Key)
		}
		seen |= bit
	}
	if seen != 255 {
		var missing []string
		for i, name := range []string{HeaderEventID, HeaderEventType, HeaderAggregateType, HeaderVersion, HeaderExpected, HeaderSave, HeaderOccurredAt, HeaderSaveEvents} {
			if seen&(1<<i) == 0 {
				missing = append(missing, name)
			}
		}
		return Event{}, fmt.Errorf("missing headers %s", strings.Join(missing, ", "))
	}
	if e.Expected < 0 || e.SaveEvents < 1 || e.SaveEvents > MaxSaveEvents ||
		e.AggregateVersion <= e.Expected || e.AggregateVersion > e.Expected+int64(e.SaveEvents) {
		return Event{}, fmt.Errorf("version %d, expected version %d and save of %d events do not fit", e.AggregateVersion, e.Expected, e.SaveEvents)
	}
	if e.Save == uuid.Nil || e.ID == uuid.Nil {
		return Event{}, fmt.Errorf("nil event or save id")
	}
	return e, nil
}
