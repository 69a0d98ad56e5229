package invariant

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Read is what ReadTopic read.
type Read struct {
	Topic string
	// Records are the data records, partition by partition in offset
	// order: every committed or non-transactional record below each
	// partition's end.
	Records []*kgo.Record
	Control int // transaction markers met (not in Records)
	// Start and End are each partition's log start offset and last stable
	// offset when the read began: the range read.
	Start, End map[int32]int64
	// Unread is the sum over the partitions of high watermark minus last
	// stable offset when the read began: offsets of transactions still
	// open, which no read_committed reader has seen yet.
	Unread int64
}

// ReadTopic reads a topic the way a read_committed reader sees it: every
// partition from its log start offset up to its last stable offset as of
// the call, with a consumer client of its own built from opts (seed brokers
// and the like). It keeps the transaction markers the broker sends, so that
// it knows it reached the end of a partition even when the last offset
// before it is a marker.
func ReadTopic(ctx context.Context, topic string, opts ...kgo.Opt) (*Read, error) {
	admCl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("invariant: read %s: %w", topic, err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	offsets := func(what string, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		lo, err := list(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("invariant: read %s: list %s offsets: %w", topic, what, err)
		}
		out := map[int32]int64{}
		var errs []error
		lo.Each(func(o kadm.ListedOffset) {
			if o.Topic != topic {
				return
			}
			if o.Err != nil {
				errs = append(errs, fmt.Errorf("partition %d: %w", o.Partition, o.Err))
				return
			}
			out[o.Partition] = o.Offset
		})
		if len(errs) > 0 {
			return nil, fmt.Errorf("invariant: read %s: list %s offsets: %w", topic, what, errors.Join(errs...))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("invariant: read %s: list %s offsets: %w", topic, what, kerr.UnknownTopicOrPartition)
		}
		return out, nil
	}
	start, err := offsets("start", adm.ListStartOffsets)
	if err != nil {
		return nil, err
	}
	end, err := offsets("last stable", adm.ListCommittedOffsets)
	if err != nil {
		return nil, err
	}
	hwm, err := offsets("end", adm.ListEndOffsets)
	if err != nil {
		return nil, err
	}
	rd := &Read{Topic: topic, Start: start, End: end}
	for p, h := range hwm {
		if h > end[p] {
			rd.Unread += h - end[p]
		}
	}

	from := map[int32]kgo.Offset{}
	next := map[int32]int64{} // the next offset to read, per partition
	for p, s := range start {
		if end[p] > s {
			from[p] = kgo.NewOffset().At(s)
			next[p] = s
		}
	}
	if len(from) == 0 {
		return rd, nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("invariant: read %s: %w", topic, err)
	}
	defer cl.Close()
	byPart := map[int32][]*kgo.Record{}
	for len(next) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("invariant: read %s: %w (still to read: %s)", topic, err, progress(next, end))
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !kerr.IsRetriable(err) && ferr == nil {
				ferr = fmt.Errorf("invariant: read %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		var done []int32
		fs.EachRecord(func(r *kgo.Record) {
			n, ok := next[r.Partition]
			if r.Topic != topic || !ok || r.Offset < n || r.Offset >= end[r.Partition] {
				return
			}
			next[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				rd.Control++
			} else {
				byPart[r.Partition] = append(byPart[r.Partition], r)
			}
			if r.Offset+1 >= end[r.Partition] {
				done = append(done, r.Partition)
			}
		})
		if len(done) > 0 {
			for _, p := range done {
				delete(next, p)
			}
			cl.PauseFetchPartitions(map[string][]int32{topic: done})
		}
	}
	parts := make([]int32, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		rd.Records = append(rd.Records, byPart[p]...)
	}
	return rd, nil
}

func progress(next, end map[int32]int64) string {
	var parts []string
	for p, n := range next {
		parts = append(parts, fmt.Sprintf("partition %d at %d of %d", p, n, end[p]))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// CheckTopic reads a topic with ReadTopic and checks the observations
// against it with Check.
func CheckTopic(ctx context.Context, topic string, obs Observations, opts ...kgo.Opt) (Report, error) {
	rd, err := ReadTopic(ctx, topic, opts...)
	if err != nil {
		return Report{}, err
	}
	rep := Check(rd.Records, obs)
	rep.Topics = []string{topic}
	rep.Control, rep.Unread = rd.Control, rd.Unread
	return rep, nil
}
