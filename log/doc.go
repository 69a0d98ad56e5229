// Package log is snaplog's event log: it appends an aggregate's events with
// optimistic concurrency and reads one aggregate's events back from a
// position.
//
// The log is laid out the way Kafka lays it out. Each aggregate type has its
// own topic; a topic has a fixed number of partitions; an aggregate's events
// all go to one partition, chosen from the aggregate id with the Java
// client's default partitioner (murmur2, see [Partition]), so that producers
// written in any language agree on where an aggregate lives. A [Position] is a
// partition and an offset in it. Positions are what snapshots record: a
// snapshot remembers the position of the last event it includes, and a load
// reads only the partition after it.
//
// # Guarantees
//
// Ordering: an aggregate's events are read in version order, which is also
// their offset order in the aggregate's partition.
//
// Concurrency: Append takes the version the caller expects the aggregate to
// be at. When writers race at the same expected version exactly one wins;
// every other one gets a [*ConflictError] (errors.Is(err, ErrConflict)) and
// none of its events is ever part of the aggregate: a log without a
// conditional append (Kafka) stores the losers' records too, and every
// reader tells winners from losers with the one rule of [Sequencer], applied
// to the records [FromRecord] accepts as the aggregate's. It holds for any
// sequence of records a topic can hold, whoever produced them.
//
// Atomicity: the events of one Append become part of the aggregate together
// or not at all.
//
// Retries: an Append that failed with an error other than a conflict may or
// may not have stored its events. Retried with the same [Expected] (its Save
// id included) and the same events, it is the same save: it succeeds if the
// save won and reports a conflict if it lost, and its events are applied
// once.
//
// Placement: a topic's partition count decides where each aggregate lives,
// so it must never change. Each Kafka events topic records the count its
// aggregates were placed with in a placement record (key [PlacementKey],
// header [HeaderPartitions]), the first of its kind in partition 0, written
// when the log creates the topic or first uses one that has none. Before it
// reads or writes a topic, the log compares the topic's partition count with
// its placement, asking the cluster again at most every 5 seconds, and
// refuses a topic whose count differs with a [*PlacementError] (errors.Is
// [ErrPlacement]) naming the topic and both counts, for the rest of the log's
// life: an aggregate is never reported missing because its partition moved,
// and never gets a second history. Consumers and the snapshotter make the
// same check ([CheckPlacement]) at each partition assignment. A topic that
// has [PlacementScan] records in partition 0 and no placement record (written
// by an older snaplog) is refused unless its placement is declared with
// [WithPlacement]. To repartition, copy the events, in partition order, into
// a new topic created by the log with the new count (see the README, "Events
// on Kafka"); readers skip placement records ([IsPlacementRecord]).
//
// Durability: [Memory] keeps everything in process memory and loses it when
// the process ends. It is the embedded default, for tests and for running
// without a broker.
//
// The package works in bytes and headers only; typed events, registries and
// payload codecs live in package aggregate.
//
// The conformance suite in log/logtest states these guarantees as tests that
// every implementation passes.
package log
