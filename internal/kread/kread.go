// Package kread reads Kafka partitions the way snaplog's stores need:
// read_committed fetches over offset ranges of several partitions at once,
// sent straight to the partition leaders, with leader changes, broker
// restarts and retriable errors retried until the context ends.
//
// It exists because snaplog reads ranges (an aggregate's partition from a
// position up to the end as of the call), not subscriptions: a consumer
// client per read would cost a connection and a metadata round trip each.
package kread

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
)

// Topic is a topic's id, partition count and partition leaders.
type Topic struct {
	Name       string
	ID         [16]byte
	Partitions int32

	mu      sync.Mutex
	leaders []int32
}

// Describe asks the cluster, bypassing every client cache, for a topic's
// id, partitions and leaders. A missing topic is an error wrapping
// kerr.UnknownTopicOrPartition.
func Describe(ctx context.Context, cl *kgo.Client, name string) (*Topic, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(name)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, Unanswered(cl, err)
	}
	for _, mt := range resp.Topics {
		if mt.Topic == nil || *mt.Topic != name {
			continue
		}
		if err := kerr.ErrorForCode(mt.ErrorCode); err != nil {
			return nil, err
		}
		t := &Topic{Name: name, ID: mt.TopicID, Partitions: int32(len(mt.Partitions)), leaders: make([]int32, len(mt.Partitions))}
		for _, p := range mt.Partitions {
			if p.Partition >= 0 && int(p.Partition) < len(t.leaders) {
				t.leaders[p.Partition] = p.Leader
			}
		}
		return t, nil
	}
	return nil, kerr.UnknownTopicOrPartition
}

// Led reports whether every partition has a leader.
func (t *Topic) Led() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.leaders {
		if l < 0 {
			return false
		}
	}
	return len(t.leaders) > 0
}

// Leader returns the leader of partition p, -1 when it has none.
func (t *Topic) Leader(p int32) int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p < 0 || int(p) >= len(t.leaders) {
		return -1
	}
	return t.leaders[p]
}

// Refresh reloads the partition leaders.
func (t *Topic) Refresh(ctx context.Context, cl *kgo.Client) {
	fresh, err := Describe(ctx, cl, t.Name)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for p := range t.leaders {
		if p < len(fresh.leaders) {
			t.leaders[p] = fresh.leaders[p]
		}
	}
}

// Range is one partition's part of a read: records from Off up to Until;
// Until < 0 means the partition's last stable offset as of the first fetch.
// Reading moves Off and counts the records in Scanned.
type Range struct {
	Off, Until int64
	Scanned    int64
	// Stable ends the range at the partition's last stable offset when
	// Until lies beyond it, rather than wait for open transactions.
	Stable bool
	// LastStable is the partition's last stable offset in the last fetch
	// answer (every record below it is decided; -1 when the broker does
	// not say), 0 before the first.
	LastStable int64
}

// Done reports whether the range is read.
func (r *Range) Done() bool { return r.Until >= 0 && r.Off >= r.Until }

// Reader fetches with one client.
type Reader struct {
	Client *kgo.Client
	dec    kgo.Decompressor
	// FetchBytes bounds each partition's part of a fetch response.
	FetchBytes int32
}

// NewReader returns a Reader on cl.
func NewReader(cl *kgo.Client) *Reader {
	return &Reader{Client: cl, dec: kgo.DefaultDecompressor(), FetchBytes: 4 << 20}
}

// ScanOne is Scan of one partition. It returns the offset it read up to and
// how many records it went through.
func (rd *Reader) ScanOne(ctx context.Context, t *Topic, p int32, from, until int64, fn func(*kgo.Record) error) (int64, int64, error) {
	r := &Range{Off: from, Until: until}
	err := rd.Scan(ctx, t, map[int32]*Range{p: r}, func(_ int32, rec *kgo.Record) error { return fn(rec) })
	return r.Off, r.Scanned, err
}

// RecordAt returns the committed record at offset in partition p, or nil
// when there is none (an aborted transaction's, a control record, one not
// stable yet).
func (rd *Reader) RecordAt(ctx context.Context, t *Topic, p int32, offset int64) (*kgo.Record, error) {
	var rec *kgo.Record
	err := rd.Scan(ctx, t, map[int32]*Range{p: {Off: offset, Until: offset + 1, Stable: true}}, func(_ int32, r *kgo.Record) error {
		if r.Offset == offset {
			rec = r
		}
		return nil
	})
	return rec, err
}

// Scan fetches partitions of t with read_committed, each over its range,
// all partitions led by one broker in one fetch request, and calls fn for
// every record in range, in offset order per partition. It retries what
// retrying cures until ctx ends; an error of fn ends it at once.
func (rd *Reader) Scan(ctx context.Context, t *Topic, ranges map[int32]*Range, fn func(int32, *kgo.Record) error) error {
	backoff := 50 * time.Millisecond
	for {
		byLeader := map[int32][]int32{}
		for p, r := range ranges {
			if !r.Done() {
				l := t.Leader(p)
				byLeader[l] = append(byLeader[l], p)
			}
		}
		if len(byLeader) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		retry := false
		for leader, ps := range byLeader {
			err := rd.Fetch(ctx, t, leader, ps, ranges, 0, fn)
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !Retriable(err) {
				return err
			}
			retry = true
		}
		if retry {
			t.Refresh(ctx, rd.Client)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		} else {
			backoff = 50 * time.Millisecond
		}
	}
}

// FetchError is a failure that retrying does not cure: a record fn
// refused, a corrupt batch, a partition error that is not retriable.
type FetchError struct{ Err error }

func (e *FetchError) Error() string { return e.Err.Error() }
func (e *FetchError) Unwrap() error { return e.Err }

// Retriable reports whether retrying may cure err: a retriable Kafka error
// or a failure to reach the broker (a restart, a leader move).
func Retriable(err error) bool {
	var fe *FetchError
	if errors.As(err, &fe) {
		return false
	}
	if kerr.IsRetriable(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// Fetch sends one read_committed fetch request for partitions ps of t to
// their leader, waiting at most maxWait at the broker for data, and calls
// fn for the records in range. Ranges move as records are read.
func (rd *Reader) Fetch(ctx context.Context, t *Topic, leader int32, ps []int32, ranges map[int32]*Range, maxWait time.Duration, fn func(int32, *kgo.Record) error) error {
	if leader < 0 {
		return kerr.LeaderNotAvailable
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = int32(maxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = rd.FetchBytes
	req.IsolationLevel = 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = t.Name, t.ID
	for _, p := range ps {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, ranges[p].Off, rd.FetchBytes
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	r, err := rd.Client.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return err
	}
	resp := r.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	var retriable error
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			part := &resp.Topics[i].Partitions[j]
			rg := ranges[part.Partition]
			if rg == nil {
				continue
			}
			if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
				if !kerr.IsRetriable(err) {
					return &FetchError{fmt.Errorf("fetch %s/%d@%d: %w", t.Name, part.Partition, rg.Off, err)}
				}
				retriable = err
				continue
			}
			rg.LastStable = part.LastStableOffset
			if rg.Stable && part.LastStableOffset >= 0 && rg.Until > part.LastStableOffset {
				rg.Until = max(rg.Off, part.LastStableOffset)
				if rg.Done() {
					continue
				}
			}
			if rg.Until < 0 {
				rg.Until = part.LastStableOffset
				if rg.Until < 0 {
					rg.Until = part.HighWatermark
				}
				if rg.Done() {
					continue
				}
			}
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				Offset:         rg.Off,
				IsolationLevel: kgo.ReadCommitted(),
				Topic:          t.Name,
				Partition:      part.Partition,
			}, part, rd.dec, nil)
			if fp.Err != nil {
				return &FetchError{fmt.Errorf("fetch %s/%d@%d: %w", t.Name, part.Partition, rg.Off, fp.Err)}
			}
			for _, rec := range fp.Records {
				if rec.Offset >= rg.Until {
					rg.Off = rg.Until
					break
				}
				rg.Scanned++
				if err := fn(part.Partition, rec); err != nil {
					return &FetchError{fmt.Errorf("%s/%d@%d: %w", t.Name, part.Partition, rec.Offset, err)}
				}
				rg.Off = rec.Offset + 1
			}
			if !rg.Done() && next > rg.Off {
				rg.Off = min(next, rg.Until)
			}
		}
	}
	return retriable
}

// TopicSettings returns what the stores check of a topic before they use
// it: its effective configuration, as a lookup of a setting's value, and its
// replication factor (the most replicas of any of its partitions).
func TopicSettings(ctx context.Context, adm *kadm.Client, name string) (lookup func(key string) (string, bool), replicationFactor int, err error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return nil, 0, fmt.Errorf("describe configs of topic %s: %w", name, err)
	}
	rc, err := rcs.On(name, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return nil, 0, fmt.Errorf("describe configs of topic %s: %w", name, err)
	}
	lookup = func(key string) (string, bool) {
		for _, c := range rc.Configs {
			if c.Key == key && c.Value != nil {
				return *c.Value, true
			}
		}
		return "", false
	}
	tds, err := adm.ListTopics(ctx, name)
	if err != nil {
		return nil, 0, fmt.Errorf("describe replicas of topic %s: %w", name, err)
	}
	td, ok := tds[name]
	if !ok {
		return nil, 0, fmt.Errorf("describe replicas of topic %s: %w", name, kerr.UnknownTopicOrPartition)
	}
	if td.Err != nil {
		return nil, 0, fmt.Errorf("describe replicas of topic %s: %w", name, td.Err)
	}
	for _, p := range td.Partitions {
		replicationFactor = max(replicationFactor, len(p.Replicas))
	}
	return lookup, replicationFactor, nil
}

// ReplicationFactor is the rule by which the log and the snapshot store
// choose the replication factor of a topic they create, given the one
// configured (0: not set; -1: the broker's default): it returns the factor
// to ask for (request, -1 for the broker's default) and the factor the
// topic will have (factor, -1 when the broker does not say). Not set means
// min(3, brokers); the broker's default is learned with a validate-only
// creation of name with partitions and cfg.
func ReplicationFactor(ctx context.Context, adm *kadm.Client, configured int16, name string, partitions int32, cfg map[string]*string) (request, factor int16, err error) {
	switch {
	case configured > 0:
		return configured, configured, nil
	case configured == 0:
		m, err := adm.BrokerMetadata(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("create topic %s: list the cluster's brokers: %w", name, err)
		}
		f := DefaultReplicationFactor(len(m.Brokers))
		return f, f, nil
	default:
		rs, err := adm.ValidateCreateTopics(ctx, partitions, -1, cfg, name)
		if r, ok := rs[name]; err == nil && ok && r.Err == nil && r.ReplicationFactor > 0 {
			return -1, r.ReplicationFactor, nil
		}
		return -1, -1, nil
	}
}

// DefaultReplicationFactor is min(3, brokers), and at least 1.
func DefaultReplicationFactor(brokers int) int16 { return int16(min(3, max(1, brokers))) }

// SharedOpts returns the options of cl, a client a caller hands to a log
// or store (WithClient), from which the log or store makes the clients of
// its own that need settings of their own (acks, partitioning, transactional
// ids, connections that long-poll). It refuses a client whose options those
// clients would inherit to harm: one that consumes (a group, topics or
// partitions: each client made from it would consume too, or join the
// group) or is transactional (it would be fenced by them).
func SharedOpts(cl *kgo.Client) ([]kgo.Opt, error) {
	if cl == nil {
		return nil, errors.New("WithClient: nil client")
	}
	var why []string
	if g, _ := cl.OptValue(kgo.ConsumerGroup).(string); g != "" {
		why = append(why, fmt.Sprintf("it is in consumer group %q", g))
	}
	if ts, _ := cl.OptValue(kgo.ConsumeTopics).([]string); len(ts) > 0 {
		why = append(why, fmt.Sprintf("it consumes topics %v", ts))
	}
	if ps, _ := cl.OptValue(kgo.ConsumePartitions).(map[string]map[int32]kgo.Offset); len(ps) > 0 {
		why = append(why, "it consumes partitions")
	}
	if v := cl.OptValues(kgo.TransactionalID); len(v) == 2 && v[1] == true {
		why = append(why, fmt.Sprintf("it is transactional (%v)", v[0]))
	}
	if len(why) > 0 {
		return nil, fmt.Errorf("WithClient: %s; give a client of connection settings only (seed brokers, TLS, SASL)", strings.Join(why, ", "))
	}
	return cl.Opts(), nil
}

// Unanswered wraps the error of a request the cluster did not answer (a
// dial, TLS or SASL failure, a timeout) with where the client was sent and
// how it authenticates, so that a wrong address, certificate or password
// names the brokers and the mechanism: "brokers 127.0.0.1:9094 (SASL
// SCRAM-SHA-512): SASL_AUTHENTICATION_FAILED: ...".
func Unanswered(cl *kgo.Client, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	seeds, _ := cl.OptValue(kgo.SeedBrokers).([]string)
	how := "no SASL"
	if ms, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism); len(ms) > 0 {
		names := make([]string, len(ms))
		for i, m := range ms {
			names[i] = m.Name()
		}
		how = "SASL " + strings.Join(names, ",")
	}
	if c, _ := cl.OptValue(kgo.DialTLSConfig).(*tls.Config); c != nil {
		how += ", TLS"
	}
	return fmt.Errorf("brokers %s (%s): %w", strings.Join(seeds, ","), how, err)
}
