package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
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
// snapshots) on topics of its own, named
//
//	snaplog.example.<run>.s<n>.events.Order
//	snaplog.example.<run>.s<n>.snapshots.Order
//
// where run is eight random hex digits, new for each run, and n counts the
// scenarios. The backend owns the logs and stores it
// opens; closeClients closes them.
type kafkaBackend struct {
	seeds       []string
	run         string // the run's topic prefix, ending in a dot
	partitions  int32
	replication int16

	opened int
	logs   []*log.Kafka
	stores []*snapshots.Kafka
	topics []string // every topic the run asked for, created or not
}

// newKafkaBackend returns a backend on the brokers seeds with a new run
// prefix. It does no I/O.
func newKafkaBackend(seeds []string, partitions int32, replication int16) *kafkaBackend {
	var b [4]byte
	rand.Read(b[:]) // never fails
	return &kafkaBackend{
		seeds:       seeds,
		run:         "snaplog.example." + hex.EncodeToString(b[:]) + ".",
		partitions:  partitions,
		replication: replication,
	}
}

// open is the backend: a new event log and snapshot store on topics no
// other scenario uses, both created before it returns.
func (k *kafkaBackend) open(ctx context.Context) (aggregate.EventLog, snapshots.Store, error) {
	k.opened++
	prefix := fmt.Sprintf("%ss%d.", k.run, k.opened)
	eventsPrefix, snapshotsPrefix := prefix+"events.", prefix+"snapshots."
	client := kgo.SeedBrokers(k.seeds...)

	events, err := log.NewKafka(
		log.KafkaClient(client),
		log.WithTopicPrefix(eventsPrefix),
		log.WithTopicPartitions(k.partitions),
		log.WithReplicationFactor(k.replication),
	)
	if err != nil {
		return nil, nil, err
	}
	k.logs = append(k.logs, events)
	k.topics = append(k.topics, events.Topic(order.TypeName))
	if err := events.EnsureTopic(ctx, order.TypeName); err != nil {
		return nil, nil, err
	}

	codec := snapshots.NewAvroCodec()
	if err := codec.Register(order.TypeName, schemas.OrderState()); err != nil {
		return nil, nil, err
	}
	store, err := snapshots.NewKafka(codec,
		snapshots.KafkaClient(client),
		snapshots.WithTopicPrefix(snapshotsPrefix),
		snapshots.WithEventsTopicPrefix(eventsPrefix),
		snapshots.WithReplicationFactor(k.replication),
	)
	if err != nil {
		return nil, nil, err
	}
	k.stores = append(k.stores, store)
	k.topics = append(k.topics, store.Topic(order.TypeName))
	// The snapshot topic takes the partition count of the events topic,
	// which must therefore exist first.
	if err := store.EnsureTopic(ctx, order.TypeName); err != nil {
		return nil, nil, err
	}
	return events, store, nil
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.seeds...))
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
// client it opened and, unless keep is set, deletes the run's topics, even
// when ctx ends; it reports a failed delete to info but does not fail for
// it.
func runOnKafka(ctx context.Context, w, info io.Writer, seeds []string, cfg config) error {
	kb := newKafkaBackend(seeds, int32(cfg.partitions), int16(cfg.replication))
	fmt.Fprintf(info, "snapshotting: on Kafka at %s (topics %s*)\n", strings.Join(seeds, ","), kb.run)
	err := runOn(ctx, w, kb.open)
	kb.closeClients()
	if cfg.keep {
		fmt.Fprintf(info, "snapshotting: kept the run's %d topics %s*\n", len(kb.topics), kb.run)
		return err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	if derr := kb.deleteTopics(dctx); derr != nil {
		fmt.Fprintf(info, "snapshotting: delete topics %s*: %v\n", kb.run, derr)
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
	kb := newKafkaBackend(cluster.ListenAddrs(), int32(cfg.partitions), int16(cfg.replication))
	fmt.Fprintf(info, "snapshotting: on an embedded Kafka-protocol broker (kfake) at %s (topics %s*)\n", strings.Join(kb.seeds, ","), kb.run)
	defer kb.closeClients()
	return runOn(ctx, w, kb.open)
}
