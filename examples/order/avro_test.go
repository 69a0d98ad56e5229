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
	typ, err := order.Type(order.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	if typ.StateSchema != schemas.OrderState() {
		t.Fatal("the Order type's StateSchema is not schemas/order_state.avsc")
	}
	codec := snapshots.NewAvroCodec()
	if err := codec.Register(order.TypeName, typ.StateSchema); err != nil {
		t.Fatal(err)
	}
	schema := codec.Schema(order.TypeName)
	if fields := avroTags(order.OrderState{}); !reflect.DeepEqual(fields, schema.Fields()) {
		t.Fatalf("OrderState fields %q, schema fields %q", fields, schema.Fields())
	}
	if fields := avroTags(order.OrderItem{}); !reflect.DeepEqual(fields, schema.ItemFields()["items"]) {
		t.Fatalf("OrderItem fields %q, schema fields %q", fields, schema.ItemFields()["items"])
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
			rec, err := schema.Encode(s)
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
			if err := schema.Decode(snap.State, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, s) {
				t.Fatalf("round trip\n got %+v\nwant %+v", back, s)
			}
			generic, err := schema.DecodeGeneric(snap.State)
			if err != nil {
				t.Fatal(err)
			}
			if c := generic["customer_id"]; (s.CustomerID == nil) != (c == nil) || (c != nil && c != s.CustomerID.String()) {
				t.Fatalf("customer_id %#v, want the union's null or %v", c, s.CustomerID)
			}
		})
	}
}

// avroTags returns the avro tags of a struct's fields, in order.
func avroTags(v any) []string {
	t := reflect.TypeOf(v)
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = t.Field(i).Tag.Get("avro")
	}
	return names
}
