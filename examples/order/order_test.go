package order_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/log"
)

var (
	orderID    = uuid.MustParse("550e8400-e29b-41d4-a716-446655440000")
	customerID = uuid.MustParse("661f9511-f30c-42e5-b827-557766551111")
	widget     = uuid.MustParse("00000000-0000-4000-8000-000000000001")
	gadget     = uuid.MustParse("00000000-0000-4000-8000-000000000002")
)

func newRepo(t *testing.T) *aggregate.Repository[order.OrderState] {
	t.Helper()
	events, err := log.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	typ, err := order.Type(order.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := aggregate.NewRepository(events, typ)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	return repo
}

// Steps that bring a new order into a state.
func create(o order.Order) error { return o.Create(customerID, "ada@example.com") }
func addWidget(o order.Order) error {
	return o.AddItem(widget, "Widget", 2, 19.99)
}
func submit(o order.Order) error { return o.Submit() }

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		name  string
		given []func(order.Order) error // must succeed
		when  func(order.Order) error
		want  error // nil: the command applies one event
	}{
		{"create new", nil, create, nil},
		{"create twice", steps(create), create, order.ErrAlreadyExists},
		{"create after submit", steps(create, addWidget, submit), create, order.ErrAlreadyExists},

		{"add item", steps(create), addWidget, nil},
		{"add item to draft", nil, addWidget, order.ErrNotCreated},
		{"add item to submitted", steps(create, addWidget, submit), addWidget, order.ErrNotCreated},
		{"add zero quantity", steps(create), func(o order.Order) error { return o.AddItem(gadget, "Gadget", 0, 1) }, order.ErrInvalidQuantity},
		{"add negative quantity", steps(create), func(o order.Order) error { return o.AddItem(gadget, "Gadget", -1, 1) }, order.ErrInvalidQuantity},
		{"add quantity over int32", steps(create), func(o order.Order) error { return o.AddItem(gadget, "Gadget", 1<<31, 1) }, order.ErrInvalidQuantity},

		{"remove item", steps(create, addWidget), func(o order.Order) error { return o.RemoveItem(widget) }, nil},
		{"remove missing item", steps(create, addWidget), func(o order.Order) error { return o.RemoveItem(gadget) }, order.ErrItemNotFound},
		{"remove from draft", nil, func(o order.Order) error { return o.RemoveItem(widget) }, order.ErrNotCreated},
		{"remove from submitted", steps(create, addWidget, submit), func(o order.Order) error { return o.RemoveItem(widget) }, order.ErrNotCreated},

		{"submit", steps(create, addWidget), submit, nil},
		{"submit empty", steps(create), submit, order.ErrEmptyOrder},
		{"submit draft", nil, submit, order.ErrNotCreated},
		{"submit twice", steps(create, addWidget, submit), submit, order.ErrNotCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := order.Order{Root: newRepo(t).New(orderID)}
			for i, step := range tc.given {
				if err := step(o); err != nil {
					t.Fatalf("given step %d: %v", i, err)
				}
			}
			before, state := o.Version(), o.State()
			err := tc.when(o)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case tc.want == nil && o.Version() != before+1:
				t.Fatalf("version %d after the command, want %d", o.Version(), before+1)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("err = %v, want %v", err, tc.want)
			case tc.want != nil && (o.Version() != before || !reflect.DeepEqual(o.State(), state)):
				t.Fatalf("a refused command changed the order: version %d→%d, state %+v→%+v", before, o.Version(), state, o.State())
			}
		})
	}
}

func steps(s ...func(order.Order) error) []func(order.Order) error { return s }

func TestSubmitTotal(t *testing.T) {
	o := order.Order{Root: newRepo(t).New(orderID)}
	for _, err := range []error{
		create(o),
		o.AddItem(widget, "Widget", 2, 19.99),
		o.AddItem(gadget, "Gadget", 3, 5.5),
		o.Submit(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ev := o.Uncommitted()[3].Event
	want := order.OrderSubmitted{TotalAmount: 2*19.99 + 3*5.5}
	if ev != want {
		t.Fatalf("event %#v, want %#v", ev, want)
	}
	if got := o.State().TotalAmount; got != want.TotalAmount {
		t.Fatalf("total amount %v, want %v", got, want.TotalAmount)
	}
}

func TestApply(t *testing.T) {
	typ, err := order.Type(order.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	w := order.OrderItem{ProductID: widget, ProductName: "Widget", Quantity: 2, UnitPrice: 19.99}
	g := order.OrderItem{ProductID: gadget, ProductName: "Gadget", Quantity: 1, UnitPrice: 5}
	created := order.OrderState{OrderID: orderID, CustomerID: &customerID, CustomerEmail: "ada@example.com", Status: order.StatusCreated}
	with := func(s order.OrderState, items ...order.OrderItem) order.OrderState {
		s.Items = items
		return s
	}
	for _, tc := range []struct {
		name    string
		state   order.OrderState
		event   any
		want    order.OrderState
		wantErr bool
	}{
		{
			name:  "created",
			state: typ.Init(orderID),
			event: order.OrderCreated{CustomerID: customerID, CustomerEmail: "ada@example.com"},
			want:  created,
		},
		{
			name:  "item added",
			state: with(created, w),
			event: order.OrderItemAdded{ProductID: gadget, ProductName: "Gadget", Quantity: 1, UnitPrice: 5},
			want:  with(created, w, g),
		},
		{
			name:  "item removed",
			state: with(created, w, g, w),
			event: order.OrderItemRemoved{ProductID: widget},
			want:  with(created, g),
		},
		{
			name:  "missing item removed",
			state: with(created, w),
			event: order.OrderItemRemoved{ProductID: gadget},
			want:  with(created, w),
		},
		{
			name:  "submitted",
			state: with(created, w),
			event: order.OrderSubmitted{TotalAmount: 39.98},
			want: func() order.OrderState {
				s := with(created, w)
				s.Status, s.TotalAmount = order.StatusSubmitted, 39.98
				return s
			}(),
		},
		{
			name:    "quantity over int32",
			state:   created,
			event:   order.OrderItemAdded{ProductID: gadget, Quantity: 1 << 31},
			want:    created,
			wantErr: true,
		},
		{
			name:    "unknown event",
			state:   created,
			event:   struct{}{},
			want:    created,
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.state
			before.Items = append([]order.OrderItem(nil), tc.state.Items...)
			got, err := typ.Apply(tc.state, aggregate.Envelope{AggregateID: orderID, Event: tc.event})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("state\n got %+v\nwant %+v", got, tc.want)
			}
			if !reflect.DeepEqual(tc.state, before) {
				t.Errorf("apply changed the state it was given: %+v, was %+v", tc.state, before)
			}
		})
	}
}

func TestInitial(t *testing.T) {
	typ, err := order.Type(order.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	want := order.OrderState{OrderID: orderID, Status: order.StatusDraft}
	if got := typ.Init(orderID); !reflect.DeepEqual(got, want) {
		t.Fatalf("initial state %+v, want %+v", got, want)
	}
}

func TestStateHelpers(t *testing.T) {
	s := order.OrderState{Items: []order.OrderItem{
		{Quantity: 2, UnitPrice: 19.99},
		{Quantity: 3, UnitPrice: 5.5},
	}}
	if got := s.ItemCount(); got != 2 {
		t.Errorf("ItemCount = %d, want 2", got)
	}
	if got, want := s.CalculatedTotal(), 2*19.99+3*5.5; got != want {
		t.Errorf("CalculatedTotal = %v, want %v", got, want)
	}
	if got := (order.OrderState{}).CalculatedTotal(); got != 0 {
		t.Errorf("CalculatedTotal of no items = %v, want 0", got)
	}
}

func TestNewRegistry(t *testing.T) {
	r, err := order.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{order.EventOrderCreated, order.EventOrderItemAdded, order.EventOrderItemRemoved, order.EventOrderSubmitted}
	if got := r.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("names %q, want %q", got, want)
	}
	// Payloads are JSON with snake_case field names.
	_, payload, err := r.Encode(order.OrderItemAdded{ProductID: widget, ProductName: "Widget", Quantity: 2, UnitPrice: 19.99})
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"product_id":"00000000-0000-4000-8000-000000000001","product_name":"Widget","quantity":2,"unit_price":19.99}`
	if string(payload) != wantJSON {
		t.Fatalf("payload %s, want %s", payload, wantJSON)
	}
}
