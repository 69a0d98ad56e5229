package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/snaplog/snaplog/internal/kread"
	"github.com/snaplog/snaplog/log"
)

// ErrClosed is returned by Run on a Subscription that was closed.
var ErrClosed = errors.New("consumer: subscription closed")

// ErrRunning is returned by Run on a Subscription that is running or has
// run: a Subscription runs once.
var ErrRunning = errors.New("consumer: subscription already ran")

// Event is one event of the log as the handler sees it: the stored event
// (envelope, payload and position) and, with WithRegistry, its typed value.
type Event struct {
	log.Event
	// Topic is the events topic the event was read from; Position holds
	// its partition and offset.
	Topic string
	// Value is the payload decoded by the Decoder given with WithRegistry,
	// nil without one.
	Value any
}

// Handler handles the events of a subscription. Handle is called for one
// event at a time per partition, and concurrently for different
// partitions. A nil error means the event is done: its offset may be
// committed. An error makes the subscription call Handle again with the same
// event after a backoff, and dead-letter it after the last try (see
// WithRetries). A panic counts as an error.
//
// ctx ends when the partition is lost to another member, when the member
// cannot confirm that it still owns it, when a revoke's deadline passes
// and when the subscription is closed; context.Cause tells which
// (ErrPartitionLost, ErrRevokeDeadline, ErrClosed). It does not end when
// Run's context ends, so that the event in hand can finish. A call whose
// context ended and that did not return nil is handled again, here or by
// the partition's next owner; see the package documentation for every
// case in which an event is handled more than once.
type Handler interface {
	Handle(ctx context.Context, e Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, e Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, e Event) error { return f(ctx, e) }

// Subscription reads events topics as a member of a consumer group and
// hands each winning event to its Handler. See the package documentation
// for its guarantees.
type Subscription struct {
	group   string
	handler Handler
	cfg     config
	log     *slog.Logger

	// hard ends at Close: handler contexts and every wait end with it.
	// base is Run's context without its end, the parent of handler
	// contexts.
	base       context.Context
	hard       context.Context
	hardCancel context.CancelFunc
	closeOnce  sync.Once

	mu      sync.Mutex // guards the fields below
	ran     bool
	runDone chan struct{}      // closed when Run returns; nil before Run
	cl      *kgo.Client        // the group member; produces dead letters too
	rd      *kread.Reader      // restore reads, on a client of their own
	m       *membership        // the member's session, as far as it knows
	probing context.CancelFunc // stops the membership probes
	probed  chan struct{}      // closed when the probes stopped
	workers map[topicPartition]*worker
	topics  map[string]*kread.Topic
	refused map[string]error // events topics refused for their placement (log.ErrPlacement)
	fatal   error
	stopRun context.CancelFunc
	wg      sync.WaitGroup // workers
}

type topicPartition struct {
	topic     string
	partition int32
}

// New returns a Subscription of group that hands events to handler. It
// validates every option and reports all problems at once; it does no I/O.
func New(group string, handler Handler, opts ...Option) (*Subscription, error) {
	cfg, err := newConfig(group, handler, opts)
	if err != nil {
		return nil, fmt.Errorf("consumer: new subscription: %w", err)
	}
	hard, cancel := context.WithCancel(context.Background())
	return &Subscription{
		group:      group,
		handler:    handler,
		cfg:        cfg,
		log:        cfg.logger.With(slog.String("group", group)),
		hard:       hard,
		hardCancel: cancel,
		workers:    make(map[topicPartition]*worker),
		topics:     make(map[string]*kread.Topic),
	}, nil
}

// DeadLetterTopic returns the name of the subscription's dead-letter topic.
func (s *Subscription) DeadLetterTopic() string { return s.cfg.dlq }

// Close stops the subscription: handler contexts end, events in hand are
// not committed unless their handler still succeeds, offsets of events
// handled before are committed, and Close returns once Run has returned.
// Close is idempotent. It must not be called from a Handler.
func (s *Subscription) Close() error {
	s.closeOnce.Do(s.hardCancel)
	s.mu.Lock()
	done := s.runDone
	s.mu.Unlock()
	if done != nil {
		<-done
	}
	return nil
}

// Run joins the group and handles events until ctx ends, Close is called,
// or a fatal error occurs. When ctx ends, Run finishes the events in hand
// (their handler calls run to completion, without further retries),
// commits the offsets of every handled event, leaves the group and returns
// nil. A fatal error (the client options are invalid, the dead-letter topic
// cannot be created, a partition cannot be restored) is returned, after the
// same shutdown once partitions are being handled. A Subscription runs
// once.
func (s *Subscription) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.hard.Err() != nil:
		s.mu.Unlock()
		return ErrClosed
	case s.ran:
		s.mu.Unlock()
		return ErrRunning
	}
	s.ran = true
	s.runDone = make(chan struct{})
	s.base = context.WithoutCancel(ctx)
	rctx, stop := context.WithCancel(ctx)
	s.stopRun = stop
	s.mu.Unlock()
	defer close(s.runDone)
	defer stop()
	defer context.AfterFunc(s.hard, stop)()

	if err := s.start(rctx); err != nil {
		if rctx.Err() != nil {
			return nil // stopped before it started
		}
		return err
	}
	s.log.Info("subscription started", slog.Any("topics", s.cfg.topics()), slog.String("dead_letter_topic", s.cfg.dlq))

	for rctx.Err() == nil {
		fs := s.cl.PollRecords(rctx, maxPollRecords)
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			s.log.Warn("fetch failed; retrying", slog.String("topic", topic), slog.Int("partition", int(p)), slog.Any("error", err))
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 && !s.isRefused(p.Topic) {
				s.worker(p.Topic, p.Partition).push(batch{recs: p.Records, lso: p.LastStableOffset})
			}
		})
		s.cl.AllowRebalance()
	}
	return s.shutdown()
}

// maxPollRecords bounds one poll; pauseAt and resumeAt bound the records
// waiting for a partition's goroutine: past pauseAt the partition is not
// fetched until its backlog falls to resumeAt.
const (
	maxPollRecords = 500
	pauseAt        = 2000
	resumeAt       = 500
)

// revokeBounds bound the work of a revoke (and of the revoke that a
// shutdown is): revoked partitions' work in hand ends by work after the
// revoke began, and their commit by commit. A rebalance may have begun up
// to a heartbeat interval before the member learns of it, and the group
// expels a member that has not rejoined within the rebalance timeout of
// its beginning: commit is the rebalance timeout less a heartbeat
// interval, work leaves a quarter of that, at most 5 s, to the commit.
type revokeBounds struct{ work, commit time.Duration }

func newRevokeBounds(cl *kgo.Client) revokeBounds {
	rebalance, _ := cl.OptValue(kgo.RebalanceTimeout).(time.Duration)
	heartbeat, _ := cl.OptValue(kgo.HeartbeatInterval).(time.Duration)
	total := rebalance - heartbeat
	if total < rebalance/2 {
		total = rebalance / 2
	}
	reserve := min(total/4, 5*time.Second)
	return revokeBounds{work: total - reserve, commit: total}
}

// start creates the clients and the dead-letter topic.
func (s *Subscription) start(ctx context.Context) error {
	// Metadata every 30 s, not franz-go's 5 min: a topic that gained
	// partitions triggers the rebalance that refuses it that much sooner.
	base := []kgo.Opt{kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMaxAge(30 * time.Second)}
	opts := append(append(base, s.cfg.clientOpts...),
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(s.cfg.topics()...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(s.cfg.commitInterval),
		kgo.AutoCommitCallback(s.committed),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	)
	// The restore client reads ranges with its own connections, so that
	// its fetches do not queue behind the group member's long polls. It
	// also checks the events topics' placement, and may write a topic's
	// placement record to partition 0 (log.CheckPlacement).
	rcl, err := kgo.NewClient(append(append([]kgo.Opt(nil), s.cfg.clientOpts...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return fmt.Errorf("consumer: %s: new client: %w", s.group, err)
	}
	if err := s.ensureDeadLetterTopic(ctx, rcl); err != nil {
		rcl.Close()
		return err
	}
	// The group callbacks may run as soon as the client exists.
	m := newMembership(s.log)
	s.mu.Lock()
	s.m, s.rd = m, kread.NewReader(rcl)
	s.mu.Unlock()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		rcl.Close()
		return fmt.Errorf("consumer: %s: new client: %w", s.group, err)
	}
	if next, _ := cl.OptValue(kgo.ServerSideBalancer).(bool); next {
		cl.Close()
		rcl.Close()
		return fmt.Errorf("consumer: %s: kgo.ServerSideBalancer: the subscription uses the classic group protocol", s.group)
	}
	session, _ := cl.OptValue(kgo.SessionTimeout).(time.Duration)
	rebalance, _ := cl.OptValue(kgo.RebalanceTimeout).(time.Duration)
	heartbeat, _ := cl.OptValue(kgo.HeartbeatInterval).(time.Duration)
	var instance *string
	if v := cl.OptValues(kgo.InstanceID); len(v) == 2 && v[1] == true {
		id, _ := v[0].(string)
		instance = &id
	}
	m.configure(session, rebalance)
	pctx, stopProbes := context.WithCancel(context.Background())
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		m.probe(pctx, cl, s.group, instance, heartbeat)
	}()
	s.mu.Lock()
	s.cl = cl
	s.probing, s.probed = stopProbes, probed
	s.mu.Unlock()
	return nil
}

// ensureDeadLetterTopic creates the dead-letter topic when it is missing.
func (s *Subscription) ensureDeadLetterTopic(ctx context.Context, cl *kgo.Client) error {
	adm := kadm.NewClient(cl)
	name := s.cfg.dlq
	topics, err := adm.ListTopics(ctx, name)
	if err != nil {
		return fmt.Errorf("consumer: %s: look up dead-letter topic %s: %w", s.group, name, err)
	}
	if topics.Has(name) {
		if err := topics[name].Err; err != nil {
			return fmt.Errorf("consumer: %s: dead-letter topic %s: %w", s.group, name, err)
		}
		return nil
	}
	cfg := map[string]*string{
		"cleanup.policy":  kadm.StringPtr("delete"),
		"retention.ms":    kadm.StringPtr("-1"),
		"retention.bytes": kadm.StringPtr("-1"),
	}
	if _, err := adm.CreateTopic(ctx, -1, -1, cfg, name); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("consumer: %s: create dead-letter topic %s: %w", s.group, name, err)
	}
	s.log.Info("created dead-letter topic", slog.String("topic", name))
	return nil
}

// shutdown finishes the events in hand, commits, leaves the group and
// closes the clients.
func (s *Subscription) shutdown() error {
	s.cl.AllowRebalance()
	// Leaving revokes every partition: onRevoked stops the partitions'
	// goroutines once their event in hand is done and commits.
	if err := s.cl.LeaveGroupContext(s.hard); err != nil && s.hard.Err() == nil {
		s.log.Warn("leave group failed", slog.Any("error", err))
	}
	s.probing()
	<-s.probed
	s.m.stop(ErrClosed)
	s.cl.Close()
	// Goroutines of partitions the group never revoked (a leave cut short
	// by Close) stop here without committing.
	s.mu.Lock()
	for tp, w := range s.workers {
		w.hcancel(ErrClosed)
		delete(s.workers, tp)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.rd.Client.Close()
	s.mu.Lock()
	err := s.fatal
	s.mu.Unlock()
	s.log.Info("subscription stopped")
	return err
}

// fail records a fatal error and stops Run.
func (s *Subscription) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fatal == nil {
		s.fatal = err
	}
	if s.stopRun != nil {
		s.stopRun()
	}
}

// worker returns the goroutine of a partition, starting it if needed. Only
// the poll loop starts workers, between a poll and AllowRebalance, so no
// rebalance callback runs meanwhile.
func (s *Subscription) worker(topic string, partition int32) *worker {
	tp := topicPartition{topic, partition}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workers[tp]
	if w == nil {
		w = newWorker(s, tp)
		s.workers[tp] = w
		s.wg.Add(1)
		go w.run()
	}
	return w
}

// detach removes the workers of the given partitions.
func (s *Subscription) detach(tps map[string][]int32) []*worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ws []*worker
	for topic, ps := range tps {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			if w := s.workers[tp]; w != nil {
				ws = append(ws, w)
				delete(s.workers, tp)
			}
		}
	}
	return ws
}

func (s *Subscription) onAssigned(ctx context.Context, cl *kgo.Client, tps map[string][]int32) {
	// Called at every new assignment, after the partitions that moved
	// were revoked: the partitions still held belong to the member id
	// the client now has.
	member, _ := cl.GroupMetadata()
	s.m.assign(member)
	if len(tps) == 0 {
		return
	}
	// I9: a topic whose partition count changed since its aggregates were
	// placed is not delivered at all. Adding partitions makes the group
	// rebalance, so the assignment is where a running member learns of it.
	resume := make(map[string][]int32, len(tps))
	for topic, ps := range tps {
		if err := s.checkPlacement(ctx, cl, topic); err != nil {
			continue
		}
		resume[topic] = ps
	}
	// Fetching a partition paused in an earlier assignment must start
	// again.
	cl.ResumeFetchPartitions(resume)
	s.log.Info("partitions assigned", slog.Any("partitions", tps))
}

// checkPlacement checks an assigned events topic's placement against its
// partition count (log.CheckPlacement). A topic refused stays refused: its
// partitions are paused and their goroutines stopped, none of its events
// is handed to the handler any more, and Run stops with the error.
func (s *Subscription) checkPlacement(ctx context.Context, cl *kgo.Client, topic string) error {
	if err := s.refusal(topic); err != nil {
		cl.PauseFetchTopics(topic)
		return err
	}
	s.mu.Lock()
	rd := s.rd
	s.mu.Unlock()
	pl, err := log.CheckPlacement(ctx, rd.Client, topic, s.cfg.declared(topic))
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err // the assignment is over; the next one checks again
	}
	cl.PauseFetchTopics(topic)
	s.mu.Lock()
	if s.refused == nil {
		s.refused = make(map[string]error)
	}
	s.refused[topic] = err
	var stop []*worker
	for tp, w := range s.workers {
		if tp.topic == topic {
			stop = append(stop, w)
		}
	}
	s.mu.Unlock()
	for _, w := range stop {
		w.scancel() // the event in hand finishes; nothing more is handled
	}
	if errors.Is(err, log.ErrPlacement) {
		s.log.Error("events topic refused: not partitioned as its aggregates were placed; none of its events is handled",
			slog.String("topic", topic), slog.Int("placed_partitions", int(pl.Placed)), slog.Int("partitions", int(pl.Partitions)),
			slog.Any("error", err))
	}
	s.fail(fmt.Errorf("consumer: %s: %w", s.group, err))
	return err
}

// refusal returns why a topic was refused, nil if it was not.
func (s *Subscription) refusal(topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused[topic]
}

func (s *Subscription) isRefused(topic string) bool { return s.refusal(topic) != nil }

// onRevoked stops the revoked partitions' goroutines, each once its event
// in hand is done or the revoke's time is up, then commits what they
// handled, before the group moves the partitions elsewhere.
func (s *Subscription) onRevoked(_ context.Context, cl *kgo.Client, tps map[string][]int32) {
	if len(tps) == 0 {
		return
	}
	start := time.Now()
	bounds := newRevokeBounds(cl)
	ws := s.detach(tps)
	for _, w := range ws {
		w.scancel()
	}
	// Past the deadline, the handler calls and dead-letter writes in
	// hand see their contexts end; what they did not finish stays
	// uncommitted, for the partitions' next owners.
	late := time.AfterFunc(bounds.work, func() {
		for _, w := range ws {
			w.hcancel(ErrRevokeDeadline)
		}
	})
	for _, w := range ws {
		<-w.done
	}
	late.Stop()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(bounds.commit))
	defer cancel()
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		s.log.Error("commit on revoke failed; the partitions' next owners will handle again the events handled since the last commit",
			slog.Any("partitions", tps), slog.Any("error", err))
	}
	cl.ResumeFetchPartitions(tps)
	s.log.Info("partitions revoked", slog.Any("partitions", tps), slog.Duration("took", time.Since(start)))
}

// onLost stops the lost partitions' goroutines without committing: the
// partitions may already be handled elsewhere.
func (s *Subscription) onLost(_ context.Context, cl *kgo.Client, tps map[string][]int32) {
	if len(tps) == 0 {
		return
	}
	ws := s.detach(tps)
	for _, w := range ws {
		w.hcancel(ErrPartitionLost)
	}
	for _, w := range ws {
		<-w.done
	}
	cl.ResumeFetchPartitions(tps)
	s.log.Warn("partitions lost; events handled since the last commit will be handled again", slog.Any("partitions", tps))
}

// committed reports failed periodic commits. A commit refused because
// the group does not know the member, or not in this generation, ends the
// session or its lease (see membership) without waiting for the next
// heartbeat.
func (s *Subscription) committed(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.log.Warn("commit failed", slog.Any("error", err))
		}
		return
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			err := kerr.ErrorForCode(p.ErrorCode)
			if err == nil {
				continue
			}
			switch {
			case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.FencedInstanceID):
				s.m.lost(req.MemberID, err)
			case errors.Is(err, kerr.IllegalGeneration):
				s.m.suspect(req.MemberID)
			}
			s.log.Warn("commit failed", slog.String("topic", t.Topic), slog.Int("partition", int(p.Partition)), slog.Any("error", err))
		}
	}
}

// topic returns a topic's description for restore reads.
func (s *Subscription) topic(ctx context.Context, name string) (*kread.Topic, error) {
	s.mu.Lock()
	t := s.topics[name]
	rd := s.rd
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}
	t, err := kread.Describe(ctx, rd.Client, name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if have := s.topics[name]; have != nil {
		return have, nil
	}
	s.topics[name] = t
	return t, nil
}
