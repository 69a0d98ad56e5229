package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

// deleteTimeout bounds deleting a run's topics at the end, which happens
// even when the run was interrupted.
const deleteTimeout = 30 * time.Second

// kafkaBackend runs the scenarios on a Kafka cluster: each scenario gets a
// Kafka event log and, unless the snapshots are kept elsewhere, a Kafka
// snapshot store (a compacted topic of Avro snapshots). By default they are
// on topics of the scenario's own, named
//
//	snaplog.example.<run>.s<n>.events.Order
//	snaplog.example.<run>.s<n>.snapshots.Order
//
// where run is eight random hex digits, new for each run, and n counts the
// scenarios. With a shared prefix every scenario is on <prefix>events.Order
// and <prefix>snapshots.Order. The backend owns the logs and stores it
// opens, and the embedded broker it starts; close ends them.
type kafkaBackend struct {
	seeds       []string
	opts        []kgo.Opt // the connection: the seeds, TLS, SASL
	prefix      string    // the run's topic prefix, or the shared one
	shared      bool      // every scenario on the topics under prefix
	keep        bool      // keep the run's own topics at the end
	snapshots   bool      // the snapshots on Kafka too, not only the events
	partitions  int32
	replication int16
	info        io.Writer      // where the notes on owned snapshot topics and kept or undeleted topics go
	cluster     *kfake.Cluster // the embedded broker; nil on a cluster named with -brokers

	opened    int
	logs      []*log.Kafka
	stores    []*snapshots.Kafka
	topics    []string // every topic the run asked for, created or not
	ownedNote sync.Once
}

// openKafka returns the backend on the brokers of cfg, starting the
// embedded one for -brokers embedded: on topics under the shared prefix
// of cfg, or without one on topics of a new run prefix. It does no other
// I/O.
func openKafka(cfg config, info io.Writer) (*kafkaBackend, error) {
	k := &kafkaBackend{
		seeds:       cfg.seeds(),
		opts:        cfg.connOpts,
		prefix:      cfg.prefix,
		shared:      cfg.prefix != "",
		keep:        cfg.keep,
		snapshots:   cfg.postgres == "",
		partitions:  int32(cfg.partitions),
		replication: int16(cfg.replication),
		info:        info,
	}
	if cfg.brokers == embedded {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		k.cluster, k.seeds = cluster, cluster.ListenAddrs()
	}
	if k.opts == nil {
		k.opts = []kgo.Opt{kgo.SeedBrokers(k.seeds...)}
	}
	if !k.shared {
		var b [4]byte
		rand.Read(b[:]) // never fails
		k.prefix = "snaplog.example." + hex.EncodeToString(b[:]) + "."
	}
	return k, nil
}

// String names the brokers and the backend's topics, for the line that
// names the backend.
func (k *kafkaBackend) String() string {
	var topics string
	switch {
	case !k.shared:
		topics = fmt.Sprintf("topics %s*", k.prefix)
	case k.snapshots:
		topics = fmt.Sprintf("topics %sevents.%s and %ssnapshots.%s, shared by the scenarios", k.prefix, order.TypeName, k.prefix, order.TypeName)
	default:
		topics = fmt.Sprintf("topic %sevents.%s, shared by the scenarios", k.prefix, order.TypeName)
	}
	brokers := strings.Join(k.seeds, ",")
	switch {
	case k.cluster != nil:
		return fmt.Sprintf("an embedded Kafka-protocol broker (kfake) at %s (%s)", brokers, topics)
	case k.shared:
		return fmt.Sprintf("Kafka at %s (%s, kept)", brokers, topics)
	}
	return fmt.Sprintf("Kafka at %s (%s)", brokers, topics)
}

// topicPrefix returns the prefix of the next scenario's topics.
func (k *kafkaBackend) topicPrefix() string {
	k.opened++
	if k.shared {
		return k.prefix
	}
	return fmt.Sprintf("%ss%d.", k.prefix, k.opened)
}

// addTopic records a topic of the run, once.
func (k *kafkaBackend) addTopic(name string) {
	if !slices.Contains(k.topics, name) {
		k.topics = append(k.topics, name)
	}
}

// eventLog returns a new event log on the topics under prefix, its topic
// of orders created before it returns.
func (k *kafkaBackend) eventLog(ctx context.Context, prefix string) (*log.Kafka, error) {
	events, err := log.NewKafka(
		log.KafkaClient(k.opts...),
		log.WithTopicPrefix(prefix+"events."),
		log.WithTopicPartitions(k.partitions),
		log.WithReplicationFactor(k.replication),
	)
	if err != nil {
		return nil, err
	}
	k.logs = append(k.logs, events)
	k.addTopic(events.Topic(order.TypeName))
	if err := events.EnsureTopic(ctx, order.TypeName); err != nil {
		return nil, err
	}
	return events, nil
}

// openLog opens the next scenario's event log, on topics no other
// scenario uses unless the prefix is shared, its topic of orders created
// before it returns.
func (k *kafkaBackend) openLog(ctx context.Context) (scenarioLog, error) {
	prefix := k.topicPrefix()
	events, err := k.eventLog(ctx, prefix)
	if err != nil {
		return scenarioLog{}, err
	}
	// A shared topic that already existed has the partitions it was
	// created with.
	n, err := events.Partitions(ctx, order.TypeName)
	if err != nil {
		return scenarioLog{}, err
	}
	return scenarioLog{events: events, prefix: prefix, partitions: n}, nil
}

// openStore opens a Kafka snapshot store for the scenario's log l, on the
// snapshot topic under l's prefix, created before it returns.
func (k *kafkaBackend) openStore(ctx context.Context, l scenarioLog) (snapshots.Store, error) {
	codec := snapshots.NewAvroCodec()
	if err := codec.Register(order.TypeName, schemas.OrderState()); err != nil {
		return nil, err
	}
	store, err := snapshots.NewKafka(codec,
		snapshots.KafkaClient(k.opts...),
		snapshots.WithTopicPrefix(l.prefix+"snapshots."),
		snapshots.WithEventsTopicPrefix(l.prefix+"events."),
		snapshots.WithReplicationFactor(k.replication),
	)
	if err != nil {
		return nil, err
	}
	k.stores = append(k.stores, store)
	k.addTopic(store.Topic(order.TypeName))
	// The snapshot topic takes the partition count of the events topic,
	// which openLog created.
	if err := store.EnsureTopic(ctx, order.TypeName); err != nil {
		return nil, err
	}
	return ownedNoting{store, k.noteOwned}, nil
}

// noteOwned tells, once a run, that a snapshotter owns the snapshot topic.
func (k *kafkaBackend) noteOwned(err error) {
	k.ownedNote.Do(func() {
		fmt.Fprintf(k.info, "snapshotting: a snapshotter owns the snapshot topic and alone writes snapshots there, "+
			"so the repositories' snapshot writes are refused and the scenarios, which show them, cannot run on these topics; "+
			"run them on topics of their own (without -prefix), or give the snapshotter orders with -feed. The store said: %v\n", err)
	})
}

// ownedNoting is a Kafka snapshot store that reports the snapshots it
// refuses because a snapshotter owns their partition (snapshots.ErrOwned)
// to note, then returns the error as the store does.
type ownedNoting struct {
	*snapshots.Kafka
	note func(error)
}

// Put implements snapshots.Store.
func (s ownedNoting) Put(ctx context.Context, snap snapshots.Snapshot) error {
	err := s.Kafka.Put(ctx, snap)
	if errors.Is(err, snapshots.ErrOwned) {
		s.note(err)
	}
	return err
}

// close closes every log and store the backend opened, and the embedded
// broker with its topics. On a cluster named with -brokers it then deletes
// the run's own topics, even when ctx ended, unless keep is set or the
// topics are under a shared prefix; it reports a failed delete to info but
// does not fail for it.
func (k *kafkaBackend) close(ctx context.Context) {
	for _, s := range k.stores {
		s.Close()
	}
	for _, l := range k.logs {
		l.Close()
	}
	k.stores, k.logs = nil, nil
	switch {
	case k.cluster != nil:
		k.cluster.Close()
	case k.shared:
	case k.keep:
		fmt.Fprintf(k.info, "snapshotting: kept the run's %d topics %s*\n", len(k.topics), k.prefix)
	default:
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
		defer cancel()
		if err := k.deleteTopics(dctx); err != nil {
			fmt.Fprintf(k.info, "snapshotting: delete topics %s*: %v\n", k.prefix, err)
		}
	}
}

// deleteTopics deletes the topics of the run. Topics that were never
// created, or are already gone, are not an error.
func (k *kafkaBackend) deleteTopics(ctx context.Context) error {
	if len(k.topics) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(k.opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	resps, err := kadm.NewClient(cl).DeleteTopics(ctx, k.topics...)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("%s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}
