package log

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ErrConflict is reported (through errors.Is) by an Append whose expected
// version was not the aggregate's version when the append was ordered.
var ErrConflict = errors.New("log: version conflict")

// ErrInvalidEvent is reported (through errors.Is) by an Append given events
// that cannot be stored as asked: a missing id, type or aggregate, a version
// out of sequence, or events of different aggregates in one call.
var ErrInvalidEvent = errors.New("log: invalid event")

// ErrNoEvent is reported (through errors.Is) by EventAt when the record at
// the offset asked for is not an event of the aggregate.
var ErrNoEvent = errors.New("log: no event of the aggregate there")

// Log is the event-log port: what a repository, and the conformance suite
// of package logtest, need of an event log. Memory and Kafka implement it.
type Log interface {
	// Append stores events as the next versions of one aggregate, all or
	// none, failing with a *ConflictError when the aggregate is not at
	// expected.Version.
	Append(ctx context.Context, aggregateType string, aggregateID uuid.UUID, expected Expected, events []Event) ([]Event, error)
	// Read returns the aggregate's events at offsets from `from` on, in
	// version order.
	Read(ctx context.Context, aggregateType string, aggregateID uuid.UUID, from int64) (Tail, error)
}

// EventAtReader is implemented by event logs that read one stored event by
// its offset (Memory and Kafka do).
type EventAtReader interface {
	// EventAt returns the aggregate's event at offset in its partition, or
	// an error wrapping ErrNoEvent when there is none.
	EventAt(ctx context.Context, aggregateType string, aggregateID uuid.UUID, offset int64) (Event, error)
}

var (
	_ Log           = (*Memory)(nil)
	_ EventAtReader = (*Memory)(nil)
	_ Log           = (*Kafka)(nil)
	_ EventAtReader = (*Kafka)(nil)
)

// ConflictError says that an Append lost the race for a version. It carries
// the aggregate, the version the caller expected and the version the
// aggregate actually had.
type ConflictError struct {
	AggregateType string
	AggregateID   uuid.UUID
	Expected      int64
	Actual        int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("log: version conflict on %s %s: expected version %d, actual %d",
		e.AggregateType, e.AggregateID, e.Expected, e.Actual)
}

// Is reports true for ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Position is a place in an aggregate type's log: a partition and an offset
// in it. Offsets count from 0; NoOffset stands for "no record".
type Position struct {
	Partition int32
	Offset    int64
}

// NoOffset is the offset of a Position that points at no record.
const NoOffset int64 = -1

func (p Position) String() string { return fmt.Sprintf("%d@%d", p.Partition, p.Offset) }

// Metadata travels with an event without being part of its payload.
type Metadata struct {
	// CorrelationID ties together every event caused by one request.
	CorrelationID uuid.UUID
	// CausationID is the id of the event or command that caused this one.
	CausationID uuid.UUID
	// Values holds free key/values. Keys starting with "snaplog." are
	// reserved.
	Values map[string]string
}

// Event is one stored event: its envelope and its encoded payload.
type Event struct {
	ID               uuid.UUID
	Type             string
	AggregateType    string
	AggregateID      uuid.UUID
	AggregateVersion int64 // 1-based: the aggregate's version after this event
	OccurredAt       time.Time
	ContentType      string // media type of Payload, e.g. "application/json"
	Metadata         Metadata
	Payload          []byte

	// Position is where the event is stored. Append and Read set it; it is
	// ignored on input.
	Position Position
	// Expected is the aggregate version the save that wrote this event
	// expected, Save identifies that save (Expected.Save of its Append) and
	// SaveEvents is how many events it has. Append sets them; readers use
	// them to tell winners from losers and to know where a save ends (see
	// Sequencer).
	Expected   int64
	Save       uuid.UUID
	SaveEvents int
}

// Expected is what the caller of Append knows about the aggregate.
type Expected struct {
	// Version is the aggregate version the caller built its events on:
	// 0 for an aggregate that does not exist yet.
	Version int64
	// ReadTo is the Tail.End of the caller's last Read of the aggregate (or
	// of its last successful Append): the offset up to which the caller has
	// seen the aggregate's partition. A log may use it to bound the work of
	// checking the expected version; 0 means "from the start". The
	// repository passes Sequencer.Resume of its read, an offset at which the
	// aggregate was at Version with no save of it incomplete.
	ReadTo int64
	// Save identifies the save. An Append that failed with an error other
	// than a conflict may or may not have stored its events; retried with
	// the same Save, the same Version and ReadTo and the same events, it is
	// the same save: it succeeds if either attempt won and reports a
	// conflict if the save lost, and readers apply the save's events once.
	// uuid.Nil: the Append draws a new random id, and a retry of it is a
	// new save.
	Save uuid.UUID
}

// Tail is what Read returns: the aggregate's events at or after the offset
// asked for, in version order, and how far the partition was read.
type Tail struct {
	Events []Event
	// Partition is the partition that holds the aggregate.
	Partition int32
	// End is the partition's end offset as of the read: every event of the
	// aggregate at an offset below End is in Events (or before the offset
	// asked for).
	End int64
	// Scanned is the number of records of the partition the read went
	// through, the aggregate's own and other aggregates'. It measures the
	// cost of a read.
	Scanned int64
	// Skipped is the number of records under the aggregate's key that are
	// not snaplog events (see FromRecord): no reader applies them.
	Skipped int64
}

// Validate checks events for Append: each names the same aggregate, has an
// id, a type, and versions expected+1, expected+2, and so on.
func Validate(aggregateType string, aggregateID uuid.UUID, expected int64, events []Event) error {
	if aggregateType == "" {
		return fmt.Errorf("%w: empty aggregate type", ErrInvalidEvent)
	}
	if aggregateID == uuid.Nil {
		return fmt.Errorf("%w: nil aggregate id for %s", ErrInvalidEvent, aggregateType)
	}
	if expected < 0 {
		return fmt.Errorf("%w: %s %s: negative expected version %d", ErrInvalidEvent, aggregateType, aggregateID, expected)
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: %s %s: no events to append", ErrInvalidEvent, aggregateType, aggregateID)
	}
	if len(events) > MaxSaveEvents {
		return fmt.Errorf("%w: %s %s: %d events in one save, at most %d", ErrInvalidEvent, aggregateType, aggregateID, len(events), MaxSaveEvents)
	}
	for i, e := range events {
		where := fmt.Sprintf("%s %s event %d", aggregateType, aggregateID, i)
		switch {
		case e.AggregateType != aggregateType:
			return fmt.Errorf("%w: %s: aggregate type %q", ErrInvalidEvent, where, e.AggregateType)
		case e.AggregateID != aggregateID:
			return fmt.Errorf("%w: %s: aggregate id %s", ErrInvalidEvent, where, e.AggregateID)
		case e.ID == uuid.Nil:
			return fmt.Errorf("%w: %s: nil event id", ErrInvalidEvent, where)
		case e.Type == "":
			return fmt.Errorf("%w: %s: empty event type", ErrInvalidEvent, where)
		case e.AggregateVersion != expected+int64(i)+1:
			return fmt.Errorf("%w: %s: version %d, want %d", ErrInvalidEvent, where, e.AggregateVersion, expected+int64(i)+1)
		}
	}
	return nil
}
