package aggregate_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

type Credited struct {
	Amount int64 `json:"amount"`
}

type Wallet struct {
	Balance int64 `avro:"balance"`
}

func Example() {
	ctx := context.Background()
	reg := aggregate.NewRegistry(nil)
	if err := aggregate.Register[Credited](reg, "Credited"); err != nil {
		panic(err)
	}
	wallets := aggregate.Type[Wallet]{
		Name:   "Wallet",
		Events: reg,
		// The Avro schema of Wallet in snapshots; its fields are Wallet's
		// avro tags.
		StateSchema: `{"type":"record","name":"Wallet","namespace":"example",
			"fields":[{"name":"balance","type":"long"}]}`,
		Apply: func(w Wallet, e aggregate.Envelope) (Wallet, error) {
			switch ev := e.Event.(type) {
			case Credited:
				w.Balance += ev.Amount
				return w, nil
			}
			return w, fmt.Errorf("unexpected %T", e.Event)
		},
	}
	events, _ := log.NewMemory()
	repo, err := aggregate.NewRepository(events, wallets,
		aggregate.WithSnapshotStore(snapshots.NewMemory()),
		aggregate.WithSnapshotThreshold(3))
	if err != nil {
		panic(err)
	}
	defer repo.Close()

	id := uuid.New()
	w := repo.New(id) // Load(ctx, id) for one that exists: errors.Is(err, aggregate.ErrNotFound) if not
	for _, amount := range []int64{5, 10, 20} {
		_ = w.Apply(Credited{Amount: amount})
	}
	if err := repo.Save(ctx, w); err != nil {
		panic(err)
	}

	// A second writer that loaded the same version loses the race.
	stale, _ := repo.Load(ctx, id)
	_ = w.Apply(Credited{Amount: 1})
	_ = repo.Save(ctx, w)
	_ = stale.Apply(Credited{Amount: 100})
	err = repo.Save(ctx, stale)
	var conflict *aggregate.ConflictError
	fmt.Println(errors.As(err, &conflict), conflict.Expected, conflict.Actual)

	loaded, _ := repo.Load(ctx, id)
	fmt.Println(loaded.Version(), loaded.State().Balance)
	st := repo.Stats()
	fmt.Println(st.SnapshotsWritten, st.LoadsFromSnapshot)
	// Output:
	// true 3 4
	// 4 36
	// 1 2
}
