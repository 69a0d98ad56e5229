package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// backend is where the snapshotter keeps its snapshots and checkpoints: the
// snapshot topics, written in the group's Kafka transactions, or a
// PostgreSQL store (WithPostgres), written in database transactions under
// the partitions' claims.
type backend interface {
	// prepare makes the aggregate type's store ready before its events
	// partitions are assigned: the snapshot topic exists, co-partitioned.
	prepare(ctx context.Context, aggregateType string) error
	// take readies an assigned partition and returns its checkpoint, one
	// of Offset -1 when it has none.
	take(ctx context.Context, st *partState) (snapshots.Checkpoint, error)
	get(ctx context.Context, aggregateType string, id uuid.UUID) (snapshots.Snapshot, error)
	// deleted lists the partition's aggregates whose snapshot a tombstone
	// deleted.
	deleted(ctx context.Context, st *partState) ([]uuid.UUID, error)
	// write writes a batch: all of it or, with an aborted cause, none; with
	// the Postgres store, the partitions in fenced are left out.
	write(ctx context.Context, b *batch) (outcome, error)
	poll(ctx context.Context) kgo.Fetches
	close()
}

// batch is what one flush writes.
type batch struct {
	snaps []captured
	cps   []cpWrite
	// next is the offset of the next record to process of each partition
	// in the batch, when it was taken.
	next map[*partState]int64
}

// captured is a snapshot taken under s.mu, to be written outside it.
type captured struct {
	st      *partState
	id      uuid.UUID
	replace bool // the store's snapshot of the aggregate is unusable: replace it
	snap    snapshots.Snapshot
}

// cpWrite is a partition's checkpoint, to be written.
type cpWrite struct {
	st *partState
	cp snapshots.Checkpoint
}

// outcome is what a backend did with a batch.
type outcome struct {
	aborted error                // nothing written, for this reason
	fenced  map[*partState]error // partitions not written: another claim superseded theirs
	// stale are the snapshots not written because the store holds a
	// higher version of their aggregates.
	stale map[*partState]map[uuid.UUID]bool
}

// kafkaBackend writes to the snapshot topics in the group's transactions.
type kafkaBackend struct {
	s     *Snapshotter
	store *snapshots.Kafka // the snapshot topics' view, as their owner
	sess  *kgo.GroupTransactSession
}

func (k *kafkaBackend) prepare(ctx context.Context, aggregateType string) error {
	return k.store.EnsureTopic(ctx, aggregateType)
}

func (k *kafkaBackend) take(ctx context.Context, st *partState) (snapshots.Checkpoint, error) {
	if k.s.cfg.fromScratch {
		return snapshots.Checkpoint{Offset: -1}, nil
	}
	cp, err := k.store.RestorePartition(ctx, st.typ.name, st.p)
	if errors.Is(err, snapshots.ErrNotFound) {
		return snapshots.Checkpoint{Offset: -1}, nil
	}
	return cp, err
}

func (k *kafkaBackend) get(ctx context.Context, aggregateType string, id uuid.UUID) (snapshots.Snapshot, error) {
	return k.store.Get(ctx, aggregateType, id)
}

func (k *kafkaBackend) deleted(_ context.Context, st *partState) ([]uuid.UUID, error) {
	return k.store.Deleted(st.typ.name, st.p), nil
}

func (k *kafkaBackend) poll(ctx context.Context) kgo.Fetches { return k.sess.PollFetches(ctx) }

func (k *kafkaBackend) close() { k.sess.Close() }

func (k *kafkaBackend) write(ctx context.Context, b *batch) (outcome, error) {
	prefix := k.s.cfg.snapPrefix
	var recs []*kgo.Record
	for _, c := range b.snaps {
		v, err := k.s.codec.Encode(c.snap)
		if err != nil {
			return outcome{}, fmt.Errorf("snapshotter: encode %s: %w", c.snap, err)
		}
		recs = append(recs, &kgo.Record{Topic: prefix + c.snap.AggregateType, Partition: c.st.p, Key: log.Key(c.id), Value: v})
	}
	for _, c := range b.cps {
		v, err := snapshots.EncodeCheckpoint(c.cp)
		if err != nil {
			return outcome{}, fmt.Errorf("snapshotter: encode %s: %w", c.cp, err)
		}
		recs = append(recs, &kgo.Record{Topic: prefix + c.st.typ.name, Partition: c.st.p, Key: []byte(snapshots.CheckpointKey), Value: v})
	}
	if err := k.sess.Begin(); err != nil {
		return outcome{}, fmt.Errorf("snapshotter: begin transaction: %w", err)
	}
	var produceErr error
	var pmu sync.Mutex
	for _, r := range recs {
		k.sess.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				pmu.Lock()
				produceErr = errors.Join(produceErr, fmt.Errorf("%s/%d: %w", r.Topic, r.Partition, err))
				pmu.Unlock()
			}
		})
	}
	try := kgo.TryCommit
	if err := k.sess.Client().Flush(ctx); err != nil {
		return outcome{}, fmt.Errorf("snapshotter: flush: %w", err)
	}
	pmu.Lock()
	if produceErr != nil {
		try = kgo.TryAbort
	}
	pmu.Unlock()
	committed, err := k.sess.End(ctx, try)
	if err != nil {
		return outcome{}, fmt.Errorf("snapshotter: end transaction: %w", err)
	}
	if !committed {
		cause := produceErr
		if cause == nil {
			cause = errors.New("the group rebalanced, or this member was fenced by a newer generation")
		}
		return outcome{aborted: cause}, nil
	}
	return outcome{}, nil
}

// postgresBackend writes to a PostgreSQL store, each batch in one database
// transaction under the claims its partitions were taken with.
type postgresBackend struct {
	s     *Snapshotter
	store *snapshots.Postgres
	cl    *kgo.Client // the group's consumer
	// grace is how long a fenced partition may stay assigned here: the
	// group's session and rebalance timeouts, and some.
	grace time.Duration
}

func (p *postgresBackend) prepare(ctx context.Context, _ string) error {
	return p.store.Ping(ctx)
}

// take claims the partition, fencing every earlier claim of it, and
// returns the checkpoint PostgreSQL holds for it (unless the snapshotter
// starts from scratch, which claims all the same).
func (p *postgresBackend) take(ctx context.Context, st *partState) (snapshots.Checkpoint, error) {
	n, err := p.s.events.Partitions(ctx, st.typ.name)
	if err != nil {
		return snapshots.Checkpoint{}, err
	}
	c, err := p.store.Claim(ctx, st.typ.name, n, st.p)
	if err != nil {
		return snapshots.Checkpoint{}, err
	}
	st.claim = c
	p.s.cfg.logger.Info("partition claimed", slog.String("topic", st.topic), slog.Int("partition", int(st.p)),
		slog.Int64("epoch", c.Epoch), slog.Int64("checkpoint", c.Checkpoint.Offset), slog.Int64("consumed", c.Consumed))
	if p.s.cfg.fromScratch {
		return snapshots.Checkpoint{Offset: -1}, nil
	}
	return c.Checkpoint, nil
}

func (p *postgresBackend) get(ctx context.Context, aggregateType string, id uuid.UUID) (snapshots.Snapshot, error) {
	return p.store.Get(ctx, aggregateType, id)
}

func (p *postgresBackend) deleted(ctx context.Context, st *partState) ([]uuid.UUID, error) {
	return p.store.Deleted(ctx, st.typ.name, st.p)
}

func (p *postgresBackend) poll(ctx context.Context) kgo.Fetches { return p.cl.PollFetches(ctx) }

func (p *postgresBackend) close() { p.cl.Close() }

func (p *postgresBackend) write(ctx context.Context, b *batch) (outcome, error) {
	index := make(map[*partState]int)
	var writes []snapshots.PartitionWrite
	part := func(st *partState) *snapshots.PartitionWrite {
		i, ok := index[st]
		if !ok {
			i = len(writes)
			index[st] = i
			writes = append(writes, snapshots.PartitionWrite{Claim: st.claim, Consumed: b.next[st]})
		}
		return &writes[i]
	}
	for _, c := range b.snaps {
		w := part(c.st)
		w.Snapshots = append(w.Snapshots, c.snap)
		if c.replace {
			w.Replace = append(w.Replace, c.id)
		}
	}
	for _, c := range b.cps {
		part(c.st).Checkpoint = &c.cp
	}
	outs, err := p.store.WritePartitions(ctx, writes)
	if err != nil {
		return outcome{}, fmt.Errorf("snapshotter: %w", err)
	}
	var o outcome
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	for st, i := range index {
		if outs[i].Fenced != nil {
			if o.fenced == nil {
				o.fenced = make(map[*partState]error)
			}
			o.fenced[st] = outs[i].Fenced
			continue
		}
		for _, id := range outs[i].Stale {
			if o.stale == nil {
				o.stale = make(map[*partState]map[uuid.UUID]bool)
			}
			if o.stale[st] == nil {
				o.stale[st] = make(map[uuid.UUID]bool)
			}
			o.stale[st][id] = true
		}
		if offsets[st.topic] == nil {
			offsets[st.topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[st.topic][st.p] = kgo.EpochOffset{Epoch: -1, Offset: b.next[st]}
	}
	if len(offsets) > 0 {
		// For the lag tools only: the snapshotter resumes from PostgreSQL.
		// The commit is asynchronous, and ordered with the next ones.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		p.cl.CommitOffsets(cctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			defer cancel()
			if err == nil {
				for _, t := range resp.Topics {
					for _, pt := range t.Partitions {
						err = errors.Join(err, kerr.ErrorForCode(pt.ErrorCode))
					}
				}
			}
			if err != nil {
				p.s.cfg.logger.Debug("consumed offsets not committed to the group", slog.Any("error", err))
			}
		})
	}
	return o, nil
}
