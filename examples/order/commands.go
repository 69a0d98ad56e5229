package order

import (
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/aggregate"
)

// Errors of the order rules, reported (wrapped) by the command methods.
var (
	// ErrAlreadyExists: Create on an order that has events.
	ErrAlreadyExists = errors.New("order: order already exists")
	// ErrNotCreated: AddItem, RemoveItem or Submit on an order that is not
	// in status "created" (a draft, or submitted).
	ErrNotCreated = errors.New("order: order is not in created status")
	// ErrInvalidQuantity: AddItem with a quantity that is not positive or
	// does not fit the state's 32-bit quantity.
	ErrInvalidQuantity = errors.New("order: quantity must be positive")
	// ErrItemNotFound: RemoveItem of a product the order has no line of.
	ErrItemNotFound = errors.New("order: item not found in order")
	// ErrEmptyOrder: Submit of an order without items.
	ErrEmptyOrder = errors.New("order: cannot submit empty order")
)

// Order is an order aggregate: the root with the order's commands. Each
// command checks the rules against the current state and, when they hold,
// applies one event; on error the order is unchanged.
//
// Wrap what a repository returns: order.Order{Root: repo.New(id)} or
// order.Order{Root: loaded}. An Order is not safe for concurrent use.
type Order struct {
	*aggregate.Root[OrderState]
}

// Create opens the order for a customer.
func (o Order) Create(customerID uuid.UUID, customerEmail string) error {
	if v := o.Version(); v > 0 {
		return fmt.Errorf("%w: %s is at version %d", ErrAlreadyExists, o.ID(), v)
	}
	return o.Apply(OrderCreated{CustomerID: customerID, CustomerEmail: customerEmail})
}

// AddItem adds a line of quantity units of a product.
func (o Order) AddItem(productID uuid.UUID, productName string, quantity int, unitPrice float64) error {
	if err := o.mustBeCreated("add items to"); err != nil {
		return err
	}
	if quantity <= 0 || quantity > math.MaxInt32 {
		return fmt.Errorf("%w and at most %d: got %d", ErrInvalidQuantity, math.MaxInt32, quantity)
	}
	return o.Apply(OrderItemAdded{ProductID: productID, ProductName: productName, Quantity: quantity, UnitPrice: unitPrice})
}

// RemoveItem removes the lines of a product.
func (o Order) RemoveItem(productID uuid.UUID) error {
	if err := o.mustBeCreated("remove items from"); err != nil {
		return err
	}
	for _, i := range o.State().Items {
		if i.ProductID == productID {
			return o.Apply(OrderItemRemoved{ProductID: productID})
		}
	}
	return fmt.Errorf("%w: product %s in order %s", ErrItemNotFound, productID, o.ID())
}

// Submit closes the order with the sum of its lines as its total.
func (o Order) Submit() error {
	if err := o.mustBeCreated("submit"); err != nil {
		return err
	}
	s := o.State()
	if len(s.Items) == 0 {
		return fmt.Errorf("%w: %s", ErrEmptyOrder, o.ID())
	}
	return o.Apply(OrderSubmitted{TotalAmount: s.CalculatedTotal()})
}

func (o Order) mustBeCreated(what string) error {
	if st := o.State().Status; st != StatusCreated {
		return fmt.Errorf("%w: cannot %s order %s in status %q", ErrNotCreated, what, o.ID(), st)
	}
	return nil
}
