// Package pyfmt formats values as Python prints them, so that the programs
// that reproduce eventsource-py's snapshotting example (examples/snapshotting,
// and cmd/snapshotter's inspect) print what its Python program prints:
// True/False, None, floats with a ".0" on integral values, strings quoted
// in lists and dicts, and datetimes as str(datetime) writes them.
//
// The values are those of decoded Avro records (snapshots.StateSchema.DecodeGeneric):
// nil, bool, string, []byte, the integer and float types, time.Time,
// []any and map[string]any. Go maps have no order and Python dicts do, so
// Dict and OrderedKeys take the key order to print, usually a record
// schema's field order.
//
// The functions are pure and safe for concurrent use.
package pyfmt
