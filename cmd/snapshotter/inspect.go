package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/pyfmt"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// inspectTimeout bounds inspect: restoring the aggregate's snapshot
// partition and reading its value.
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
	codec, err := codecOf(t)
	if err != nil {
		return fail(err)
	}
	store, err := snapshots.NewKafka(codec,
		snapshots.KafkaClient(kgo.SeedBrokers(cfg.Brokers...)),
		snapshots.WithTopicPrefix(cfg.SnapshotsPrefix),
		snapshots.WithEventsTopicPrefix(cfg.EventsPrefix),
		snapshots.WithKafkaLogger(logger),
	)
	if err != nil {
		return fail(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()

	snap, err := store.Get(ctx, t.Name(), cfg.ID)
	if errors.Is(err, snapshots.ErrNotFound) {
		return fail(fmt.Errorf("%s %s has no snapshot in %s (no such aggregate, or not snapshotted yet)",
			t.Name(), cfg.ID, store.Topic(t.Name())))
	}
	if err != nil {
		return fail(err)
	}
	cp, cpErr := store.CheckpointOf(ctx, t.Name(), cfg.ID)
	if cpErr != nil && !errors.Is(cpErr, snapshots.ErrNotFound) {
		return fail(cpErr)
	}
	var b strings.Builder
	writeSnapshot(&b, snap, stateOrder(codec, t))
	writeCheckpoint(&b, snap, cp, cpErr == nil, cfg.EventsPrefix+t.Name())
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return fail(err)
	}
	return exitOK
}

// writeSnapshot writes a snapshot as the seed's inspection example does:
// the details, then each state field, lists as "[n items]" with their first
// two items.
func writeSnapshot(w io.Writer, snap snapshots.Snapshot, order fieldOrder) {
	fmt.Fprintf(w, "Snapshot Details:\n")
	fmt.Fprintf(w, "  Aggregate ID: %s\n", snap.AggregateID)
	fmt.Fprintf(w, "  Aggregate Type: %s\n", snap.AggregateType)
	fmt.Fprintf(w, "  Version: %d\n", snap.Version)
	fmt.Fprintf(w, "  Schema Version: %d\n", snap.SchemaVersion)
	fmt.Fprintf(w, "  Created At: %s\n", pyfmt.Time(snap.CreatedAt))
	fmt.Fprintf(w, "\nSnapshot State:\n")
	for _, k := range pyfmt.OrderedKeys(snap.State, order.fields) {
		v := snap.State[k]
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

// stateOrder reads the field order of t's state schema.
func stateOrder(codec *snapshots.AvroCodec, t snapshotter.Type) fieldOrder {
	o := fieldOrder{fields: codec.StateFields(t.Name()), items: make(map[string][]string)}
	var root avroType
	if json.Unmarshal([]byte(t.StateSchema()), &root) != nil {
		return o
	}
	named := make(map[string][]string)
	collectRecords(root, "", named)
	for _, f := range root.Fields {
		if fields := recordFields(f.Type, named); fields != nil {
			o.items[f.Name] = fields
		}
	}
	return o
}

// avroType is the part of an Avro schema that stateOrder reads. A type is a
// name (string), a union (array) or a complex type (object); Raw keeps it
// as written.
type avroType struct {
	Raw       json.RawMessage
	Type      json.RawMessage `json:"type"`
	Name      string          `json:"name"`
	Namespace string          `json:"namespace"`
	Fields    []struct {
		Name string          `json:"name"`
		Type json.RawMessage `json:"type"`
	} `json:"fields"`
	Items  json.RawMessage `json:"items"`
	Values json.RawMessage `json:"values"`
}

func (a *avroType) UnmarshalJSON(b []byte) error {
	a.Raw = append(json.RawMessage(nil), b...)
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	type plain avroType
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	p.Raw = a.Raw
	*a = avroType(p)
	return nil
}

// collectRecords records the field names of every record defined in t, by
// name and full name.
func collectRecords(t avroType, namespace string, named map[string][]string) {
	var kind string
	if json.Unmarshal(t.Type, &kind) != nil {
		kind = ""
	}
	if t.Namespace != "" {
		namespace = t.Namespace
	}
	children := []json.RawMessage{t.Items, t.Values}
	if kind == "record" {
		fields := make([]string, len(t.Fields))
		for i, f := range t.Fields {
			fields[i] = f.Name
			children = append(children, f.Type)
		}
		named[t.Name] = fields
		if namespace != "" && !strings.Contains(t.Name, ".") {
			named[namespace+"."+t.Name] = fields
		}
	}
	for _, raw := range children {
		for _, c := range branches(raw) {
			collectRecords(c, namespace, named)
		}
	}
}

// branches returns the types of a union, or the type itself.
func branches(raw json.RawMessage) []avroType {
	if len(raw) == 0 {
		return nil
	}
	var union []avroType
	if json.Unmarshal(raw, &union) == nil {
		return union
	}
	var t avroType
	if json.Unmarshal(raw, &t) != nil {
		return nil
	}
	return []avroType{t}
}

// recordFields returns the field names of the record that a field of type
// raw holds, itself or as the items or values of a list or map (through
// unions and named references), or nil.
func recordFields(raw json.RawMessage, named map[string][]string) []string {
	for _, t := range branches(raw) {
		var name string
		if json.Unmarshal(t.Raw, &name) == nil {
			if fields, ok := named[name]; ok {
				return fields
			}
			continue
		}
		var kind string
		_ = json.Unmarshal(t.Type, &kind)
		switch kind {
		case "record":
			fields := make([]string, len(t.Fields))
			for i, f := range t.Fields {
				fields[i] = f.Name
			}
			return fields
		case "array":
			if fields := recordFields(t.Items, named); fields != nil {
				return fields
			}
		case "map":
			if fields := recordFields(t.Values, named); fields != nil {
				return fields
			}
		default:
			if fields := recordFields(t.Type, named); fields != nil {
				return fields
			}
		}
	}
	return nil
}
