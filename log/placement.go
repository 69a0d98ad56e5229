package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/snaplog/snaplog/internal/kread"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Placement records. An aggregate lives in partition
// murmur2(id) % partitions of its events topic (see [Partition]), so the
// partition count its first event was written with decides, forever, where
// every reader looks for it. Kafka lets an operator add partitions to a
// topic, and then the same id maps to another partition: its events would
// not be found, and a creation of the same id would start a second history.
//
// To notice, every events topic records its placement: the first record of
// partition 0 keyed PlacementKey carries, in header HeaderPartitions, the
// partition count the topic's aggregates are placed with. The log writes it
// when it creates a topic, or when it first uses a topic whose partition 0
// holds none among its first PlacementScan records. Every reader compares it
// with the topic's partition count before it reads or writes, and refuses a
// topic whose count differs with a *PlacementError.
const (
	PlacementKey     = "snaplog.placement"
	HeaderPartitions = "snaplog.partitions" // decimal
)

// PlacementScan is how many records at the start of partition 0 are
// searched for the topic's placement record. A topic that has this many
// records there and no placement record was not created by this version of
// snaplog: its placement must be declared (WithPlacement).
const PlacementScan = 1000

// placementRecheck is how often, at most, a Kafka log asks the cluster
// again for the partition count of a topic it uses.
const placementRecheck = 5 * time.Second

// ErrPlacement is reported (through errors.Is) for an events topic whose
// partition count is not the one its aggregates were placed with, or whose
// placement cannot be known. Reading or writing such a topic would miss
// events and could give an aggregate a second history, so every reader
// refuses it.
var ErrPlacement = errors.New("log: events topic is not partitioned as its aggregates were placed")

// PlacementError reports an events topic whose partition count changed. Its
// Is reports ErrPlacement.
type PlacementError struct {
	Topic      string
	Placed     int32 // the partition count the topic's aggregates were placed with
	Partitions int32 // the topic's partition count now
}

func (e *PlacementError) Error() string {
	return fmt.Sprintf("log: topic %s has %d partitions but its aggregates were placed with %d: "+
		"an aggregate whose partition moved would not be found and could be created a second time, so the topic is refused; "+
		"the partition count of an events topic must never change: to repartition, copy its events into a new topic created with the new count",
		e.Topic, e.Partitions, e.Placed)
}

// Is reports whether target is ErrPlacement.
func (e *PlacementError) Is(target error) bool { return target == ErrPlacement }

// Placement is what CheckPlacement learned of an events topic.
type Placement struct {
	Topic string
	// Placed is the partition count the topic's aggregates were placed
	// with: that of its placement record, or the one declared.
	Placed int32
	// Partitions is the topic's partition count when it was checked.
	Partitions int32
	// Declared reports that Placed was declared by the caller (the topic
	// has no placement record), not read from the topic.
	Declared bool
}

// IsPlacementRecord reports whether r is a placement record (its key is
// PlacementKey). A placement record is not an event: every reader skips it
// without counting it as a foreign record.
func IsPlacementRecord(r *kgo.Record) bool { return string(r.Key) == PlacementKey }

// WithPlacement declares the partition count the aggregates of an existing
// events topic were placed with, for a topic written before snaplog
// recorded placements (PlacementScan or more records in partition 0 and no
// placement record), which is refused otherwise. The declaration is trusted:
// it must be the partition count the topic had when its first event was
// written. Nothing is written to the topic; a topic whose partition count
// differs from the declaration is still refused. Default: none; the log
// reads each topic's placement from the topic.
func WithPlacement(aggregateType string, partitions int32) KafkaOption {
	return kafkaOption(func(c *kafkaConfig) {
		if err := CheckDeclaredPlacement(aggregateType, partitions); err != nil {
			c.errs = append(c.errs, err)
		}
		if c.placements == nil {
			c.placements = make(map[string]int32)
		}
		c.placements[aggregateType] = partitions
	})
}

// CheckDeclaredPlacement reports what is wrong with a declared placement
// (WithPlacement here and in the consumer and snapshotter packages): an
// empty aggregate type, a partition count that is not positive.
func CheckDeclaredPlacement(aggregateType string, partitions int32) error {
	var errs []error
	if aggregateType == "" {
		errs = append(errs, errors.New("WithPlacement: empty aggregate type"))
	}
	if partitions <= 0 {
		errs = append(errs, fmt.Errorf("WithPlacement: %s: partitions must be positive, got %d", aggregateType, partitions))
	}
	return errors.Join(errs...)
}

// CheckPlacement finds the placement of events topic `topic` and checks it
// against the topic's partition count now, asking the cluster with cl. It
// is the check every reader with a client of its own makes before it reads
// or writes an events topic: the log makes it with its producer, consumers
// and the snapshotter at each partition assignment.
//
// The placement is the first placement record of partition 0, looked for
// among its first PlacementScan records (read_committed, from offset 0).
// When there is none and partition 0 holds fewer records, CheckPlacement
// writes one to partition 0 with the topic's current partition count and
// reads again, so that processes using a new topic at once agree on the
// first one: cl must be a non-transactional producer that sends a record to
// the partition it names (kgo.RecordPartitioner(kgo.ManualPartitioner())),
// with acks=all and idempotence (franz-go's defaults). declared, when
// positive, is the partition count declared for the topic (WithPlacement):
// it is used when the topic has no placement record, and nothing is written.
//
// A topic whose partition count differs from its placement is reported
// with a *PlacementError; a topic whose placement cannot be known (no
// placement record among PlacementScan records and nothing declared, a
// malformed placement record, a declaration that contradicts the record)
// with an error wrapping ErrPlacement.
func CheckPlacement(ctx context.Context, cl *kgo.Client, topic string, declared int32) (Placement, error) {
	t, err := kread.Describe(ctx, cl, topic)
	if err != nil {
		return Placement{Topic: topic}, fmt.Errorf("log: placement of topic %s: describe: %w", topic, err)
	}
	pl, err := findPlacement(ctx, cl, t, declared)
	if err != nil {
		return pl, err
	}
	return pl, pl.check()
}

// check reports a *PlacementError when the partition count changed.
func (pl Placement) check() error {
	if pl.Placed != pl.Partitions {
		return &PlacementError{Topic: pl.Topic, Placed: pl.Placed, Partitions: pl.Partitions}
	}
	return nil
}

// findPlacement establishes the placement of t, writing a placement record
// when the topic has none yet; see CheckPlacement.
func findPlacement(ctx context.Context, cl *kgo.Client, t *kread.Topic, declared int32) (Placement, error) {
	pl := Placement{Topic: t.Name, Partitions: t.Partitions}
	rd := kread.NewReader(cl)
	rd.FetchBytes = 256 << 10 // the placement record is the first record of a topic snaplog created
	written := int64(-1)
	for {
		rec, scanned, err := scanPlacement(ctx, rd, t)
		if errors.Is(err, kerr.OffsetOutOfRange) {
			return pl, fmt.Errorf("%w: topic %s: records at the start of partition 0, where its placement record is, were deleted: %w", ErrPlacement, t.Name, err)
		}
		if err != nil {
			return pl, fmt.Errorf("log: placement of topic %s: read partition 0: %w", t.Name, err)
		}
		switch {
		case rec != nil:
			n, err := placementOf(rec)
			if err != nil {
				return pl, fmt.Errorf("%w: topic %s: placement record at 0@%d: %w", ErrPlacement, t.Name, rec.Offset, err)
			}
			if declared > 0 && n != declared {
				return pl, fmt.Errorf("%w: topic %s: its placement record at 0@%d says its aggregates were placed with %d partitions, but %d is declared (WithPlacement)",
					ErrPlacement, t.Name, rec.Offset, n, declared)
			}
			pl.Placed = n
			return pl, nil
		case declared > 0:
			pl.Placed, pl.Declared = declared, true
			return pl, nil
		case scanned >= PlacementScan:
			return pl, fmt.Errorf("%w: topic %s has %d or more records in partition 0 and no placement record: it was not created by this version of snaplog; "+
				"declare the partition count its aggregates were placed with (log.WithPlacement; %d partitions now), or copy its events into a new topic",
				ErrPlacement, t.Name, PlacementScan, t.Partitions)
		case written >= 0:
			// Ours is written but not visible yet: an open transaction in
			// partition 0 holds back its last stable offset.
			select {
			case <-ctx.Done():
				return pl, fmt.Errorf("log: placement of topic %s: wait for the placement record at 0@%d: %w", t.Name, written, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if written, err = writePlacement(ctx, cl, t); err != nil {
			return pl, fmt.Errorf("log: placement of topic %s: write the placement record: %w", t.Name, err)
		}
	}
}

var errPlacementScanned = errors.New("log: placement scan done")

// scanPlacement reads partition 0 of t from offset 0 up to its last stable
// offset, at most PlacementScan records, and returns the first placement
// record, or nil, and the number of records read.
func scanPlacement(ctx context.Context, rd *kread.Reader, t *kread.Topic) (*kgo.Record, int, error) {
	var rec *kgo.Record
	n := 0
	_, _, err := rd.ScanOne(ctx, t, 0, 0, -1, func(r *kgo.Record) error {
		n++
		if IsPlacementRecord(r) {
			rec = r
			return errPlacementScanned
		}
		if n >= PlacementScan {
			return errPlacementScanned
		}
		return nil
	})
	if errors.Is(err, errPlacementScanned) {
		err = nil
	}
	return rec, n, err
}

// placementOf returns the partition count a placement record declares.
func placementOf(r *kgo.Record) (int32, error) {
	for _, h := range r.Headers {
		if h.Key != HeaderPartitions {
			continue
		}
		n, err := strconv.ParseInt(string(h.Value), 10, 32)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("header %s=%q is not a positive partition count", HeaderPartitions, h.Value)
		}
		return int32(n), nil
	}
	return 0, fmt.Errorf("no header %s", HeaderPartitions)
}

// writePlacement writes a placement record with t's partition count to
// partition 0 and returns its offset.
func writePlacement(ctx context.Context, cl *kgo.Client, t *kread.Topic) (int64, error) {
	r := &kgo.Record{
		Topic:     t.Name,
		Partition: 0,
		Key:       []byte(PlacementKey),
		Value:     []byte{},
		Headers:   []kgo.RecordHeader{{Key: HeaderPartitions, Value: []byte(strconv.FormatInt(int64(t.Partitions), 10))}},
	}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return -1, err
	}
	if r.Partition != 0 {
		return -1, fmt.Errorf("the client wrote it to partition %d, not 0: it must send records to the partition they name (kgo.ManualPartitioner)", r.Partition)
	}
	return r.Offset, nil
}

// topicPlacement is what a Kafka log knows of the placement of one of its
// topics.
type topicPlacement struct {
	mu      sync.Mutex
	pl      Placement
	checked time.Time // when the partition count was last asked
	refused error     // once set, the topic is refused for the life of the log
}

// placeTopic establishes the placement of the aggregate type's topic t,
// just described, and refuses the topic when its partition count differs.
// A refusal is kept: the topic stays refused for the life of the log.
func (k *Kafka) placeTopic(ctx context.Context, aggregateType string, t *kafkaTopic) error {
	k.mu.Lock()
	tp := k.placements[aggregateType]
	k.mu.Unlock()
	if tp != nil {
		tp.mu.Lock()
		refused := tp.refused
		tp.mu.Unlock()
		if refused != nil {
			return refused
		}
	}
	pl, err := findPlacement(ctx, k.cl, t, k.cfg.placements[aggregateType])
	if err != nil {
		if errors.Is(err, ErrPlacement) {
			k.refuse(aggregateType, pl, err)
		}
		return err
	}
	if err := pl.check(); err != nil {
		k.refuse(aggregateType, pl, err)
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.placements == nil {
		k.placements = make(map[string]*topicPlacement)
	}
	if k.placements[aggregateType] == nil {
		k.placements[aggregateType] = &topicPlacement{pl: pl, checked: time.Now()}
	}
	return nil
}

// refuse makes a topic refused for the life of the log.
func (k *Kafka) refuse(aggregateType string, pl Placement, err error) {
	k.mu.Lock()
	if k.placements == nil {
		k.placements = make(map[string]*topicPlacement)
	}
	tp := k.placements[aggregateType]
	if tp == nil {
		tp = &topicPlacement{pl: pl}
		k.placements[aggregateType] = tp
	}
	k.mu.Unlock()
	tp.mu.Lock()
	first := tp.refused == nil
	if first {
		tp.refused = err
	}
	tp.mu.Unlock()
	if first {
		k.cfg.logger.Error("events topic refused", slog.String("topic", pl.Topic), slog.Int("placed_partitions", int(pl.Placed)),
			slog.Int("partitions", int(pl.Partitions)), slog.Any("error", err))
	}
}

// recheckPlacement asks the cluster again for the partition count of the
// aggregate type's topic t when it last asked placementRecheck ago or more
// (always with force), and refuses the topic when the count changed. A
// failed look-up refuses nothing: the next use asks again.
func (k *Kafka) recheckPlacement(ctx context.Context, aggregateType string, t *kafkaTopic, force bool) error {
	k.mu.Lock()
	tp := k.placements[aggregateType]
	k.mu.Unlock()
	if tp == nil {
		return nil // not placed yet: topic places it
	}
	tp.mu.Lock()
	if tp.refused != nil {
		defer tp.mu.Unlock()
		return tp.refused
	}
	if !force && time.Since(tp.checked) < placementRecheck {
		tp.mu.Unlock()
		return nil
	}
	tp.checked = time.Now()
	pl := tp.pl
	tp.mu.Unlock()
	fresh, err := kread.Describe(ctx, k.cl, t.Name)
	if err != nil {
		if ctx.Err() == nil {
			k.cfg.logger.Warn("partition count of events topic not known; asking again at the next use",
				slog.String("topic", t.Name), slog.Any("error", err))
		}
		return nil
	}
	pl.Partitions = fresh.Partitions
	if err := pl.check(); err != nil {
		k.refuse(aggregateType, pl, err)
		return err
	}
	return nil
}

// CheckPlacement asks the cluster now for the partition count of the
// aggregate type's events topic and refuses the topic, with a
// *PlacementError, when it is not the count its aggregates were placed
// with; it establishes the topic's placement first if the log has not used
// the topic yet (see the package function CheckPlacement). Append, Read,
// Partitions and EnsureTopic make the same check, asking the cluster at
// most every 5 seconds; a refusal lasts for the life of the log. A topic
// that does not exist is not refused.
func (k *Kafka) CheckPlacement(ctx context.Context, aggregateType string) error {
	k.mu.Lock()
	t := k.topics[aggregateType]
	k.mu.Unlock()
	if t != nil {
		return k.recheckPlacement(ctx, aggregateType, t, true)
	}
	_, err := k.topic(ctx, aggregateType, false)
	return err
}
