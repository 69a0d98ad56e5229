package snapshots

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/snaplog/snaplog/schemas"
)

// CheckpointKey is the record key under which checkpoints are written in
// each partition of a snapshot topic. It is not the key of any snapshot.
const CheckpointKey = "snaplog.checkpoint"

// IsCheckpointKey reports whether a record key of a snapshot topic is
// CheckpointKey: whether the record holds a checkpoint rather than a
// snapshot.
func IsCheckpointKey(key []byte) bool { return string(key) == CheckpointKey }

// Checkpoint is how far the snapshotter has snapshotted one partition of an
// events topic. The snapshotter writes one under CheckpointKey in the
// snapshot topic's partition that holds the snapshots of that events
// partition's aggregates.
type Checkpoint struct {
	// EventsTopic and EventsPartition name the events partition covered.
	EventsTopic     string
	EventsPartition int32
	// Offset is the checkpoint itself: every aggregate of the events
	// partition with events before this offset has a snapshot, in the same
	// snapshot topic partition, that includes them.
	Offset int64
	// Owner names the snapshotter that writes the snapshot topic, or is
	// empty when none does. Repositories refuse to write snapshots to a
	// topic that has an owner.
	Owner string
	// Unsnapshotted lists the aggregates of the events partition whose
	// events before Offset are not all in their snapshot: an event of
	// theirs could not be applied. The checkpoint promises nothing about
	// them; loads of them replay, and fail where the event fails.
	Unsnapshotted []uuid.UUID
	// WrittenAt is when the checkpoint was written. It is stored in
	// microseconds: DecodeCheckpoint returns it truncated to the
	// microsecond, in UTC.
	WrittenAt time.Time
}

// Covers reports whether the checkpoint's promise holds for the aggregate:
// false for the aggregates it lists as unsnapshotted.
func (c Checkpoint) Covers(id uuid.UUID) bool {
	for _, u := range c.Unsnapshotted {
		if u == id {
			return false
		}
	}
	return true
}

// Unborn reports whether the snapshot store's word is that the aggregate
// has no events before the checkpoint: the checkpoint covers it, and getErr,
// what the store's Get of it returned, says it has no snapshot and never had
// one deleted (ErrNotFound without ErrDeleted). It is the one rule by which
// a load reads an aggregate without a snapshot only from the checkpoint on
// (and reports not found when no event of it follows), a creation's
// Append checks only the records after the checkpoint, and the snapshotter
// starts an aggregate it meets after its checkpoint at version 0. A
// deleted snapshot never makes an aggregate unborn: its events are read
// from the log.
func (c Checkpoint) Unborn(id uuid.UUID, getErr error) bool {
	return c.Covers(id) && errors.Is(getErr, ErrNotFound) && !errors.Is(getErr, ErrDeleted)
}

func (c Checkpoint) String() string {
	return fmt.Sprintf("checkpoint %s/%d@%d by %s", c.EventsTopic, c.EventsPartition, c.Offset, c.Owner)
}

func (c Checkpoint) validate() error {
	var errs []error
	if c.EventsTopic == "" {
		errs = append(errs, errors.New("empty events topic"))
	}
	if c.EventsPartition < 0 {
		errs = append(errs, fmt.Errorf("events partition %d is negative", c.EventsPartition))
	}
	if c.Offset < 0 {
		errs = append(errs, fmt.Errorf("offset %d is negative", c.Offset))
	}
	if err := microsRange(c.WrittenAt); err != nil {
		errs = append(errs, fmt.Errorf("written at: %w", err))
	}
	return errors.Join(errs...)
}

// checkpointRecord is record snaplog.Checkpoint of schemas/checkpoint.avsc.
type checkpointRecord struct {
	EventsTopic     string    `avro:"events_topic"`
	EventsPartition int32     `avro:"events_partition"`
	Offset          int64     `avro:"offset"`
	Owner           string    `avro:"owner"`
	Unsnapshotted   []string  `avro:"unsnapshotted"`
	WrittenAt       time.Time `avro:"written_at"`
}

type checkpointSchema struct {
	schema avro.Schema
	shape  *shape
	header [headerLen]byte
	fp     uint64
}

// checkpointCodec is the compiled schemas/checkpoint.avsc.
var checkpointCodec = sync.OnceValues(func() (*checkpointSchema, error) {
	s, err := parseAvro(schemas.Checkpoint(), "")
	if err != nil {
		return nil, fmt.Errorf("checkpoint schema: %w", err)
	}
	w := &checkpointSchema{schema: s, shape: compile(s), fp: rabin64([]byte(canonical(s)))}
	w.header[0], w.header[1] = marker0, marker1
	binary.LittleEndian.PutUint64(w.header[2:], w.fp)
	return w, nil
})

// EncodeCheckpoint returns the checkpoint in Avro single-object encoding
// with the schema schemas/checkpoint.avsc: the marker bytes 0xC3 0x01, the
// 8-byte little-endian CRC-64-AVRO fingerprint of the schema's Parsing
// Canonical Form, then the record in Avro binary encoding. The events topic
// must not be empty, nor the partition and offset negative.
func EncodeCheckpoint(c Checkpoint) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("snapshots: encode %s: %w", c, err)
	}
	w, err := checkpointCodec()
	if err != nil {
		return nil, fmt.Errorf("snapshots: encode %s: %w", c, err)
	}
	rec := checkpointRecord{
		EventsTopic:     c.EventsTopic,
		EventsPartition: c.EventsPartition,
		Offset:          c.Offset,
		Owner:           c.Owner,
		Unsnapshotted:   make([]string, len(c.Unsnapshotted)),
		WrittenAt:       c.WrittenAt,
	}
	for i, id := range c.Unsnapshotted {
		rec.Unsnapshotted[i] = id.String()
	}
	body, err := avroAPI.Marshal(w.schema, rec)
	if err != nil {
		return nil, fmt.Errorf("snapshots: encode %s: %w", c, err)
	}
	return append(w.header[:], body...), nil
}

// DecodeCheckpoint reads a checkpoint written by EncodeCheckpoint. It checks
// the bytes against the schema before decoding them, as AvroCodec.Decode
// does, and never panics. Every failure wraps ErrCorrupt.
func DecodeCheckpoint(b []byte) (Checkpoint, error) {
	w, err := checkpointCodec()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: decode checkpoint: %w", ErrCorrupt, err)
	}
	bad := func(err error) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: decode checkpoint: %w", ErrCorrupt, err)
	}
	if len(b) < headerLen {
		return bad(fmt.Errorf("%d bytes, shorter than the %d-byte single-object header", len(b), headerLen))
	}
	if b[0] != marker0 || b[1] != marker1 {
		return bad(fmt.Errorf("marker %#02x %#02x, want 0xc3 0x01 (Avro single-object encoding)", b[0], b[1]))
	}
	if !bytes.Equal(b[2:headerLen], w.header[2:]) {
		return bad(fmt.Errorf("writer schema fingerprint %#016x, want %#016x (schemas/checkpoint.avsc)",
			binary.LittleEndian.Uint64(b[2:headerLen]), w.fp))
	}
	body := b[headerLen:]
	if err := w.shape.check(body); err != nil {
		return bad(err)
	}
	var rec checkpointRecord
	if err := avroAPI.Unmarshal(w.schema, body, &rec); err != nil {
		return bad(err)
	}
	c := Checkpoint{
		EventsTopic:     rec.EventsTopic,
		EventsPartition: rec.EventsPartition,
		Offset:          rec.Offset,
		Owner:           rec.Owner,
		WrittenAt:       rec.WrittenAt.UTC(),
	}
	for _, str := range rec.Unsnapshotted {
		id, err := uuid.Parse(str)
		if err != nil {
			return bad(fmt.Errorf("unsnapshotted aggregate %q: %w", str, err))
		}
		c.Unsnapshotted = append(c.Unsnapshotted, id)
	}
	if err := c.validate(); err != nil {
		return bad(fmt.Errorf("%s: %w", c, err))
	}
	return c, nil
}
