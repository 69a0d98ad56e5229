package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/log"
)

// A worker handles one assigned partition, in offset order, in a goroutine
// of its own. The poll loop queues the partition's records; the worker
// applies the winner rule, calls the handler, dead-letters poison, and
// marks done records for commit.
type worker struct {
	s   *Subscription
	tp  topicPartition
	log *slog.Logger

	// hctx is the parent of the handlers' contexts: it ends when the
	// partition is lost, when the subscription is closed and, for a
	// revoked partition, at the revoke's deadline. sctx, derived from it,
	// also ends when the partition is revoked: the worker then finishes
	// the call in hand, and waits no longer (backoffs, restores,
	// dead-letter retries). Each handler call and dead-letter write also
	// ends with the member's session (see membership).
	hctx    context.Context
	hcancel context.CancelCauseFunc
	sctx    context.Context
	scancel context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex // guards queue, queued, paused
	queue  []batch
	queued int
	paused bool
	wake   chan struct{}

	// Owned by the worker goroutine: the winner rule's state of every
	// aggregate of the partition seen so far, and the next offset.
	index    *log.Index
	buf      []log.Event // AppendNext's buffer
	restored bool
	next     int64
}

// batch is consecutive records of the partition from one fetch, with the
// partition's last stable offset as of that fetch.
type batch struct {
	recs []*kgo.Record
	lso  int64
}

func newWorker(s *Subscription, tp topicPartition) *worker {
	// Handler contexts carry the values of Run's context, not its end.
	hctx, hcancel := context.WithCancelCause(s.base)
	stop := context.AfterFunc(s.hard, func() { hcancel(ErrClosed) })
	sctx, scancel := context.WithCancel(hctx)
	w := &worker{
		s:    s,
		tp:   tp,
		log:  s.log.With(slog.String("topic", tp.topic), slog.Int("partition", int(tp.partition))),
		hctx: hctx,
		hcancel: func(cause error) {
			stop()
			hcancel(cause)
		},
		sctx:    sctx,
		scancel: scancel,
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		index:   log.NewIndex(),
	}
	return w
}

// push queues records; the poll loop calls it. A partition with too many
// records waiting is paused.
func (w *worker) push(b batch) {
	w.mu.Lock()
	w.queue = append(w.queue, b)
	w.queued += len(b.recs)
	if !w.paused && w.queued >= pauseAt {
		w.paused = true
		w.s.cl.PauseFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the next batch, waiting for one; false once the worker must
// stop.
func (w *worker) take() (batch, bool) {
	for {
		if w.sctx.Err() != nil {
			return batch{}, false
		}
		w.mu.Lock()
		if len(w.queue) > 0 {
			b := w.queue[0]
			w.queue[0] = batch{}
			w.queue = w.queue[1:]
			w.queued -= len(b.recs)
			if w.paused && w.queued <= resumeAt {
				w.paused = false
				w.s.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
			}
			w.mu.Unlock()
			return b, true
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.sctx.Done():
		}
	}
}

func (w *worker) run() {
	defer w.s.wg.Done()
	defer close(w.done)
	defer w.hcancel(context.Canceled)
	for {
		b, ok := w.take()
		if !ok {
			return
		}
		for _, r := range b.recs {
			if w.sctx.Err() != nil || !w.handle(r, b.lso) {
				return
			}
		}
	}
}

// handle takes one record through the winner rule, the handler and, for
// poison, the dead-letter topic. It returns false when the worker must
// stop with the record not done (not marked for commit).
func (w *worker) handle(r *kgo.Record, lso int64) bool {
	if w.restored && r.Offset < w.next {
		return true // already done in this assignment
	}
	if !w.restored {
		if err := w.restore(r.Offset); err != nil {
			if errors.Is(err, kerr.OffsetOutOfRange) {
				err = fmt.Errorf("%w (records at the start of the partition were deleted; the winner rule needs every record from offset 0)", err)
			}
			if w.sctx.Err() == nil {
				w.s.fail(fmt.Errorf("consumer: %s: restore %s/%d before offset %d: %w", w.s.group, w.tp.topic, w.tp.partition, r.Offset, err))
			}
			return false
		}
		w.restored = true
	}
	w.next = r.Offset + 1
	if log.IsPlacementRecord(r) {
		w.markDone(r, lso) // the topic's placement, not an event
		return true
	}

	e, err := log.FromRecord(r)
	if err != nil {
		if !w.deadLetter(r, 0, err) {
			return false
		}
		w.markDone(r, lso)
		return true
	}
	out, accepted := w.index.Next(e, w.buf)
	w.buf = accepted
	if out != log.Accepted {
		w.log.Debug("record not delivered", slog.Int64("offset", r.Offset), slog.String("outcome", out.String()),
			slog.String("aggregate_id", e.AggregateID.String()), slog.Int64("version", e.AggregateVersion))
		w.markDone(r, lso)
		return true
	}
	// The record completed a save that won: deliver all its events, in
	// version order, then mark the record done.
	for _, ae := range accepted {
		if !w.deliver(r.Topic, ae) {
			return false
		}
	}
	w.markDone(r, lso)
	return true
}

// deliver hands one accepted event to the handler, with retries, and
// dead-letters it when it stays poison. It returns false when the worker
// must stop with the event not done.
func (w *worker) deliver(topic string, e log.Event) bool {
	ev := Event{Event: e, Topic: topic}
	poison := func(attempts int, err error) bool {
		return w.deadLetter(log.Record(topic, e), attempts, err)
	}
	if d := w.s.cfg.decoder; d != nil {
		var err error
		if ev.Value, err = d.Decode(e.Type, e.ContentType, e.Payload); err != nil {
			return poison(0, err)
		}
	}
	hooks := &w.s.cfg.hooks
	p := e.Position.Partition
	for attempt := 1; ; {
		sess, ok := w.owned()
		if !ok {
			return false
		}
		start := time.Now()
		err := w.call(sess, ev)
		if err == nil {
			if hooks.Handled != nil {
				hooks.Handled(topic, p, time.Since(start))
			}
			return true
		}
		if hooks.Failed != nil {
			hooks.Failed(topic, p, e.Position.Offset, attempt, err)
		}
		if w.sctx.Err() != nil {
			return false // revoked, lost or closed: the event stays undone
		}
		if sess.Err() != nil {
			// The member's session ended during the call: not an
			// attempt. The event starts again only if the member
			// still owns the partition.
			continue
		}
		if attempt >= w.s.cfg.tries {
			return poison(attempt, err)
		}
		wait := w.s.cfg.backoff(attempt)
		w.log.Warn("handler failed; retrying", slog.Int64("offset", e.Position.Offset), slog.String("event_id", e.ID.String()),
			slog.String("event_type", e.Type), slog.Int("attempt", attempt), slog.Duration("backoff", wait), slog.Any("error", err))
		if !sleep(w.sctx, wait) {
			return false
		}
		attempt++
	}
}

// owned waits until work on the partition may start: the member's
// membership in the group is confirmed for the assignment the partition
// belongs to (see membership). It returns the session's context, or false
// once the partition was lost, its revoke's deadline passed or the
// subscription closed. A revoked partition is still the member's until
// its revoke ends: the rest of a save in hand, and the dead-letter write
// of a record in hand, go on.
func (w *worker) owned() (context.Context, bool) {
	for {
		if w.hctx.Err() != nil {
			return nil, false
		}
		sess, changed, ok := w.s.m.check(time.Now())
		if ok {
			return sess, true
		}
		w.s.m.probeNow()
		select {
		case <-changed:
		case <-w.hctx.Done():
			return nil, false
		}
	}
}

// callContext returns the context of one handler call or dead-letter
// write: it ends with hctx and with the session.
func (w *worker) callContext(sess context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(w.hctx)
	stop := context.AfterFunc(sess, func() { cancel(context.Cause(sess)) })
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

// call calls the handler, turning a panic into an error.
func (w *worker) call(sess context.Context, ev Event) (err error) {
	ctx, done := w.callContext(sess)
	defer done()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
			w.log.Error("handler panicked", slog.Int64("offset", ev.Position.Offset), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
		}
	}()
	return w.s.handler.Handle(ctx, ev)
}

// markDone makes a record's offset committable; the commits themselves
// happen periodically, on revoke and when Run returns.
func (w *worker) markDone(r *kgo.Record, lso int64) {
	w.s.cl.MarkCommitRecords(r)
	if h := w.s.cfg.hooks.Lag; h != nil {
		h(r.Topic, r.Partition, max(lso-(r.Offset+1), 0))
	}
}

// restore rebuilds the winner rule's state of the partition's aggregates
// from the records before offset until, the offset the assignment starts
// at: the partition from its start, read with read_committed.
func (w *worker) restore(until int64) error {
	if until <= 0 {
		return nil
	}
	start := time.Now()
	t, err := w.s.topic(w.sctx, w.tp.topic)
	if err != nil {
		return fmt.Errorf("describe topic: %w", err)
	}
	_, scanned, err := w.s.rd.ScanOne(w.sctx, t, w.tp.partition, 0, until, func(r *kgo.Record) error {
		e, err := log.FromRecord(r)
		if err != nil {
			return nil // not a snaplog event: no reader counts it
		}
		_, w.buf = w.index.Next(e, w.buf)
		return nil
	})
	if err != nil {
		return err
	}
	w.log.Info("restored the partition's winner state", slog.Int64("until_offset", until), slog.Int64("records", scanned),
		slog.Int("aggregates", w.index.Len()), slog.Duration("took", time.Since(start)))
	return nil
}

// deadLetter stores a poison record in the dead-letter topic, retrying
// until the write succeeds or the partition is taken away; false when it
// was taken away first. attempts is the number of handler calls made.
func (w *worker) deadLetter(r *kgo.Record, attempts int, cause error) bool {
	dl := deadLetterRecord(w.s.cfg.dlq, w.s.group, r, attempts, cause, time.Now())
	for try := 1; ; try++ {
		sess, ok := w.owned()
		if !ok {
			return false
		}
		// The write in hand goes on when the partition is revoked, up
		// to the revoke's deadline; loss, the end of the session or
		// Close cut it.
		err := w.produce(sess, dl)
		if err == nil {
			break
		}
		if w.sctx.Err() != nil {
			return false
		}
		if sess.Err() != nil {
			continue // the gate decides whether it is written here
		}
		wait := w.s.cfg.backoff(try)
		w.log.Error("dead-letter write failed; the partition waits for it", slog.Int64("offset", r.Offset),
			slog.String("dead_letter_topic", w.s.cfg.dlq), slog.Int("try", try), slog.Duration("backoff", wait), slog.Any("error", err))
		if !sleep(w.sctx, wait) {
			return false
		}
	}
	w.log.Warn("dead-lettered a record", slog.Int64("offset", r.Offset), slog.String("dead_letter_topic", w.s.cfg.dlq),
		slog.Int("attempts", attempts), slog.Any("error", cause))
	if h := w.s.cfg.hooks.DeadLettered; h != nil {
		h(r.Topic, r.Partition, r.Offset, cause)
	}
	return true
}

// produce writes one dead letter, giving up when the call's context ends:
// the record may then still be written (the dead-letter topic can hold
// it twice), but the partition does not wait for it.
func (w *worker) produce(sess context.Context, dl *kgo.Record) error {
	ctx, done := w.callContext(sess)
	defer done()
	res := make(chan error, 1)
	r := *dl // a record of its own: a produce keeps its context in the record
	go func() { res <- w.s.cl.ProduceSync(ctx, &r).FirstErr() }()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// sleep waits for d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
