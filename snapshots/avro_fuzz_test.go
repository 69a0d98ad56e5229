package snapshots_test

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

// FuzzDecode checks that Decode never panics and either refuses its input
// with ErrCorrupt or returns a snapshot that encodes and decodes back to
// itself. Order snapshots of an older state schema go through schema
// resolution.
func FuzzDecode(f *testing.F) {
	c := snapshots.NewAvroCodec()
	for typ, schema := range map[string]string{
		"Order":      schemas.OrderState(),
		"Everything": everythingSchema,
		"List":       listSchema,
		"Nulls":      nullsSchema,
	} {
		if err := c.Register(typ, schema); err != nil {
			f.Fatal(err)
		}
	}
	if err := c.RegisterWriter("Order", orderStateV0); err != nil {
		f.Fatal(err)
	}
	old := snapshots.NewAvroCodec()
	if err := old.Register("Order", orderStateV0); err != nil {
		f.Fatal(err)
	}

	var seeds [][]byte
	noCustomer := orderWithItems(0)
	noCustomer.CustomerID = nil
	for _, o := range []OrderState{orderWithItems(0), orderWithItems(1), orderWithItems(3), noCustomer} {
		seeds = append(seeds, mustEncode(f, c, orderSnapshot(f, o)))
	}
	other := func(typ string, state any) []byte {
		return mustEncode(f, c, snapshots.Snapshot{
			AggregateID: uuid.New(), AggregateType: typ, Version: 9, SchemaVersion: 2,
			CreatedAt: time.Unix(1700000000, 0), State: mustState(f, c.Schema(typ), state),
		})
	}
	odd := everything()
	odd.B, odd.I, odd.L, odd.F, odd.D = false, -1, math.MaxInt64, float32(math.NaN()), math.Inf(1)
	odd.S, odd.E, odd.Arr, odd.M = "ß", "RED", nil, nil
	odd.U, odd.U2, odd.U3 = map[string]any{"long": int64(3)}, nil, map[string]any{"array": []int32{}}
	odd.Rec, odd.Rec2 = &Sub{X: 1, Y: "z"}, nil
	ts := time.Unix(2, 0).UTC()
	odd.MaybeTS = &ts
	seeds = append(seeds,
		other("Everything", everything()),
		other("Everything", odd),
		other("List", Node{Value: 1, Next: &Node{Value: 2}}),
		other("Nulls", map[string]any{"nulls": []any{nil, nil, nil}}),
	)
	coupon := "SPRING"
	for _, n := range []int{0, 2} {
		o := orderWithItems(n)
		v0 := OrderStateV0{OrderID: o.OrderID, CustomerEmail: o.CustomerEmail, Status: o.Status,
			TotalAmount: float32(o.TotalAmount), Coupon: &coupon, Items: []OrderItemV0{}}
		for _, it := range o.Items {
			v0.Items = append(v0.Items, OrderItemV0{ProductID: it.ProductID, ProductName: it.ProductName,
				Quantity: it.Quantity, UnitPrice: float32(it.UnitPrice)})
		}
		s := orderSnapshot(f, o)
		s.State = mustState(f, orderSchemaV0, v0)
		seeds = append(seeds, mustEncode(f, old, s))
	}
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(append(append([]byte{}, s...), 0))
		flipped := append([]byte{}, s...)
		flipped[len(s)*2/3] ^= 0x41
		f.Add(flipped)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		head, herr := c.DecodeHead(b)
		if herr != nil && !errors.Is(herr, snapshots.ErrCorrupt) {
			t.Fatalf("DecodeHead error does not wrap ErrCorrupt: %v", herr)
		}
		s, err := c.Decode(b)
		if err != nil {
			if !errors.Is(err, snapshots.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// What decodes has the head DecodeHead reads without the state.
		if herr != nil || head.AggregateID != s.AggregateID || head.AggregateType != s.AggregateType || head.Version != s.Version ||
			head.SchemaVersion != s.SchemaVersion {
			t.Fatalf("DecodeHead %+v, %v; Decode %v", head, herr, s)
		}
		again, err := c.Encode(s)
		if err != nil {
			t.Fatalf("decoded snapshot %v does not encode: %v", s, err)
		}
		s2, err := c.Decode(again)
		if err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
		if !bytes.Equal(s.State, s2.State) {
			t.Fatalf("state changed: % x, then % x", s.State, s2.State)
		}
		if s.AggregateID != s2.AggregateID || s.AggregateType != s2.AggregateType || s.Version != s2.Version ||
			s.SchemaVersion != s2.SchemaVersion || !s.CreatedAt.Equal(s2.CreatedAt) || s.Position != s2.Position || s.Save != s2.Save {
			t.Fatalf("envelope changed: %v, then %v", s, s2)
		}
		// The state reads as a struct of its schema and as a generic value.
		schema := c.Schema(s.AggregateType)
		if _, err := schema.DecodeGeneric(s.State); err != nil {
			t.Fatalf("state % x of a decoded snapshot does not decode: %v", s.State, err)
		}
		if s.AggregateType == "Order" {
			// Strings the uuid logical type does not parse are refused.
			var o OrderState
			if err := schema.Decode(s.State, &o); err != nil && !errors.Is(err, snapshots.ErrCorrupt) {
				t.Fatalf("state decode error does not wrap ErrCorrupt: %v", err)
			}
		}
	})
}

func TestSameValue(t *testing.T) {
	if !sameValue(map[string]any{"a": []any{math.NaN()}}, map[string]any{"a": []any{math.NaN()}}) {
		t.Error("NaN differs from itself")
	}
	if sameValue(int32(1), int64(1)) {
		t.Error("int32 equals int64")
	}
}

// sameValue compares plain values, NaN equal to itself.
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		return ok && math.Float64bits(a) == math.Float64bits(b)
	case float32:
		b, ok := b.(float32)
		return ok && math.Float32bits(a) == math.Float32bits(b)
	case []byte:
		b, ok := b.([]byte)
		return ok && string(a) == string(b)
	case time.Time:
		b, ok := b.(time.Time)
		return ok && a.Equal(b)
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameValue(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	}
	return a == b
}
