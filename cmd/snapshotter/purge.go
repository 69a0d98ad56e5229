package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// purge deletes the snapshots of aggregate type t (those taken with a state
// schema version below cfg.SchemaBelow, when it is set) with tombstones
// written as the sidecars' owner, cfg.Group (snapshots.Kafka.DeleteType).
// It restores the type's snapshot topic and counts what matches in each
// partition first; with cfg.DryRun it prints those counts and deletes
// nothing, and otherwise it prints what it deleted. Either way it refuses
// (exit 1, after the counts of a dry run) a topic whose checkpoints name
// another owner than cfg.Group, and a purge of partitions the group
// checkpoints while the group has no members: only a running snapshotter
// writes the deleted snapshots again, and it must do so before compaction
// drops the tombstones.
func purge(ctx context.Context, cfg config, t snapshotter.Type, logger *slog.Logger, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "snapshotter purge: %v\n", err)
		return exitError
	}
	store, err := cfg.store(t, logger, snapshots.WithOwner(cfg.Group))
	if err != nil {
		return fail(err)
	}
	defer store.Close()
	topic := store.Topic(t.Name())

	counts, err := store.CountTypeByPartition(ctx, t.Name(), cfg.SchemaBelow)
	if err != nil {
		return fail(err)
	}
	if len(counts) == 0 {
		fmt.Fprintf(stdout, "%s has no snapshot topic %s: nothing to delete\n", t.Name(), topic)
		return exitOK
	}
	what := "every snapshot of " + t.Name()
	if cfg.SchemaBelow > 0 {
		what = fmt.Sprintf("snapshots of %s with schema version below %d", t.Name(), cfg.SchemaBelow)
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
			return fail(err)
		}
		if refusal != nil {
			return fail(fmt.Errorf("dry run: a purge would be refused: %w", refusal))
		}
		return exitOK
	}
	if refusal != nil {
		return fail(refusal)
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
		return fail(err)
	}
	fmt.Fprintf(&b, "  total: %d snapshots deleted\n", total)
	if owned {
		fmt.Fprintf(&b, "the snapshotters of group %s write them again at their next checkpoints; until then loads of those aggregates replay their events\n", cfg.Group)
	}
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return fail(err)
	}
	return exitOK
}

// purgeRefusal returns why a purge with the counts of
// CountTypeByPartition may not delete, or nil: a partition whose
// checkpoints name another owner than cfg.Group (the store would refuse
// it, snapshots.ErrOwned), or snapshots to delete from partitions cfg.Group
// checkpoints while the group has no members.
func purgeRefusal(ctx context.Context, cfg config, counts []snapshots.PartitionCount) error {
	var errs []error
	ownedByGroup := 0
	for _, c := range counts {
		switch {
		case c.Owner == "":
		case c.Owner != cfg.Group:
			errs = append(errs, fmt.Errorf("%w: partition %d is owned by snapshotter %q (its checkpoints say so), not by -group %q",
				snapshots.ErrOwned, c.Partition, c.Owner, cfg.Group))
		default:
			ownedByGroup += c.Snapshots
		}
	}
	if len(errs) > 0 || ownedByGroup == 0 {
		return errors.Join(errs...)
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

// ownerOf describes the owner of a partition, as purge prints it.
func ownerOf(c snapshots.PartitionCount) string {
	if c.Owner == "" {
		return "no owner"
	}
	return "owner " + c.Owner
}
