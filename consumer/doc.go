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
// partitions are revoked and when Run returns. No event is skipped: a
// record reaches the handler or the dead-letter topic, and a partition
// does not move past a record whose dead-letter write failed (the write is
// retried with backoff, and logged, until it succeeds or the partition is
// taken away).
//
// A handler can see an event more than once, by the same or by another
// member, in exactly these cases:
//
//   - After a crash (or kill -9), or a commit that failed: the partition's
//     next owner handles again the events handled since the last commit.
//   - After a lost session (the member stalled or was cut off past the
//     group's session timeout, or did not rejoin a rebalance within the
//     rebalance timeout): the group gives the member's partitions to
//     others, which handle again the events it handled since its last
//     commit. The events the stalled member had in hand when the group
//     expelled it may still be running, or finish, after their new owner
//     handled them (see Lost sessions).
//   - An event whose handler call was cut short because its context ended
//     (the session was lost or could not be confirmed, the revoke's
//     deadline passed, Close) and did not return nil is not done: it is
//     handled again, by this member if it still owns the partition, else
//     by the next owner.
//   - A poison event whose dead-letter write was cut short the same way is
//     handled again, and the dead-letter topic may then hold it twice.
//
// A handler is made idempotent with the event's identity: its event id
// (Event.ID, unique to the event and the same on every delivery), or
// equally its aggregate id and version. A projection that records, in the
// same transaction as its effect, the highest version it applied per
// aggregate (or the ids of the events it applied) and ignores events at
// or below it sees each event's effect once; see the package example.
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
// the partitions that change owner. When a partition is revoked, no
// further record of it starts, nor a retry; the record in hand (the events
// of its save, whole) and its dead-letter write go on, their contexts
// intact, until the revoke's deadline: the group's rebalance timeout (kgo.RebalanceTimeout,
// 60 s unless the client options set it) from the start of the revoke,
// less a heartbeat interval (the rebalance may have begun that much
// before the member learned of it) and less a quarter of the rest, at
// most 5 s, kept for the commit. At the deadline the call's context ends (context.Cause is
// [ErrRevokeDeadline]) and a dead-letter write is abandoned; the event is
// then not done and stays uncommitted for the next owner. The handled
// offsets are committed, within the rebalance timeout less a heartbeat
// interval, and only then does the group give the partition to another
// member. A partition is therefore never handled by two members of a
// healthy group at once, and a revoke or a shutdown holds up the group no
// longer than its rebalance timeout, unless a handler ignores its
// context. A lost partition (the group expelled the member) is dropped
// without committing, and its handler context ends ([ErrPartitionLost]).
// Fetching stops for a partition with more than a few thousand records
// waiting, so a slow handler does not fill the memory.
//
// # Lost sessions
//
// A member that stalls (a stopped process, a long pause, a network cut)
// past its session timeout is expelled by the group, which gives its
// partitions to other members, but the member only learns of it from the
// broker. Until then it may hold records of those partitions that it has
// already fetched. The subscription confirms its membership itself: it
// sends its own heartbeat (with the member id and generation of its group
// client) every heartbeat interval and whenever work waits for it. An
// answer without error confirms the member at the time the heartbeat was
// sent, and the group cannot expel it before the smaller of the session
// and rebalance timeouts from then; an answer REBALANCE_IN_PROGRESS
// confirms it until the session timeout from then, or the rebalance
// timeout from the last answer without error, whichever is earlier. No
// event, retry or dead-letter write starts unless the member is confirmed,
// as of now, for the member id its partitions were assigned to. An answer
// UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID, the same error on a commit, or
// a confirmation that runs out ends the context of every handler call and
// dead-letter write in progress (context.Cause is [ErrPartitionLost]);
// the events stay where they are, and run again only if the member is
// confirmed again with the partition still assigned, else the group
// client drops the partition and its next owner handles them. The
// subscription uses the classic group protocol: client options with
// kgo.ServerSideBalancer are refused.
//
// So a member resumed after a stall longer than its session timeout
// starts no event of a partition it lost. What remains possible: a
// handler call that started while the member was confirmed may still be
// running when the group expels the member (it stalled during the call),
// and it runs until its context ends, one round trip to the broker after
// the member resumes at best, or until it returns if it ignores its
// context; its effect may then land after the partition's new owner
// handled the same event. The bounds rest on the member's monotonic clock:
// a machine suspended as a whole does not count the time it slept.
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
// nil: a shutdown is a revoke of every partition, with the same deadline.
// The handler's context does not end with Run's (it carries its values),
// so that the event in hand can complete; it ends at the revoke's
// deadline. A handler that ignores its context and never returns holds up
// the shutdown. [Subscription.Close] ends the handlers' contexts, waits
// for Run to return and is idempotent.
package consumer
