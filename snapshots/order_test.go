package snapshots_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

// OrderItem and OrderState mirror schemas/order_state.avsc.
type OrderItem struct {
	ProductID   uuid.UUID `avro:"product_id"`
	ProductName string    `avro:"product_name"`
	Quantity    int32     `avro:"quantity"`
	UnitPrice   float64   `avro:"unit_price"`
}

type OrderState struct {
	OrderID       uuid.UUID   `avro:"order_id"`
	CustomerID    *uuid.UUID  `avro:"customer_id"`
	CustomerEmail string      `avro:"customer_email"`
	Items         []OrderItem `avro:"items"`
	Status        string      `avro:"status"`
	TotalAmount   float64     `avro:"total_amount"`
}

// orderStateV0 is an earlier state schema of the example Order: no
// customer_id yet, prices as float, and a coupon field dropped since.
const orderStateV0 = `{
  "type": "record", "name": "OrderState", "namespace": "snaplog.example",
  "fields": [
    {"name": "order_id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "customer_email", "type": "string"},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "OrderItem", "fields": [
      {"name": "product_id", "type": {"type": "string", "logicalType": "uuid"}},
      {"name": "product_name", "type": "string"},
      {"name": "quantity", "type": "int"},
      {"name": "unit_price", "type": "float"}]}}},
    {"name": "status", "type": "string"},
    {"name": "total_amount", "type": "float"},
    {"name": "coupon", "type": ["null", "string"], "default": null}
  ]
}`

// OrderItemV0 and OrderStateV0 mirror orderStateV0.
type OrderItemV0 struct {
	ProductID   uuid.UUID `avro:"product_id"`
	ProductName string    `avro:"product_name"`
	Quantity    int32     `avro:"quantity"`
	UnitPrice   float32   `avro:"unit_price"`
}

type OrderStateV0 struct {
	OrderID       uuid.UUID     `avro:"order_id"`
	CustomerEmail string        `avro:"customer_email"`
	Items         []OrderItemV0 `avro:"items"`
	Status        string        `avro:"status"`
	TotalAmount   float32       `avro:"total_amount"`
	Coupon        *string       `avro:"coupon"`
}

// Account mirrors accountSchema, the state of the tests' Account aggregate.
type Account struct {
	Owner   string `avro:"owner"`
	Balance int64  `avro:"balance"`
	Ops     int64  `avro:"ops"`
}

// accountSchema is the state schema of the tests' Account aggregate.
const accountSchema = `{"type":"record","name":"Account","namespace":"snaplog.test","fields":[
	{"name":"owner","type":"string"},{"name":"balance","type":"long"},{"name":"ops","type":"long"}]}`

func mustParse(t testing.TB, schema string) *snapshots.StateSchema {
	t.Helper()
	s, err := snapshots.ParseStateSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mustState returns the encoding of v in the state schema.
func mustState(t testing.TB, schema *snapshots.StateSchema, v any) []byte {
	t.Helper()
	b, err := schema.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	orderSchema   = must(snapshots.ParseStateSchema(schemas.OrderState()))
	orderSchemaV0 = must(snapshots.ParseStateSchema(orderStateV0))
	accountState  = must(snapshots.ParseStateSchema(accountSchema))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func orderWithItems(n int) OrderState {
	cust := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	o := OrderState{
		OrderID:       uuid.MustParse("550e8400-e29b-41d4-a716-446655440000"),
		CustomerID:    &cust,
		CustomerEmail: "ann@example.com",
		Status:        "placed",
		Items:         make([]OrderItem, n),
	}
	for i := range o.Items {
		o.Items[i] = OrderItem{
			ProductID:   uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint(i))),
			ProductName: fmt.Sprintf("product %d", i),
			Quantity:    int32(i%5 + 1),
			UnitPrice:   float64(i) + 0.99,
		}
		o.TotalAmount += float64(o.Items[i].Quantity) * o.Items[i].UnitPrice
	}
	return o
}
