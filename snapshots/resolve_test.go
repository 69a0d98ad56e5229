package snapshots_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

// state wraps record fields in a state schema of the namespace test.
func stateSchema(fields string) string {
	return `{"type":"record","name":"S","namespace":"test","fields":[` + fields + `]}`
}

// writeState encodes a snapshot of aggregate type T whose state is written
// with the given state schema, as a codec that had it as current would.
func writeState(t *testing.T, schema string, state map[string]any) []byte {
	t.Helper()
	c := snapshots.NewAvroCodec()
	if err := c.Register("T", schema); err != nil {
		t.Fatal(err)
	}
	return mustEncode(t, c, snapshots.Snapshot{
		AggregateID: uuid.MustParse("550e8400-e29b-41d4-a716-446655440000"), AggregateType: "T",
		Version: 7, SchemaVersion: 1, CreatedAt: createdAt,
		Position: log.Position{Partition: 1, Offset: 99}, Save: orderSave, State: state,
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
	day := time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		writer, reader string
		in, want       map[string]any
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
				{"name":"raw","type":"bytes","default":"\u00ff"},
				{"name":"tags","type":{"type":"array","items":"string"},"default":["x"]},
				{"name":"m","type":{"type":"map","values":"int"},"default":{"k":1}},
				{"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","BLUE"]},"default":"BLUE"},
				{"name":"sub","type":{"type":"record","name":"Sub","fields":[{"name":"x","type":"int","default":4}]},"default":{}},
				{"name":"at","type":{"type":"long","logicalType":"timestamp-micros"},"default":1000001}`),
			in: map[string]any{"a": int32(1)},
			want: map[string]any{
				"a": int32(1), "s": "none", "n": nil, "l": int64(-3), "d": 1.5, "flag": true,
				"raw": []byte{0xff}, "tags": []any{"x"}, "m": map[string]any{"k": int32(1)},
				"color": "BLUE", "sub": map[string]any{"x": int32(4)},
				"at": time.Unix(1, 1000).UTC(),
			},
		},
		{
			name:   "field removed",
			writer: stateSchema(`{"name":"gone","type":{"type":"array","items":"string"}},{"name":"a","type":"int"},{"name":"old","type":["null","string"]}`),
			reader: stateSchema(`{"name":"a","type":"int"}`),
			in:     map[string]any{"gone": []any{"x", "y"}, "a": int32(2), "old": "z"},
			want:   map[string]any{"a": int32(2)},
		},
		{
			name:   "fields reordered",
			writer: stateSchema(`{"name":"a","type":"int"},{"name":"b","type":"string"}`),
			reader: stateSchema(`{"name":"b","type":"string"},{"name":"a","type":"int"}`),
			in:     map[string]any{"a": int32(2), "b": "x"},
			want:   map[string]any{"a": int32(2), "b": "x"},
		},
		{
			name: "promotions",
			writer: stateSchema(`{"name":"il","type":"int"},{"name":"if","type":"int"},{"name":"id","type":"int"},
				{"name":"lf","type":"long"},{"name":"ld","type":"long"},{"name":"fd","type":"float"},
				{"name":"sb","type":"string"},{"name":"bs","type":"bytes"}`),
			reader: stateSchema(`{"name":"il","type":"long"},{"name":"if","type":"float"},{"name":"id","type":"double"},
				{"name":"lf","type":"float"},{"name":"ld","type":"double"},{"name":"fd","type":"double"},
				{"name":"sb","type":"bytes"},{"name":"bs","type":"string"}`),
			in: map[string]any{"il": int32(math.MinInt32), "if": int32(3), "id": int32(-4), "lf": int64(1 << 40), "ld": int64(math.MaxInt64),
				"fd": float32(0.1), "sb": "héllo", "bs": []byte("wörld")},
			want: map[string]any{"il": int64(math.MinInt32), "if": float32(3), "id": float64(-4), "lf": float32(1 << 40), "ld": float64(math.MaxInt64),
				"fd": float64(float32(0.1)), "sb": []byte("héllo"), "bs": "wörld"},
		},
		{
			name: "int to long in arrays, maps and unions",
			writer: stateSchema(`{"name":"a","type":{"type":"array","items":"int"}},{"name":"m","type":{"type":"map","values":"int"}},
				{"name":"u","type":["null","int"]},{"name":"u2","type":["null","int"]}`),
			reader: stateSchema(`{"name":"a","type":{"type":"array","items":"long"}},{"name":"m","type":{"type":"map","values":"long"}},
				{"name":"u","type":["null","long"]},{"name":"u2","type":["null","long"]}`),
			in:   map[string]any{"a": []any{int32(1), int32(2)}, "m": map[string]any{"k": int32(3)}, "u": int32(4), "u2": nil},
			want: map[string]any{"a": []any{int64(1), int64(2)}, "m": map[string]any{"k": int64(3)}, "u": int64(4), "u2": nil},
		},
		{
			name: "nested record in array gains a field",
			writer: stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
				{"name":"sku","type":"string"},{"name":"qty","type":"int"}]}}}`),
			reader: stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
				{"name":"sku","type":"string"},{"name":"qty","type":"long"},{"name":"note","type":["null","string"],"default":null},
				{"name":"discount","type":"double","default":0}]}}}`),
			in: map[string]any{"items": []any{map[string]any{"sku": "a", "qty": int32(1)}, map[string]any{"sku": "b", "qty": int32(2)}}},
			want: map[string]any{"items": []any{
				map[string]any{"sku": "a", "qty": int64(1), "note": nil, "discount": 0.0},
				map[string]any{"sku": "b", "qty": int64(2), "note": nil, "discount": 0.0},
			}},
		},
		{
			name:   "string becomes optional",
			writer: stateSchema(`{"name":"c","type":"string"},{"name":"n","type":"null"}`),
			reader: stateSchema(`{"name":"c","type":["null","string"],"default":null},{"name":"n","type":["null","string"]}`),
			in:     map[string]any{"c": "cust", "n": nil},
			want:   map[string]any{"c": "cust", "n": nil},
		},
		{
			name:   "union members reordered and added",
			writer: stateSchema(`{"name":"u","type":["null","string"]},{"name":"v","type":["null","string"]},{"name":"w","type":["int","string"]}`),
			reader: stateSchema(`{"name":"u","type":["string","null","long"]},{"name":"v","type":["string","null","long"]},{"name":"w","type":["string","double"]}`),
			in:     map[string]any{"u": "x", "v": nil, "w": int32(5)},
			want:   map[string]any{"u": "x", "v": nil, "w": 5.0},
		},
		{
			name:   "reader union prefers the same type to a promotion",
			writer: stateSchema(`{"name":"i","type":"int"},{"name":"l","type":"long"}`),
			reader: stateSchema(`{"name":"i","type":["null","long","int"]},{"name":"l","type":["null","float","double"]}`),
			in:     map[string]any{"i": int32(1), "l": int64(2)},
			want:   map[string]any{"i": int32(1), "l": float32(2)},
		},
		{
			name:   "record into a union by name",
			writer: stateSchema(`{"name":"p","type":{"type":"record","name":"old.P","fields":[{"name":"x","type":"int"}]}}`),
			reader: stateSchema(`{"name":"p","type":["null",{"type":"record","name":"Q","fields":[]},{"type":"record","name":"P","fields":[{"name":"x","type":"long"}]}]}`),
			in:     map[string]any{"p": map[string]any{"x": int32(1)}},
			want:   map[string]any{"p": map[string]any{"x": int64(1)}},
		},
		{
			name: "enum symbols",
			writer: stateSchema(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
				{"name":"f","type":{"type":"enum","name":"F","symbols":["X","Y"]}},
				{"name":"g","type":{"type":"enum","name":"old.G","symbols":["X"]}}`),
			reader: stateSchema(`{"name":"e","type":{"type":"enum","name":"E","symbols":["UNKNOWN","C","A"],"default":"UNKNOWN"}},
				{"name":"f","type":{"type":"enum","name":"F","symbols":["Y","X","Z"]}},
				{"name":"g","type":{"type":"enum","name":"G","symbols":["X"]}}`),
			in:   map[string]any{"e": "B", "f": "X", "g": "X"},
			want: map[string]any{"e": "UNKNOWN", "f": "X", "g": "X"},
		},
		{
			name:   "fixed",
			writer: stateSchema(`{"name":"h","type":{"type":"fixed","name":"H","size":2}}`),
			reader: stateSchema(`{"name":"h","type":{"type":"fixed","name":"H","size":2}},{"name":"x","type":"int","default":0}`),
			in:     map[string]any{"h": []byte{1, 2}},
			want:   map[string]any{"h": []byte{1, 2}, "x": int32(0)},
		},
		{
			name: "logical types",
			writer: stateSchema(`{"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}},
				{"name":"day","type":{"type":"int","logicalType":"date"}},
				{"name":"ms","type":{"type":"int","logicalType":"time-millis"}},
				{"name":"id","type":"string"},
				{"name":"n","type":"int"}`),
			reader: stateSchema(`{"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}},
				{"name":"day","type":{"type":"long"}},
				{"name":"ms","type":{"type":"long","logicalType":"time-micros"}},
				{"name":"id","type":{"type":"string","logicalType":"uuid"}},
				{"name":"n","type":{"type":"long","logicalType":"timestamp-millis"}}`),
			in: map[string]any{"at": time.UnixMicro(1700000000123456), "day": day, "ms": int32(1500),
				"id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "n": int32(-1)},
			want: map[string]any{"at": time.UnixMicro(1700000000123456).UTC(), "day": day.Unix() / 86400, "ms": int64(1500),
				"id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "n": time.UnixMilli(-1).UTC()},
		},
		{
			name: "recursive type",
			writer: `{"type":"record","name":"Node","namespace":"test","fields":[
				{"name":"next","type":["null","Node"]},{"name":"v","type":"int"}]}`,
			reader: `{"type":"record","name":"Node","namespace":"test","fields":[
				{"name":"next","type":["null","Node"]},{"name":"v","type":"long"},{"name":"tag","type":"string","default":"t"}]}`,
			in: map[string]any{"v": int32(1), "next": map[string]any{"v": int32(2), "next": nil}},
			want: map[string]any{"v": int64(1), "tag": "t",
				"next": map[string]any{"v": int64(2), "tag": "t", "next": nil}},
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
			if !reflect.DeepEqual(s.State, tt.want) {
				t.Errorf("state\n got %#v\nwant %#v", s.State, tt.want)
			}
			if s.AggregateType != "T" || s.Version != 7 || s.Position != (log.Position{Partition: 1, Offset: 99}) || s.Save != orderSave {
				t.Errorf("envelope %v, save %v", s, s.Save)
			}
			// The resolved snapshot is one of the current schema.
			again, err := c.Decode(mustEncode(t, c, s))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again.State, tt.want) {
				t.Errorf("re-encoded state\n got %#v\nwant %#v", again.State, tt.want)
			}
		})
	}
}

// Defaults are copied into each record: changing one decoded value changes
// no other, nor the next decode.
func TestResolveDefaultsAreCopies(t *testing.T) {
	writer := stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[]}}}`)
	reader := stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[
		{"name":"tags","type":{"type":"array","items":"string"},"default":["a"]}]}}}`)
	b := writeState(t, writer, map[string]any{"items": []any{map[string]any{}, map[string]any{}}})
	c := readerCodec(t, writer, reader)
	s, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	items := s.State["items"].([]any)
	items[0].(map[string]any)["tags"].([]any)[0] = "changed"
	if got := items[1].(map[string]any)["tags"].([]any)[0]; got != "a" {
		t.Errorf("second item's default is %v", got)
	}
	s, err = c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.State["items"].([]any)[0].(map[string]any)["tags"].([]any)[0]; got != "a" {
		t.Errorf("next decode's default is %v", got)
	}
}

func TestRegisterWriterIncompatible(t *testing.T) {
	tests := []struct {
		name, writer, reader string
		want                 []string
	}{
		{
			"new field without default",
			stateSchema(`{"name":"a","type":"int"}`),
			stateSchema(`{"name":"a","type":"int"},{"name":"b","type":"string"}`),
			[]string{"state.b: the writer's test.S has no such field and the reader's test.S gives no default"},
		},
		{
			"string to int",
			stateSchema(`{"name":"a","type":"string"}`),
			stateSchema(`{"name":"a","type":"int"}`),
			[]string{"state.a: writer type string cannot be read as int"},
		},
		{
			"long to int",
			stateSchema(`{"name":"a","type":"long"}`),
			stateSchema(`{"name":"a","type":"int"}`),
			[]string{"state.a: writer type long cannot be read as int"},
		},
		{
			"double to float",
			stateSchema(`{"name":"a","type":"double"}`),
			stateSchema(`{"name":"a","type":"float"}`),
			[]string{"state.a: writer type double cannot be read as float"},
		},
		{
			"nested field in array items",
			stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"q","type":"string"}]}}}`),
			stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"q","type":"int"}]}}}`),
			[]string{"state.items[].q: writer type string cannot be read as int"},
		},
		{
			"map values",
			stateSchema(`{"name":"m","type":{"type":"map","values":"string"}}`),
			stateSchema(`{"name":"m","type":{"type":"map","values":"boolean"}}`),
			[]string{"state.m[*]: writer type string cannot be read as boolean"},
		},
		{
			"optional becomes required",
			stateSchema(`{"name":"c","type":["null","string"]}`),
			stateSchema(`{"name":"c","type":"string"}`),
			[]string{"state.c: writer union member null: writer type null cannot be read as string"},
		},
		{
			"union member dropped",
			stateSchema(`{"name":"u","type":["null","string","int"]}`),
			stateSchema(`{"name":"u","type":["null","string"]}`),
			[]string{"state.u: writer union member int matches no member of the reader union [null, string]"},
		},
		{
			"no union member matches",
			stateSchema(`{"name":"u","type":"boolean"}`),
			stateSchema(`{"name":"u","type":["null","string"]}`),
			[]string{"state.u: writer type boolean matches no member of the reader union [null, string]"},
		},
		{
			"enum symbol removed without default",
			stateSchema(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}}`),
			stateSchema(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}`),
			[]string{"state.e: writer symbols B, C of enum test.E are not in the reader's enum test.E, which gives no default"},
		},
		{
			"record renamed",
			stateSchema(`{"name":"p","type":{"type":"record","name":"P","fields":[]}}`),
			stateSchema(`{"name":"p","type":{"type":"record","name":"Q","fields":[]}}`),
			[]string{"state.p: writer record test.P cannot be read as record test.Q: the names differ"},
		},
		{
			"state record renamed",
			`{"type":"record","name":"OldS","namespace":"test","fields":[]}`,
			stateSchema(``),
			[]string{"state: writer record test.OldS cannot be read as record test.S: the names differ"},
		},
		{
			"fixed resized",
			stateSchema(`{"name":"h","type":{"type":"fixed","name":"H","size":2}}`),
			stateSchema(`{"name":"h","type":{"type":"fixed","name":"H","size":3}}`),
			[]string{"state.h: writer fixed test.H of size 2 cannot be read as fixed test.H of size 3"},
		},
		{
			"array to map",
			stateSchema(`{"name":"a","type":{"type":"array","items":"int"}}`),
			stateSchema(`{"name":"a","type":{"type":"map","values":"int"}}`),
			[]string{"state.a: writer type array<int> cannot be read as map<int>"},
		},
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
			for _, w := range append([]string{"snapshots: register writer T: snapshots written with 0x"}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			// Nothing was registered: the old bytes stay unreadable.
			old := snapshots.NewAvroCodec()
			if err := old.Register("T", tt.writer); err != nil {
				t.Fatal(err)
			}
			fp, _ := old.Fingerprint("T")
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
	if ws, _ := c.WriterSchema("Order"); mustFingerprint(t, ws) != current {
		t.Error("WriterSchema changed")
	}

	// An older writer schema of one type may be the current one of
	// another; each type decodes as its own.
	if err := c.Register("LegacyOrder", orderStateV0); err != nil {
		t.Fatal(err)
	}
	legacy := snapshots.Snapshot{
		AggregateID: uuid.New(), AggregateType: "LegacyOrder", Version: 1, SchemaVersion: 1,
		State: map[string]any{"order_id": uuid.NewString(), "customer_email": "a@b", "items": []any{}, "status": "new", "total_amount": 1.5},
	}
	s, err := c.Decode(mustEncode(t, c, legacy))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.State["customer_id"]; ok || s.State["total_amount"] != float32(1.5) || s.State["coupon"] != nil {
		t.Errorf("LegacyOrder state %v", s.State)
	}
	legacy.AggregateType = "Order"
	s, err = c.Decode(mustEncode(t, c, legacy))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.State["customer_id"]; !ok || v != nil || s.State["total_amount"] != 1.5 {
		t.Errorf("Order state %v", s.State)
	}
	if _, ok := s.State["coupon"]; ok {
		t.Errorf("Order state %v has the removed field", s.State)
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

// An Order snapshot written before customer_id existed loads as today's
// OrderState.
func TestResolveOrderV0(t *testing.T) {
	old := snapshots.NewAvroCodec()
	if err := old.Register("Order", orderStateV0); err != nil {
		t.Fatal(err)
	}
	id := uuid.MustParse("550e8400-e29b-41d4-a716-446655440000")
	product := uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
	b := mustEncode(t, old, snapshots.Snapshot{
		AggregateID: id, AggregateType: "Order", Version: 4, SchemaVersion: 1, CreatedAt: createdAt,
		Position: log.Position{Partition: 3, Offset: 10}, Save: orderSave,
		State: map[string]any{
			"order_id": id, "customer_email": "ann@example.com", "status": "placed", "total_amount": 7.5, "coupon": "SPRING",
			"items": []any{map[string]any{"product_id": product, "product_name": "tea", "quantity": 3, "unit_price": 2.5}},
		},
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
	if err := snapshots.Unmarshal(s.State, &got); err != nil {
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

// Values the schemas allow but the reader's logical type refuses fail the
// decode with ErrCorrupt, so that the repository replays the aggregate.
func TestResolveValueErrors(t *testing.T) {
	writer := stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[
		{"name":"id","type":"string"},{"name":"raw","type":"bytes"}]}}}`)
	reader := stateSchema(`{"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[
		{"name":"id","type":{"type":"string","logicalType":"uuid"}},{"name":"raw","type":{"type":"string","logicalType":"uuid"}}]}}}`)
	c := readerCodec(t, writer, reader)
	good := uuid.NewString()
	tests := []struct {
		id, raw string
		want    string
	}{
		{good, good, ""},
		{"not-a-uuid", good, `state.items[1].id: string "not-a-uuid" is not a uuid`},
		{good, "x", `state.items[1].raw: string "x" is not a uuid`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.id, tt.raw), func(t *testing.T) {
			b := writeState(t, writer, map[string]any{"items": []any{
				map[string]any{"id": good, "raw": []byte(good)},
				map[string]any{"id": tt.id, "raw": []byte(tt.raw)},
			}})
			_, err := c.Decode(b)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want ErrCorrupt containing %q", err, tt.want)
			}
		})
	}
}
