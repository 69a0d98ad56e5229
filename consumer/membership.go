package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Causes of the end of a handler's context, as context.Cause reports them.
var (
	// ErrPartitionLost: the group gave the partition to another member
	// (the member's session ended), or the member could not confirm its
	// membership in time to be sure it still owned the partition.
	ErrPartitionLost = errors.New("consumer: partition lost")
	// ErrRevokeDeadline: the partition was revoked and the time left
	// before the group's rebalance timeout ran out.
	ErrRevokeDeadline = errors.New("consumer: revoked partition past its deadline")
)

// membership is what the member knows of its own session: whether the
// group still knows it, in the generation of its latest assignment, and
// until when it can be sure the group has not expelled it.
//
// A probe (a Heartbeat request with the member id and generation the
// group client is using) answered without error, or with
// REBALANCE_IN_PROGRESS, confirms the member at the time it was sent. The
// group cannot then expel the member before a session timeout from that
// time, nor, as no rebalance was in progress when the probe arrived,
// before a rebalance timeout from it: that is the lease. The lease of a
// probe answered REBALANCE_IN_PROGRESS runs at most a rebalance timeout
// from the last probe answered without error, when no rebalance had
// begun. Work on a partition starts only within the lease of the member
// the partition was assigned to; an answer UNKNOWN_MEMBER_ID or
// FENCED_INSTANCE_ID, or a lease that runs out, ends the session's
// context, which every handler call and dead-letter write derives from.
type membership struct {
	log  *slog.Logger
	kick chan struct{} // asks the prober to probe now

	mu                 sync.Mutex
	session, rebalance time.Duration
	assigned           string    // member id of the latest assignment
	member             string    // member id the lease confirms
	until              time.Time // end of the lease
	stable             time.Time // when the member's last probe answered without error was sent
	ctx                context.Context
	cancel             context.CancelCauseFunc
	changed            chan struct{} // closed at every change
	timer              *time.Timer   // ends ctx at until
	waiting            bool          // work waits for a confirmation; logged once
}

func newMembership(logger *slog.Logger) *membership {
	m := &membership{
		log:     logger,
		kick:    make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
	m.ctx, m.cancel = context.WithCancelCause(context.Background())
	m.timer = time.AfterFunc(time.Hour, m.expire)
	m.timer.Stop()
	return m
}

// configure sets the group's timeouts, before the first probe.
func (m *membership) configure(session, rebalance time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.session, m.rebalance = session, rebalance
}

// check reports whether work on a partition of the latest assignment may
// start now, with the session's context, and the channel closed at the
// next change.
func (m *membership) check(now time.Time) (context.Context, <-chan struct{}, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok := m.assigned != "" && m.member == m.assigned && now.Before(m.until) && m.ctx.Err() == nil
	if !ok && !m.waiting {
		m.waiting = true
		m.log.Debug("membership not confirmed; no event starts until the group confirms it",
			slog.String("member_id", m.assigned), slog.Any("cause", context.Cause(m.ctx)))
	}
	return m.ctx, m.changed, ok
}

// probeNow asks the prober for a probe, without waiting.
func (m *membership) probeNow() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// broadcast wakes everything waiting for a change; m.mu is held.
func (m *membership) broadcast() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// assign records the member id of a new assignment.
func (m *membership) assign(member string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if member == m.assigned {
		return
	}
	m.assigned = member
	m.broadcast()
	m.probeNow()
}

// confirm extends the lease of member from a probe sent at sent; stable
// is false when the group answered REBALANCE_IN_PROGRESS.
func (m *membership) confirm(member string, sent time.Time, stable bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if member != m.member {
		if m.member != "" {
			// The group client only takes a new member id once the
			// group forgot the old one.
			m.cancel(fmt.Errorf("%w: member %s left the group", ErrPartitionLost, m.member))
		}
		m.member, m.until, m.stable = member, time.Time{}, time.Time{}
	}
	if m.ctx.Err() != nil {
		m.ctx, m.cancel = context.WithCancelCause(context.Background())
	}
	var until time.Time
	switch {
	case stable:
		m.stable = sent
		until = sent.Add(min(m.session, m.rebalance))
	case !m.stable.IsZero():
		until = earlier(sent.Add(m.session), m.stable.Add(m.rebalance))
	default:
		until = m.until
	}
	if until.After(m.until) {
		m.until = until
	}
	m.timer.Reset(time.Until(m.until))
	if m.waiting && time.Now().Before(m.until) && m.member == m.assigned {
		m.waiting = false
		m.log.Debug("membership confirmed", slog.String("member_id", member))
	}
	m.broadcast()
}

// lost ends the session of member: the group no longer knows it.
func (m *membership) lost(member string, cause error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if member != m.assigned && member != m.member {
		return // not the session of the partitions being handled
	}
	if m.ctx.Err() == nil {
		m.log.Warn("the group no longer knows this member; its partitions' work stops", slog.String("member_id", member), slog.Any("error", cause))
	}
	m.cancel(fmt.Errorf("%w: %w", ErrPartitionLost, cause))
	m.member, m.until, m.stable = "", time.Time{}, time.Time{}
	m.broadcast()
}

// suspect ends the lease of member without ending its session's context:
// no event starts until a probe confirms the member or the lease would
// have run out anyway.
func (m *membership) suspect(member string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if member != m.member {
		return
	}
	if now := time.Now(); now.Before(m.until) {
		m.until = now
		m.broadcast()
	}
	m.probeNow()
}

// expire ends the session's context once the lease ran out.
func (m *membership) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.until.IsZero() || time.Now().Before(m.until) || m.ctx.Err() != nil {
		return
	}
	m.log.Warn("membership not confirmed within the session and rebalance timeouts; the partitions' work stops",
		slog.String("member_id", m.member), slog.Time("lease_end", m.until))
	m.cancel(fmt.Errorf("%w: membership not confirmed since %s", ErrPartitionLost, m.until.Format(time.RFC3339Nano)))
	m.broadcast()
	m.probeNow()
}

// stop ends the session's context and its timer.
func (m *membership) stop(cause error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.timer.Stop()
	m.cancel(cause)
	m.broadcast()
}

// probe confirms the member's session every interval, and at once when
// asked, until ctx ends.
func (m *membership) probe(ctx context.Context, cl *kgo.Client, group string, instance *string, every time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		t.Reset(m.probeOnce(ctx, cl, group, instance, every))
	}
}

// probeOnce sends one probe and returns the wait before the next.
func (m *membership) probeOnce(ctx context.Context, cl *kgo.Client, group string, instance *string, every time.Duration) time.Duration {
	member, generation := cl.GroupMetadata()
	if member == "" || generation < 0 {
		return every // not in the group yet
	}
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation, req.InstanceID = group, member, generation, instance
	m.mu.Lock()
	timeout := max(m.session/2, every)
	m.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sent := time.Now()
	resp, err := req.RequestWith(pctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	switch {
	case err == nil:
		m.confirm(member, sent, true)
	case errors.Is(err, kerr.RebalanceInProgress):
		m.confirm(member, sent, false)
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.FencedInstanceID):
		m.lost(member, err)
	case errors.Is(err, kerr.IllegalGeneration):
		// The group moved to a generation the client is joining: ask
		// again with the new one.
		return min(every, 50*time.Millisecond)
	case ctx.Err() == nil:
		m.log.Debug("membership probe failed", slog.Any("error", err))
		return min(every, 250*time.Millisecond)
	}
	return every
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
