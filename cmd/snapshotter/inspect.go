package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/snaplog/snaplog/internal/pyfmt"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// inspectTimeout bounds inspect: restoring the aggregate's snapshot
// partition and reading its value, or reading its row.
const inspectTimeout = 2 * time.Minute

// inspect prints the latest snapshot of aggregate cfg.ID of type t, its log
// position and the checkpoint of its partition, in the layout of the seed's
// inspection example. It returns exitError, with a message, when the
// aggregate has no snapshot.
func inspect(ctx context.Context, cfg config, t snapshotter.Type, logger *slog.Logger, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "snapshotter inspect: %v\n", err)
		return exitError
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	store, err := cfg.store(ctx, t, logger, "")
	if err != nil {
		return fail(err)
	}
	defer store.Close()

	snap, err := store.Get(ctx, t.Name(), cfg.ID)
	if errors.Is(err, snapshots.ErrNotFound) {
		return fail(fmt.Errorf("%s %s has no snapshot in %s (no such aggregate, or not snapshotted yet)",
			t.Name(), cfg.ID, store.Where(t.Name())))
	}
	if err != nil {
		return fail(err)
	}
	cp, cpErr := store.CheckpointOf(ctx, t.Name(), cfg.ID)
	if cpErr != nil && !errors.Is(cpErr, snapshots.ErrNotFound) {
		return fail(cpErr)
	}
	schema := store.Schema(t.Name())
	state, err := schema.DecodeGeneric(snap.State)
	if err != nil {
		return fail(err)
	}
	var b strings.Builder
	writeSnapshot(&b, snap, state, stateOrder(schema))
	writeCheckpoint(&b, snap, cp, cpErr == nil, cfg.EventsPrefix+t.Name())
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return fail(err)
	}
	return exitOK
}

// writeSnapshot writes a snapshot as the seed's inspection example does:
// the details, then each state field, lists as "[n items]" with their first
// two items.
func writeSnapshot(w io.Writer, snap snapshots.Snapshot, state map[string]any, order fieldOrder) {
	fmt.Fprintf(w, "Snapshot Details:\n")
	fmt.Fprintf(w, "  Aggregate ID: %s\n", snap.AggregateID)
	fmt.Fprintf(w, "  Aggregate Type: %s\n", snap.AggregateType)
	fmt.Fprintf(w, "  Version: %d\n", snap.Version)
	fmt.Fprintf(w, "  Schema Version: %d\n", snap.SchemaVersion)
	fmt.Fprintf(w, "  Created At: %s\n", pyfmt.Time(snap.CreatedAt))
	fmt.Fprintf(w, "\nSnapshot State:\n")
	for _, k := range pyfmt.OrderedKeys(state, order.fields) {
		v := state[k]
		list, ok := v.([]any)
		if !ok {
			fmt.Fprintf(w, "  %s: %s\n", k, pyfmt.Str(v))
			continue
		}
		fmt.Fprintf(w, "  %s: [%d items]\n", k, len(list))
		for i, e := range list[:min(2, len(list))] {
			if rec, ok := e.(map[string]any); ok {
				// The first two fields, as the seed's example shows them.
				fmt.Fprintf(w, "    [%d]: %s\n", i, pyfmt.Dict(rec, order.items[k], 2))
			} else {
				fmt.Fprintf(w, "    [%d]: %s\n", i, pyfmt.Repr(e))
			}
		}
		if len(list) > 2 {
			fmt.Fprintf(w, "    ... and %d more\n", len(list)-2)
		}
	}
}

// writeCheckpoint writes where the snapshot is in the log and the
// checkpoint of its partition, if found.
func writeCheckpoint(w io.Writer, snap snapshots.Snapshot, cp snapshots.Checkpoint, found bool, eventsTopic string) {
	fmt.Fprintf(w, "\nLog Position:\n")
	fmt.Fprintf(w, "  Topic: %s\n", eventsTopic)
	fmt.Fprintf(w, "  Partition: %d\n", snap.Position.Partition)
	fmt.Fprintf(w, "  Offset: %d\n", snap.Position.Offset)
	fmt.Fprintf(w, "\nPartition Checkpoint:\n")
	if !found {
		fmt.Fprintf(w, "  none: no snapshotter has checkpointed partition %d\n", snap.Position.Partition)
		return
	}
	fmt.Fprintf(w, "  Offset: %d\n", cp.Offset)
	fmt.Fprintf(w, "  Owner: %s\n", cp.Owner)
	fmt.Fprintf(w, "  Written At: %s\n", pyfmt.Time(cp.WrittenAt))
	fmt.Fprintf(w, "  Covers This Aggregate: %s\n", pyfmt.Bool(cp.Covers(snap.AggregateID)))
	fmt.Fprintf(w, "  Unsnapshotted Aggregates: %d\n", len(cp.Unsnapshotted))
}

// fieldOrder is the order in which inspect shows the fields of a state:
// the state record's, and for each field holding records (or lists of
// them), those records'.
type fieldOrder struct {
	fields []string
	items  map[string][]string
}

// stateOrder reads the field order of a state schema.
func stateOrder(schema *snapshots.StateSchema) fieldOrder {
	return fieldOrder{fields: schema.Fields(), items: schema.ItemFields()}
}
