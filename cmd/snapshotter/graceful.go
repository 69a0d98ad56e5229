package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/snaplog/snaplog/snapshotter"
)

const (
	// stopWait bounds how long a stop waits for a moment without a
	// transaction in flight before it ends Run's context regardless.
	stopWait = 10 * time.Second
	// stopCheckEvery is how often a stop looks at the snapshotter's figures.
	stopCheckEvery = 20 * time.Millisecond
)

// graceful ends a snapshotter's Run context at a moment when none of its
// transactions is in flight. Run, when its context ends during a
// transaction, returns that transaction's error without writing its final
// snapshots and checkpoints, and leaves the transaction open until the
// broker times it out, which holds back read_committed readers of the
// snapshot topic. So a stop waits for the end of the next commit (the
// snapshotter's hooks run then, in its loop, before it begins another) or
// for a moment when the snapshotter has nothing to write, at most stopWait.
type graceful struct {
	s         *snapshotter.Snapshotter
	ctx       context.Context // Run's
	cancel    context.CancelFunc
	requested atomic.Bool
}

// newGraceful returns Run's context and the graceful stop of s running with
// it.
func newGraceful(s *snapshotter.Snapshotter) (context.Context, *graceful) {
	ctx, cancel := context.WithCancel(context.Background())
	return ctx, &graceful{s: s, ctx: ctx, cancel: cancel}
}

// committed is to be called by the SnapshotsWritten and CheckpointWritten
// hooks: right after a commit is a moment without a transaction.
func (g *graceful) committed() {
	if g.requested.Load() {
		g.cancel()
	}
}

// stopping reports whether a stop was requested.
func (g *graceful) stopping() bool { return g.requested.Load() }

// stop requests the stop and returns once Run's context has ended.
func (g *graceful) stop() {
	g.requested.Store(true)
	deadline := time.Now().Add(stopWait)
	tick := time.NewTicker(stopCheckEvery)
	defer tick.Stop()
	for {
		if idle(g.s.Stats()) || time.Now().After(deadline) {
			g.cancel()
			return
		}
		select {
		case <-tick.C:
		case <-g.ctx.Done(): // ended by committed
			return
		}
	}
}

// idle reports whether the snapshotter has nothing to write: no state with
// events outside a snapshot, and every partition checkpointed at its next
// offset. Its loop then begins no transaction until new events arrive.
func idle(st snapshotter.Stats) bool {
	for _, p := range st.Partitions {
		if p.Dirty > 0 || p.Checkpoint != p.Next {
			return false
		}
	}
	return true
}
