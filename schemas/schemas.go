// Package schemas holds snaplog's Avro schemas as .avsc files, embedded in
// the binary.
//
// snapshot.avsc is the snapshot envelope, record snaplog.Snapshot. Its field
// "state" has as type the placeholder record snaplog.State; the full writer
// schema of an aggregate type is the envelope with that placeholder replaced,
// as a JSON value, by the aggregate type's state schema. Any Avro
// implementation rebuilds it from the files the same way, for example in Java:
//
//	ObjectNode env = (ObjectNode) mapper.readTree(snapshotAvsc);
//	for (JsonNode f : env.get("fields"))
//	    if (f.get("name").asText().equals("state"))
//	        ((ObjectNode) f).set("type", mapper.readTree(orderStateAvsc));
//	Schema writer = new Schema.Parser().parse(env.toString());
//	long fp = SchemaNormalization.parsingFingerprint64(writer);
//
// order_state.avsc is the state schema of the example Order aggregate,
// record snaplog.example.OrderState.
//
// checkpoint.avsc is record snaplog.Checkpoint, written as is (no
// composition) under the key "snaplog.checkpoint" in each partition of a
// snapshot topic: how far the snapshotter has snapshotted one partition of
// an events topic, and which snapshotter owns the topic.
//
// Package snapshots composes and compiles these schemas; this package only
// carries the files.
package schemas

import (
	"embed"
	"io/fs"
)

// FS holds every .avsc file of the package, at the root.
//
//go:embed *.avsc
var FS embed.FS

// StateField is the name of the envelope field whose type is the
// placeholder, and StatePlaceholder the full name of the placeholder record.
const (
	StateField       = "state"
	StatePlaceholder = "snaplog.State"
)

//go:embed snapshot.avsc
var snapshot string

//go:embed order_state.avsc
var orderState string

//go:embed checkpoint.avsc
var checkpoint string

// Snapshot returns the snapshot envelope schema (snapshot.avsc).
func Snapshot() string { return snapshot }

// OrderState returns the state schema of the example Order aggregate
// (order_state.avsc).
func OrderState() string { return orderState }

// Checkpoint returns the schema of a snapshot topic's checkpoint records
// (checkpoint.avsc).
func Checkpoint() string { return checkpoint }

// Read returns the schema file with the given name, such as
// "order_state.avsc".
func Read(name string) (string, error) {
	b, err := fs.ReadFile(FS, name)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
