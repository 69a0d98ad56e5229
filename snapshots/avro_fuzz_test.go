package snapshots_test

import (
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
	other := func(typ string, state map[string]any) []byte {
		return mustEncode(f, c, snapshots.Snapshot{
			AggregateID: uuid.New(), AggregateType: typ, Version: 9, SchemaVersion: 2,
			CreatedAt: time.Unix(1700000000, 0), State: state,
		})
	}
	seeds = append(seeds,
		other("Everything", map[string]any{
			"b": false, "i": int32(-1), "l": int64(math.MaxInt64), "f": float32(math.NaN()), "d": math.Inf(1),
			"raw": []byte("raw"), "s": "ß", "e": "RED", "fx": []byte("four"),
			"arr": []any{int64(1)}, "m": map[string]any{"a": nil, "b": 2.0},
			"u": int64(3), "u2": nil, "u3": []any{}, "rec": map[string]any{"x": int32(1), "y": "z"}, "rec2": nil,
			"ts_micros": time.Unix(-1, 5000), "ts_millis": time.Unix(1, 0), "day": time.Unix(0, 0),
			"tod_millis": int32(1000), "tod_micros": int64(1), "id": uuid.NewString(),
			"maybe_ts": time.Unix(2, 0), "local": int64(0),
		}),
		other("List", map[string]any{"value": int32(1), "next": map[string]any{"value": int32(2), "next": nil}}),
		other("Nulls", map[string]any{"nulls": []any{nil, nil, nil}}),
	)
	for _, n := range []int{0, 2} {
		o := orderWithItems(n)
		state := map[string]any{"order_id": o.OrderID, "customer_email": o.CustomerEmail, "status": o.Status,
			"total_amount": float32(o.TotalAmount), "coupon": "SPRING", "items": []any{}}
		for _, it := range o.Items {
			state["items"] = append(state["items"].([]any), map[string]any{"product_id": it.ProductID,
				"product_name": it.ProductName, "quantity": it.Quantity, "unit_price": float32(it.UnitPrice)})
		}
		s := orderSnapshot(f, o)
		s.State = state
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
		if herr != nil || head.AggregateID != s.AggregateID || head.AggregateType != s.AggregateType || head.Version != s.Version {
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
		if !sameValue(s.State, s2.State) {
			t.Fatalf("state changed: %v, then %v", s.State, s2.State)
		}
		if s.AggregateID != s2.AggregateID || s.AggregateType != s2.AggregateType || s.Version != s2.Version ||
			s.SchemaVersion != s2.SchemaVersion || !s.CreatedAt.Equal(s2.CreatedAt) || s.Position != s2.Position || s.Save != s2.Save {
			t.Fatalf("envelope changed: %v, then %v", s, s2)
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
