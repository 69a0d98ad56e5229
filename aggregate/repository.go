package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// ErrNotFound is reported (through errors.Is) by Load for an aggregate with
// no events.
var ErrNotFound = errors.New("aggregate: not found")

// ErrConflict is reported (through errors.Is) by Save when another writer
// saved the aggregate first. The error is a *ConflictError.
var ErrConflict = log.ErrConflict

// ConflictError carries the aggregate, the version Save expected and the
// version the aggregate had.
type ConflictError = log.ConflictError

// ErrUncommitted is reported by CreateSnapshot for an aggregate with events
// that are not saved yet.
var ErrUncommitted = errors.New("aggregate: uncommitted events")

// ErrNoSnapshotStore is reported by CreateSnapshot on a repository without a
// snapshot store.
var ErrNoSnapshotStore = errors.New("aggregate: no snapshot store")

// ErrSnapshotBacklog is reported through Hooks.SnapshotFailed when a
// background snapshot is not queued because WithMaxPendingSnapshots
// aggregates are already waiting.
var ErrSnapshotBacklog = errors.New("aggregate: background snapshot backlog full")

// ErrClosed is reported by operations on a closed repository.
var ErrClosed = errors.New("aggregate: repository closed")

// EventLog is what a Repository needs of an event log: log.Log, which
// *log.Memory and *log.Kafka implement.
type EventLog = log.Log

// Repository loads and saves the aggregates of one type. A load is the latest
// usable snapshot plus the events after it; a snapshot is only ever an
// optimisation, so a load that cannot use one replays all events and gets the
// same state (the reason is counted, see MissReason).
//
// A Repository is safe for concurrent use. Close it to wait for background
// snapshots.
type Repository[S any] struct {
	log   EventLog
	typ   *Type[S]
	state *snapshots.StateSchema // nil without a snapshot store
	cfg   config
	stats counters
	bg    *background
}

// NewRepository returns a repository of the aggregates of typ, stored in
// events. It validates typ and every option and reports all problems at
// once. It does no I/O.
func NewRepository[S any](events EventLog, typ Type[S], opts ...Option) (*Repository[S], error) {
	cfg, err := newConfig(opts)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	if events == nil {
		errs = append(errs, errors.New("nil event log"))
	}
	if err := typ.validate(); err != nil {
		errs = append(errs, fmt.Errorf("type: %w", err))
	}
	if cfg.policy != nil {
		if err := checkPolicyFor[S](cfg.policy); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cfg.policyBy, err))
		}
	}
	var state *snapshots.StateSchema
	if cfg.store != nil {
		if state, err = snapshotSchema(typ, cfg.store); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("aggregate: new repository of %q: %w", typ.Name, errors.Join(errs...))
	}
	r := &Repository[S]{log: events, typ: &typ, state: state, cfg: cfg}
	r.bg = newBackground(cfg.maxPending, cfg.concurrency, r.writeSnapshot)
	r.bg.timeout = cfg.writeTimeout
	return r, nil
}

// snapshotSchema compiles the type's state schema and registers it, with
// its older schemas, with a store that encodes snapshots (snapshots.Kafka).
func snapshotSchema[S any](typ Type[S], store snapshots.Store) (*snapshots.StateSchema, error) {
	if typ.StateSchema == "" {
		return nil, errors.New("type: snapshots need a StateSchema")
	}
	state, err := snapshots.ParseStateSchema(typ.StateSchema)
	if err != nil {
		return nil, fmt.Errorf("type: StateSchema: %w", err)
	}
	if reg, ok := store.(snapshots.SchemaRegistrar); ok {
		if err := reg.Register(typ.Name, typ.StateSchema, typ.OlderStateSchemas...); err != nil {
			return nil, err
		}
	}
	return state, nil
}

// SnapshotSettings are a repository's snapshot settings, as its options set
// them.
type SnapshotSettings struct {
	Store         snapshots.Store // nil: no snapshots
	Mode          SnapshotMode
	Policy        Policy // nil: no automatic snapshots
	SchemaVersion int    // the type's state schema version, which loads require of a snapshot
}

// SnapshotSettings returns the repository's snapshot settings.
func (r *Repository[S]) SnapshotSettings() SnapshotSettings {
	return SnapshotSettings{Store: r.cfg.store, Mode: r.cfg.mode, Policy: r.cfg.policy, SchemaVersion: r.typ.schemaVersion()}
}

// Type returns the aggregate type's name.
func (r *Repository[S]) Type() string { return r.typ.Name }

// New returns a new aggregate with no events. Saving it fails with a
// conflict if an aggregate with the id already has events.
func (r *Repository[S]) New(id uuid.UUID) *Root[S] {
	root := newRoot(r.typ, r.cfg.now, id)
	return root
}

// Load returns the aggregate at its latest version, or an error wrapping
// ErrNotFound when it has no events.
func (r *Repository[S]) Load(ctx context.Context, id uuid.UUID) (*Root[S], error) {
	start := time.Now()
	root, err := r.load(ctx, id)
	if err != nil {
		return nil, err
	}
	r.stats.loads.Add(1)
	if r.cfg.policy != nil && r.cfg.mode != SnapshotManual {
		c := r.policyContext(root, root.committed, nil)
		c.Load, c.LoadEvents, c.LoadTook = true, root.committed-root.snapVersion, time.Since(start)
		if r.cfg.policy.Due(c) {
			r.autoSnapshot(ctx, root)
		}
	}
	return root, nil
}

// policyContext is what the policy decides on after a save of events
// that took root from version before, or after a load (events nil).
func (r *Repository[S]) policyContext(root *Root[S], before int64, events []Envelope) PolicyContext {
	return PolicyContext{
		AggregateType: r.typ.Name, AggregateID: root.id,
		Before: before, Version: root.committed, Events: events, State: root.state,
		Snapshot: root.snapVersion, SnapshotAt: root.snapAt, Now: r.cfg.now(),
	}
}

func (r *Repository[S]) load(ctx context.Context, id uuid.UUID) (*Root[S], error) {
	if id == uuid.Nil {
		return nil, fmt.Errorf("aggregate: load %s: nil id", r.typ.Name)
	}
	if r.cfg.store != nil {
		root, reason, cause, err := r.loadFromSnapshot(ctx, id)
		if errors.Is(err, ErrNotFound) {
			r.miss(id, reason, cause)
		}
		if err != nil {
			return nil, err
		}
		if root != nil {
			return root, nil
		}
		r.miss(id, reason, cause)
	}
	root := newRoot(r.typ, r.cfg.now, id)
	tail, err := r.log.Read(ctx, r.typ.Name, id, 0)
	if err != nil {
		return nil, fmt.Errorf("aggregate: load %s %s: %w", r.typ.Name, id, err)
	}
	if len(tail.Events) == 0 {
		return nil, fmt.Errorf("%w: %s %s", ErrNotFound, r.typ.Name, id)
	}
	var seq log.Sequencer
	if err := r.replay(root, &seq, tail); err != nil {
		return nil, err
	}
	if root.version == 0 {
		return nil, fmt.Errorf("%w: %s %s", ErrNotFound, r.typ.Name, id)
	}
	return root, nil
}

// loadFromSnapshot returns the aggregate loaded from its snapshot and the
// tail after it, or a nil root and why the snapshot could not be used. A
// non-nil error is one the load must not hide (the context ended, the log
// failed).
func (r *Repository[S]) loadFromSnapshot(ctx context.Context, id uuid.UUID) (*Root[S], MissReason, error, error) {
	cp, hasCP := r.checkpoint(ctx, id)
	snap, err := r.cfg.store.Get(ctx, r.typ.Name, id)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, 0, nil, fmt.Errorf("aggregate: load %s %s: %w", r.typ.Name, id, ctx.Err())
	case errors.Is(err, snapshots.ErrNotFound):
		if !hasCP || !cp.Unborn(id, err) {
			return nil, MissNotFound, nil, nil
		}
		// The snapshot store's word is that the aggregate has no events
		// before the checkpoint: its events are all after it. The tail
		// after it confirms that when it starts the aggregate at version 0.
		root := newRoot(r.typ, r.cfg.now, id)
		var seq log.Sequencer
		ok, err := r.readAfter(ctx, root, &seq, cp)
		if err != nil {
			return nil, 0, nil, err
		}
		if !ok {
			return nil, MissPosition, fmt.Errorf("%s %s has events before checkpoint %d@%d but no snapshot", r.typ.Name, id, cp.EventsPartition, cp.Offset), nil
		}
		if root.version == 0 {
			return nil, MissNotFound, nil, fmt.Errorf("%w: %s %s (no snapshot, and no event after checkpoint %d@%d)", ErrNotFound, r.typ.Name, id, cp.EventsPartition, cp.Offset)
		}
		r.stats.loadsFromCheckpoint.Add(1)
		return root, 0, nil, nil
	case errors.Is(err, snapshots.ErrCorrupt):
		return nil, MissUndecodable, err, nil
	default:
		return nil, MissStoreError, err, nil
	}
	if err := snap.For(r.typ.Name, id, r.typ.schemaVersion()); errors.Is(err, snapshots.ErrSchemaVersion) {
		return nil, MissSchemaVersion, err, nil
	} else if err != nil {
		return nil, MissUndecodable, err, nil
	}
	var state S
	if err := r.state.Decode(snap.State, &state); err != nil {
		return nil, MissRestoreError, err, nil
	}
	root := newRoot(r.typ, r.cfg.now, id)
	root.state = state
	root.version, root.committed = snap.Version, snap.Version
	root.snapVersion, root.snapAt = snap.Version, snap.CreatedAt
	root.last, root.save = snap.Position, snap.Save
	// The snapshot's own event is the last of a save (Confirm checks it):
	// after it no save of the aggregate is incomplete, and the sequence
	// starts at its version.
	seq := log.Sequencer{Version: snap.Version}
	if at, ok := r.log.(EventAtReader); ok && hasCP && cp.EventsPartition == snap.Position.Partition && cp.Offset > snap.Position.Offset+1 {
		// The checkpoint is past the snapshot: the snapshot includes every
		// event of the aggregate before it. Confirm the snapshot's last
		// event while reading the tail from the checkpoint.
		confirmed := make(chan error, 1)
		go func() {
			e, err := at.EventAt(ctx, r.typ.Name, id, snap.Position.Offset)
			if err == nil {
				err = snap.Confirm(e)
			}
			confirmed <- err
		}()
		ok, err := r.readAfter(ctx, root, &seq, cp)
		if cerr := <-confirmed; cerr != nil {
			if errors.Is(cerr, log.ErrNoEvent) || errors.Is(cerr, snapshots.ErrUnconfirmed) {
				return nil, MissPosition, cerr, nil
			}
			return nil, 0, nil, fmt.Errorf("aggregate: load %s %s: confirm %s: %w", r.typ.Name, id, snap, cerr)
		}
		if err != nil {
			var rerr *restoreError
			if errors.As(err, &rerr) {
				return nil, MissRestoreError, rerr.err, nil
			}
			return nil, 0, nil, err
		}
		if !ok {
			return nil, MissPosition, fmt.Errorf("snapshot %s misses events of %s %s before checkpoint %d@%d", snap, r.typ.Name, id, cp.EventsPartition, cp.Offset), nil
		}
		r.stats.loadsFromSnapshot.Add(1)
		return root, 0, nil, nil
	}
	// Read from the snapshot's own last event, to confirm it: a snapshot of
	// another log, of a topic that was repartitioned, or forged, must not
	// be trusted.
	tail, err := r.log.Read(ctx, r.typ.Name, id, snap.Position.Offset)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("aggregate: load %s %s: %w", r.typ.Name, id, err)
	}
	if len(tail.Events) == 0 {
		return nil, MissPosition, fmt.Errorf("%w: %s: the log holds no event of %s %s from offset %d on", snapshots.ErrUnconfirmed, snap, r.typ.Name, id, snap.Position.Offset), nil
	}
	if err := snap.Confirm(tail.Events[0]); err != nil {
		return nil, MissPosition, err, nil
	}
	tail.Events = tail.Events[1:]
	if err := r.replay(root, &seq, tail); err != nil {
		return nil, MissRestoreError, err, nil
	}
	r.stats.loadsFromSnapshot.Add(1)
	return root, 0, nil, nil
}

// EventAtReader is log.EventAtReader: a repository on a log that implements
// it confirms a snapshot under a checkpoint with one point read, made while
// it reads the tail from the checkpoint; on other logs it reads the log
// from the snapshot's last event on.
type EventAtReader = log.EventAtReader

// replay applies the events of tail that the winner rule accepts, from the
// sequence state seq.
func (r *Repository[S]) replay(root *Root[S], seq *log.Sequencer, tail log.Tail) error {
	_, err := r.replayFrom(root, seq, tail, false)
	return err
}

// replayFrom is replay that, with strict, stops and reports true when it
// meets a save that expected a version beyond the one reached: evidence that
// the read started after events of the aggregate it does not have.
func (r *Repository[S]) replayFrom(root *Root[S], seq *log.Sequencer, tail log.Tail, strict bool) (bool, error) {
	r.stats.recordsScanned.Add(uint64(tail.Scanned))
	var buf []log.Event
	for _, rec := range tail.Events {
		out, accepted := seq.AppendNext(buf[:0], rec)
		buf = accepted
		if out == log.Rejected && strict && rec.Expected > seq.Version {
			return true, nil
		}
		for _, le := range accepted {
			if err := r.apply(root, le); err != nil {
				return false, err
			}
		}
	}
	root.readTo = seq.Resume(tail.End)
	return false, nil
}

// apply applies one accepted event to root.
func (r *Repository[S]) apply(root *Root[S], le log.Event) error {
	where := func() string {
		return fmt.Sprintf("%s %s version %d at %s", r.typ.Name, root.id, le.AggregateVersion, le.Position)
	}
	ev, err := r.typ.Events.Decode(le.Type, le.ContentType, le.Payload)
	if err != nil {
		return fmt.Errorf("aggregate: load %s: %w", where(), err)
	}
	state, err := r.typ.Apply(root.state, envelopeOf(le, ev))
	if err != nil {
		return fmt.Errorf("aggregate: load %s: apply %s: %w", where(), le.Type, err)
	}
	root.state = state
	root.version, root.committed = le.AggregateVersion, le.AggregateVersion
	root.last, root.save = le.Position, le.Save
	r.stats.eventsReplayed.Add(1)
	return nil
}

// restoreError is an event that does not decode or apply on top of a
// snapshot's state.
type restoreError struct{ err error }

func (e *restoreError) Error() string { return e.err.Error() }

// readAfter applies to root the aggregate's events from the checkpoint on.
// It reports false when the log shows events the read started too late for,
// or when the checkpoint is of another partition than the aggregate's.
func (r *Repository[S]) readAfter(ctx context.Context, root *Root[S], seq *log.Sequencer, cp snapshots.Checkpoint) (bool, error) {
	tail, err := r.log.Read(ctx, r.typ.Name, root.id, cp.Offset)
	if err != nil {
		return false, fmt.Errorf("aggregate: load %s %s: %w", r.typ.Name, root.id, err)
	}
	if tail.Partition != cp.EventsPartition {
		return false, nil
	}
	gap, err := r.replayFrom(root, seq, tail, true)
	if err != nil {
		return false, &restoreError{err}
	}
	return !gap, nil
}

// checkpoint returns the checkpoint of the aggregate's partition, when the
// snapshot store keeps checkpoints and has one.
func (r *Repository[S]) checkpoint(ctx context.Context, id uuid.UUID) (snapshots.Checkpoint, bool) {
	cr, ok := r.cfg.store.(snapshots.CheckpointReader)
	if !ok {
		return snapshots.Checkpoint{}, false
	}
	cp, err := cr.CheckpointOf(ctx, r.typ.Name, id)
	if err != nil {
		if !errors.Is(err, snapshots.ErrNotFound) {
			r.cfg.logger.Warn("checkpoint not read, loading without it",
				slog.String("aggregate_type", r.typ.Name), slog.String("aggregate_id", id.String()), slog.Any("error", err))
		}
		return snapshots.Checkpoint{}, false
	}
	if !cp.Covers(id) {
		return snapshots.Checkpoint{}, false // the snapshotter could not apply an event of it
	}
	return cp, true
}

func envelopeOf(le log.Event, ev any) Envelope {
	return Envelope{
		ID:            le.ID,
		Type:          le.Type,
		AggregateID:   le.AggregateID,
		AggregateType: le.AggregateType,
		Version:       le.AggregateVersion,
		OccurredAt:    le.OccurredAt,
		Metadata:      le.Metadata,
		Event:         ev,
		Position:      le.Position,
	}
}

func (r *Repository[S]) miss(id uuid.UUID, reason MissReason, cause error) {
	r.stats.misses[reason].Add(1)
	if reason != MissNotFound {
		r.cfg.logger.Warn("snapshot not used, replaying events",
			slog.String("aggregate_type", r.typ.Name), slog.String("aggregate_id", id.String()),
			slog.String("reason", reason.String()), slog.Any("error", cause))
	}
	if h := r.cfg.hooks.SnapshotMissed; h != nil {
		h(SnapshotMiss{AggregateType: r.typ.Name, AggregateID: id, Reason: reason, Err: cause})
	}
}

// Exists reports whether the aggregate has events: whether Load would find
// it.
func (r *Repository[S]) Exists(ctx context.Context, id uuid.UUID) (bool, error) {
	if r.cfg.store != nil {
		if snap, err := r.cfg.store.Get(ctx, r.typ.Name, id); err == nil && snap.AggregateID == id && snap.Position.Offset >= 0 {
			// A snapshot the log confirms stands on an event of the aggregate.
			ok, err := r.confirm(ctx, snap)
			if err != nil || ok {
				return ok, err
			}
		}
	}
	tail, err := r.log.Read(ctx, r.typ.Name, id, 0)
	if err != nil {
		return false, fmt.Errorf("aggregate: exists %s %s: %w", r.typ.Name, id, err)
	}
	var seq log.Sequencer
	for _, e := range tail.Events {
		if out, _ := seq.Next(e); out == log.Accepted {
			return true, nil
		}
	}
	return false, nil
}

// confirm reports whether the log confirms snap (Snapshot.Confirm).
func (r *Repository[S]) confirm(ctx context.Context, snap snapshots.Snapshot) (bool, error) {
	var e log.Event
	if at, ok := r.log.(EventAtReader); ok {
		var err error
		if e, err = at.EventAt(ctx, r.typ.Name, snap.AggregateID, snap.Position.Offset); errors.Is(err, log.ErrNoEvent) {
			return false, nil
		} else if err != nil {
			return false, fmt.Errorf("aggregate: %s %s: confirm %s: %w", r.typ.Name, snap.AggregateID, snap, err)
		}
	} else {
		tail, err := r.log.Read(ctx, r.typ.Name, snap.AggregateID, snap.Position.Offset)
		if err != nil {
			return false, fmt.Errorf("aggregate: %s %s: confirm %s: %w", r.typ.Name, snap.AggregateID, snap, err)
		}
		if len(tail.Events) == 0 {
			return false, nil
		}
		e = tail.Events[0]
	}
	return snap.Confirm(e) == nil, nil
}

// Save stores the aggregate's uncommitted events, all or none, as the
// versions after the one it was loaded at. When another writer saved the
// aggregate first it returns a *ConflictError and the aggregate keeps its
// uncommitted events; reload it and retry the command. Saving an aggregate
// with no uncommitted events does nothing.
//
// A Save that fails with another error (a timeout, a canceled context, a
// broker failure) may or may not have stored its events. The aggregate
// remembers that save: the next Save of the same aggregate sends it again
// under the same save id before anything else, and the log recognises it
// as the same save, so a retry never applies its events twice. If that
// save had landed and won, Save goes on to store the events applied since
// (as a second save); if it lost, Save returns the *ConflictError, and
// nothing of it or of the events applied since is stored.
//
// When the save carries the version across a multiple of the snapshot
// threshold, a snapshot of the version reached is written according to the
// snapshot mode; a snapshot failure never fails the save.
func (r *Repository[S]) Save(ctx context.Context, root *Root[S]) error {
	if root == nil {
		return fmt.Errorf("aggregate: save %s: nil aggregate", r.typ.Name)
	}
	if !r.owns(root) {
		return fmt.Errorf("aggregate: save %s %s: the aggregate is a %s of schema version %d", r.typ.Name, root.id, root.typ.Name, root.typ.schemaVersion())
	}
	for len(root.uncommitted) > 0 {
		if err := r.save(ctx, root); err != nil {
			return err
		}
	}
	return nil
}

// save stores the unsettled save of root if it has one, otherwise all its
// uncommitted events, as one Append.
func (r *Repository[S]) save(ctx context.Context, root *Root[S]) error {
	if root.unsettled == nil {
		root.unsettled = &unsettledSave{id: uuid.New(), n: len(root.uncommitted), readTo: r.readTo(ctx, root)}
	}
	us := root.unsettled
	events := make([]log.Event, us.n)
	for i, e := range root.uncommitted[:us.n] {
		_, payload, err := r.typ.Events.Encode(e.Event)
		if err != nil {
			return fmt.Errorf("aggregate: save %s %s version %d: %w", r.typ.Name, root.id, e.Version, err)
		}
		events[i] = log.Event{
			ID:               e.ID,
			Type:             e.Type,
			AggregateType:    r.typ.Name,
			AggregateID:      root.id,
			AggregateVersion: e.Version,
			OccurredAt:       e.OccurredAt,
			ContentType:      r.typ.Events.ContentType(),
			Metadata:         e.Metadata,
			Payload:          payload,
		}
	}
	before := root.committed
	stored, err := r.log.Append(ctx, r.typ.Name, root.id, log.Expected{Version: before, ReadTo: us.readTo, Save: us.id}, events)
	if err != nil {
		if errors.Is(err, ErrConflict) {
			root.unsettled = nil // decided: the save lost
			return err
		}
		return fmt.Errorf("aggregate: save %s %s (%d events; the next Save retries them first): %w", r.typ.Name, root.id, us.n, err)
	}
	root.unsettled = nil
	last := stored[len(stored)-1]
	root.committed = last.AggregateVersion
	root.last, root.save = last.Position, last.Save
	root.readTo = last.Position.Offset + 1
	var saved []Envelope // the policy's events; only a policy needs them
	if r.cfg.policy != nil && r.cfg.mode != SnapshotManual {
		saved = slices.Clone(root.uncommitted[:us.n])
	}
	root.uncommitted = slices.Delete(root.uncommitted, 0, us.n)

	if saved != nil && r.cfg.policy.Due(r.policyContext(root, before, saved)) {
		r.autoSnapshot(ctx, root)
	}
	return nil
}

// readTo returns the Expected.ReadTo of root's next save: where its last
// read or save left it, or for a creation with nothing read, the
// checkpoint of its partition when the snapshot store says it has no
// events before it (Checkpoint.Unborn): the log then checks the creation
// against the records after the checkpoint only, as a load reads them,
// instead of against the whole partition.
func (r *Repository[S]) readTo(ctx context.Context, root *Root[S]) int64 {
	if root.committed != 0 || root.readTo != 0 || r.cfg.store == nil {
		return root.readTo
	}
	cp, ok := r.checkpoint(ctx, root.id)
	if !ok {
		return 0
	}
	if _, err := r.cfg.store.Get(ctx, r.typ.Name, root.id); cp.Unborn(root.id, err) {
		return cp.Offset
	}
	return 0
}

// owns reports whether root is of the repository's aggregate type and schema
// version (it may come from another repository of the same type).
func (r *Repository[S]) owns(root *Root[S]) bool {
	return root.typ == r.typ || (root.typ.Name == r.typ.Name && root.typ.schemaVersion() == r.typ.schemaVersion())
}

func (r *Repository[S]) autoSnapshot(ctx context.Context, root *Root[S]) {
	snap, err := r.capture(root)
	if err != nil {
		r.snapshotFailed(root.id, root.committed, r.cfg.mode, err)
		return
	}
	// The policy's next decision for this root knows of this snapshot,
	// written or on its way.
	root.snapVersion, root.snapAt = snap.Version, snap.CreatedAt
	switch r.cfg.mode {
	case SnapshotSync:
		r.writeSnapshot(ctx, snap, SnapshotSync)
	case SnapshotBackground:
		switch r.bg.schedule(snap) {
		case scheduleSuperseded:
			r.stats.superseded.Add(1)
		case scheduleFull:
			r.stats.dropped.Add(1)
			r.report(snap.AggregateID, snap.Version, SnapshotBackground, fmt.Errorf("%w (%d aggregates waiting)", ErrSnapshotBacklog, r.cfg.maxPending))
		case scheduleClosed:
			r.snapshotFailed(snap.AggregateID, snap.Version, SnapshotBackground, ErrClosed)
		}
	}
}

// capture takes the snapshot of root's committed state now.
func (r *Repository[S]) capture(root *Root[S]) (snapshots.Snapshot, error) {
	rec, err := r.state.Encode(root.state)
	if err != nil {
		return snapshots.Snapshot{}, fmt.Errorf("aggregate: snapshot %s %s version %d: state: %w", r.typ.Name, root.id, root.committed, err)
	}
	return snapshots.Snapshot{
		AggregateID:   root.id,
		AggregateType: r.typ.Name,
		Version:       root.committed,
		SchemaVersion: r.typ.schemaVersion(),
		CreatedAt:     r.cfg.now().UTC(),
		Position:      root.last,
		Save:          root.save,
		State:         rec,
	}, nil
}

// writeSnapshot stores snap and accounts for the outcome. It returns the
// store's error.
func (r *Repository[S]) writeSnapshot(ctx context.Context, snap snapshots.Snapshot, mode SnapshotMode) error {
	err := r.cfg.store.Put(ctx, snap)
	switch {
	case err == nil:
		r.stats.written.Add(1)
		if h := r.cfg.hooks.SnapshotWritten; h != nil {
			h(snap.AggregateType, snap.AggregateID, snap.Version, mode)
		}
	case errors.Is(err, snapshots.ErrStale):
		// A newer snapshot of the aggregate is already stored.
		r.stats.superseded.Add(1)
	default:
		r.snapshotFailed(snap.AggregateID, snap.Version, mode, err)
	}
	return err
}

func (r *Repository[S]) snapshotFailed(id uuid.UUID, version int64, mode SnapshotMode, err error) {
	r.stats.failed.Add(1)
	r.report(id, version, mode, err)
}

func (r *Repository[S]) report(id uuid.UUID, version int64, mode SnapshotMode, err error) {
	r.cfg.logger.Error("snapshot not written",
		slog.String("aggregate_type", r.typ.Name), slog.String("aggregate_id", id.String()),
		slog.Int64("version", version), slog.String("mode", mode.String()), slog.Any("error", err))
	if h := r.cfg.hooks.SnapshotFailed; h != nil {
		h(SnapshotFailure{AggregateType: r.typ.Name, AggregateID: id, Version: version, Mode: mode, Err: err})
	}
}

// CreateSnapshot writes a snapshot of the aggregate at its current version
// and returns it, whatever the snapshot mode. It refuses an aggregate with
// uncommitted events (ErrUncommitted) or with no events (ErrNotFound).
func (r *Repository[S]) CreateSnapshot(ctx context.Context, root *Root[S]) (snapshots.Snapshot, error) {
	switch {
	case r.cfg.store == nil:
		return snapshots.Snapshot{}, ErrNoSnapshotStore
	case root == nil:
		return snapshots.Snapshot{}, fmt.Errorf("aggregate: snapshot %s: nil aggregate", r.typ.Name)
	case !r.owns(root):
		return snapshots.Snapshot{}, fmt.Errorf("aggregate: snapshot %s %s: the aggregate is a %s of schema version %d", r.typ.Name, root.id, root.typ.Name, root.typ.schemaVersion())
	case len(root.uncommitted) > 0:
		return snapshots.Snapshot{}, fmt.Errorf("%w: %s %s has %d unsaved events (version %d, saved %d); save it first",
			ErrUncommitted, r.typ.Name, root.id, len(root.uncommitted), root.version, root.committed)
	case root.committed == 0:
		return snapshots.Snapshot{}, fmt.Errorf("%w: %s %s has no saved events to snapshot", ErrNotFound, r.typ.Name, root.id)
	}
	snap, err := r.capture(root)
	if err != nil {
		r.snapshotFailed(root.id, root.committed, SnapshotManual, err)
		return snapshots.Snapshot{}, err
	}
	if err := r.writeSnapshot(ctx, snap, SnapshotManual); err != nil {
		return snapshots.Snapshot{}, fmt.Errorf("aggregate: snapshot %s %s version %d: %w", r.typ.Name, root.id, root.committed, err)
	}
	root.snapVersion, root.snapAt = snap.Version, snap.CreatedAt
	return snap, nil
}

// PendingSnapshots returns how many background snapshots are waiting or
// being written.
func (r *Repository[S]) PendingSnapshots() int { return r.bg.pending() }

// AwaitPendingSnapshots waits until every background snapshot scheduled
// before the call is written (or failed, or replaced by a newer one of the
// same aggregate) and returns how many it waited for. It returns early with
// ctx's error.
func (r *Repository[S]) AwaitPendingSnapshots(ctx context.Context) (int, error) {
	return r.bg.await(ctx)
}

// Stats returns the repository's counters.
func (r *Repository[S]) Stats() Stats { return r.stats.stats() }

// Close writes the background snapshots still waiting, then stops. It is
// idempotent. Snapshots scheduled after Close are reported as failed with
// ErrClosed.
func (r *Repository[S]) Close() error {
	r.bg.close()
	return nil
}
