// Package snapshots stores aggregate snapshots: the state of one aggregate at
// one version, and the log position of the last event it includes.
//
// A snapshot is an optimisation only. A load that finds no snapshot, or one
// it cannot use, replays the aggregate's events and gets the same state; see
// package aggregate for the rules. Stores therefore favour never going
// backwards over never losing: a [Store]'s Put never replaces the snapshot it
// holds for an aggregate with one of a lower version. Nothing a store returns
// is trusted: a reader uses a snapshot's version and state only once the log
// confirms its last event ([Snapshot.Confirm]), and takes a store's word that
// an aggregate has no events before a checkpoint only by
// [Checkpoint.Unborn].
//
// The state of a snapshot is the state's Avro binary encoding
// ([Snapshot.State]), in the current state schema of its aggregate type:
// one store serves every aggregate type, the in-memory store keeps the
// bytes as they are, and the Kafka store writes them as the envelope's last
// field. [StateSchema] compiles an aggregate type's state schema (the one
// on its aggregate.Type, the type's one registration) and turns Go values
// into those bytes and back with github.com/hamba/avro/v2, guided by
// `avro:"name"` struct tags.
//
// [Memory] is the in-process store, the embedded default. [AvroCodec] encodes
// snapshots as Avro single-object encoded records with the schemas in
// package schemas; stores that keep bytes (a Kafka compacted topic) use it.
// The writer schema of an aggregate type is the envelope schemas/snapshot.avsc
// with the type's state schema in place of its placeholder state record, and
// each record carries the CRC-64-AVRO fingerprint of that schema's Parsing
// Canonical Form ([Fingerprint]; hamba/avro's own keeps logicalType, so
// snaplog computes the one Java's SchemaNormalization does), so that any
// Avro implementation can read it. Decode refuses anything else with an
// error wrapping [ErrCorrupt]. An AvroCodec and a StateSchema are safe for
// concurrent use.
//
// The conformance suite in snapshots/snapshotstest states the Store contract
// as tests that every implementation passes.
package snapshots
