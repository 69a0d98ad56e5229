package order

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/schemas"
)

// TypeName is the aggregate type's name: the log keeps orders under it.
const TypeName = "Order"

// SchemaVersion is the current version of OrderState's shape.
const SchemaVersion = 1

// The names under which NewRegistry registers the events. They are what the
// log stores with each event.
const (
	EventOrderCreated     = "OrderCreated"
	EventOrderItemAdded   = "OrderItemAdded"
	EventOrderItemRemoved = "OrderItemRemoved"
	EventOrderSubmitted   = "OrderSubmitted"
)

// Statuses of an order.
const (
	StatusDraft     = "draft"     // no event yet
	StatusCreated   = "created"   // open for items
	StatusSubmitted = "submitted" // closed
)

// OrderCreated opens an order for a customer.
type OrderCreated struct {
	CustomerID    uuid.UUID `json:"customer_id"`
	CustomerEmail string    `json:"customer_email"`
}

// OrderItemAdded adds a line to an order.
type OrderItemAdded struct {
	ProductID   uuid.UUID `json:"product_id"`
	ProductName string    `json:"product_name"`
	Quantity    int       `json:"quantity"`
	UnitPrice   float64   `json:"unit_price"`
}

// OrderItemRemoved removes every line of a product from an order.
type OrderItemRemoved struct {
	ProductID uuid.UUID `json:"product_id"`
}

// OrderSubmitted closes an order with its total.
type OrderSubmitted struct {
	TotalAmount float64 `json:"total_amount"`
}

// OrderState is the state of an order. Its avro tags follow the record
// snaplog.example.OrderState of schemas/order_state.avsc.
type OrderState struct {
	OrderID uuid.UUID `avro:"order_id"`
	// CustomerID is nil until the order is created.
	CustomerID    *uuid.UUID  `avro:"customer_id"`
	CustomerEmail string      `avro:"customer_email"`
	Items         []OrderItem `avro:"items"`
	Status        string      `avro:"status"`
	// TotalAmount is set when the order is submitted.
	TotalAmount float64 `avro:"total_amount"`
}

// OrderItem is one line of an order (record snaplog.example.OrderItem).
type OrderItem struct {
	ProductID   uuid.UUID `avro:"product_id"`
	ProductName string    `avro:"product_name"`
	Quantity    int32     `avro:"quantity"`
	UnitPrice   float64   `avro:"unit_price"`
}

// Total returns the line's quantity times its unit price.
func (i OrderItem) Total() float64 { return float64(i.Quantity) * i.UnitPrice }

// ItemCount returns the number of lines of the order.
func (s OrderState) ItemCount() int { return len(s.Items) }

// CalculatedTotal returns the sum of the lines' totals.
func (s OrderState) CalculatedTotal() float64 {
	var t float64
	for _, i := range s.Items {
		t += i.Total()
	}
	return t
}

// NewRegistry returns a registry of the four order events under their
// Event… names.
func NewRegistry() (*aggregate.Registry, error) {
	r := aggregate.NewRegistry(nil)
	err := errors.Join(
		aggregate.Register[OrderCreated](r, EventOrderCreated),
		aggregate.Register[OrderItemAdded](r, EventOrderItemAdded),
		aggregate.Register[OrderItemRemoved](r, EventOrderItemRemoved),
		aggregate.Register[OrderSubmitted](r, EventOrderSubmitted),
	)
	if err != nil {
		return nil, fmt.Errorf("order: register events: %w", err)
	}
	return r, nil
}

// Type returns the Order aggregate type with the given state schema version;
// pass SchemaVersion unless you mean to ignore snapshots taken with it.
func Type(schemaVersion int) (aggregate.Type[OrderState], error) {
	events, err := NewRegistry()
	if err != nil {
		return aggregate.Type[OrderState]{}, err
	}
	return aggregate.Type[OrderState]{
		Name:          TypeName,
		SchemaVersion: schemaVersion,
		Events:        events,
		Init:          initial,
		Apply:         apply,
		StateSchema:   schemas.OrderState(),
	}, nil
}

func initial(id uuid.UUID) OrderState {
	return OrderState{OrderID: id, Status: StatusDraft}
}

// apply returns the state after e. It trusts the rules that the commands
// checked when they recorded e, and refuses only what the state cannot
// hold.
func apply(s OrderState, e aggregate.Envelope) (OrderState, error) {
	switch ev := e.Event.(type) {
	case OrderCreated:
		customer := ev.CustomerID
		return OrderState{
			OrderID:       e.AggregateID,
			CustomerID:    &customer,
			CustomerEmail: ev.CustomerEmail,
			Status:        StatusCreated,
		}, nil
	case OrderItemAdded:
		if ev.Quantity < math.MinInt32 || ev.Quantity > math.MaxInt32 {
			return s, fmt.Errorf("order: item quantity %d does not fit the state's 32-bit quantity", ev.Quantity)
		}
		s.Items = append(s.Items, OrderItem{
			ProductID:   ev.ProductID,
			ProductName: ev.ProductName,
			Quantity:    int32(ev.Quantity),
			UnitPrice:   ev.UnitPrice,
		})
		return s, nil
	case OrderItemRemoved:
		// A new slice: the previous state's items stay as they were.
		s.Items = slices.DeleteFunc(slices.Clone(s.Items), func(i OrderItem) bool { return i.ProductID == ev.ProductID })
		return s, nil
	case OrderSubmitted:
		s.Status = StatusSubmitted
		s.TotalAmount = ev.TotalAmount
		return s, nil
	}
	return s, fmt.Errorf("order: unexpected event %T", e.Event)
}
