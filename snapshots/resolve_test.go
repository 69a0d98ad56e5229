package snapshots_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

// stateSchema wraps record fields in a state schema of the namespace test.
func stateSchema(fields string) string {
	return `{"type":"record","name":"S","namespace":"test","fields":[` + fields + `]}`
}

// writeState encodes a snapshot of aggregate type T whose state, v, is
// written with the given state schema, as a codec that had it as current
// would.
func writeState(t *testing.T, schema string, v any) []byte {
	t.Helper()
	c := snapshots.NewAvroCodec()
	if err := c.Register("T", schema); err != nil {
		t.Fatal(err)
	}
	return mustEncode(t, c, snapshots.Snapshot{
		AggregateID: uuid.MustParse("550e8400-e29b-41d4-a716-446655440000"), AggregateType: "T",
		Version: 7, SchemaVersion: 1, CreatedAt: createdAt,
		Position: log.Position{Partition: 1, Offset: 99}, Save: orderSave, State: mustState(t, c.Schema("T"), v),
	})
}

// readerCodec has reader as T's current state schema and writer as an
// older one.
func readerCodec(t *testing.T, writer, reader string) *snapshots.AvroCodec {
	t.Helper()
	c := snapshots.NewAvroCodec()
	if err := c.Register("T", reader); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterWriter("T", writer); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestResolve(t *testing.T) {
	type (
		A struct {
			A int32 `avro:"a"`
		}
		Removed struct {
			Gone []string `avro:"gone"`
			A    int32    `avro:"a"`
			Old  *string  `avro:"old"`
		}
		Promoted struct {
			IL int32   `avro:"il"`
			ID int32   `avro:"id"`
			LD int64   `avro:"ld"`
			FD float32 `avro:"fd"`
			Is []int32 `avro:"is"`
			U  *int32  `avro:"u"`
		}
		Item struct {
			SKU string `avro:"sku"`
			Qty int32  `avro:"qty"`
		}
		Items struct {
			Items []Item `avro:"items"`
		}
		Enums struct {
			E string `avro:"e"`
			F string `avro:"f"`
		}
		Optional struct {
			C string `avro:"c"`
			U *int32 `avro:"u"`
		}
	)
	four := int32(4)
	old := "z"
	tests := []struct {
		name           string
		writer, reader string
		in             any
		want           map[string]any
	}{
		{
			name:   "field added with default",
			writer: stateSchema(`{"name":"a","type":"int"}`),
			reader: stateSchema(`{"name":"a","type":"int"},
				{"name":"s","type":"string","default":"none"},
				{"name":"n","type":["null","long"],"default":null},
				{"name":"l","type":"long","default":-3},
				{"name":"d","type":"double","default":1.5},
				{"name":"flag","type":"boolean","default":true},
				{"name":"tags","type":{"type":"array","items":"string"},"default":["x"]},
				{"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","BLUE"]},"default":"BLUE"}`),
			in: A{A: 1},
			want: map[string]any{
				"a": 1, "s": "none", "n": nil, "l": int64(-3), "d": 1.5, "flag": true,
				"tags": []any{"x"}, "color": "BLUE",
			},
		},
		{
			name:   "field removed",
			writer: stateSchema(`{"name":"gone","type":{"type":"array","items":"string"}},{"name":"a","type":"int"},{"name":"old","type":["null","string"]}`),
			reader: stateSchema(`{"name":"a","type":"int"}`),
			in:     Removed{Gone: []string{"x", "y"}, A: 2, Old: &old},
			want:   map[string]any{"a": 2},
		},
		{
			name: "promotions",
			writer: stateSchema(`{"name":"il","type":"int"},{"name":"id","type":"int"},{"name":"ld","type":"long"},{"name":"fd","type":"float"},
				{"name":"is","type":{"type":"array","items":"int"}},{"name":"u","type":["null","int"]}`),
			reader: stateSchema(`{"name":"il","type":"long"},{"name":"id","type":"double"},{"name":"ld","type":"double"},{"name":"fd","type":"double"},
				{"name":"is","type":{"type":"array","items":"long"}},{"name":"u","type":["null","long"]}`),
			in:   Promoted{IL: -5, ID: -4, LD: 1 << 40, FD: 0.5, Is: []int32{1, 2}, U: &four},
			want: map[string]any{"il": int64(-5), "id": -4.0, "ld": float64(1 << 40), "fd": 0.5, "is": []any{int64(1), int64(2)}, "u": int64(4)},
		},
		{
			name: "nested record in array gains a field",
			writer: stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
				{"name":"sku","type":"string"},{"name":"qty","type":"int"}]}}}`),
			reader: stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
				{"name":"sku","type":"string"},{"name":"qty","type":"long"},{"name":"note","type":["null","string"],"default":null}]}}}`),
			in: Items{Items: []Item{{SKU: "a", Qty: 1}, {SKU: "b", Qty: 2}}},
			want: map[string]any{"items": []any{
				map[string]any{"sku": "a", "qty": int64(1), "note": nil},
				map[string]any{"sku": "b", "qty": int64(2), "note": nil},
			}},
		},
		{
			name: "enum symbols",
			writer: stateSchema(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
				{"name":"f","type":{"type":"enum","name":"F","symbols":["X","Y"]}}`),
			reader: stateSchema(`{"name":"e","type":{"type":"enum","name":"E","symbols":["UNKNOWN","C","A"],"default":"UNKNOWN"}},
				{"name":"f","type":{"type":"enum","name":"F","symbols":["Y","X","Z"]}}`),
			in:   Enums{E: "B", F: "X"},
			want: map[string]any{"e": "UNKNOWN", "f": "X"},
		},
		{
			name:   "value becomes optional",
			writer: stateSchema(`{"name":"c","type":"string"},{"name":"u","type":["null","int"]}`),
			reader: stateSchema(`{"name":"c","type":["null","string"],"default":null},{"name":"u","type":["null","string","int"]}`),
			in:     Optional{C: "cust", U: &four},
			want:   map[string]any{"c": "cust", "u": 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := writeState(t, tt.writer, tt.in)
			c := readerCodec(t, tt.writer, tt.reader)
			s, err := c.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Schema("T").DecodeGeneric(s.State)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("state\n got %#v\nwant %#v", got, tt.want)
			}
			if s.AggregateType != "T" || s.Version != 7 || s.Position != (log.Position{Partition: 1, Offset: 99}) || s.Save != orderSave {
				t.Errorf("envelope %v, save %v", s, s.Save)
			}
			// The resolved snapshot is one of the current schema.
			again, err := c.Decode(mustEncode(t, c, s))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again.State, s.State) {
				t.Errorf("re-encoded state % x, want % x", again.State, s.State)
			}
		})
	}
}

func TestRegisterWriterIncompatible(t *testing.T) {
	tests := []struct {
		name, writer, reader, why string
	}{
		{"new field without default", stateSchema(`{"name":"a","type":"int"}`), stateSchema(`{"name":"a","type":"int"},{"name":"b","type":"string"}`),
			"reader field b is missing in writer schema and has no default"},
		{"string to int", stateSchema(`{"name":"a","type":"string"}`), stateSchema(`{"name":"a","type":"int"}`),
			"reader schema int not compatible with writer schema string"},
		{"long to int", stateSchema(`{"name":"a","type":"long"}`), stateSchema(`{"name":"a","type":"int"}`),
			"reader schema int not compatible with writer schema long"},
		{"double to float", stateSchema(`{"name":"a","type":"double"}`), stateSchema(`{"name":"a","type":"float"}`),
			"reader schema float not compatible with writer schema double"},
		{"nested field in array items",
			stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"q","type":"string"}]}}}`),
			stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"q","type":"int"}]}}}`),
			"reader schema int not compatible with writer schema string"},
		{"optional becomes required", stateSchema(`{"name":"c","type":["null","string"]}`), stateSchema(`{"name":"c","type":"string"}`),
			"reader schema string not compatible with writer schema null"},
		{"union member dropped", stateSchema(`{"name":"u","type":["null","string","int"]}`), stateSchema(`{"name":"u","type":["null","string"]}`),
			"reader union lacking writer schema int"},
		{"enum symbol removed without default",
			stateSchema(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}}`),
			stateSchema(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}`),
			"reader test.E is missing symbol B"},
		{"record renamed",
			stateSchema(`{"name":"p","type":{"type":"record","name":"P","fields":[]}}`),
			stateSchema(`{"name":"p","type":{"type":"record","name":"Q","fields":[]}}`),
			"reader schema test.Q and writer schema test.P"},
		{"fixed resized",
			stateSchema(`{"name":"h","type":{"type":"fixed","name":"H","size":2}}`),
			stateSchema(`{"name":"h","type":{"type":"fixed","name":"H","size":3}}`),
			"test.H reader and writer fixed sizes do not match"},
		{"array to map", stateSchema(`{"name":"a","type":{"type":"array","items":"int"}}`), stateSchema(`{"name":"a","type":{"type":"map","values":"int"}}`),
			"reader schema map not compatible with writer schema array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := snapshots.NewAvroCodec()
			if err := c.Register("T", tt.reader); err != nil {
				t.Fatal(err)
			}
			err := c.RegisterWriter("T", tt.writer)
			if err == nil {
				t.Fatal("no error")
			}
			old := snapshots.NewAvroCodec()
			if err := old.Register("T", tt.writer); err != nil {
				t.Fatal(err)
			}
			fp, _ := old.Fingerprint("T")
			cur, _ := c.Fingerprint("T")
			for _, w := range []string{"snapshots: register writer T: snapshots written with ", "cannot be read as ", tt.why} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%#016x", fp)) || !strings.Contains(err.Error(), fmt.Sprintf("%#016x", cur)) {
				t.Errorf("error %q does not name both fingerprints", err)
			}
			// Nothing was registered: the old bytes stay unreadable.
			_, err = c.Decode(envelope(fp, "T"))
			if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "unknown writer schema fingerprint") {
				t.Errorf("decode: %v", err)
			}
		})
	}
}

func TestRegisterWriter(t *testing.T) {
	c := snapshots.NewAvroCodec()
	err := c.RegisterWriter("Order", orderStateV0)
	if err == nil || !strings.Contains(err.Error(), "snapshots: register writer Order: aggregate type not registered") {
		t.Errorf("before Register: %v", err)
	}
	if err := c.RegisterWriter("", orderStateV0); err == nil {
		t.Error("empty type: no error")
	}
	if err := c.Register("Order", schemas.OrderState()); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterWriter("Order", `{`); err == nil || !strings.Contains(err.Error(), "state schema: schema is not valid JSON") {
		t.Errorf("bad schema: %v", err)
	}
	current, _ := c.Fingerprint("Order")
	for range 2 {
		if err := c.RegisterWriter("Order", schemas.OrderState()); err != nil {
			t.Errorf("the current schema: %v", err)
		}
		if err := c.RegisterWriter("Order", orderStateV0); err != nil {
			t.Errorf("v0: %v", err)
		}
	}
	if fp, _ := c.Fingerprint("Order"); fp != current {
		t.Errorf("Fingerprint changed to %#016x", fp)
	}

	// An older writer schema of one type may be the current one of
	// another; each type decodes as its own.
	if err := c.Register("LegacyOrder", orderStateV0); err != nil {
		t.Fatal(err)
	}
	legacy := snapshots.Snapshot{
		AggregateID: uuid.New(), AggregateType: "LegacyOrder", Version: 1, SchemaVersion: 1,
		State: mustState(t, orderSchemaV0, OrderStateV0{OrderID: uuid.New(), CustomerEmail: "a@b", Items: []OrderItemV0{}, Status: "new", TotalAmount: 1.5}),
	}
	s, err := c.Decode(mustEncode(t, c, legacy))
	if err != nil {
		t.Fatal(err)
	}
	var v0 OrderStateV0
	if err := orderSchemaV0.Decode(s.State, &v0); err != nil || v0.TotalAmount != 1.5 || v0.Coupon != nil {
		t.Errorf("LegacyOrder state %+v, %v", v0, err)
	}
	legacy.AggregateType = "Order"
	v0Orders := snapshots.NewAvroCodec()
	if err := v0Orders.Register("Order", orderStateV0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Encode(legacy); err == nil || !strings.Contains(err.Error(), "state is not an encoding of snaplog.example.OrderState") {
		t.Errorf("Encode of a v0 state as the current Order: %v", err)
	}
	s, err = c.Decode(mustEncode(t, v0Orders, legacy))
	if err != nil {
		t.Fatal(err)
	}
	var o OrderState
	if err := orderSchema.Decode(s.State, &o); err != nil || o.TotalAmount != 1.5 || o.CustomerID != nil {
		t.Errorf("Order state %+v, %v", o, err)
	}
	legacy.AggregateType = "Invoice"
	invoices := snapshots.NewAvroCodec()
	if err := invoices.Register("Invoice", orderStateV0); err != nil {
		t.Fatal(err)
	}
	_, err = c.Decode(mustEncode(t, invoices, legacy))
	if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "written with the schema of LegacyOrder, Order") {
		t.Errorf("Invoice: %v", err)
	}
}

// An Order snapshot written before customer_id existed loads as today's
// OrderState.
func TestResolveOrderV0(t *testing.T) {
	old := snapshots.NewAvroCodec()
	if err := old.Register("Order", orderStateV0); err != nil {
		t.Fatal(err)
	}
	id := uuid.MustParse("550e8400-e29b-41d4-a716-446655440000")
	product := uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
	coupon := "SPRING"
	b := mustEncode(t, old, snapshots.Snapshot{
		AggregateID: id, AggregateType: "Order", Version: 4, SchemaVersion: 1, CreatedAt: createdAt,
		Position: log.Position{Partition: 3, Offset: 10}, Save: orderSave,
		State: mustState(t, orderSchemaV0, OrderStateV0{
			OrderID: id, CustomerEmail: "ann@example.com", Status: "placed", TotalAmount: 7.5, Coupon: &coupon,
			Items: []OrderItemV0{{ProductID: product, ProductName: "tea", Quantity: 3, UnitPrice: 2.5}},
		}),
	})

	c := newOrderCodec(t)
	if _, err := c.Decode(b); !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "unknown writer schema fingerprint") {
		t.Fatalf("before RegisterWriter: %v", err)
	}
	if err := c.RegisterWriter("Order", orderStateV0); err != nil {
		t.Fatal(err)
	}
	s, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var got OrderState
	if err := orderSchema.Decode(s.State, &got); err != nil {
		t.Fatal(err)
	}
	want := OrderState{
		OrderID: id, CustomerEmail: "ann@example.com", Status: "placed", TotalAmount: 7.5,
		Items: []OrderItem{{ProductID: product, ProductName: "tea", Quantity: 3, UnitPrice: 2.5}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state\n got %+v\nwant %+v", got, want)
	}
	if s.Version != 4 || s.Position != (log.Position{Partition: 3, Offset: 10}) || s.Save != orderSave {
		t.Errorf("envelope %v", s)
	}
}
