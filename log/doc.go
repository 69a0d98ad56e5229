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
// none of its events is ever returned by Read.
//
// Atomicity: the events of one Append become visible together or not at all.
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
