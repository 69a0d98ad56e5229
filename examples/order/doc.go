// Package order is the Order aggregate of snaplog's examples: a customer's
// order that is created, gets items added and removed, and is submitted.
//
// The events ([OrderCreated], [OrderItemAdded], [OrderItemRemoved],
// [OrderSubmitted]) are plain structs encoded as JSON with snake_case field
// names; [NewRegistry] registers them explicitly under the names the log
// stores. [OrderState] is the state that [Type] folds them into; its `avro`
// struct tags match the record snaplog.example.OrderState of
// schemas/order_state.avsc, so snapshots of orders can be written as Avro.
// Bump the schema version given to [Type] when OrderState changes in a way
// old snapshots cannot be read into: loads then replay events instead.
//
// [Order] embeds the aggregate root and adds the commands. The rules are:
// Create only on an order with no events ([ErrAlreadyExists]); AddItem,
// RemoveItem and Submit only while the order is in status "created"
// ([ErrNotCreated]); quantities are positive ([ErrInvalidQuantity]); only
// items that are in the order can be removed ([ErrItemNotFound]); an order
// without items cannot be submitted ([ErrEmptyOrder]). A command that breaks
// a rule returns an error wrapping its sentinel and leaves the order
// unchanged.
//
// Applying events is deterministic and trusts stored events, since the
// commands checked them when they were recorded; it fails only on an event
// the state cannot hold (an unknown event type, a quantity beyond 32 bits),
// and then a load fails rather than return a wrong state. An Order, like the
// root it embeds, is not safe for concurrent use; the repository that loads
// and saves it is.
package order
