package snapshots

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/snaplog/snaplog/log"
)

// ErrFenced is reported (through errors.Is) for a partition whose claim
// another Claim has superseded: the write that presented the old claim
// wrote nothing of that partition.
var ErrFenced = errors.New("snapshots: partition claimed by a newer claim")

// Claim is a snapshotter's hold on one events partition in a Postgres
// store: the epoch its Claim call took, and what the store held for the
// partition at that moment. WritePartitions writes a partition's snapshots,
// checkpoint and consumed offset only while the claim that presents the
// epoch is the latest.
type Claim struct {
	AggregateType string
	Partition     int32
	Partitions    int32 // the events topic's partition count
	Epoch         int64
	// Checkpoint is the partition's checkpoint, Offset -1 when it has none.
	Checkpoint Checkpoint
	// Consumed is the offset up to which the last write under a claim of
	// the partition had consumed its events (the offset of the next record
	// to process), 0 when none was written.
	Consumed int64
}

func (c Claim) String() string {
	return fmt.Sprintf("claim of %s/%d, epoch %d", c.AggregateType, c.Partition, c.Epoch)
}

// Claim takes events partition `partition` of the aggregate type's events
// topic, of `partitions` partitions, for the store's owner
// (WithPostgresOwner, which it requires): it raises the partition's epoch,
// which fences every earlier claim (WritePartitions refuses them with
// ErrFenced from then on), and returns the new epoch with the partition's
// checkpoint and consumed offset. A write under an earlier claim that is
// committing when Claim runs ends first: Claim waits for the lock that
// write holds, and returns what it committed.
//
// The first claim or checkpoint of an events topic records its partition
// count, and later ones must match it (ErrTopicLayout). Claim refuses, with
// ErrOwned, a partition whose checkpoint names another owner.
func (p *Postgres) Claim(ctx context.Context, aggregateType string, partitions, partition int32) (Claim, error) {
	topic := p.EventsTopic(aggregateType)
	switch {
	case aggregateType == "":
		return Claim{}, errors.New("snapshots: claim: empty aggregate type")
	case p.cfg.owner == "":
		return Claim{}, fmt.Errorf("snapshots: claim %s/%d: the store has no owner to claim for (WithPostgresOwner)", topic, partition)
	case partitions <= 0 || partition < 0 || partition >= partitions:
		return Claim{}, fmt.Errorf("snapshots: claim %s/%d: not a partition of %d", topic, partition, partitions)
	}
	if n, ok := p.cfg.partitions[aggregateType]; ok && n != partitions {
		return Claim{}, fmt.Errorf("%w: claim %s/%d: the events topic has %d partitions, the store is configured with %d (WithPostgresPartitions)",
			ErrTopicLayout, topic, partition, partitions, n)
	}
	if err := p.ready(ctx); err != nil {
		return Claim{}, err
	}
	c := Claim{AggregateType: aggregateType, Partition: partition, Partitions: partitions, Checkpoint: Checkpoint{Offset: -1}}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := p.lockLayout(ctx, tx, aggregateType, partitions); err != nil {
			return err
		}
		var (
			offset    *int64
			owner     *string
			unsnap    []uuid.UUID
			writtenAt *time.Time
		)
		err := tx.QueryRow(ctx, p.sql.lockCheckpoint, topic, partition).Scan(&offset, &owner, &unsnap, &writtenAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case *owner != "" && *owner != p.cfg.owner:
			return fmt.Errorf("%w: %s/%d belongs to snapshotter %q (its checkpoint says so)", ErrOwned, topic, partition, *owner)
		default:
			c.Checkpoint = Checkpoint{EventsTopic: topic, EventsPartition: partition, Offset: *offset, Owner: *owner,
				WrittenAt: writtenAt.UTC(), Unsnapshotted: unsnap}
			if len(unsnap) == 0 {
				c.Checkpoint.Unsnapshotted = nil
			}
		}
		return tx.QueryRow(ctx, p.sql.claim, topic, partition, p.cfg.owner).Scan(&c.Epoch, &c.Consumed)
	})
	if err != nil {
		return Claim{}, fmt.Errorf("snapshots: claim %s/%d: %w", topic, partition, p.dbErr(err))
	}
	p.recorded.Store(aggregateType, partitions)
	return c, nil
}

// lockLayout records the events topic's partition count if none is, holds
// the record until tx ends and checks it against n.
func (p *Postgres) lockLayout(ctx context.Context, tx pgx.Tx, aggregateType string, n int32) error {
	topic := p.EventsTopic(aggregateType)
	if _, err := tx.Exec(ctx, p.sql.recordTopic, topic, n); err != nil {
		return err
	}
	var recorded int32
	if err := tx.QueryRow(ctx, p.sql.lockTopic, topic).Scan(&recorded); err != nil {
		return err
	}
	if recorded != n {
		return fmt.Errorf("%w: the checkpoints of %s were written for %d partitions, it has %d now", ErrTopicLayout, topic, recorded, n)
	}
	return nil
}

// PartitionWrite is what WritePartitions writes of one claimed partition.
type PartitionWrite struct {
	Claim Claim
	// Snapshots of aggregates of the partition, one per aggregate, each
	// one's position in it. A snapshot older than the one the table holds
	// is not written (the version guard), and is listed in the outcome's
	// Stale.
	Snapshots []Snapshot
	// Replace lists aggregates of Snapshots whose row the writer found
	// unusable (not confirmed by the log, undecodable, at another
	// position): their snapshots replace the row whatever its version. Only
	// the partition's owner, under its claim, may judge so: a forged row
	// of a high version would otherwise refuse every later snapshot.
	Replace []uuid.UUID
	// Checkpoint, when not nil, replaces the partition's checkpoint; its
	// EventsTopic and Owner are set by the store, a zero WrittenAt is now.
	Checkpoint *Checkpoint
	// Consumed is the offset of the next events record to process.
	Consumed int64
}

// PartitionOutcome is what WritePartitions did with one PartitionWrite.
type PartitionOutcome struct {
	// Fenced is not nil, wrapping ErrFenced, when a later Claim of the
	// partition superseded the write's claim: nothing of the partition was
	// written.
	Fenced error
	// Written counts the snapshots written; Stale lists the aggregates
	// whose snapshot was refused for being older than the table's.
	Written int
	Stale   []uuid.UUID
}

// postgresBatch bounds the snapshots of one upsert statement.
const postgresBatch = 5000

// WritePartitions writes, in one transaction, the snapshots, checkpoint
// and consumed offset of each claimed partition whose claim is still the
// latest; a superseded claim's partition is left out (its outcome's
// Fenced), the others are written all the same. The transaction first locks
// the claims' rows, in one order, and checks their epochs, so that a Claim
// of one of them either waits for the commit or fences the write: a
// snapshotter paused past its session, or rebalanced away, cannot commit
// after its successor took the partition. It returns an error, having
// written nothing, for a database error or a write that is not valid (a
// snapshot of another partition or type, an invalid checkpoint).
func (p *Postgres) WritePartitions(ctx context.Context, writes []PartitionWrite) ([]PartitionOutcome, error) {
	type prepared struct {
		i     int
		topic string
		ids   []uuid.UUID
		vers  []int64
		svers []int32
		cat   []time.Time
		parts []int32
		offs  []int64
		saves []uuid.UUID
		vals  [][]byte
		force []bool // replaces the row whatever its version (Replace)
		cp    *Checkpoint
	}
	preps := make([]prepared, len(writes))
	for i, w := range writes {
		c := w.Claim
		pr := prepared{i: i, topic: p.EventsTopic(c.AggregateType)}
		where := fmt.Sprintf("snapshots: write %s", c)
		if c.AggregateType == "" || c.Epoch <= 0 {
			return nil, fmt.Errorf("%s: not a claim", where)
		}
		if w.Consumed < 0 {
			return nil, fmt.Errorf("%s: negative consumed offset %d", where, w.Consumed)
		}
		// An upsert may not touch a row twice: one snapshot per aggregate.
		seen := make(map[uuid.UUID]struct{}, len(w.Snapshots))
		replace := make(map[uuid.UUID]bool, len(w.Replace))
		for _, id := range w.Replace {
			replace[id] = true
		}
		for _, s := range w.Snapshots {
			if err := s.Validate(); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if s.AggregateType != c.AggregateType || s.Position.Partition != c.Partition || log.Partition(s.AggregateID, c.Partitions) != c.Partition {
				return nil, fmt.Errorf("%s: %s is not of an aggregate of that partition", where, s)
			}
			if _, dup := seen[s.AggregateID]; dup {
				return nil, fmt.Errorf("%s: two snapshots of %s %s", where, s.AggregateType, s.AggregateID)
			}
			seen[s.AggregateID] = struct{}{}
			v, err := p.codec.Encode(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			pr.ids, pr.vers, pr.svers = append(pr.ids, s.AggregateID), append(pr.vers, s.Version), append(pr.svers, int32(s.SchemaVersion))
			pr.cat, pr.parts, pr.offs = append(pr.cat, s.CreatedAt), append(pr.parts, s.Position.Partition), append(pr.offs, s.Position.Offset)
			pr.saves, pr.vals = append(pr.saves, s.Save), append(pr.vals, v)
			pr.force = append(pr.force, replace[s.AggregateID])
		}
		if w.Checkpoint != nil {
			cp := *w.Checkpoint
			cp.EventsTopic, cp.EventsPartition, cp.Owner = pr.topic, c.Partition, p.cfg.owner
			if cp.WrittenAt.IsZero() {
				cp.WrittenAt = time.Now()
			}
			cp.WrittenAt = cp.WrittenAt.UTC().Truncate(time.Microsecond)
			if err := cp.validate(); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", where, cp, err)
			}
			if cp.Unsnapshotted == nil {
				cp.Unsnapshotted = []uuid.UUID{}
			}
			pr.cp = &cp
		}
		preps[i] = pr
	}
	if len(writes) == 0 {
		return nil, nil
	}
	if err := p.ready(ctx); err != nil {
		return nil, err
	}
	// Rows are locked in one order, (topic, partition), by every writer,
	// so that two writers of overlapping partitions never deadlock.
	order := slices.Clone(preps)
	slices.SortFunc(order, func(a, b prepared) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(writes[a.i].Claim.Partition, writes[b.i].Claim.Partition))
	})
	var out []PartitionOutcome
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		out = make([]PartitionOutcome, len(writes))
		for _, pr := range order {
			c := writes[pr.i].Claim
			var (
				epoch int64
				owner string
			)
			err := tx.QueryRow(ctx, p.sql.lockClaim, pr.topic, c.Partition).Scan(&epoch, &owner)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				out[pr.i].Fenced = fmt.Errorf("%w: %s/%d: no claim of the partition is recorded (epoch %d presented)", ErrFenced, pr.topic, c.Partition, c.Epoch)
				continue
			case err != nil:
				return err
			case epoch != c.Epoch || owner != p.cfg.owner:
				out[pr.i].Fenced = fmt.Errorf("%w: %s/%d: snapshotter %q claimed it at epoch %d; this write presented epoch %d",
					ErrFenced, pr.topic, c.Partition, owner, epoch, c.Epoch)
				continue
			}
			written := make(map[uuid.UUID]bool, len(pr.ids))
			for from := 0; from < len(pr.ids); from += postgresBatch {
				to := min(from+postgresBatch, len(pr.ids))
				for _, replace := range []bool{false, true} {
					var (
						ids, saves []uuid.UUID
						vers, offs []int64
						svers, ps  []int32
						cat        []time.Time
						vals       [][]byte
					)
					for j := from; j < to; j++ {
						if pr.force[j] != replace {
							continue
						}
						ids, vers, svers, cat = append(ids, pr.ids[j]), append(vers, pr.vers[j]), append(svers, pr.svers[j]), append(cat, pr.cat[j])
						ps, offs, saves, vals = append(ps, pr.parts[j]), append(offs, pr.offs[j]), append(saves, pr.saves[j]), append(vals, pr.vals[j])
					}
					if len(ids) == 0 {
						continue
					}
					stmt := p.sql.putMany
					if replace {
						stmt = p.sql.putReplace
					}
					rows, err := tx.Query(ctx, stmt, c.AggregateType, ids, vers, svers, cat, ps, offs, saves, vals)
					if err != nil {
						return fmt.Errorf("snapshots of %s/%d: %w", pr.topic, c.Partition, err)
					}
					got, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
					if err != nil {
						return fmt.Errorf("snapshots of %s/%d: %w", pr.topic, c.Partition, err)
					}
					for _, id := range got {
						written[id] = true
					}
				}
			}
			out[pr.i].Written = len(written)
			for _, id := range pr.ids {
				if !written[id] {
					out[pr.i].Stale = append(out[pr.i].Stale, id)
				}
			}
			if cp := pr.cp; cp != nil {
				var owner string
				err := tx.QueryRow(ctx, p.sql.putCheckpoint, pr.topic, c.Partition, cp.Offset, cp.Owner, cp.Unsnapshotted, cp.WrittenAt).Scan(&owner)
				if errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("%w: %s/%d: its checkpoint names another snapshotter", ErrOwned, pr.topic, c.Partition)
				}
				if err != nil {
					return fmt.Errorf("checkpoint of %s/%d: %w", pr.topic, c.Partition, err)
				}
			}
			if _, err := tx.Exec(ctx, p.sql.consumed, pr.topic, c.Partition, writes[pr.i].Consumed); err != nil {
				return fmt.Errorf("consumed offset of %s/%d: %w", pr.topic, c.Partition, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshots: write %d partitions to %s: %w", len(writes), p.where, p.dbErr(err))
	}
	return out, nil
}

// Deleted returns the aggregates of events partition `partition` whose
// snapshot a tombstone deleted (Delete, Remove, DeleteType) and that no
// snapshot was written for since, as the Kafka store's Deleted does: the
// partition's owner writes them again, since its checkpoint promises a
// snapshot of every aggregate with events before it.
func (p *Postgres) Deleted(ctx context.Context, aggregateType string, partition int32) ([]uuid.UUID, error) {
	if err := p.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, p.sql.deleted, aggregateType, partition)
	if err != nil {
		return nil, fmt.Errorf("snapshots: deleted snapshots of %s in partition %d: %w", aggregateType, partition, p.dbErr(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("snapshots: deleted snapshots of %s in partition %d: %w", aggregateType, partition, p.dbErr(err))
	}
	return ids, nil
}
