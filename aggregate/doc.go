// Package aggregate holds snaplog's aggregate root, its event registry and
// the repository that loads and saves aggregates.
//
// # Defining an aggregate type
//
// Events are plain Go values registered by name in a [Registry]; a [Type]
// gives the aggregate type's name, its registry, its initial state, the
// function that applies an event to the state, and its state schema version.
// Domain code embeds a *[Root] and adds command methods that check the rules
// and call [Root.Apply].
//
// # Loading and saving
//
// [Repository.Save] appends the aggregate's new events to the event log, all
// or none, at the version the aggregate was loaded at: when another writer
// got there first it returns a [*ConflictError] and stores nothing.
// [Repository.Load] reads the latest snapshot of the aggregate, if a snapshot
// store is configured and the snapshot is usable, and the events after it.
//
// A snapshot is an optimisation, never a source of truth: a load that finds
// no snapshot, or one taken with another schema version, one that does not
// decode, one whose state does not restore, one the log does not confirm
// (snapshots.Snapshot.Confirm: the event at its position must be the
// aggregate's, at its version, of its save), or whose store fails, replays
// every event and returns the same aggregate. Each
// such fallback is counted by [MissReason] in [Repository.Stats] and reported
// through [Hooks] and the logger.
//
// # Snapshot policy
//
// With [WithSnapshotThreshold](n), a save that carries the version across a
// multiple of n (version/n increases) snapshots the version it reached, once
// per save. [WithSnapshotMode] chooses how: [SnapshotSync] writes inside
// Save, [SnapshotBackground] captures the state inside Save and writes it
// from at most [WithSnapshotConcurrency] goroutines with at most
// [WithMaxPendingSnapshots] aggregates waiting (the newest snapshot of an
// aggregate replaces a waiting one), and [SnapshotManual] writes only on
// [Repository.CreateSnapshot]. A snapshot that cannot be written never fails
// the save; it is reported and counted.
//
// # Concurrency
//
// A Repository is safe for concurrent use; a Root is not. Background
// snapshot goroutines belong to the repository: [Repository.Close] waits for
// them.
package aggregate
