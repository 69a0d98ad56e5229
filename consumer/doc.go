// Package consumer runs consumer-group subscriptions over snaplog events
// topics, for projections and read models.
//
// A [Subscription] joins a Kafka consumer group, reads the events topics of
// the aggregate types given with [WithTopics] and calls a [Handler] for each
// event that is part of its aggregate. [New] builds it without I/O;
// [Subscription.Run] blocks until its context ends; [Subscription.Close]
// stops it at once.
//
//	sub, err := consumer.New("balances", consumer.HandlerFunc(project),
//		consumer.KafkaClient(kgo.SeedBrokers("127.0.0.1:9092")),
//		consumer.WithTopics("Account"),
//		consumer.WithRegistry(registry))
//	...
//	err = sub.Run(ctx)
//
// # Winners only
//
// Kafka stores the records of saves that lost a race for a version (see
// log.Sequencer). A handler never sees them: for every partition the
// subscription applies the same rule, in partition order, as the repository
// and every other reader, keeping each aggregate's Sequencer (its version
// and the records of any save of it still incomplete) for every aggregate of
// the partition it has read. A save is delivered when the record that
// completes it is handled: all its events, in version order, each with its
// own position; a save of several events thus reaches the handler whole or
// not at all. Records that are not any aggregate's events under
// log.FromRecord (a key that is not an aggregate id in canonical form,
// headers that are not a snaplog event's) are dead-lettered, never
// delivered as an event.
//
// The rule needs each aggregate's state at the offset where handling starts.
// When a partition is assigned at a committed offset above 0, the
// subscription first reads the partition from its start up to that offset
// (a restore pass, read_committed, on a client of its own) before it hands
// the first event to the handler. The restore costs one read of the
// partition's history each time the partition is assigned to a member, in
// time proportional to the partition's size (the README's
// BenchmarkKafkaReadScan reads 10,000 records in about 40 ms), and holds up
// only that partition. Records that are not snaplog events are ignored by
// the restore, as by every reader. A partition whose first records were
// deleted (its log start offset is above 0, which snaplog's events topics
// never allow) cannot be restored: Run stops with an error naming it rather
// than guess which events won.
//
// # Ordering
//
// Events of one partition, hence of one aggregate, are handled one at a
// time in offset order, which for an aggregate is version order. Each
// assigned partition has a goroutine of its own, so events of different
// partitions are handled concurrently and a slow or failing partition does
// not hold up the others. There is no order between partitions.
//
// # Delivery
//
// At least once. A record's offset is committed only after its handler
// returned nil, or it was skipped as a conflict loser, or it was stored in
// the dead-letter topic; commits happen every [WithCommitInterval], when
// partitions are revoked and when Run returns. After a crash, or when
// partitions are lost (the member missed its session), the events handled
// since the last commit are handled again: these are the only duplicates a
// handler sees, and it can recognise them by aggregate id and version. No
// event is skipped: a record reaches the handler or the dead-letter topic,
// and a partition does not move past a record whose dead-letter write
// failed (the write is retried with backoff, and logged, until it
// succeeds or the partition is taken away).
//
// A handler error is retried with exponential backoff ([WithRetries]); an
// event still failing after the last try is poison. So are a record that
// is not a snaplog event (log.FromRecord fails) and, with [WithRegistry],
// an event whose type the registry does not know or whose payload does not
// decode. Poison goes to the dead-letter topic ([WithDeadLetterTopic],
// default "<group>.dlq") with its key, value, timestamp and headers, plus
// the headers [HeaderDLQTopic], [HeaderDLQPartition], [HeaderDLQOffset],
// [HeaderDLQError], [HeaderDLQGroup], [HeaderDLQAttempts] and [HeaderDLQAt];
// the partition then moves on. Records are read with read_committed: a
// multi-event save is seen whole or not at all.
//
// # Rebalancing
//
// The group uses the cooperative-sticky balancer: a rebalance moves only
// the partitions that change owner. Before a revoked partition moves, its
// goroutine finishes the event in hand (the handler call runs to
// completion; no further retry starts) and stops, and the handled offsets
// are committed; only then does the group give the partition to another
// member. A partition is therefore never handled by two members of a
// healthy group at once. A lost partition (the group expelled the member)
// is dropped without committing, and its handler context ends. Fetching
// stops for a partition with more than a few thousand records waiting, so
// a slow handler does not fill the memory.
//
// # Placement
//
// At each assignment, the subscription checks every assigned events topic's
// placement against its partition count (log.CheckPlacement). Adding
// partitions to a topic moves aggregates to other partitions, and makes the
// group rebalance once the group leader's metadata refreshes
// (kgo.MetadataMaxAge, 30 s unless the client options set it): a topic
// whose count changed is refused. None of its
// events is handed to the handler from then on, the refusal is logged with
// the topic and both counts, and Run stops with an error wrapping
// log.ErrPlacement. The check may write the topic's placement record, when a
// new topic has none yet. Placement records are not events: they are
// skipped, never dead-lettered. Topics written by an older snaplog need
// WithPlacement.
//
// # Concurrency and shutdown
//
// Handle is called concurrently for different partitions, never for the
// same one; it must be safe for concurrent use. When Run's context ends,
// Run finishes every event in hand, commits, leaves the group and returns
// nil; the handler's context does not end with Run's (it carries its
// values), so that the event in hand can complete. A handler that never
// returns holds up the shutdown and, after the group's rebalance timeout,
// costs the member its partitions. [Subscription.Close] ends the handlers'
// contexts, waits for Run to return and is idempotent.
package consumer
