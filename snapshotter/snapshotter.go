package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// Snapshotter consumes events topics in a consumer group and writes
// snapshots and checkpoints to the co-partitioned snapshot topics. See the
// package documentation.
type Snapshotter struct {
	group   string
	cfg     config
	types   map[string]*typeSpec // by aggregate type
	byTopic map[string]*typeSpec // by events topic
	codec   *snapshots.AvroCodec

	back   backend    // where snapshots and checkpoints are kept
	events *log.Kafka // reads an aggregate's events when its snapshot is unusable

	mu        sync.Mutex // guards parts, joined, restoring, refused and stopLoop
	parts     map[topicPartition]*partState
	joined    bool
	restoring int              // partitions assigned and not yet restored
	refused   map[string]error // events topics refused for their placement (placement.go)
	// fenced are the partitions whose writes to the PostgreSQL store a
	// newer claim fenced while the group still had them assigned here, and
	// since when.
	fenced   map[topicPartition]time.Time
	stopLoop context.CancelFunc

	stats   counters
	ran     atomic.Bool
	lastTxn time.Time // when the last transaction ended; the loop's own
}

type topicPartition struct {
	topic string
	p     int32
}

// partState is what the snapshotter holds for one assigned events
// partition.
type partState struct {
	topic       string
	p           int32
	typ         *typeSpec
	aggs        map[uuid.UUID]*aggState
	next        int64 // the offset of the next record to process
	high        int64 // the partition's high watermark, as last fetched
	checkpoint  int64 // the last checkpoint written or found, -1 for none
	checkpointT time.Time
	restoreTook time.Duration
	due         bool                   // a checkpoint is due now (after an assignment)
	pending     map[uuid.UUID]struct{} // aggregates whose threshold snapshot is due
	// inherited are the aggregates the partition's last checkpoint listed
	// as unsnapshotted and that have not been met since: the next event of
	// one rebuilds it from the log (the cause may be gone, a fixed apply
	// function); until then the checkpoints go on listing it.
	inherited map[uuid.UUID]struct{}
	// repaired are the aggregates whose snapshot a tombstone deleted and
	// that were snapshotted again since (repairDeleted).
	repaired map[uuid.UUID]struct{}
	// recheck are the aggregates whose snapshot the PostgreSQL store
	// refused for a higher version it holds: reloaded at the next
	// checkpoint (recheckStale).
	recheck map[uuid.UUID]struct{}
	buf     []log.Event // AppendNext's buffer, used by the partition's goroutine
	// claim is the partition's claim in the PostgreSQL store (WithPostgres).
	claim snapshots.Claim
	envs  []aggregate.Envelope // the policy's events, used by the partition's goroutine
}

// aggState is one aggregate's state as the snapshotter holds it.
type aggState struct {
	state       any
	seq         log.Sequencer // the winner rule's state: the version reached, saves incomplete
	save        uuid.UUID     // the save of the event at last
	last        log.Position
	snapVersion int64 // the version of its latest committed snapshot
	snapAt      int64 // when it was taken, in Unix microseconds (0: not known)
	failed      error // an event could not be applied: no longer snapshotted
	used        time.Time
	// held is set when a checkpoint was held back for a save of the
	// aggregate still incomplete; if the next checkpoint finds it still
	// incomplete, the checkpoint lists the aggregate instead of waiting.
	held bool
	// replace is set when the store held a snapshot of the aggregate that
	// the state could not come from (not confirmed by the log,
	// undecodable, of another aggregate): the next snapshot replaces it
	// whatever its version (snapshots.PartitionWrite.Replace).
	replace bool
}

func (a *aggState) dirty() bool { return a.failed == nil && a.seq.Version > a.snapVersion }

type counters struct {
	snapshots, checkpoints, applyFailures, aborted, eventsApplied, replays atomic.Uint64
}

// New returns a snapshotter of the given aggregate types that runs in the
// consumer group group; the group name is also the owner name its
// checkpoints declare. It validates every option and reports all problems at
// once; it does no I/O.
func New(group string, types []Type, opts ...Option) (*Snapshotter, error) {
	cfg, err := newConfig(group, opts)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	s := &Snapshotter{
		group:   group,
		cfg:     cfg,
		types:   make(map[string]*typeSpec),
		byTopic: make(map[string]*typeSpec),
		codec:   snapshots.NewAvroCodec(),
		parts:   make(map[topicPartition]*partState),
	}
	if len(types) == 0 {
		errs = append(errs, errors.New("no aggregate types"))
	}
	for _, t := range types {
		if t == nil {
			errs = append(errs, errors.New("nil type"))
			continue
		}
		spec := t.spec()
		if _, dup := s.types[spec.name]; dup {
			errs = append(errs, fmt.Errorf("aggregate type %q registered twice", spec.name))
			continue
		}
		if spec.err != nil {
			errs = append(errs, fmt.Errorf("aggregate type %q: state schema: %w", spec.name, spec.err))
			continue
		}
		if err := s.codec.Register(spec.name, spec.stateSchema, spec.olderSchemas...); err != nil {
			errs = append(errs, fmt.Errorf("aggregate type %q: %w", spec.name, err))
			continue
		}
		s.types[spec.name] = spec
		s.byTopic[cfg.eventPrefix+spec.name] = spec
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("snapshotter: new %q: %w", group, errors.Join(errs...))
	}
	return s, nil
}

// Group returns the snapshotter's consumer group, which is also the owner
// its checkpoints name.
func (s *Snapshotter) Group() string { return s.group }

// Ready reports whether the snapshotter has joined its group and restored
// every partition assigned to it, and has refused no events topic.
func (s *Snapshotter) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joined && s.restoring == 0 && len(s.refused) == 0
}

// Run consumes and snapshots until ctx ends, then snapshots every dirty
// aggregate, writes the checkpoints of its partitions, leaves the group and
// returns nil. It returns early with an error it cannot recover from (the
// transactional producer failed, a topic is misconfigured). An events topic
// whose partition count is not the one its aggregates were placed with
// (log.ErrPlacement) is refused, at the start or when the growth makes the
// group rebalance: none of its partitions is snapshotted or checkpointed any
// more, Ready turns false, and Run snapshots and checkpoints the other
// topics' partitions as when ctx ends, then returns the refusal. Run may be
// called once.
func (s *Snapshotter) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("snapshotter: Run called twice")
	}
	var (
		kafkaBack *kafkaBackend
		pgBack    *postgresBackend
	)
	if s.cfg.pgPool != nil {
		store, err := snapshots.NewPostgres(s.codec, s.cfg.pgPool, append(append([]snapshots.PostgresOption(nil), s.cfg.pgOpts...),
			snapshots.WithPostgresOwner(s.group), snapshots.WithPostgresEventsTopicPrefix(s.cfg.eventPrefix))...)
		if err != nil {
			return fmt.Errorf("snapshotter: %w", err)
		}
		pgBack = &postgresBackend{s: s, store: store}
		s.back = pgBack
	} else {
		storeOpts := append(s.cfg.storeClient(),
			snapshots.WithOwner(s.group), snapshots.WithTopicPrefix(s.cfg.snapPrefix),
			snapshots.WithEventsTopicPrefix(s.cfg.eventPrefix), snapshots.WithLogger(s.cfg.logger))
		if s.cfg.replication != 0 {
			storeOpts = append(storeOpts, snapshots.WithReplicationFactor(s.cfg.replication))
		}
		store, err := snapshots.NewKafka(s.codec, storeOpts...)
		if err != nil {
			return fmt.Errorf("snapshotter: %w", err)
		}
		defer store.Close()
		kafkaBack = &kafkaBackend{s: s, store: store}
		s.back = kafkaBack
	}
	events, err := log.NewKafka(append(append(s.cfg.placementOptions(), s.cfg.logClient()...), log.WithTopicPrefix(s.cfg.eventPrefix),
		log.WithAutoCreateTopics(false), log.WithLogger(s.cfg.logger))...)
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	defer events.Close()
	s.events = events

	// The snapshot topics must exist, co-partitioned with their events
	// topics, before partitions are assigned.
	var topics []string
	for name := range s.types {
		if err := s.waitForTopics(ctx, name); err != nil {
			return err
		}
		topics = append(topics, s.cfg.eventPrefix+name)
	}
	if ctx.Err() != nil {
		return nil // stopped while waiting for the topics
	}
	sort.Strings(topics)
	// A refused topic (I9) stops the loop; Run then stops as when ctx ends.
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	s.mu.Lock()
	s.stopLoop = stopLoop
	s.mu.Unlock()

	// Metadata every 30 s unless the client options say otherwise: a topic
	// that gained partitions triggers the rebalance that refuses it.
	groupOpts := append(append([]kgo.Opt{kgo.MetadataMaxAge(30 * time.Second)}, s.cfg.allClientOpts()...),
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(s.assign),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
			s.checkPlacements(ctx, cl, assigned)
			s.mu.Lock()
			s.joined = true
			for topic, ps := range assigned {
				if s.byTopic[topic] != nil && s.refused[topic] == nil {
					s.restoring += len(ps) // assign, called next, restores them
				}
			}
			s.mu.Unlock()
		}),
		kgo.OnPartitionsRevoked(s.drop),
		kgo.OnPartitionsLost(s.drop),
	)
	if pgBack != nil {
		// Offsets are kept in PostgreSQL, in the transactions of the
		// snapshots (committed to the group too, but never read back).
		cl, err := kgo.NewClient(append(groupOpts, kgo.DisableAutoCommit())...)
		if err != nil {
			return fmt.Errorf("snapshotter: %w", err)
		}
		pgBack.cl = cl
		session, _ := cl.OptValue(kgo.SessionTimeout).(time.Duration)
		rebalance, _ := cl.OptValue(kgo.RebalanceTimeout).(time.Duration)
		pgBack.grace = session + rebalance + 10*time.Second
		s.cfg.logger.Info("snapshotter running", slog.String("group", s.group), slog.Any("topics", topics),
			slog.String("snapshot_store", "postgres"), slog.String("postgres_schema", pgBack.store.DBSchema()))
	} else {
		sess, err := kgo.NewGroupTransactSession(append(groupOpts,
			kgo.TransactionalID(s.cfg.txnID),
			kgo.TransactionTimeout(60*time.Second),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(0),
		)...)
		if err != nil {
			return fmt.Errorf("snapshotter: %w", err)
		}
		kafkaBack.sess = sess
		s.cfg.logger.Info("snapshotter running", slog.String("group", s.group), slog.Any("topics", topics),
			slog.String("snapshot_store", "kafka"), slog.String("transactional_id", s.cfg.txnID))
	}

	runErr := s.loop(loopCtx)
	if runErr == nil {
		// Shutting down: snapshot what is dirty and checkpoint, then leave.
		final, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		runErr = s.flush(final, true)
		cancel()
	}
	s.back.close()
	s.mu.Lock()
	s.parts = make(map[topicPartition]*partState)
	s.joined = false
	s.mu.Unlock()
	if runErr == nil {
		runErr = s.refusal()
	}
	return runErr
}

// waitForTopics waits for the aggregate type's events topic and ensures its
// snapshot topic.
func (s *Snapshotter) waitForTopics(ctx context.Context, name string) error {
	for {
		// Each attempt is bounded, so that a cluster that does not answer
		// (an address that is not a Kafka listener, a firewall) is
		// reported as such within seconds.
		attempt, cancel := context.WithTimeout(ctx, topicAttemptTimeout)
		// I9 first: a grown events topic must not get a snapshot topic
		// partitioned like it, nor be reported as a layout mismatch.
		err := s.events.CheckPlacement(attempt, name)
		if errors.Is(err, log.ErrPlacement) {
			cancel()
			return fmt.Errorf("snapshotter: %w", err)
		}
		if err == nil {
			err = s.back.prepare(attempt, name)
		}
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, snapshots.ErrTopicLayout) || errors.Is(err, log.ErrTopicConfig) || errors.Is(err, snapshots.ErrNotMigrated) {
			return fmt.Errorf("snapshotter: %w", err) // misconfigured: waiting cures nothing
		}
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, context.DeadlineExceeded):
			s.cfg.logger.Warn("kafka does not answer; is the address a reachable Kafka listener?", slog.String("brokers", s.seeds()),
				slog.Duration("waited", topicAttemptTimeout), slog.String("aggregate_type", name), slog.Any("error", err))
		case isConnError(err):
			s.cfg.logger.Warn("cannot connect to kafka", slog.String("brokers", s.seeds()), slog.String("aggregate_type", name), slog.Any("error", err))
		default:
			s.cfg.logger.Warn("waiting for topics", slog.String("aggregate_type", name), slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// topicAttemptTimeout bounds one look for an aggregate type's topics.
const topicAttemptTimeout = 10 * time.Second

// seeds returns the seed brokers of the client options, for messages.
func (s *Snapshotter) seeds() string {
	cl, err := kgo.NewClient(s.cfg.allClientOpts()...) // no I/O until used
	if err != nil {
		return "?"
	}
	defer cl.Close()
	seeds, _ := cl.OptValue(kgo.SeedBrokers).([]string)
	return strings.Join(seeds, ",")
}

// isConnError reports whether err is a failure to connect to a broker.
func isConnError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED)
}

// assign restores the snapshot partitions of newly assigned events
// partitions and starts each at its checkpoint (or its start).
func (s *Snapshotter) assign(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, ps := range offsets {
		typ := s.byTopic[topic]
		if typ == nil || s.isRefused(topic) {
			continue // not ours, or refused for its placement: paused
		}
		for p := range ps {
			start := time.Now()
			ps[p] = kgo.NewOffset().AtStart().WithEpoch(-1)
			st := &partState{topic: topic, p: p, typ: typ, aggs: make(map[uuid.UUID]*aggState),
				checkpoint: -1, due: true, pending: make(map[uuid.UUID]struct{}), inherited: make(map[uuid.UUID]struct{}),
				repaired: make(map[uuid.UUID]struct{}), recheck: make(map[uuid.UUID]struct{})}
			cp, err := s.back.take(ctx, st)
			if err != nil {
				s.cfg.logger.Error("restore snapshot partition", slog.String("topic", topic), slog.Int("partition", int(p)), slog.Any("error", err))
				return nil, err
			}
			if cp.Offset >= 0 {
				ps[p] = kgo.NewOffset().At(cp.Offset).WithEpoch(-1)
				st.next, st.checkpoint, st.checkpointT = cp.Offset, cp.Offset, cp.WrittenAt
				for _, id := range cp.Unsnapshotted {
					st.inherited[id] = struct{}{}
				}
			}
			st.restoreTook = time.Since(start)
			s.cfg.logger.Info("partition assigned", slog.String("topic", topic), slog.Int("partition", int(p)),
				slog.Int64("from", st.next), slog.Duration("restore", st.restoreTook))
			if h := s.cfg.hooks.Restored; h != nil {
				h(topic, p, st.restoreTook)
			}
			s.mu.Lock()
			s.parts[topicPartition{topic, p}] = st
			delete(s.fenced, topicPartition{topic, p})
			s.restoring = max(0, s.restoring-1)
			s.mu.Unlock()
		}
	}
	return offsets, nil
}

// drop forgets revoked or lost partitions: their state moves with them.
func (s *Snapshotter) drop(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range revoked {
		for _, p := range ps {
			delete(s.parts, topicPartition{topic, p})
			delete(s.fenced, topicPartition{topic, p})
			s.cfg.logger.Info("partition revoked", slog.String("topic", topic), slog.Int("partition", int(p)))
		}
	}
}

func (s *Snapshotter) loop(ctx context.Context) error {
	for ctx.Err() == nil {
		poll, cancel := context.WithTimeout(ctx, min(s.cfg.interval/2, time.Second))
		fetches := s.back.poll(poll)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.cfg.logger.Warn("fetch", slog.String("topic", topic), slog.Int("partition", int(p)), slog.Any("error", err))
			}
		})
		s.process(ctx, fetches)
		if err := s.flush(ctx, false); err != nil {
			return err
		}
		if err := s.fencedTooLong(); err != nil {
			return err
		}
	}
	return nil
}

// process applies fetched records to the states of their partitions, the
// partitions in parallel: they share nothing.
func (s *Snapshotter) process(ctx context.Context, fetches kgo.Fetches) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var wg sync.WaitGroup
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		st := s.parts[topicPartition{fp.Topic, fp.Partition}]
		if st == nil || len(fp.Records) == 0 {
			return // revoked since it was fetched, or nothing new
		}
		st.high = max(st.high, fp.HighWatermark)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range fp.Records {
				if r.Offset < st.next {
					continue // seen already (a re-read after an aborted transaction)
				}
				if !log.IsPlacementRecord(r) { // the topic's placement, not an event
					s.processRecord(ctx, st, r)
				}
				st.next = r.Offset + 1
			}
		}()
	})
	wg.Wait()
}

func (s *Snapshotter) processRecord(ctx context.Context, st *partState, r *kgo.Record) {
	e, err := log.FromRecord(r)
	if err != nil {
		// Not an event of any aggregate (log.FromRecord is the definition
		// every reader shares): counted and logged, never applied.
		s.fail(st, r, uuid.Nil, nil, err)
		return
	}
	a := s.agg(ctx, st, e.AggregateID, e.Expected == 0, r.Offset)
	if a.failed != nil {
		return
	}
	before := a.seq.Version
	out, accepted := a.seq.AppendNext(st.buf[:0], e)
	st.buf = accepted
	if out != log.Accepted {
		return // part of a save not complete yet, a save that lost, or seen already
	}
	envs := st.envs[:0]
	for _, ae := range accepted {
		next, env, err := st.typ.apply(a.state, ae)
		if err != nil {
			s.fail(st, r, e.AggregateID, a, fmt.Errorf("%s/%d@%d: %w", st.topic, st.p, ae.Position.Offset, err))
			return
		}
		a.state, a.save, a.last = next, ae.Save, ae.Position
		envs = append(envs, env)
		s.stats.eventsApplied.Add(1)
	}
	st.envs = envs
	c := aggregate.PolicyContext{
		AggregateType: st.typ.name, AggregateID: e.AggregateID, Before: before, Version: a.seq.Version,
		Events: envs, State: a.state, Snapshot: a.snapVersion, Now: time.Now(),
	}
	if a.snapAt != 0 {
		c.SnapshotAt = time.UnixMicro(a.snapAt)
	}
	if s.cfg.policy.Due(c) {
		st.pending[e.AggregateID] = struct{}{}
	}
}

// fail marks an aggregate as not snapshotted any more and reports why.
func (s *Snapshotter) fail(st *partState, r *kgo.Record, id uuid.UUID, a *aggState, err error) {
	s.stats.applyFailures.Add(1)
	if a != nil {
		a.failed = err
		delete(st.pending, id)
	}
	s.cfg.logger.Error("event not applied", slog.String("topic", r.Topic), slog.Int("partition", int(r.Partition)),
		slog.Int64("offset", r.Offset), slog.String("aggregate_id", id.String()), slog.Any("error", err))
	if h := s.cfg.hooks.ApplyFailed; h != nil {
		h(r.Topic, r.Partition, r.Offset, id, err)
	}
}

// agg returns the state of the aggregate of e, an event of partition st at
// offset `before`, loading it from its snapshot once the log confirms it,
// or from the log up to `before` when it has no usable snapshot but may
// have events before it.
func (s *Snapshotter) agg(ctx context.Context, st *partState, id uuid.UUID, creation bool, before int64) *aggState {
	if a := st.aggs[id]; a != nil {
		a.used = time.Now()
		return a
	}
	a := &aggState{state: st.typ.initial(id), last: log.Position{Partition: st.p, Offset: log.NoOffset}, used: time.Now()}
	st.aggs[id] = a
	if s.cfg.fromScratch {
		return a // reading the partition from its start
	}
	// Loading a state is finished even when the loop is told to stop: a
	// state half loaded would be marked failed for no fault of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	_, inherited := st.inherited[id]
	delete(st.inherited, id)
	snap, err := s.back.get(ctx, st.typ.name, id)
	a.replace = err == nil || errors.Is(err, snapshots.ErrCorrupt)
	if inherited {
		err = errors.New("listed as unsnapshotted by the last checkpoint")
	}
	if err == nil {
		err = snap.For(st.typ.name, id, st.typ.schemaVersion)
	}
	if err == nil && snap.Position.Partition == st.p {
		if state, rerr := st.typ.decode(snap.State); rerr == nil {
			// Only a snapshot whose last event the log holds where it says
			// (Snapshot.Confirm, the rule loads apply too): a forged or
			// foreign snapshot is rebuilt from the log, and replaced by
			// the next snapshot.
			ev, cerr := s.events.EventAt(ctx, st.typ.name, id, snap.Position.Offset)
			if cerr == nil {
				cerr = snap.Confirm(ev)
			}
			if cerr == nil {
				a.state, a.seq, a.save, a.last, a.snapVersion = state, log.Sequencer{Version: snap.Version}, snap.Save, snap.Position, snap.Version
				a.snapAt = snap.CreatedAt.UnixMicro()
				a.replace = false
				return a
			}
			s.cfg.logger.Warn("snapshot not confirmed by the log; rebuilding the aggregate from its events",
				slog.String("topic", st.topic), slog.Int("partition", int(st.p)), slog.String("aggregate_id", id.String()), slog.Any("error", cerr))
			err = cerr
		}
	}
	if cp := (snapshots.Checkpoint{Offset: st.checkpoint}); st.checkpoint >= 0 && cp.Unborn(id, err) && creation {
		// The snapshot topic says: no events before the checkpoint, and
		// the aggregate's first record after it is a creation. A deleted
		// snapshot, or a first record that expected a version above 0
		// (events before the checkpoint whose snapshot is gone, or not in
		// the view yet), sends the aggregate to the log.
		return a
	}
	if st.checkpoint < 0 {
		return a // reading the partition from its start
	}
	// A snapshot that cannot be used (another schema version, undecodable):
	// rebuild the aggregate from its events before the checkpoint.
	s.rebuild(ctx, st, a, id, before)
	return a
}

// rebuild applies to a, a state at version 0, the aggregate's events at
// offsets before `before`, read from the log.
func (s *Snapshotter) rebuild(ctx context.Context, st *partState, a *aggState, id uuid.UUID, before int64) {
	s.stats.replays.Add(1)
	tail, err := s.events.Read(ctx, st.typ.name, id, 0)
	if err != nil {
		a.failed = fmt.Errorf("replay before the checkpoint: %w", err)
		return
	}
	for _, e := range tail.Events {
		if e.Position.Offset >= before {
			break
		}
		_, accepted := a.seq.Next(e)
		for _, ae := range accepted {
			next, _, aerr := st.typ.apply(a.state, ae)
			if aerr != nil {
				a.failed = fmt.Errorf("replay: %s/%d@%d: %w", st.topic, st.p, ae.Position.Offset, aerr)
				return
			}
			a.state, a.save, a.last = next, ae.Save, ae.Position
		}
	}
}

// recheckStale loads again, as when their next event comes, the
// aggregates of partition st whose snapshot the store refused for holding
// a higher version: from that snapshot if the log confirms it, else from
// the log, and then the snapshot replaces it. s.mu is held.
func (s *Snapshotter) recheckStale(ctx context.Context, st *partState) {
	for id := range st.recheck {
		delete(st.recheck, id)
		if st.aggs[id] != nil {
			continue // met again since: loaded already
		}
		s.agg(ctx, st, id, false, st.next)
	}
}

// repairDeleted makes the next snapshots of partition st include those of
// its aggregates whose snapshot a tombstone deleted: a checkpoint promises
// a snapshot of every aggregate with events before it, and loads and
// creations rely on that (snapshots.Checkpoint.Unborn). An aggregate not
// held is rebuilt from the log. Each deletion is handled once; s.mu is held.
func (s *Snapshotter) repairDeleted(ctx context.Context, st *partState) {
	deleted, err := s.back.deleted(ctx, st)
	if err != nil {
		s.cfg.logger.Warn("deleted snapshots not listed; their repair waits for the next checkpoint", slog.String("topic", st.topic),
			slog.Int("partition", int(st.p)), slog.Any("error", err))
		return
	}
	if len(deleted) == 0 && len(st.repaired) == 0 {
		return
	}
	now := make(map[uuid.UUID]struct{}, len(deleted))
	for _, id := range deleted {
		now[id] = struct{}{}
		if _, done := st.repaired[id]; done {
			continue
		}
		if _, listed := st.inherited[id]; listed {
			continue // not covered by the checkpoint: rebuilt when met
		}
		st.repaired[id] = struct{}{}
		a := st.aggs[id]
		if a == nil {
			a = &aggState{state: st.typ.initial(id), last: log.Position{Partition: st.p, Offset: log.NoOffset}, used: time.Now()}
			st.aggs[id] = a
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			s.rebuild(rctx, st, a, id, st.next)
			cancel()
		}
		a.snapVersion = 0
		s.cfg.logger.Warn("snapshot deleted by a tombstone; writing it again", slog.String("topic", st.topic), slog.Int("partition", int(st.p)),
			slog.String("aggregate_id", id.String()), slog.Int64("version", a.seq.Version))
	}
	for id := range st.repaired {
		if _, still := now[id]; !still {
			delete(st.repaired, id) // its snapshot is back: a later tombstone is handled again
		}
	}
}

// flush writes, in one transaction, the threshold snapshots that are due
// and, for each partition whose checkpoint is due (all of them with all),
// snapshots of every dirty aggregate and the partition's checkpoint.
func (s *Snapshotter) flush(ctx context.Context, all bool) error {
	// A transaction, once begun, is ended whatever happens to the caller's
	// context: shutting down waits for it (bounded).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	now := time.Now()
	// Threshold snapshots wait for the next transaction; one is started for
	// them alone at most every quarter interval (250 ms at most).
	pendingDue := now.Sub(s.lastTxn) >= min(s.cfg.interval/4, 250*time.Millisecond)
	s.mu.Lock()
	var snaps []captured
	var cps []cpWrite
	next := make(map[*partState]int64)
	overfull := s.countStates() > s.cfg.maxStates
	for _, st := range s.parts {
		checkpoint := all || overfull || st.due || now.Sub(st.checkpointT) >= s.cfg.interval
		next[st] = st.next
		take := func(id uuid.UUID, a *aggState) {
			if !a.dirty() {
				return
			}
			rec, err := st.typ.encode(a.state)
			if err != nil {
				a.failed = fmt.Errorf("encode state: %w", err)
				s.stats.applyFailures.Add(1)
				s.cfg.logger.Error("state not snapshotted", slog.String("topic", st.topic), slog.Int("partition", int(st.p)),
					slog.String("aggregate_id", id.String()), slog.Any("error", err))
				return
			}
			snaps = append(snaps, captured{st: st, id: id, replace: a.replace, snap: snapshots.Snapshot{
				AggregateID: id, AggregateType: st.typ.name, Version: a.seq.Version, SchemaVersion: st.typ.schemaVersion,
				CreatedAt: now.UTC(), Position: a.last, Save: a.save, State: rec,
			}})
		}
		if checkpoint {
			s.repairDeleted(ctx, st)
			s.recheckStale(ctx, st)
			for id, a := range st.aggs {
				take(id, a)
			}
		} else if pendingDue {
			for id := range st.pending {
				if a := st.aggs[id]; a != nil {
					take(id, a)
				}
			}
		}
		if !checkpoint {
			continue
		}
		// A checkpoint stands where no save of a covered aggregate is
		// incomplete (Sequencer.Resume): a load that starts at it with the
		// snapshot's version decides every later record as a full replay
		// does. A save incomplete for a whole interval (records no writer
		// of ours leaves: a producer that died between a save's records)
		// does not hold checkpoints back any longer: its aggregate is
		// listed as not covered, and loads of it read from its snapshot.
		at := st.next
		var stuck []uuid.UUID
		for id, a := range st.aggs {
			switch {
			case a.seq.Incomplete() == 0:
				a.held = false
			case a.held:
				stuck = append(stuck, id)
			default:
				at = min(at, a.seq.Resume(st.next))
				a.held = true
			}
		}
		if at != st.checkpoint || st.due || all {
			cp := snapshots.Checkpoint{EventsTopic: st.topic, EventsPartition: st.p, Offset: at, Owner: s.group, WrittenAt: now.UTC()}
			cp.Unsnapshotted = append(cp.Unsnapshotted, stuck...)
			for id, a := range st.aggs {
				if a.failed != nil {
					cp.Unsnapshotted = append(cp.Unsnapshotted, id)
				}
			}
			for id := range st.inherited {
				cp.Unsnapshotted = append(cp.Unsnapshotted, id)
			}
			cps = append(cps, cpWrite{st, cp})
		}
	}
	s.mu.Unlock()
	if len(snaps) == 0 && len(cps) == 0 {
		return nil
	}

	out, err := s.back.write(ctx, &batch{snaps: snaps, cps: cps, next: next})
	s.lastTxn = time.Now()
	if err != nil {
		return err
	}
	if cause := out.aborted; cause != nil {
		s.stats.aborted.Add(1)
		s.cfg.logger.Warn("transaction aborted; snapshots stay pending", slog.Int("snapshots", len(snaps)),
			slog.Int("checkpoints", len(cps)), slog.Any("cause", cause))
		if h := s.cfg.hooks.Aborted; h != nil {
			h(cause)
		}
		return nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for st, err := range out.fenced {
		// Another instance claimed the partition: this one lost it without
		// being told yet (paused past its session, rebalanced away), and
		// forgets it until the group assigns it again.
		s.stats.aborted.Add(1)
		s.cfg.logger.Error("partition fenced: another snapshotter claimed it; its snapshots and checkpoint were not written",
			slog.String("topic", st.topic), slog.Int("partition", int(st.p)), slog.Any("error", err))
		if h := s.cfg.hooks.Aborted; h != nil {
			h(err)
		}
		if tp := (topicPartition{st.topic, st.p}); s.parts[tp] == st {
			delete(s.parts, tp)
			if s.fenced == nil {
				s.fenced = make(map[topicPartition]time.Time)
			}
			s.fenced[tp] = now
		}
	}
	written := map[string]int{}
	for _, c := range snaps {
		if out.fenced[c.st] != nil {
			continue
		}
		if out.stale[c.st][c.id] {
			// The table holds a higher version, which this snapshotter did
			// not write: the state is dropped, so that the aggregate's next
			// event loads it again from that snapshot, or, if the log does
			// not confirm it, rebuilds it from the log and replaces it.
			s.cfg.logger.Warn("snapshot not written: the store holds a higher version of the aggregate; reloading it",
				slog.String("topic", c.st.topic), slog.Int("partition", int(c.st.p)), slog.String("aggregate_id", c.id.String()),
				slog.Int64("version", c.snap.Version))
			if s.parts[topicPartition{c.st.topic, c.st.p}] == c.st {
				delete(c.st.aggs, c.id)
				delete(c.st.pending, c.id)
				c.st.recheck[c.id] = struct{}{}
			}
			continue
		}
		s.stats.snapshots.Add(1)
		if s.parts[topicPartition{c.st.topic, c.st.p}] != c.st {
			continue // revoked meanwhile; the records are written all the same
		}
		if a := c.st.aggs[c.id]; a != nil {
			if c.snap.Version >= a.snapVersion {
				a.snapVersion, a.snapAt = c.snap.Version, c.snap.CreatedAt.UnixMicro()
			}
			a.replace = false
		}
		delete(c.st.pending, c.id)
		written[c.snap.AggregateType]++
	}
	for typ, n := range written {
		if h := s.cfg.hooks.SnapshotsWritten; h != nil {
			h(typ, n)
		}
	}
	for _, c := range cps {
		if out.fenced[c.st] != nil {
			continue
		}
		c.st.checkpoint, c.st.checkpointT, c.st.due = c.cp.Offset, now, false
		s.stats.checkpoints.Add(1)
		if h := s.cfg.hooks.CheckpointWritten; h != nil {
			h(c.st.topic, c.st.p, c.cp.Offset)
		}
	}
	s.evict()
	return nil
}

// fencedTooLong returns an error when a partition fenced in the PostgreSQL
// store is still assigned here after the group had time to move it (its
// session and rebalance timeouts): the claim that fenced it was not made by
// a member of this group, and waiting would leave the partition
// unsnapshotted for good.
func (s *Snapshotter) fencedTooLong() error {
	pg, ok := s.back.(*postgresBackend)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for tp, at := range s.fenced {
		if since := time.Since(at); since > pg.grace {
			errs = append(errs, fmt.Errorf("%w: %s/%d: fenced %v ago and still assigned to this member of group %q: a snapshotter outside the group claimed it "+
				"(most likely another deployment with the same group name, on another Kafka cluster, writes to PostgreSQL schema %s)", snapshots.ErrFenced, tp.topic, tp.p, since.Round(time.Second), s.group, pg.store.DBSchema()))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("snapshotter: %w", errors.Join(errs...))
	}
	return nil
}

func (s *Snapshotter) countStates() int {
	n := 0
	for _, st := range s.parts {
		n += len(st.aggs)
	}
	return n
}

// evict drops clean states, least recently used first, until the states fit
// the bound; s.mu is held.
func (s *Snapshotter) evict() {
	over := s.countStates() - s.cfg.maxStates
	if over <= 0 {
		return
	}
	type cand struct {
		st   *partState
		id   uuid.UUID
		used time.Time
	}
	var cands []cand
	for _, st := range s.parts {
		for id, a := range st.aggs {
			if !a.dirty() && a.failed == nil && a.seq.Incomplete() == 0 {
				cands = append(cands, cand{st, id, a.used})
			}
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].used.Before(cands[j].used) })
	for _, c := range cands[:min(over, len(cands))] {
		delete(c.st.aggs, c.id)
	}
}

// Stats is a snapshot of the snapshotter's figures.
type Stats struct {
	Partitions     []PartitionStats
	States         int    // aggregate states held
	SnapshotsTotal uint64 // snapshots committed
	Checkpoints    uint64 // checkpoints committed
	ApplyFailures  uint64 // events that could not be applied
	Aborted        uint64 // transactions aborted
	EventsApplied  uint64
	Replays        uint64 // aggregates rebuilt from the log for want of a usable snapshot
}

// PartitionStats describes one assigned events partition.
type PartitionStats struct {
	Topic         string
	Partition     int32
	Next          int64 // the offset of the next record to process
	Lag           int64 // records between Next and the high watermark
	Checkpoint    int64 // the last checkpoint, -1 for none
	CheckpointAge time.Duration
	RestoreTime   time.Duration
	States        int
	Dirty         int
	Unsnapshotted int
}

// Stats returns the snapshotter's figures.
func (s *Snapshotter) Stats() Stats {
	st := Stats{
		SnapshotsTotal: s.stats.snapshots.Load(),
		Checkpoints:    s.stats.checkpoints.Load(),
		ApplyFailures:  s.stats.applyFailures.Load(),
		Aborted:        s.stats.aborted.Load(),
		EventsApplied:  s.stats.eventsApplied.Load(),
		Replays:        s.stats.replays.Load(),
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.parts {
		ps := PartitionStats{Topic: p.topic, Partition: p.p, Next: p.next, Lag: max(0, p.high-p.next),
			Checkpoint: p.checkpoint, RestoreTime: p.restoreTook, States: len(p.aggs)}
		if !p.checkpointT.IsZero() {
			ps.CheckpointAge = now.Sub(p.checkpointT)
		}
		for _, a := range p.aggs {
			if a.dirty() {
				ps.Dirty++
			}
			if a.failed != nil {
				ps.Unsnapshotted++
			}
		}
		st.States += ps.States
		st.Partitions = append(st.Partitions, ps)
	}
	sort.Slice(st.Partitions, func(i, j int) bool {
		a, b := st.Partitions[i], st.Partitions[j]
		return a.Topic < b.Topic || (a.Topic == b.Topic && a.Partition < b.Partition)
	})
	return st
}
