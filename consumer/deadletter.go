package consumer

import (
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers that a dead-lettered record carries besides the original record's
// key, value, timestamp and headers.
const (
	HeaderDLQTopic     = "snaplog.dlq.topic"     // the events topic the record came from
	HeaderDLQPartition = "snaplog.dlq.partition" // decimal
	HeaderDLQOffset    = "snaplog.dlq.offset"    // decimal
	HeaderDLQError     = "snaplog.dlq.error"     // why the record is poison
	HeaderDLQGroup     = "snaplog.dlq.group"     // the consumer group
	HeaderDLQAttempts  = "snaplog.dlq.attempts"  // decimal: handler calls made, 0 when it never reached the handler
	HeaderDLQAt        = "snaplog.dlq.at"        // RFC 3339, UTC: when it was dead-lettered
)

// deadLetterRecord copies r for the dead-letter topic and adds the
// snaplog.dlq.* headers.
func deadLetterRecord(topic, group string, r *kgo.Record, attempts int, cause error, at time.Time) *kgo.Record {
	h := slices.Grow(slices.Clone(r.Headers), 7)
	add := func(k, v string) { h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderDLQTopic, r.Topic)
	add(HeaderDLQPartition, strconv.FormatInt(int64(r.Partition), 10))
	add(HeaderDLQOffset, strconv.FormatInt(r.Offset, 10))
	add(HeaderDLQError, cause.Error())
	add(HeaderDLQGroup, group)
	add(HeaderDLQAttempts, strconv.Itoa(attempts))
	add(HeaderDLQAt, at.UTC().Format(time.RFC3339Nano))
	return &kgo.Record{
		Topic:     topic,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   h,
		Timestamp: r.Timestamp,
	}
}
