package aggregate

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/snapshots"
)

// background writes snapshots from at most `concurrency` goroutines, with at
// most `maxPending` aggregates waiting and at most one waiting snapshot per
// aggregate (a newer one replaces the waiting one). Goroutines are started
// when work arrives and exit when the queue is empty, so an idle repository
// owns none.
type background struct {
	maxPending  int
	concurrency int
	timeout     time.Duration
	write       func(context.Context, snapshots.Snapshot, SnapshotMode) error

	mu          sync.Mutex
	waiting     map[uuid.UUID]*job
	queue       []uuid.UUID // FIFO of aggregates in waiting
	workers     int
	outstanding map[uint64]struct{} // seqs of jobs waiting or being written
	seq         uint64
	changed     chan struct{} // closed and replaced when outstanding shrinks
	closed      bool
	wg          sync.WaitGroup
}

type job struct {
	seq  uint64
	snap snapshots.Snapshot
}

type scheduleResult uint8

const (
	scheduleQueued scheduleResult = iota
	scheduleSuperseded
	scheduleFull
	scheduleClosed
)

func newBackground(maxPending, concurrency int, write func(context.Context, snapshots.Snapshot, SnapshotMode) error) *background {
	return &background{
		maxPending:  maxPending,
		concurrency: concurrency,
		timeout:     DefaultSnapshotWriteTimeout,
		write:       write,
		waiting:     make(map[uuid.UUID]*job),
		outstanding: make(map[uint64]struct{}),
		changed:     make(chan struct{}),
	}
}

// schedule queues snap. scheduleSuperseded means it replaced a waiting
// snapshot of the same aggregate, which will not be written.
func (b *background) schedule(snap snapshots.Snapshot) scheduleResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return scheduleClosed
	}
	res := scheduleQueued
	if old, ok := b.waiting[snap.AggregateID]; ok {
		if old.snap.Version >= snap.Version {
			return scheduleSuperseded
		}
		b.done(old.seq)
		res = scheduleSuperseded
	} else {
		if len(b.waiting) >= b.maxPending {
			return scheduleFull
		}
		b.queue = append(b.queue, snap.AggregateID)
	}
	b.seq++
	b.waiting[snap.AggregateID] = &job{seq: b.seq, snap: snap}
	b.outstanding[b.seq] = struct{}{}
	if b.workers < b.concurrency {
		b.workers++
		b.wg.Add(1)
		go b.run()
	}
	return res
}

func (b *background) run() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.workers--
			b.mu.Unlock()
			return
		}
		id := b.queue[0]
		b.queue = b.queue[1:]
		j := b.waiting[id]
		delete(b.waiting, id)
		b.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		_ = b.write(ctx, j.snap, SnapshotBackground) // write accounts for and reports its outcome
		cancel()

		b.mu.Lock()
		b.done(j.seq)
		b.mu.Unlock()
	}
}

// done removes seq from the outstanding jobs; b.mu is held.
func (b *background) done(seq uint64) {
	delete(b.outstanding, seq)
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *background) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.outstanding)
}

func (b *background) await(ctx context.Context) (int, error) {
	b.mu.Lock()
	upTo := b.seq
	n := len(b.outstanding)
	b.mu.Unlock()
	for {
		b.mu.Lock()
		left := false
		for s := range b.outstanding {
			if s <= upTo {
				left = true
				break
			}
		}
		ch := b.changed
		b.mu.Unlock()
		if !left {
			return n, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
}

func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}
