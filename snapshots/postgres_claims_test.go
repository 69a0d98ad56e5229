package snapshots_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/internal/pgtest"
	"github.com/snaplog/snaplog/snapshots"
)

// claimWrite is one partition's write of the Account snapshot v of id, with
// a checkpoint at offset cp and the consumed offset cp.
func claimWrite(c snapshots.Claim, id uuid.UUID, v, cp int64) snapshots.PartitionWrite {
	return snapshots.PartitionWrite{Claim: c, Snapshots: []snapshots.Snapshot{pgAccounts.Snapshot(id, v)},
		Checkpoint: &snapshots.Checkpoint{Offset: cp}, Consumed: cp}
}

// TestPostgresClaimFences: a claim raises the partition's epoch and fences
// the earlier claims, whose writes leave that partition untouched while
// the other partitions of the same call are written; a claim returns what
// the last write under a claim committed.
func TestPostgresClaimFences(t *testing.T) {
	env := newPGEnv(t)
	a := env.store(t, snapshots.WithPostgresOwner("snapshotter"))
	b := env.store(t, snapshots.WithPostgresOwner("snapshotter"))
	ca0, err := a.Claim(ctxT(t), "Account", pgPartitions, 0)
	if err != nil {
		t.Fatal(err)
	}
	ca1, err := a.Claim(ctxT(t), "Account", pgPartitions, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ca0.Epoch != 1 || ca0.Checkpoint.Offset != -1 || ca0.Consumed != 0 {
		t.Fatalf("first claim: %+v", ca0)
	}
	id0, id1 := idIn(0), idIn(1)
	out, err := a.WritePartitions(ctxT(t), []snapshots.PartitionWrite{claimWrite(ca0, id0, 3, 30), claimWrite(ca1, id1, 3, 40)})
	if err != nil || out[0].Fenced != nil || out[0].Written != 1 || out[1].Written != 1 {
		t.Fatalf("write under the claims: %+v %v", out, err)
	}

	cb0, err := b.Claim(ctxT(t), "Account", pgPartitions, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cb0.Epoch != 2 || cb0.Checkpoint.Offset != 30 || cb0.Consumed != 30 || cb0.Checkpoint.Owner != "snapshotter" {
		t.Fatalf("second claim: %+v, want epoch 2 at the checkpoint and consumed offset 30", cb0)
	}
	out, err = a.WritePartitions(ctxT(t), []snapshots.PartitionWrite{claimWrite(ca0, id0, 9, 90), claimWrite(ca1, id1, 9, 90)})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(out[0].Fenced, snapshots.ErrFenced) || out[0].Written != 0 || !strings.Contains(out[0].Fenced.Error(), "epoch 2") {
		t.Fatalf("a write under the superseded claim: %+v, want it fenced naming epoch 2", out[0])
	}
	if out[1].Fenced != nil || out[1].Written != 1 {
		t.Fatalf("the other partition of the same write: %+v", out[1])
	}
	if s, err := a.Get(ctxT(t), "Account", id0); err != nil || s.Version != 3 {
		t.Fatalf("the fenced write reached the table: %v %v", s, err)
	}
	if cp, err := a.CheckpointOf(ctxT(t), "Account", id0); err != nil || cp.Offset != 30 {
		t.Fatalf("the fenced write moved the checkpoint: %v %v", cp, err)
	}
	out, err = b.WritePartitions(ctxT(t), []snapshots.PartitionWrite{claimWrite(cb0, id0, 9, 90)})
	if err != nil || out[0].Fenced != nil {
		t.Fatalf("write under the new claim: %+v %v", out, err)
	}
	if cp, err := b.CheckpointOf(ctxT(t), "Account", id0); err != nil || cp.Offset != 90 {
		t.Fatalf("checkpoint after the new claim's write: %v %v", cp, err)
	}
}

// TestPostgresClaimWaitsForAWrite: a claim made while a write under the
// previous claim holds the partition's row waits for it, and returns what
// it committed.
func TestPostgresClaimWaitsForAWrite(t *testing.T) {
	env := newPGEnv(t)
	s := env.store(t, snapshots.WithPostgresOwner("snapshotter"))
	c, err := s.Claim(ctxT(t), "Account", pgPartitions, 2)
	if err != nil {
		t.Fatal(err)
	}
	// A write in progress: the transaction holds the claim's row, as
	// WritePartitions does between its lock and its commit.
	tx, err := env.pool.Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctxT(t), `SELECT 1 FROM `+env.table("partition_claims")+` WHERE events_partition = 2 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctxT(t), `UPDATE `+env.table("partition_claims")+` SET consumed_offset = 77 WHERE events_partition = 2`); err != nil {
		t.Fatal(err)
	}
	done := make(chan snapshots.Claim, 1)
	go func() {
		next, err := s.Claim(ctxT(t), "Account", pgPartitions, 2)
		if err != nil {
			t.Error(err)
		}
		done <- next
	}()
	select {
	case next := <-done:
		t.Fatalf("the claim did not wait for the write holding the row: %+v", next)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if next := <-done; next.Epoch != c.Epoch+1 || next.Consumed != 77 {
		t.Fatalf("claim after the write: %+v, want epoch %d and the write's consumed offset 77", next, c.Epoch+1)
	}
}

// TestPostgresClaimInterleavings runs every interleaving of two
// snapshotters' steps on one partition (each claims, then writes twice)
// and checks each outcome against the rule: a write is committed exactly
// when its claim is the partition's latest, and a claim returns the last
// committed write.
func TestPostgresClaimInterleavings(t *testing.T) {
	pool := newPGEnv(t).pool
	// Steps of snapshotter 0 and 1: a claim, then writes.
	const steps = 3
	var orders [][]int
	var gen func(prefix []int, left [2]int)
	gen = func(prefix []int, left [2]int) {
		if left[0] == 0 && left[1] == 0 {
			orders = append(orders, append([]int(nil), prefix...))
			return
		}
		for who := range 2 {
			if left[who] > 0 {
				next := left
				next[who]--
				gen(append(prefix, who), next)
			}
		}
	}
	gen(nil, [2]int{steps, steps})
	if len(orders) != 20 {
		t.Fatalf("%d interleavings of 3 and 3 steps, want 20", len(orders))
	}
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			env := pgEnv{pool: pool, schema: pgtest.Schema(t)} // a schema of its own per case
			typ := "Account"
			stores := [2]*snapshots.Postgres{env.store(t, snapshots.WithPostgresOwner("snapshotter")), env.store(t, snapshots.WithPostgresOwner("snapshotter"))}
			id := idIn(0)
			var (
				claims    [2]snapshots.Claim
				done      [2]int
				latest    int // who holds the latest claim, -1 none
				committed int64
				offset    int64
			)
			latest = -1
			for _, who := range order {
				s := stores[who]
				if done[who] == 0 {
					c, err := s.Claim(ctxT(t), typ, pgPartitions, 0)
					if err != nil {
						t.Fatal(err)
					}
					if c.Consumed != committed {
						t.Fatalf("snapshotter %d claimed with consumed offset %d, the last committed write is %d", who, c.Consumed, committed)
					}
					claims[who], latest = c, who
				} else {
					offset++
					snap := pgAccounts.Snapshot(id, offset)
					out, err := s.WritePartitions(ctxT(t), []snapshots.PartitionWrite{{Claim: claims[who], Snapshots: []snapshots.Snapshot{snap},
						Checkpoint: &snapshots.Checkpoint{Offset: offset}, Consumed: offset}})
					if err != nil {
						t.Fatal(err)
					}
					fenced := out[0].Fenced != nil
					if fenced != (latest != who) {
						t.Fatalf("snapshotter %d wrote with the latest claim held by %d: fenced %v", who, latest, out[0].Fenced)
					}
					if !fenced {
						committed = offset
					}
				}
				done[who]++
			}
			got, err := stores[0].Get(ctxT(t), typ, id)
			switch {
			case committed == 0 && !errors.Is(err, snapshots.ErrNotFound):
				t.Fatalf("no write committed, yet Get: %v %v", got, err)
			case committed > 0 && (err != nil || got.Version != committed):
				t.Fatalf("the table holds %v (%v), the last committed write is version %d", got, err, committed)
			}
		})
	}
}

// TestPostgresClaimRefusals: a claim needs an owner and the recorded
// partition count, and a partition whose checkpoint names another owner is
// refused; writes of snapshots outside the claim's partition are refused
// whole.
func TestPostgresClaimRefusals(t *testing.T) {
	env := newPGEnv(t)
	other := env.store(t, snapshots.WithPostgresOwner("other"))
	if err := other.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 1, Offset: 5}); err != nil {
		t.Fatal(err)
	}
	s := env.store(t, snapshots.WithPostgresOwner("snapshotter"))
	if _, err := env.store(t).Claim(ctxT(t), "Account", pgPartitions, 0); err == nil || !strings.Contains(err.Error(), "WithPostgresOwner") {
		t.Errorf("claim without an owner: %v", err)
	}
	if _, err := s.Claim(ctxT(t), "Account", pgPartitions, 1); !errors.Is(err, snapshots.ErrOwned) || !strings.Contains(err.Error(), `"other"`) {
		t.Errorf("claim of a partition another owner checkpoints: %v, want ErrOwned naming it", err)
	}
	unconfigured, err := snapshots.NewPostgres(accountCodec(t), env.pool, snapshots.WithPostgresSchema(env.schema), snapshots.WithPostgresOwner("snapshotter"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unconfigured.Claim(ctxT(t), "Account", pgPartitions+1, 0); !errors.Is(err, snapshots.ErrTopicLayout) {
		t.Errorf("claim with another partition count than the recorded one: %v, want ErrTopicLayout", err)
	}
	c, err := s.Claim(ctxT(t), "Account", pgPartitions, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := claimWrite(c, idIn(0), 2, 20)
	w.Snapshots = append(w.Snapshots, pgAccounts.Snapshot(idIn(2), 2))
	if _, err := s.WritePartitions(ctxT(t), []snapshots.PartitionWrite{w}); err == nil || !strings.Contains(err.Error(), "not of an aggregate of that partition") {
		t.Errorf("a snapshot of another partition: %v", err)
	}
	if _, err := s.Get(ctxT(t), "Account", w.Snapshots[0].AggregateID); !errors.Is(err, snapshots.ErrNotFound) {
		t.Errorf("the refused write wrote its other snapshot: %v", err)
	}
}

// TestPostgresWritePartitionsGuardsVersions: the write never lowers a
// version (counted as stale), writes a deleted snapshot again, and Deleted
// lists the tombstones of a partition until then.
func TestPostgresWritePartitionsGuardsVersions(t *testing.T) {
	env := newPGEnv(t)
	s := env.store(t, snapshots.WithPostgresOwner("snapshotter"))
	plain := env.store(t)
	high, gone := idIn(0), idIn(0)
	if err := plain.Put(ctxT(t), pgAccounts.Snapshot(high, 50)); err != nil {
		t.Fatal(err)
	}
	if err := plain.Put(ctxT(t), pgAccounts.Snapshot(gone, 50)); err != nil {
		t.Fatal(err)
	}
	if err := plain.Delete(ctxT(t), "Account", gone); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.Deleted(ctxT(t), "Account", 0); err != nil || len(ids) != 1 || ids[0] != gone {
		t.Fatalf("Deleted: %v %v, want [%s]", ids, err, gone)
	}
	if ids, err := s.Deleted(ctxT(t), "Account", 1); err != nil || len(ids) != 0 {
		t.Fatalf("Deleted of another partition: %v %v", ids, err)
	}
	c, err := s.Claim(ctxT(t), "Account", pgPartitions, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.WritePartitions(ctxT(t), []snapshots.PartitionWrite{{Claim: c,
		Snapshots: []snapshots.Snapshot{pgAccounts.Snapshot(high, 7), pgAccounts.Snapshot(gone, 7)}, Consumed: 100}})
	if err != nil || out[0].Written != 1 || len(out[0].Stale) != 1 || out[0].Stale[0] != high {
		t.Fatalf("write of a lower version and of a deleted one: %+v %v, want 1 written and %s stale", out, err, high)
	}
	if got, err := s.Get(ctxT(t), "Account", high); err != nil || got.Version != 50 {
		t.Fatalf("the version went down: %v %v", got, err)
	}
	if got, err := s.Get(ctxT(t), "Account", gone); err != nil || got.Version != 7 {
		t.Fatalf("the deleted snapshot was not written again: %v %v", got, err)
	}
	if ids, err := s.Deleted(ctxT(t), "Account", 0); err != nil || len(ids) != 0 {
		t.Fatalf("Deleted after the snapshot was written again: %v %v", ids, err)
	}
	if _, err := s.CheckpointOf(ctxT(t), "Account", high); !errors.Is(err, snapshots.ErrNotFound) {
		t.Fatalf("a write without a checkpoint wrote one: %v", err)
	}
	// The owner replaces a row it found unusable (a forged version 50),
	// whatever its version; a new aggregate in Replace is written as well.
	fresh := idIn(0)
	out, err = s.WritePartitions(ctxT(t), []snapshots.PartitionWrite{{Claim: c,
		Snapshots: []snapshots.Snapshot{pgAccounts.Snapshot(high, 8), pgAccounts.Snapshot(fresh, 2)}, Replace: []uuid.UUID{high, fresh}, Consumed: 100}})
	if err != nil || out[0].Written != 2 || len(out[0].Stale) != 0 {
		t.Fatalf("replacing write: %+v %v", out, err)
	}
	for id, v := range map[uuid.UUID]int64{high: 8, fresh: 2} {
		if got, err := s.Get(ctxT(t), "Account", id); err != nil || got.Version != v {
			t.Fatalf("after the replacing write: %v %v, want version %d", got, err, v)
		}
	}
}
