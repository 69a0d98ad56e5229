package order_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

// OrderState goes through the Avro snapshot codec with the schema of
// schemas/order_state.avsc and comes back unchanged, the customer_id union
// both null and a string.
func TestStateAvro(t *testing.T) {
	codec := snapshots.NewAvroCodec()
	if err := codec.Register(order.TypeName, schemas.OrderState()); err != nil {
		t.Fatal(err)
	}
	fields, err := snapshots.FieldNames(order.OrderState{})
	if err != nil {
		t.Fatal(err)
	}
	if schema := codec.StateFields(order.TypeName); !reflect.DeepEqual(fields, schema) {
		t.Fatalf("OrderState fields %q, schema fields %q", fields, schema)
	}

	for name, s := range map[string]order.OrderState{
		"draft": {OrderID: orderID, Items: []order.OrderItem{}, Status: order.StatusDraft},
		"submitted": {
			OrderID: orderID, CustomerID: &customerID, CustomerEmail: "ada@example.com",
			Items: []order.OrderItem{
				{ProductID: widget, ProductName: "Widget", Quantity: 2, UnitPrice: 19.99},
				{ProductID: gadget, ProductName: "Gadget", Quantity: 1 << 30, UnitPrice: 0.5},
			},
			Status: order.StatusSubmitted, TotalAmount: 536870951.98,
		},
	} {
		t.Run(name, func(t *testing.T) {
			rec, err := snapshots.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			b, err := codec.Encode(snapshots.Snapshot{
				AggregateID:   orderID,
				AggregateType: order.TypeName,
				Version:       3,
				SchemaVersion: order.SchemaVersion,
				CreatedAt:     time.Date(2024, 1, 15, 10, 30, 45, 123456000, time.UTC),
				Position:      log.Position{Partition: 0, Offset: 2},
				State:         rec,
			})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := codec.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			var back order.OrderState
			if err := snapshots.Unmarshal(snap.State, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, s) {
				t.Fatalf("round trip\n got %+v\nwant %+v", back, s)
			}
		})
	}
}
