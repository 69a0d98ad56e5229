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

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

// deleteTimeout bounds deleting a run's topics at the end, which happens
// even when the run was interrupted.
const deleteTimeout = 30 * time.Second

// kafkaBackend runs the scenarios on a Kafka cluster: each scenario gets a
// Kafka event log and a Kafka snapshot store (a compacted topic of Avro
// snapshots). By default they are on topics of the scenario's own, named
//
//	snaplog.example.<run>.s<n>.events.Order
//	snaplog.example.<run>.s<n>.snapshots.Order
//
// where run is eight random hex digits, new for each run, and n counts the
// scenarios. With a shared prefix every scenario is on <prefix>events.Order
// and <prefix>snapshots.Order. The backend owns the logs and stores it
// opens; closeClients closes them.
type kafkaBackend struct {
	seeds       []string
	opts        []kgo.Opt // the connection: the seeds, TLS, SASL
	prefix      string    // the run's topic prefix, or the shared one
	shared      bool      // every scenario on the topics under prefix
	partitions  int32
	replication int16
	info        io.Writer // where the note on owned snapshot topics goes

	opened    int
	logs      []*log.Kafka
	stores    []*snapshots.Kafka
	topics    []string // every topic the run asked for, created or not
	ownedNote sync.Once
}

// newKafkaBackend returns a backend on the brokers seeds: on topics under
// the shared prefix, or with an empty prefix on topics of a new run prefix.
// It does no I/O.
func newKafkaBackend(seeds []string, prefix string, partitions int32, replication int16, info io.Writer) *kafkaBackend {
	k := &kafkaBackend{
		seeds:       seeds,
		opts:        []kgo.Opt{kgo.SeedBrokers(seeds...)},
		prefix:      prefix,
		shared:      prefix != "",
		partitions:  partitions,
		replication: replication,
		info:        info,
	}
	if !k.shared {
		var b [4]byte
		rand.Read(b[:]) // never fails
		k.prefix = "snaplog.example." + hex.EncodeToString(b[:]) + "."
	}
	return k
}

// topicsLine describes the backend's topics for the line that names the
// backend.
func (k *kafkaBackend) topicsLine() string {
	if k.shared {
		return fmt.Sprintf("topics %sevents.%s and %ssnapshots.%s, shared by the scenarios", k.prefix, order.TypeName, k.prefix, order.TypeName)
	}
	return fmt.Sprintf("topics %s*", k.prefix)
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

// openLog returns a new event log on the topics under prefix, its topic of
// orders created before it returns.
func (k *kafkaBackend) openLog(ctx context.Context, prefix string) (*log.Kafka, error) {
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

// open is the backend: a new event log and snapshot store, on topics no
// other scenario uses unless the prefix is shared, both created before it
// returns.
func (k *kafkaBackend) open(ctx context.Context) (aggregate.EventLog, snapshots.Store, error) {
	prefix := k.topicPrefix()
	events, err := k.openLog(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	codec := snapshots.NewAvroCodec()
	if err := codec.Register(order.TypeName, schemas.OrderState()); err != nil {
		return nil, nil, err
	}
	store, err := snapshots.NewKafka(codec,
		snapshots.KafkaClient(k.opts...),
		snapshots.WithTopicPrefix(prefix+"snapshots."),
		snapshots.WithEventsTopicPrefix(prefix+"events."),
		snapshots.WithReplicationFactor(k.replication),
	)
	if err != nil {
		return nil, nil, err
	}
	k.stores = append(k.stores, store)
	k.addTopic(store.Topic(order.TypeName))
	// The snapshot topic takes the partition count of the events topic,
	// which must therefore exist first.
	if err := store.EnsureTopic(ctx, order.TypeName); err != nil {
		return nil, nil, err
	}
	return events, ownedNoting{store, k.noteOwned}, nil
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

// closeClients closes every log and store the backend opened.
func (k *kafkaBackend) closeClients() {
	for _, s := range k.stores {
		s.Close()
	}
	for _, l := range k.logs {
		l.Close()
	}
	k.stores, k.logs = nil, nil
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

// runOnKafka runs the scenarios on the brokers seeds. It closes every
// client it opened and deletes the run's own topics, even when ctx ends,
// unless keep is set or the topics are under a shared prefix; it reports a
// failed delete to info but does not fail for it.
func runOnKafka(ctx context.Context, w, info io.Writer, seeds []string, cfg config) error {
	kb := newKafkaBackend(seeds, cfg.prefix, int32(cfg.partitions), int16(cfg.replication), info)
	if cfg.connOpts != nil {
		kb.opts = cfg.connOpts
	}
	if kb.shared {
		fmt.Fprintf(info, "snapshotting: on Kafka at %s (%s, kept)\n", strings.Join(seeds, ","), kb.topicsLine())
	} else {
		fmt.Fprintf(info, "snapshotting: on Kafka at %s (%s)\n", strings.Join(seeds, ","), kb.topicsLine())
	}
	err := runOn(ctx, w, kb.open)
	kb.closeClients()
	switch {
	case kb.shared:
		return err
	case cfg.keep:
		fmt.Fprintf(info, "snapshotting: kept the run's %d topics %s*\n", len(kb.topics), kb.prefix)
		return err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	if derr := kb.deleteTopics(dctx); derr != nil {
		fmt.Fprintf(info, "snapshotting: delete topics %s*: %v\n", kb.prefix, derr)
	}
	return err
}

// runEmbedded runs the scenarios on an in-process Kafka-protocol broker,
// franz-go's kfake, whose topics end with it.
func runEmbedded(ctx context.Context, w, info io.Writer, cfg config) error {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	defer cluster.Close()
	kb := newKafkaBackend(cluster.ListenAddrs(), cfg.prefix, int32(cfg.partitions), int16(cfg.replication), info)
	fmt.Fprintf(info, "snapshotting: on an embedded Kafka-protocol broker (kfake) at %s (%s)\n", strings.Join(kb.seeds, ","), kb.topicsLine())
	defer kb.closeClients()
	return runOn(ctx, w, kb.open)
}
