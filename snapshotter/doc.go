// Package snapshotter is the service that turns the event log into
// snapshots, so that application processes only ever read a short tail of
// it: the library behind cmd/snapshotter, for building one's own sidecar
// binary with one's own aggregate types.
//
// A Snapshotter joins a consumer group on the events topics of its aggregate
// types (read_committed, cooperative-sticky) and keeps every aggregate's
// state as the repository would load it, applying the same winner rule
// (log.Sequencer), so conflict losers never reach a state. It writes an
// aggregate's snapshot when its version crosses a multiple of the threshold
// (the repository's rule) and, at every checkpoint interval, snapshots every
// aggregate of a partition still dirty and then writes the partition's
// checkpoint: "every aggregate of this events partition with events before
// offset C has a snapshot that includes them". Repositories on the Kafka
// snapshot store start loads at the checkpoint, so a load reads at most the
// partition's records since the last checkpoint (invariant I5).
//
// # Assignment
//
// When a partition is assigned, the snapshotter restores the co-partitioned
// snapshot partition's view, and consumes from its checkpoint (or from the
// start of the partition when there is none), whatever the group's committed
// offsets say: the events after the checkpoint rebuild the states that were
// dirty when the previous owner stopped. An aggregate's state comes from its
// snapshot when it is first met; when its snapshot cannot be used (another
// schema version, an unknown schema), from its events in the log.
//
// # Fencing
//
// Snapshots and checkpoints are written in Kafka transactions of a
// kgo.GroupTransactSession: a transaction commits only if the group did not
// rebalance since it began and the member's generation is current, so an
// instance that was paused or partitioned away cannot write after another
// took its partitions (invariant I6). Checkpoints name the group as the
// topic's owner; repositories refuse to write snapshots there.
//
// # PostgreSQL
//
// With WithPostgres the snapshots and checkpoints go to a snapshots.Postgres
// store instead of the snapshot topics, one row per aggregate, and no
// snapshot topic is made; the events stay in Kafka. The group then consumes
// without Kafka transactions, and the fence is in the database: at its
// assignment a partition is claimed (snapshots.Postgres.Claim), which raises
// the partition's epoch, and every checkpoint interval the snapshots, the
// checkpoint and the offset consumed to of each partition are written in
// one database transaction that first locks the partition's claim and
// checks its epoch (snapshots.Postgres.WritePartitions). A claim made while
// such a transaction holds the lock waits for it, and reads what it
// committed; a write presenting an epoch a newer claim superseded writes
// nothing of that partition (ErrFenced), and the snapshotter forgets the
// partition, as when it is revoked. So an instance paused past its session,
// or rebalanced away, cannot write after its successor claimed the
// partition, and the successor resumes from the checkpoint the store holds,
// whatever the group's offsets in Kafka say (they are committed too, after
// each transaction, for the lag tools). A partition fenced by a claim from
// outside the group, which the group therefore leaves assigned here, makes
// Run return an error wrapping snapshots.ErrFenced after the session and
// rebalance timeouts, rather than leave it unsnapshotted. Run refuses a
// schema Migrate has not prepared (snapshots.ErrNotMigrated).
//
// # Failures
//
// A record that is no aggregate's event (log.FromRecord) is logged with its
// topic, partition and offset, counted and passed to Hooks.ApplyFailed with
// a nil aggregate id; it is never applied, as by every reader. An event
// that cannot be applied is logged, counted and passed to
// Hooks.ApplyFailed the same way; its aggregate is no longer snapshotted and the
// checkpoint lists it as unsnapshotted, so the partition's checkpoint keeps
// moving while loads of that aggregate ignore the checkpoint, replay, and
// fail on the same event: loudly, not wrongly.
//
// An events topic whose partition count is not the one its aggregates were
// placed with (log.ErrPlacement: partitions were added) is refused, at the
// start before any snapshot topic is created or checked, and at the
// assignment that the growth causes once the group leader's metadata
// refreshes: the topic's fetches are paused and none of its partitions is
// snapshotted or checkpointed any more, Ready turns false, the refusal is
// logged with the topic and both counts, and Run checkpoints its other
// partitions and returns the refusal. Placement records (log.PlacementKey)
// are skipped, never reported. Topics written by an older snaplog need
// WithPlacement.
//
// # Memory
//
// The snapshotter holds one state per aggregate it has met, up to
// WithMaxStates; clean states (snapshotted) are evicted first, least
// recently used, and reloaded from their snapshot when their aggregate gets
// an event. One state costs its Go value plus about 150 bytes of
// bookkeeping (163 bytes in all for a 16-byte state: BenchmarkStateMemory).
package snapshotter
