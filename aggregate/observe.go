package aggregate

import (
	"fmt"
	"sync/atomic"

	"github.com/google/uuid"
)

// MissReason says why a load did not use a snapshot and replayed the
// aggregate's events instead.
type MissReason uint8

const (
	// MissNotFound: the store has no snapshot of the aggregate.
	MissNotFound MissReason = iota
	// MissSchemaVersion: the snapshot was taken with another schema version
	// of the aggregate type, older or newer.
	MissSchemaVersion
	// MissUndecodable: the store holds bytes that do not decode into a
	// snapshot of this aggregate (corrupt, foreign, unknown schema), or a
	// snapshot that names another aggregate.
	MissUndecodable
	// MissStoreError: the store failed to answer.
	MissStoreError
	// MissRestoreError: the snapshot's state does not convert into the
	// aggregate's state, or an event after it does not apply to it.
	MissRestoreError
	// MissPosition: the log does not hold the snapshot's last event where
	// the snapshot says it is (another log, a repartitioned topic).
	MissPosition

	numMissReasons
)

func (r MissReason) String() string {
	switch r {
	case MissNotFound:
		return "not_found"
	case MissSchemaVersion:
		return "schema_version"
	case MissUndecodable:
		return "undecodable"
	case MissStoreError:
		return "store_error"
	case MissRestoreError:
		return "restore_error"
	case MissPosition:
		return "position"
	}
	return fmt.Sprintf("MissReason(%d)", uint8(r))
}

// MissReasons lists every MissReason.
func MissReasons() []MissReason {
	rs := make([]MissReason, numMissReasons)
	for i := range rs {
		rs[i] = MissReason(i)
	}
	return rs
}

// SnapshotMiss describes a load that could not use a snapshot.
type SnapshotMiss struct {
	AggregateType string
	AggregateID   uuid.UUID
	Reason        MissReason
	Err           error // the cause, nil for MissNotFound
}

// SnapshotFailure describes a snapshot that was not written.
type SnapshotFailure struct {
	AggregateType string
	AggregateID   uuid.UUID
	Version       int64
	Mode          SnapshotMode
	Err           error
}

// Hooks are called synchronously by the repository; they must be fast and
// safe for concurrent use. Nil hooks are skipped.
type Hooks struct {
	// SnapshotMissed is called when a load falls back to a full replay.
	SnapshotMissed func(SnapshotMiss)
	// SnapshotWritten is called after a snapshot is stored.
	SnapshotWritten func(aggregateType string, id uuid.UUID, version int64, mode SnapshotMode)
	// SnapshotFailed is called when a snapshot could not be written.
	SnapshotFailed func(SnapshotFailure)
}

// Stats are a repository's counters since it was created.
type Stats struct {
	Loads               uint64 // successful loads
	LoadsFromSnapshot   uint64 // of which started from a snapshot
	LoadsFromCheckpoint uint64 // of which had no snapshot and read only after the checkpoint
	EventsReplayed      uint64 // events applied by loads
	// RecordsScanned counts the log records loads went through, the
	// aggregate's and its partition neighbours': the cost of loads.
	RecordsScanned uint64

	// Misses counts loads that had to replay everything, by reason.
	// MissNotFound is only counted when a snapshot store is configured.
	Misses map[MissReason]uint64

	SnapshotsWritten    uint64 // stored
	SnapshotsFailed     uint64 // write failed (store or encoding error)
	SnapshotsSuperseded uint64 // replaced while waiting, or refused as stale by the store
	SnapshotsDropped    uint64 // not queued: background backlog full
}

type counters struct {
	loads, loadsFromSnapshot, eventsReplayed atomic.Uint64
	loadsFromCheckpoint, recordsScanned      atomic.Uint64
	misses                                   [numMissReasons]atomic.Uint64
	written, failed, superseded, dropped     atomic.Uint64
}

func (c *counters) stats() Stats {
	s := Stats{
		Loads:               c.loads.Load(),
		LoadsFromSnapshot:   c.loadsFromSnapshot.Load(),
		EventsReplayed:      c.eventsReplayed.Load(),
		LoadsFromCheckpoint: c.loadsFromCheckpoint.Load(),
		RecordsScanned:      c.recordsScanned.Load(),
		Misses:              make(map[MissReason]uint64, numMissReasons),
		SnapshotsWritten:    c.written.Load(),
		SnapshotsFailed:     c.failed.Load(),
		SnapshotsSuperseded: c.superseded.Load(),
		SnapshotsDropped:    c.dropped.Load(),
	}
	for i := range c.misses {
		s.Misses[MissReason(i)] = c.misses[i].Load()
	}
	return s
}
