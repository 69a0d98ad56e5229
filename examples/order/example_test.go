package order_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// An order created, filled, saved and loaded back on the embedded default:
// the in-memory event log and snapshot store.
func Example() {
	ctx := context.Background()
	events, err := log.NewMemory()
	if err != nil {
		fmt.Println(err)
		return
	}
	typ, err := order.Type(order.SchemaVersion)
	if err != nil {
		fmt.Println(err)
		return
	}
	repo, err := aggregate.NewRepository(events, typ,
		aggregate.WithSnapshotStore(snapshots.NewMemory()),
		aggregate.WithSnapshotThreshold(3),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer repo.Close()

	id := uuid.MustParse("550e8400-e29b-41d4-a716-446655440000")
	o := order.Order{Root: repo.New(id)}
	for _, err := range []error{
		o.Create(uuid.MustParse("661f9511-f30c-42e5-b827-557766551111"), "ada@example.com"),
		o.AddItem(uuid.New(), "Widget", 2, 19.99),
		o.AddItem(uuid.New(), "Gadget", 1, 5.50),
		o.AddItem(uuid.New(), "Gadget", 1, 5.50), // a second line of gadgets
	} {
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	// Four events carry the version across 3: Save snapshots version 4.
	if err := repo.Save(ctx, o.Root); err != nil {
		fmt.Println(err)
		return
	}

	root, err := repo.Load(ctx, id)
	if err != nil {
		fmt.Println(err)
		return
	}
	loaded := order.Order{Root: root}
	fmt.Printf("loaded version %d from a snapshot: %v\n", loaded.Version(), repo.Stats().LoadsFromSnapshot == 1)
	fmt.Printf("%d items, %.2f, %s\n", loaded.State().ItemCount(), loaded.State().CalculatedTotal(), loaded.State().Status)

	if err := loaded.Submit(); err != nil {
		fmt.Println(err)
		return
	}
	if err := repo.Save(ctx, loaded.Root); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("version %d: %s, total %.2f\n", loaded.Version(), loaded.State().Status, loaded.State().TotalAmount)

	// A submitted order takes no more items.
	err = loaded.AddItem(uuid.New(), "Widget", 1, 19.99)
	fmt.Println(errors.Is(err, order.ErrNotCreated))
	fmt.Println(err)
	// Output:
	// loaded version 4 from a snapshot: true
	// 3 items, 50.98, created
	// version 5: submitted, total 50.98
	// true
	// order: order is not in created status: cannot add items to order 550e8400-e29b-41d4-a716-446655440000 in status "submitted"
}
