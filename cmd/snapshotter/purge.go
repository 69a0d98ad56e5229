package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// purge deletes the snapshots of aggregate type t (those taken with a state
// schema version below cfg.SchemaBelow, when it is set) as the sidecars'
// owner, cfg.Group: from the snapshot topics with purgeKafka, from the
// PostgreSQL store's table with purgePostgres. It counts what matches
// first; with cfg.DryRun it prints the counts and deletes nothing, and
// otherwise it prints what it deleted. Either way it refuses (exit 1, after
// the counts of a dry run) partitions whose checkpoints name another owner
// than cfg.Group.
func purge(ctx context.Context, cfg config, t snapshotter.Type, logger *slog.Logger, stdout, stderr io.Writer) int {
	store, err := cfg.store(ctx, t, logger, cfg.Group)
	if err == nil {
		defer store.Close()
		what := "every snapshot of " + t.Name()
		if cfg.SchemaBelow > 0 {
			what = fmt.Sprintf("snapshots of %s with schema version below %d", t.Name(), cfg.SchemaBelow)
		}
		switch s := store.(type) {
		case kafkaStore:
			err = purgeKafka(ctx, cfg, t, s, what, stdout)
		case postgresStore:
			err = purgePostgres(ctx, cfg, t, s, what, stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "snapshotter purge: %v\n", err)
		return exitError
	}
	return exitOK
}

// purgeKafka purges the snapshot topic of t with tombstones
// (snapshots.Kafka.DeleteTypeByPartition), after restoring it and counting
// what matches in each partition. Besides partitions owned by another
// snapshotter, it refuses a purge of partitions the group checkpoints while
// the group has no members: only a running snapshotter writes the deleted
// snapshots again, and it must do so before compaction drops the
// tombstones.
func purgeKafka(ctx context.Context, cfg config, t snapshotter.Type, store kafkaStore, what string, stdout io.Writer) error {
	topic := store.Topic(t.Name())
	counts, err := store.CountTypeByPartition(ctx, t.Name(), cfg.SchemaBelow)
	if err != nil {
		return err
	}
	if len(counts) == 0 {
		_, err := fmt.Fprintf(stdout, "%s has no snapshot topic %s: nothing to delete\n", t.Name(), topic)
		return err
	}
	refusal := purgeRefusal(ctx, cfg, counts)

	if cfg.DryRun {
		var b strings.Builder
		fmt.Fprintf(&b, "purge %s: %s in %s, dry run\n", t.Name(), what, topic)
		total := 0
		for _, c := range counts {
			fmt.Fprintf(&b, "  partition %d: %d snapshots (%s)\n", c.Partition, c.Snapshots, ownerOf(c))
			total += c.Snapshots
		}
		fmt.Fprintf(&b, "  total: %d snapshots would be deleted; nothing was deleted\n", total)
		if _, err := io.WriteString(stdout, b.String()); err != nil {
			return err
		}
		if refusal != nil {
			return fmt.Errorf("dry run: a purge would be refused: %w", refusal)
		}
		return nil
	}
	if refusal != nil {
		return refusal
	}

	deleted, err := store.DeleteTypeByPartition(ctx, t.Name(), cfg.SchemaBelow)
	var b strings.Builder
	fmt.Fprintf(&b, "purge %s: %s in %s\n", t.Name(), what, topic)
	total, owned := 0, false
	for _, c := range deleted {
		fmt.Fprintf(&b, "  partition %d: %d snapshots deleted\n", c.Partition, c.Snapshots)
		total += c.Snapshots
		owned = owned || (c.Owner != "" && c.Snapshots > 0)
	}
	if err != nil {
		fmt.Fprintf(&b, "  total: %d snapshots deleted before the failure\n", total)
		_, _ = io.WriteString(stdout, b.String())
		return err
	}
	fmt.Fprintf(&b, "  total: %d snapshots deleted\n", total)
	if owned {
		fmt.Fprintf(&b, "the snapshotters of group %s write them again at their next checkpoints; until then loads of those aggregates replay their events\n", cfg.Group)
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

// purgePostgres purges t's rows of the PostgreSQL store with tombstones
// (snapshots.Postgres.DeleteType: one statement, which deletes every
// matching snapshot or, when a partition is owned by another snapshotter,
// none), after counting what matches. The store counts by type, not by
// partition, so it prints totals. It does not need the group's members: a
// tombstone stays in the table until a snapshot replaces it, so the
// snapshotters write the deleted snapshots again at their next checkpoints
// whenever they run.
func purgePostgres(ctx context.Context, cfg config, t snapshotter.Type, store postgresStore, what string, stdout io.Writer) error {
	owners, err := partitionOwners(ctx, cfg, t, store)
	if err != nil {
		return err
	}
	n, err := store.CountType(ctx, t.Name(), cfg.SchemaBelow)
	if err != nil {
		return err
	}
	refusal := otherOwners(cfg.Group, owners)
	where := store.Where(t.Name())
	if cfg.DryRun {
		if _, err := fmt.Fprintf(stdout, "purge %s: %s in %s, dry run\n  total: %d snapshots would be deleted; nothing was deleted\n",
			t.Name(), what, where, n); err != nil {
			return err
		}
		if refusal != nil {
			return fmt.Errorf("dry run: a purge would be refused: %w", refusal)
		}
		return nil
	}
	if refusal != nil {
		return refusal
	}
	deleted, err := store.DeleteType(ctx, t.Name(), cfg.SchemaBelow)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "purge %s: %s in %s\n  total: %d snapshots deleted\n", t.Name(), what, where, deleted)
	if deleted > 0 && slices.ContainsFunc(owners, func(c snapshots.PartitionCount) bool { return c.Owner == cfg.Group }) {
		fmt.Fprintf(&b, "the snapshotters of group %s write them again at their next checkpoints, stopped ones once started (the tombstones stay in PostgreSQL); "+
			"until then loads of those aggregates replay their events\n", cfg.Group)
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

// partitionOwners returns the owner the checkpoint of each partition of
// t's events topic names in the PostgreSQL store ("" for none), asking for
// the checkpoint of a probe aggregate of each partition, with the
// partition count of the events topic in Kafka (which the store checks
// against the count its checkpoints were written for). None when the
// events topic does not exist.
func partitionOwners(ctx context.Context, cfg config, t snapshotter.Type, store postgresStore) ([]snapshots.PartitionCount, error) {
	cl, err := kgo.NewClient(cfg.KafkaOpts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	topic := cfg.EventsPrefix + t.Name()
	details, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("events topic %s: %w", topic, err)
	}
	td, ok := details[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return nil, nil
	}
	if td.Err != nil {
		return nil, fmt.Errorf("events topic %s: %w", topic, td.Err)
	}
	n := int32(len(td.Partitions))
	probe, err := store.with(snapshots.WithPostgresPartitions(t.Name(), n))
	if err != nil {
		return nil, err
	}
	var owners []snapshots.PartitionCount
	for p, id := range probeIDs(n) {
		cp, err := probe.CheckpointOf(ctx, t.Name(), id)
		if err != nil && !errors.Is(err, snapshots.ErrNotFound) {
			return nil, err
		}
		owners = append(owners, snapshots.PartitionCount{Partition: p, Owner: cp.Owner})
	}
	slices.SortFunc(owners, func(a, b snapshots.PartitionCount) int { return cmp.Compare(a.Partition, b.Partition) })
	return owners, nil
}

// purgeRefusal returns why a purge with the counts of
// CountTypeByPartition may not delete, or nil: a partition whose
// checkpoints name another owner than cfg.Group (the store would refuse
// it, snapshots.ErrOwned), or snapshots to delete from partitions cfg.Group
// checkpoints while the group has no members.
func purgeRefusal(ctx context.Context, cfg config, counts []snapshots.PartitionCount) error {
	if err := otherOwners(cfg.Group, counts); err != nil {
		return err
	}
	ownedByGroup := 0
	for _, c := range counts {
		if c.Owner == cfg.Group {
			ownedByGroup += c.Snapshots
		}
	}
	if ownedByGroup == 0 {
		return nil
	}
	cl, err := kgo.NewClient(cfg.KafkaOpts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	members, err := groupMembers(ctx, kadm.NewClient(cl), cfg.Group)
	if err != nil {
		return err
	}
	if len(members) == 0 {
		return fmt.Errorf("group %s has no members: its checkpoints promise a snapshot of every aggregate before them, and only its running "+
			"snapshotters write the deleted ones again, which they must do before compaction drops the tombstones (delete.retention.ms); "+
			"start the sidecars first, or recompute every snapshot with rebuild instead", cfg.Group)
	}
	return nil
}

// otherOwners returns, wrapping snapshots.ErrOwned, the partitions whose
// checkpoints name another owner than group, or nil.
func otherOwners(group string, owners []snapshots.PartitionCount) error {
	var errs []error
	for _, c := range owners {
		if c.Owner != "" && c.Owner != group {
			errs = append(errs, fmt.Errorf("%w: partition %d is owned by snapshotter %q (its checkpoints say so), not by -group %q",
				snapshots.ErrOwned, c.Partition, c.Owner, group))
		}
	}
	return errors.Join(errs...)
}

// ownerOf describes the owner of a partition, as purge prints it.
func ownerOf(c snapshots.PartitionCount) string {
	if c.Owner == "" {
		return "no owner"
	}
	return "owner " + c.Owner
}
