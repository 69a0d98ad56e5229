package snapshots_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/linkedin/goavro/v2"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

// orderPCF is the Parsing Canonical Form of the Order writer schema, written
// out by hand from schemas/snapshot.avsc and schemas/order_state.avsc.
const orderPCF = `{"name":"snaplog.Snapshot","type":"record","fields":[` +
	`{"name":"aggregate_id","type":"string"},{"name":"aggregate_type","type":"string"},` +
	`{"name":"version","type":"long"},{"name":"schema_version","type":"int"},` +
	`{"name":"created_at","type":"long"},` +
	`{"name":"position","type":{"name":"snaplog.LogPosition","type":"record","fields":[{"name":"partition","type":"int"},{"name":"offset","type":"long"},{"name":"save","type":"string"}]}},` +
	`{"name":"state","type":{"name":"snaplog.example.OrderState","type":"record","fields":[` +
	`{"name":"order_id","type":"string"},{"name":"customer_id","type":["null","string"]},` +
	`{"name":"customer_email","type":"string"},` +
	`{"name":"items","type":{"type":"array","items":{"name":"snaplog.example.OrderItem","type":"record","fields":[` +
	`{"name":"product_id","type":"string"},{"name":"product_name","type":"string"},` +
	`{"name":"quantity","type":"int"},{"name":"unit_price","type":"double"}]}}},` +
	`{"name":"status","type":"string"},{"name":"total_amount","type":"double"}]}}]}`

var createdAt = time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))

func newOrderCodec(t testing.TB) *snapshots.AvroCodec {
	t.Helper()
	c := snapshots.NewAvroCodec()
	if err := c.Register("Order", schemas.OrderState()); err != nil {
		t.Fatal(err)
	}
	return c
}

func orderSnapshot(t testing.TB, o OrderState) snapshots.Snapshot {
	t.Helper()
	return snapshots.Snapshot{
		AggregateID:   o.OrderID,
		AggregateType: "Order",
		Version:       42,
		SchemaVersion: 3,
		CreatedAt:     createdAt,
		Position:      log.Position{Partition: 2, Offset: 1234},
		Save:          orderSave,
		State:         mustState(t, orderSchema, o),
	}
}

var orderSave = uuid.MustParse("9b2e4c1a-7d3f-4e5a-8b6c-0d1e2f3a4b5c")

func mustEncode(t testing.TB, c *snapshots.AvroCodec, s snapshots.Snapshot) []byte {
	t.Helper()
	b, err := c.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAvroRoundTripOrder(t *testing.T) {
	c := newOrderCodec(t)
	noCustomer := orderWithItems(0)
	noCustomer.CustomerID = nil
	tests := map[string]OrderState{
		"three items":                  orderWithItems(3),
		"no customer and no items":     noCustomer,
		"two hundred items":            orderWithItems(200),
		"zero values but the order id": {OrderID: uuid.New(), Items: []OrderItem{}},
		"nil uuid and extreme numbers": {OrderID: uuid.New(), Items: []OrderItem{{ProductID: uuid.Nil, Quantity: math.MinInt32, UnitPrice: math.Inf(-1)}}, TotalAmount: math.MaxFloat64},
	}
	for name, o := range tests {
		t.Run(name, func(t *testing.T) {
			in := orderSnapshot(t, o)
			b := mustEncode(t, c, in)
			out, err := c.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if out.AggregateID != in.AggregateID || out.AggregateType != in.AggregateType ||
				out.Version != in.Version || out.SchemaVersion != in.SchemaVersion || out.Position != in.Position || out.Save != in.Save {
				t.Errorf("envelope: got %v, want %v", out, in)
			}
			if want := createdAt.Truncate(time.Microsecond).UTC(); out.CreatedAt != want {
				t.Errorf("CreatedAt = %v, want %v", out.CreatedAt, want)
			}
			if !bytes.Equal(out.State, in.State) {
				t.Errorf("state bytes\n got % x\nwant % x", out.State, in.State)
			}
			var back OrderState
			if err := orderSchema.Decode(out.State, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, o) {
				t.Errorf("state\n got %+v\nwant %+v", back, o)
			}
			// The decoded state re-encodes to the same bytes.
			out.CreatedAt = in.CreatedAt
			if again := mustEncode(t, c, out); !bytes.Equal(again, b) {
				t.Error("re-encoding the decoded snapshot gives other bytes")
			}
		})
	}
}

// TestAvroSchemaFilesAgree checks what Encode writes against the .avsc files,
// with an independent composition of the writer schema and goavro alone.
func TestAvroSchemaFilesAgree(t *testing.T) {
	// Compose the writer schema as another implementation would.
	var env, state map[string]any
	if err := json.Unmarshal([]byte(schemas.Snapshot()), &env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(schemas.OrderState()), &state); err != nil {
		t.Fatal(err)
	}
	replaced := 0
	for _, f := range env["fields"].([]any) {
		f := f.(map[string]any)
		if f["name"] == schemas.StateField {
			placeholder := f["type"].(map[string]any)
			if placeholder["name"] != "State" || env["namespace"] != "snaplog" || len(placeholder["fields"].([]any)) != 0 {
				t.Fatalf("placeholder is %v", placeholder)
			}
			f["type"] = state
			replaced++
		}
	}
	if replaced != 1 {
		t.Fatalf("%d state fields", replaced)
	}
	text, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	composed, err := goavro.NewCodec(string(text))
	if err != nil {
		t.Fatal(err)
	}

	c := newOrderCodec(t)
	o := orderWithItems(2)
	b := mustEncode(t, c, orderSnapshot(t, o))

	// Header: marker, then the fingerprint of the canonical form. goavro's
	// Rabin of the hand-written canonical form (which has no logical types)
	// is an independent computation of it.
	if b[0] != 0xC3 || b[1] != 0x01 {
		t.Fatalf("marker % x", b[:2])
	}
	pcf, err := snapshots.CanonicalForm(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if pcf != orderPCF {
		t.Fatalf("canonical form\n got %s\nwant %s", pcf, orderPCF)
	}
	plain, err := goavro.NewCodec(orderPCF)
	if err != nil {
		t.Fatal(err)
	}
	fp := binary.LittleEndian.Uint64(b[2:10])
	if fp != plain.Rabin {
		t.Errorf("header fingerprint %#016x, want %#016x", fp, plain.Rabin)
	}
	if got, _ := snapshots.Fingerprint(string(text)); got != fp {
		t.Errorf("Fingerprint(composed) = %#016x, header has %#016x", got, fp)
	}
	if got, ok := c.Fingerprint("Order"); !ok || got != fp {
		t.Errorf("codec.Fingerprint = %#016x, %v", got, ok)
	}
	if ws, _ := c.WriterSchema("Order"); mustFingerprint(t, ws) != fp {
		t.Error("WriterSchema has another fingerprint")
	}

	// The body is the record, readable with the composed schema alone.
	native, rest, err := composed.NativeFromBinary(b[10:])
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes left", len(rest))
	}
	rec := native.(map[string]any)
	want := map[string]any{
		"aggregate_id":   o.OrderID.String(),
		"aggregate_type": "Order",
		"version":        int64(42),
		"schema_version": int32(3),
		"created_at":     createdAt.Truncate(time.Microsecond).UTC(),
		"position":       map[string]any{"partition": int32(2), "offset": int64(1234), "save": orderSave.String()},
	}
	for k, v := range want {
		if !reflect.DeepEqual(rec[k], v) {
			t.Errorf("%s = %#v, want %#v", k, rec[k], v)
		}
	}
	st := rec["state"].(map[string]any)
	wantState := map[string]any{
		"order_id":       o.OrderID.String(),
		"customer_id":    map[string]any{"string": o.CustomerID.String()},
		"customer_email": o.CustomerEmail,
		"status":         o.Status,
		"total_amount":   o.TotalAmount,
	}
	for k, v := range wantState {
		if !reflect.DeepEqual(st[k], v) {
			t.Errorf("state.%s = %#v, want %#v", k, st[k], v)
		}
	}
	items := st["items"].([]any)
	if len(items) != len(o.Items) {
		t.Fatalf("%d items", len(items))
	}
	for i, it := range o.Items {
		wantItem := map[string]any{
			"product_id":   it.ProductID.String(),
			"product_name": it.ProductName,
			"quantity":     int32(it.Quantity),
			"unit_price":   it.UnitPrice,
		}
		if !reflect.DeepEqual(items[i], wantItem) {
			t.Errorf("items[%d] = %#v, want %#v", i, items[i], wantItem)
		}
	}
	if len(rec) != len(want)+1 || len(st) != len(wantState)+1 {
		t.Errorf("unexpected fields: %v", rec)
	}

	// The Go struct and the state schema have the same fields.
	orderFields := stateFieldNames(t, state)
	if goFields := avroTags(OrderState{}); !reflect.DeepEqual(goFields, orderFields) {
		t.Errorf("OrderState fields %q, order_state.avsc %q", goFields, orderFields)
	}
	if got := c.StateFields("Order"); !reflect.DeepEqual(got, orderFields) {
		t.Errorf("StateFields = %q, want %q", got, orderFields)
	}
	if got := orderSchema.Fields(); !reflect.DeepEqual(got, orderFields) {
		t.Errorf("StateSchema.Fields = %q, want %q", got, orderFields)
	}
	var itemSchema map[string]any
	for _, f := range state["fields"].([]any) {
		if f.(map[string]any)["name"] == "items" {
			itemSchema = f.(map[string]any)["type"].(map[string]any)["items"].(map[string]any)
		}
	}
	itemFields := stateFieldNames(t, itemSchema)
	if goItem := avroTags(OrderItem{}); !reflect.DeepEqual(goItem, itemFields) {
		t.Errorf("OrderItem fields %q, schema %q", goItem, itemFields)
	}
	wantItems := map[string][]string{"items": itemFields}
	if got := orderSchema.ItemFields(); !reflect.DeepEqual(got, wantItems) {
		t.Errorf("ItemFields = %q, want %q", got, wantItems)
	}
	if orderSchema.Name() != "snaplog.example.OrderState" || orderSchema.Text() != schemas.OrderState() {
		t.Errorf("Name %q, Text %.40q…", orderSchema.Name(), orderSchema.Text())
	}
	if orderSchema.Fingerprint() != fp || mustFingerprint(t, orderSchema.WriterSchema()) != fp || c.Schema("Order").Fingerprint() != fp {
		t.Error("StateSchema has another fingerprint than the header")
	}
}

// avroTags returns the avro tags of a struct's fields, in order.
func avroTags(v any) []string {
	var names []string
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		names = append(names, typ.Field(i).Tag.Get("avro"))
	}
	return names
}

func stateFieldNames(t *testing.T, record map[string]any) []string {
	t.Helper()
	var names []string
	for _, f := range record["fields"].([]any) {
		names = append(names, f.(map[string]any)["name"].(string))
	}
	return names
}

func mustFingerprint(t *testing.T, schema string) uint64 {
	t.Helper()
	fp, err := snapshots.Fingerprint(schema)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestAvroDecodeErrors(t *testing.T) {
	c := newOrderCodec(t)
	o := orderWithItems(5)
	good := mustEncode(t, c, orderSnapshot(t, o))
	fp, _ := c.Fingerprint("Order")
	tests := []struct {
		name string
		b    []byte
		want []string
	}{
		{"empty", nil, []string{"0 bytes, shorter than the 10-byte"}},
		{"short header", good[:9], []string{"9 bytes"}},
		{"wrong marker", append([]byte{0xC3, 0x02}, good[2:]...), []string{"marker 0xc3 0x02"}},
		{"unknown fingerprint", withFingerprint(good, 0x0123456789abcdef), []string{
			"unknown writer schema fingerprint 0x0123456789abcdef",
			fmt.Sprintf("registered: Order (%#016x)", fp)}},
		{"header only", good[:10], []string{"decode: aggregate_id: truncated"}},
		{"truncated in items", good[:len(good)-40], []string{"Order " + o.OrderID.String() + ": items: block of 280 bytes with 256 bytes left"}},
		{"truncated last byte", good[:len(good)-1], []string{"total_amount: length 8 with 7 bytes left"}},
		{"trailing bytes", append(append([]byte{}, good...), 0, 0), []string{"2 trailing bytes after the record"}},
		{"bad union index", rawOrder(fp, nil, func(b []byte) []byte { return appendLong(b, 5) }), []string{"customer_id: union index 5 of 2 members"}},
		{"huge items count", rawOrder(fp, appendLong(nil, math.MaxInt32), nil), []string{"items: block of 2147483647 items with 0 bytes left"}},
		{"negative items count", rawOrder(fp, appendLong(nil, -3), nil), []string{"items: truncated"}},
		{"huge string", rawOrder(fp, nil, func(b []byte) []byte { return appendLong(appendLong(b, 0), 1<<40) }), []string{"customer_email: length 1099511627776 with 0 bytes left"}},
		{"negative string length", rawOrder(fp, nil, func(b []byte) []byte { return appendLong(appendLong(b, 0), -1) }), []string{"customer_email: length -1 with 0 bytes left"}},
		{"overlong varint", rawOrder(fp, nil, func(b []byte) []byte {
			return append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
		}), []string{"customer_id: varint longer than 10 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Decode(tt.b)
			if !errors.Is(err, snapshots.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}

	// A uuid is an Avro string: a snapshot whose uuid is not one decodes,
	// and its state's decoding into the Go type is refused with
	// ErrCorrupt, naming the field.
	t.Run("not a uuid", func(t *testing.T) {
		b := rawOrder(fp, nil, func(b []byte) []byte {
			b = appendString(appendLong(b, 1), "not-a-uuid")
			b = appendLong(appendString(b, "a@b"), 0)                    // email, no items
			return append(appendString(b, "placed"), make([]byte, 8)...) // status, total
		})
		s, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		var o OrderState
		err = orderSchema.Decode(s.State, &o)
		if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "decode state snaplog.example.OrderState") ||
			!strings.Contains(err.Error(), "CustomerID") {
			t.Errorf("error %v", err)
		}
	})

	t.Run("bad enum and boolean", func(t *testing.T) {
		c := snapshots.NewAvroCodec()
		if err := c.Register("Flag", `{"type":"record","name":"n.Flag","fields":[{"name":"on","type":"boolean"},
			{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}]}`); err != nil {
			t.Fatal(err)
		}
		fp, _ := c.Fingerprint("Flag")
		for _, tt := range []struct {
			state []byte
			want  string
		}{
			{[]byte{1, 2}, ""},
			{[]byte{2, 2}, "on: boolean byte 0x02"},
			{[]byte{1, 4}, "e: enum index 2 of 2 symbols"},
			{[]byte{1, 1}, "e: enum index -1 of 2 symbols"},
		} {
			_, err := c.Decode(append(envelope(fp, "Flag"), tt.state...))
			if tt.want == "" {
				if err != nil {
					t.Error(err)
				}
				continue
			}
			if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("state % x: %v, want ErrCorrupt containing %q", tt.state, err, tt.want)
			}
		}
	})

	t.Run("every truncation", func(t *testing.T) {
		for n := range len(good) {
			if _, err := c.Decode(good[:n]); !errors.Is(err, snapshots.ErrCorrupt) {
				t.Fatalf("Decode(good[:%d]) = %v", n, err)
			}
		}
	})

	t.Run("invalid envelope values", func(t *testing.T) {
		s := orderSnapshot(t, o)
		s.Version = 0
		b := encodeWith(t, c, s)
		_, err := c.Decode(b)
		if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "version 0 is not positive") {
			t.Errorf("error %v", err)
		}
	})

	t.Run("aggregate type of another schema", func(t *testing.T) {
		s := orderSnapshot(t, o)
		s.AggregateType = "Invoice"
		_, err := c.Decode(encodeWith(t, c, s))
		if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "decode Invoice "+o.OrderID.String()+": written with the schema of Order") {
			t.Errorf("error %v", err)
		}
	})
}

// encodeWith writes s with the Order writer schema, bypassing the checks of
// Encode: goavro reads the state with the state schema alone and writes
// the whole record.
func encodeWith(t *testing.T, c *snapshots.AvroCodec, s snapshots.Snapshot) []byte {
	t.Helper()
	text, _ := c.WriterSchema("Order")
	codec, err := goavro.NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	stateCodec, err := goavro.NewCodec(schemas.OrderState())
	if err != nil {
		t.Fatal(err)
	}
	state, rest, err := stateCodec.NativeFromBinary(s.State)
	if err != nil || len(rest) != 0 {
		t.Fatalf("goavro reads the state: %v, %d bytes left", err, len(rest))
	}
	b, err := codec.SingleFromNative(nil, map[string]any{
		"aggregate_id": s.AggregateID.String(), "aggregate_type": s.AggregateType,
		"version": s.Version, "schema_version": int32(s.SchemaVersion), "created_at": s.CreatedAt,
		"position": map[string]any{"partition": s.Position.Partition, "offset": s.Position.Offset, "save": s.Save.String()},
		"state":    state,
	})
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := c.Fingerprint("Order")
	return withFingerprint(b, fp) // goavro's own header fingerprint differs
}

func withFingerprint(b []byte, fp uint64) []byte {
	b = append([]byte{}, b...)
	binary.LittleEndian.PutUint64(b[2:10], fp)
	return b
}

func appendLong(b []byte, v int64) []byte {
	return binary.AppendUvarint(b, uint64(v<<1)^uint64(v>>63))
}

func appendString(b []byte, s string) []byte {
	return append(appendLong(b, int64(len(s))), s...)
}

// envelope returns a header and the envelope fields up to the state.
func envelope(fp uint64, aggregateType string) []byte {
	b := []byte{0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint64(b[2:], fp)
	b = appendString(b, "550e8400-e29b-41d4-a716-446655440000")
	b = appendString(b, aggregateType)
	b = appendLong(b, 1)                       // version
	b = appendLong(b, 1)                       // schema_version
	b = appendLong(b, 0)                       // created_at
	b = appendLong(b, 0)                       // position.partition
	b = appendLong(b, 0)                       // position.offset
	return appendString(b, orderSave.String()) // position.save
}

// rawOrder builds an Order snapshot by hand. With customer nil, it appends
// items after the order id, a null customer id and an email; otherwise
// customer writes the rest of the state after the order id.
func rawOrder(fp uint64, items []byte, customer func([]byte) []byte) []byte {
	b := envelope(fp, "Order")
	b = appendString(b, "6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	if customer != nil {
		return customer(b)
	}
	b = appendLong(b, 0)
	b = appendString(b, "a@example.com")
	return append(b, items...)
}

func TestAvroEncodeErrors(t *testing.T) {
	c := newOrderCodec(t)
	o := orderWithItems(3)
	id := o.OrderID.String()
	good := mustState(t, orderSchema, o)
	noCustomer := o
	noCustomer.CustomerID = nil
	tests := []struct {
		name  string
		state []byte // the snapshot's state, good if nil
		snap  func(s *snapshots.Snapshot)
		want  string
	}{
		{"good", good, nil, ""},
		{"no customer", mustState(t, orderSchema, noCustomer), nil, ""},
		{"empty", []byte{}, nil, "snapshots: encode Order " + id + ": state is not an encoding of snaplog.example.OrderState: order_id: truncated"},
		{"truncated", good[:len(good)-1], nil, "snapshots: encode Order " + id + ": state is not an encoding of snaplog.example.OrderState: total_amount: length 8 with 7 bytes left"},
		{"truncated in items", good[:len(good)-40], nil, "snapshots: encode Order " + id + ": state is not an encoding of snaplog.example.OrderState: items: block of 168 bytes with 144 bytes left"},
		{"trailing bytes", append(bytes.Clone(good), 0), nil, "snapshots: encode Order " + id + ": state is not an encoding of snaplog.example.OrderState: 1 trailing bytes after the record"},
		{"bad union index", append(appendString(nil, id), 4), nil, "snapshots: encode Order " + id + ": state is not an encoding of snaplog.example.OrderState: customer_id: union index 2 of 2 members"},
		{"state of another schema", mustState(t, accountState, Account{Owner: "ada", Balance: 1, Ops: 2}), nil,
			"snapshots: encode Order " + id + ": state is not an encoding of snaplog.example.OrderState: "},
		{"nil state", nil, func(s *snapshots.Snapshot) { s.State = nil }, "snapshots: invalid snapshot of Order " + id + ": nil state"},
		{"unregistered type", nil, func(s *snapshots.Snapshot) { s.AggregateType = "Invoice" },
			"snapshots: encode Invoice " + id + ": aggregate type not registered (registered: Order (0x"},
		{"invalid snapshot", nil, func(s *snapshots.Snapshot) { s.Version = 0 },
			"snapshots: invalid snapshot of Order " + id},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := orderSnapshot(t, o)
			if tt.state != nil {
				s.State = tt.state
			}
			if tt.snap != nil {
				tt.snap(&s)
			}
			before := bytes.Clone(s.State)
			b, err := c.Encode(s)
			if !bytes.Equal(before, s.State) {
				t.Error("Encode changed the state")
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if out, err := c.Decode(b); err != nil || !bytes.Equal(out.State, s.State) {
					t.Errorf("Decode = % x, %v", out.State, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n got %v\nwant %s…", err, tt.want)
			}
		})
	}
	t.Run("output does not share the state", func(t *testing.T) {
		s := orderSnapshot(t, o)
		b := mustEncode(t, c, s)
		clear(b)
		if !bytes.Equal(s.State, good) {
			t.Error("changing the encoding changed the state")
		}
	})
}

// Encode writes only what Decode and every other Avro reader reads back:
// schema_version is an Avro int, created_at a timestamp-micros long.
func TestAvroEncodeRefusesEnvelopeOverflow(t *testing.T) {
	c := newOrderCodec(t)
	o := orderWithItems(1)
	id := o.OrderID.String()
	tests := []struct {
		name   string
		change func(s *snapshots.Snapshot)
		want   string
	}{
		{"schema version overflow", func(s *snapshots.Snapshot) { s.SchemaVersion = math.MaxInt32 + 1 },
			"snapshots: invalid snapshot of Order " + id + ": schema version 2147483648 is not a positive Avro int"},
		{"time out of range", func(s *snapshots.Snapshot) { s.CreatedAt = time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC) },
			"snapshots: invalid snapshot of Order " + id + ": created at: 300000-01-01 00:00:00 +0000 UTC is out of the range of a timestamp-micros"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := orderSnapshot(t, o)
			tt.change(&s)
			b, err := c.Encode(s)
			if err == nil {
				out, derr := c.Decode(b)
				t.Fatalf("Encode wrote %d bytes without an error; Decode gives schema version %d, created at %v, %v",
					len(b), out.SchemaVersion, out.CreatedAt, derr)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n got %v\nwant %s…", err, tt.want)
			}
		})
	}
}

// The save of the snapshot's last event round-trips, uuid.Nil included, as
// the 36-character string form; a save that is not a uuid is corrupt.
func TestAvroSave(t *testing.T) {
	c := newOrderCodec(t)
	for _, save := range []uuid.UUID{orderSave, uuid.Nil} {
		s := orderSnapshot(t, orderWithItems(1))
		s.Save = save
		b := mustEncode(t, c, s)
		if !bytes.Contains(b, []byte(save.String())) {
			t.Errorf("%s not in the encoding", save)
		}
		out, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if out.Save != save {
			t.Errorf("Save = %s, want %s", out.Save, save)
		}
	}
	b := mustEncode(t, c, orderSnapshot(t, orderWithItems(1)))
	b = bytes.Replace(b, []byte(orderSave.String()), []byte(strings.Repeat("x", 36)), 1)
	_, err := c.Decode(b)
	if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "position.save: invalid UUID format") {
		t.Errorf("error %v", err)
	}
}

func TestAvroRegister(t *testing.T) {
	c := snapshots.NewAvroCodec()
	if _, ok := c.Fingerprint("Order"); ok {
		t.Error("Fingerprint of an unregistered type")
	}
	if c.StateFields("Order") != nil {
		t.Error("StateFields of an unregistered type")
	}
	if err := c.Register("Order", schemas.OrderState()); err != nil {
		t.Fatal(err)
	}
	if err := c.Register("Order", schemas.OrderState()); err != nil {
		t.Errorf("registering the same schema again: %v", err)
	}
	other := strings.Replace(schemas.OrderState(), `"total_amount", "type": "double"`, `"total_amount", "type": "float"`, 1)
	if other == schemas.OrderState() {
		t.Fatal("test schema unchanged")
	}
	if err := c.Register("Order", other); err == nil || !strings.Contains(err.Error(), "already registered with another state schema") {
		t.Errorf("second schema: %v", err)
	}

	// Two types may share a state schema; each decodes as itself.
	if err := c.Register("ArchivedOrder", schemas.OrderState()); err != nil {
		t.Fatal(err)
	}
	fp1, _ := c.Fingerprint("Order")
	fp2, _ := c.Fingerprint("ArchivedOrder")
	if fp1 != fp2 {
		t.Error("same schema, different fingerprints")
	}
	s := orderSnapshot(t, orderWithItems(1))
	s.AggregateType = "ArchivedOrder"
	got, err := c.Decode(mustEncode(t, c, s))
	if err != nil || got.AggregateType != "ArchivedOrder" {
		t.Errorf("Decode = %v, %v", got, err)
	}

	// Register takes the older state schemas of the type too.
	older := snapshots.NewAvroCodec()
	if err := older.Register("Order", schemas.OrderState(), orderStateV0, schemas.OrderState()); err != nil {
		t.Fatal(err)
	}
	v0 := snapshots.NewAvroCodec()
	if err := v0.Register("Order", orderStateV0); err != nil {
		t.Fatal(err)
	}
	s = orderSnapshot(t, orderWithItems(0))
	s.State = mustState(t, orderSchemaV0, OrderStateV0{OrderID: s.AggregateID, Items: []OrderItemV0{}})
	if _, err := older.Decode(mustEncode(t, v0, s)); err != nil {
		t.Errorf("Decode of a v0 snapshot: %v", err)
	}

	bad := []struct {
		name, typ, schema, want string
	}{
		{"empty type", "", schemas.OrderState(), "empty aggregate type"},
		{"not JSON", "X", `{`, "state schema: schema is not valid JSON"},
		{"not a record", "X", `"string"`, "state schema: must be a record"},
		{"invalid schema", "X", `{"type":"record","name":"S","fields":[{"name":"a","type":"Nope"}]}`, "unknown type: Nope"},
		{"name taken by the envelope", "X", `{"type":"record","name":"snaplog.LogPosition","fields":[]}`, `duplicate name "snaplog.LogPosition"`},
		{"bad default", "X", `{"type":"record","name":"n.S","fields":[{"name":"d","type":"int","default":"x"}]}`,
			"invalid default for field d"},
		{"older schema that cannot be read", "X", `{"type":"record","name":"n.S","fields":[{"name":"d","type":"int"}]}`,
			"snapshots: register writer X: snapshots written with 0x"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var older []string
			if strings.HasPrefix(tt.name, "older") {
				tt.schema, older = `{"type":"record","name":"n.S","fields":[{"name":"d","type":"long"}]}`, []string{tt.schema, `{"type":"record","name":"n.S","fields":[{"name":"d","type":"string"}]}`}
			}
			err := snapshots.NewAvroCodec().Register(tt.typ, tt.schema, older...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// everythingSchema uses every Avro type and every logical type.
const everythingSchema = `{"type":"record","name":"Everything","namespace":"test","fields":[
	{"name":"b","type":"boolean"},
	{"name":"i","type":"int"},
	{"name":"l","type":"long"},
	{"name":"f","type":"float"},
	{"name":"d","type":"double"},
	{"name":"raw","type":"bytes"},
	{"name":"s","type":"string"},
	{"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
	{"name":"fx","type":{"type":"fixed","name":"Four","size":4}},
	{"name":"arr","type":{"type":"array","items":"long"}},
	{"name":"m","type":{"type":"map","values":["null","double"]}},
	{"name":"u","type":["null","string","long","Color","Four",{"type":"array","items":"int"}]},
	{"name":"u2","type":["null","string","long","Color","Four",{"type":"array","items":"int"}]},
	{"name":"u3","type":["null","string","long","Color","Four",{"type":"array","items":"int"}]},
	{"name":"rec","type":["null",{"type":"record","name":"Sub","fields":[{"name":"x","type":"int"},{"name":"y","type":"string","default":"dflt"}]}],"default":null},
	{"name":"rec2","type":["null","Sub"]},
	{"name":"ts_micros","type":{"type":"long","logicalType":"timestamp-micros"}},
	{"name":"ts_millis","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"day","type":{"type":"int","logicalType":"date"}},
	{"name":"tod_millis","type":{"type":"int","logicalType":"time-millis"}},
	{"name":"tod_micros","type":{"type":"long","logicalType":"time-micros"}},
	{"name":"id","type":{"type":"string","logicalType":"uuid"}},
	{"name":"maybe_ts","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null},
	{"name":"local","type":{"type":"long","logicalType":"local-timestamp-micros"}},
	{"name":"local_millis","type":{"type":"long","logicalType":"local-timestamp-millis"}},
	{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
	{"name":"fixed_dec","type":{"type":"fixed","name":"Money","size":8,"logicalType":"decimal","precision":12,"scale":3}},
	{"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
	{"name":"defaulted","type":"int","default":7},
	{"name":"subs","type":{"type":"array","items":"Sub"},"default":[{"x":1}]},
	{"name":"bytes_default","type":"bytes","default":"\u00ff\u0001"}
]}`

// Sub and Everything mirror everythingSchema, with the Go types hamba/avro
// maps each Avro type to. A union of more than null and one type is a
// map[string]any of one member, by name.
type Sub struct {
	X int32  `avro:"x"`
	Y string `avro:"y"`
}

type Everything struct {
	B            bool                 `avro:"b"`
	I            int32                `avro:"i"`
	L            int64                `avro:"l"`
	F            float32              `avro:"f"`
	D            float64              `avro:"d"`
	Raw          []byte               `avro:"raw"`
	S            string               `avro:"s"`
	E            string               `avro:"e"`
	Fx           [4]byte              `avro:"fx"`
	Arr          []int64              `avro:"arr"`
	M            map[string]*float64  `avro:"m"`
	U            map[string]any       `avro:"u"`
	U2           map[string]any       `avro:"u2"`
	U3           map[string]any       `avro:"u3"`
	Rec          *Sub                 `avro:"rec"`
	Rec2         *Sub                 `avro:"rec2"`
	TSMicros     time.Time            `avro:"ts_micros"`
	TSMillis     time.Time            `avro:"ts_millis"`
	Day          time.Time            `avro:"day"`
	TODMillis    time.Duration        `avro:"tod_millis"`
	TODMicros    time.Duration        `avro:"tod_micros"`
	ID           uuid.UUID            `avro:"id"`
	MaybeTS      *time.Time           `avro:"maybe_ts"`
	Local        time.Time            `avro:"local"`
	LocalMillis  time.Time            `avro:"local_millis"`
	Dec          *big.Rat             `avro:"dec"`
	FixedDec     *big.Rat             `avro:"fixed_dec"`
	Dur          avro.LogicalDuration `avro:"dur"`
	Defaulted    int32                `avro:"defaulted"`
	Subs         []Sub                `avro:"subs"`
	BytesDefault []byte               `avro:"bytes_default"`
}

func everything() Everything {
	ts := time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC)
	half := 1.5
	return Everything{
		B: true, I: 5, L: -6, F: 1.5, D: 0.25,
		Raw: []byte{0, 1}, S: "text", E: "GREEN", Fx: [4]byte{1, 2, 3, 4},
		Arr: []int64{1, 2}, M: map[string]*float64{"x": &half, "y": nil},
		U:        map[string]any{"test.Color": "RED"},
		U2:       map[string]any{"test.Four": [4]byte{9, 9, 9, 9}},
		U3:       map[string]any{"array": []any{1}},
		Rec2:     &Sub{X: 3, Y: "dflt"},
		TSMicros: ts.Truncate(time.Microsecond), TSMillis: ts.Truncate(time.Millisecond),
		Day:       time.Date(1969, 7, 20, 0, 0, 0, 0, time.UTC),
		TODMillis: 90 * time.Minute, TODMicros: 12345 * time.Microsecond,
		ID:           uuid.MustParse("550e8400-e29b-41d4-a716-446655440000"),
		Local:        time.Date(1970, 1, 1, 0, 0, 0, 99_000, time.Local),
		LocalMillis:  time.Date(1969, 12, 31, 23, 59, 59, 993_000_000, time.Local),
		Dec:          big.NewRat(-12345, 100),
		FixedDec:     big.NewRat(1, 8),
		Dur:          avro.LogicalDuration{Months: 1, Days: 2, Milliseconds: 3},
		Defaulted:    7,
		Subs:         []Sub{{X: 1, Y: "dflt"}},
		BytesDefault: []byte{0xff, 0x01},
	}
}

func TestAvroEveryType(t *testing.T) {
	c := snapshots.NewAvroCodec()
	if err := c.Register("Everything", everythingSchema); err != nil {
		t.Fatal(err)
	}
	schema := c.Schema("Everything")
	in := everything()
	s := snapshots.Snapshot{AggregateID: uuid.New(), AggregateType: "Everything", Version: 1, SchemaVersion: 1, State: mustState(t, schema, in)}
	out, err := c.Decode(mustEncode(t, c, s))
	if err != nil {
		t.Fatal(err)
	}
	var back Everything
	if err := schema.Decode(out.State, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, in) {
		got, want := reflect.ValueOf(back), reflect.ValueOf(in)
		for i := range got.NumField() {
			if !reflect.DeepEqual(got.Field(i).Interface(), want.Field(i).Interface()) {
				t.Errorf("%s = %#v, want %#v", got.Type().Field(i).Name, got.Field(i).Interface(), want.Field(i).Interface())
			}
		}
	}

	// The generic form has every field, unions as their member's value.
	generic, err := schema.DecodeGeneric(out.State)
	if err != nil {
		t.Fatal(err)
	}
	if len(generic) != reflect.TypeFor[Everything]().NumField() {
		t.Errorf("%d generic fields: %v", len(generic), generic)
	}
	wantGeneric := map[string]any{
		"b": true, "l": int64(-6), "f": float32(1.5), "d": 0.25, "raw": []byte{0, 1}, "s": "text", "e": "GREEN",
		"fx": [4]byte{1, 2, 3, 4}, "arr": []any{int64(1), int64(2)}, "m": map[string]any{"x": 1.5, "y": nil},
		"u": "RED", "u2": [4]byte{9, 9, 9, 9},
		"rec": nil, "rec2": map[string]any{"x": 3, "y": "dflt"},
		"ts_micros": in.TSMicros, "id": in.ID.String(), "maybe_ts": nil,
	}
	for k, v := range wantGeneric {
		if !reflect.DeepEqual(generic[k], v) {
			t.Errorf("generic %s = %#v, want %#v", k, generic[k], v)
		}
	}

	// Extremes of the time types survive a round trip.
	for _, at := range []time.Time{time.Unix(0, math.MinInt64).UTC(), time.UnixMicro(math.MinInt64 / 1000).UTC(), time.UnixMilli(math.MaxInt64 / 1000).UTC()} {
		in.TSMicros, in.TSMillis = at.Truncate(time.Microsecond), at.Truncate(time.Millisecond)
		s.State = mustState(t, schema, in)
		out, err := c.Decode(mustEncode(t, c, s))
		if err != nil {
			t.Fatal(err)
		}
		var back Everything
		if err := schema.Decode(out.State, &back); err != nil {
			t.Fatal(err)
		}
		if !back.TSMicros.Equal(in.TSMicros) || !back.TSMillis.Equal(in.TSMillis) {
			t.Errorf("ts_micros %v, ts_millis %v, want %v", back.TSMicros, back.TSMillis, at)
		}
	}

	// A Go value that does not fit the schema is refused, naming the field.
	bad := everything()
	bad.E = "BLUE"
	if _, err := schema.Encode(bad); err == nil || !strings.Contains(err.Error(), "snapshots: encode state test.Everything") || !strings.Contains(err.Error(), "BLUE") {
		t.Errorf("enum symbol not in the schema: %v", err)
	}
	var wrong struct {
		B string `avro:"b"`
	}
	if err := schema.Decode(s.State, &wrong); !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "decode state test.Everything: B: ") {
		t.Errorf("Decode into a string for a boolean: %v", err)
	}
}

// DecodeGeneric gives a union as its member's value, whatever the member:
// arrays and maps as much as named types and primitives.
func TestAvroDecodeGenericUnwrapsEveryUnion(t *testing.T) {
	schema := mustParse(t, `{"type":"record","name":"U","namespace":"test","fields":[
		{"name":"a","type":["null","string",{"type":"array","items":"int"}]},
		{"name":"m","type":["null","string",{"type":"map","values":"long"}]},
		{"name":"s","type":["null","string",{"type":"array","items":"int"}]}]}`)
	b := mustState(t, schema, map[string]any{
		"a": map[string]any{"array": []any{1, 2}},
		"m": map[string]any{"map": map[string]any{"k": int64(3)}},
		"s": map[string]any{"string": "x"},
	})
	got, err := schema.DecodeGeneric(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": []any{1, 2}, "m": map[string]any{"k": int64(3)}, "s": "x"}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
}

const listSchema = `{"type":"record","name":"Node","namespace":"test","fields":[
	{"name":"value","type":"int"},{"name":"next","type":["null","Node"]}]}`

const nullsSchema = `{"type":"record","name":"Nulls","namespace":"test","fields":[
	{"name":"nulls","type":{"type":"array","items":"null"}}]}`

// Node mirrors listSchema.
type Node struct {
	Value int32 `avro:"value"`
	Next  *Node `avro:"next"`
}

func TestAvroDecodeLimits(t *testing.T) {
	c := snapshots.NewAvroCodec()
	if err := c.Register("List", listSchema); err != nil {
		t.Fatal(err)
	}
	if err := c.Register("Nulls", nullsSchema); err != nil {
		t.Fatal(err)
	}
	listFP, _ := c.Fingerprint("List")
	nullsFP, _ := c.Fingerprint("Nulls")
	list := func(n int) []byte {
		b := envelope(listFP, "List")
		for range n {
			b = append(b, 0, 2) // value 0, next: member 1 (Node)
		}
		return append(b, 0, 0) // value 0, next: null
	}

	if s, err := c.Decode(list(500)); err != nil {
		t.Errorf("list of 500: %v", err)
	} else if _, err := c.Encode(s); err != nil {
		t.Errorf("re-encoding a list of 500: %v", err)
	} else {
		var head Node
		if err := c.Schema("List").Decode(s.State, &head); err != nil {
			t.Fatal(err)
		}
		n := 0
		for p := &head; p.Next != nil; p = p.Next {
			n++
		}
		if n != 500 {
			t.Errorf("list of %d", n)
		}
	}
	for _, n := range []int{1000, 5000, 1 << 20} {
		_, err := c.Decode(list(n))
		if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "nested deeper than 1000") {
			t.Errorf("list of %d: %v", n, err)
		}
	}

	nulls := func(counts ...int64) []byte {
		b := envelope(nullsFP, "Nulls")
		for _, n := range counts {
			b = appendLong(b, n)
		}
		return b
	}
	s, err := c.Decode(nulls(100, -5, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	generic, err := c.Schema("Nulls").DecodeGeneric(s.State)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(generic["nulls"].([]any)); n != 105 {
		t.Errorf("%d nulls, want 105", n)
	}
	for _, b := range [][]byte{nulls(math.MaxInt32, 0), nulls(1<<15, 1<<15, 1, 0), nulls(math.MaxInt64, 0), nulls(-math.MaxInt64, 0, 0)} {
		_, err := c.Decode(b)
		if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "nulls: more than 65536 items that take no bytes") {
			t.Errorf("error %v", err)
		}
	}
	_, err = c.Decode(nulls(-1, 3, 0))
	if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "block of 3 bytes with 1 bytes left") {
		t.Errorf("bad block size: %v", err)
	}
	_, err = c.Decode(nulls(math.MinInt64, 0))
	if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "block count -9223372036854775808") {
		t.Errorf("block count MinInt64: %v", err)
	}

	// A block count of two billion items of a record that takes bytes is
	// refused before anything is allocated for it: by the codec's check,
	// and by hamba/avro's limits in StateSchema.Decode.
	order := orderSchema
	fp, _ := newOrderCodec(t).Fingerprint("Order")
	for _, count := range []int64{2_000_000_000, math.MaxInt32, math.MaxInt64, -2_000_000_000} {
		var items []byte
		if count < 0 {
			items = appendLong(appendLong(nil, count), 100)
		} else {
			items = appendLong(nil, count)
		}
		items = append(items, make([]byte, 64)...)
		b := rawOrder(fp, items, nil)
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		before := m.TotalAlloc
		_, err := newOrderCodec(t).Decode(b)
		if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "items: block of ") {
			t.Errorf("count %d: %v", count, err)
		}
		var o OrderState
		if err := order.Decode(b[len(envelope(fp, "Order")):], &o); !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "Items: ") {
			t.Errorf("StateSchema.Decode, count %d: %v", count, err)
		}
		runtime.ReadMemStats(&m)
		if alloc := m.TotalAlloc - before; alloc > 1<<20 {
			t.Errorf("count %d: %d bytes allocated", count, alloc)
		}
	}
}

func TestAvroConcurrent(t *testing.T) {
	c := newOrderCodec(t)
	b := mustEncode(t, c, orderSnapshot(t, orderWithItems(10)))
	old := snapshots.NewAvroCodec()
	if err := old.Register("Order", orderStateV0); err != nil {
		t.Fatal(err)
	}
	v0 := orderSnapshot(t, orderWithItems(0))
	v0.State = mustState(t, orderSchemaV0, OrderStateV0{OrderID: v0.AggregateID, CustomerEmail: "a@b", Items: []OrderItemV0{}, Status: "new", TotalAmount: 1})
	bv0 := mustEncode(t, old, v0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				if _, err := c.Decode(b); err != nil {
					t.Error(err)
					return
				}
				if err := c.RegisterWriter("Order", orderStateV0); err != nil {
					t.Error(err)
					return
				}
				s, err := c.Decode(bv0)
				if err != nil {
					t.Error(err)
					return
				}
				var o OrderState
				if err := orderSchema.Decode(s.State, &o); err != nil || o.TotalAmount != 1 || o.CustomerID != nil {
					t.Errorf("resolved state %+v, %v", o, err)
					return
				}
				if _, err := c.Encode(orderSnapshot(t, orderWithItems(j%4))); err != nil {
					t.Error(err)
					return
				}
				if j == 0 {
					if err := c.Register(fmt.Sprintf("T%d", i), schemas.OrderState()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkAvroEncode measures what a snapshot of an Order of 200 items
// costs to write: the state's encoding from the struct, then the snapshot's.
func BenchmarkAvroEncode(b *testing.B) {
	c := newOrderCodec(b)
	o := orderWithItems(200)
	s := orderSnapshot(b, o)
	schema := c.Schema("Order")
	b.ReportAllocs()
	var n int
	for b.Loop() {
		state, err := schema.Encode(&o)
		if err != nil {
			b.Fatal(err)
		}
		s.State = state
		out, err := c.Encode(s)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

// BenchmarkAvroDecode measures what a snapshot of an Order of 200 items
// costs to read: the snapshot's decoding, then the state's into the struct.
func BenchmarkAvroDecode(b *testing.B) {
	c := newOrderCodec(b)
	enc := mustEncode(b, c, orderSnapshot(b, orderWithItems(200)))
	schema := c.Schema("Order")
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := c.Decode(enc)
		if err != nil {
			b.Fatal(err)
		}
		var o OrderState
		if err := schema.Decode(s.State, &o); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAvroEncodeState and BenchmarkAvroDecodeState measure the state
// of an Order of 200 items alone, with StateSchema.
func BenchmarkAvroEncodeState(b *testing.B) {
	o := orderWithItems(200)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		state, err := orderSchema.Encode(&o)
		if err != nil {
			b.Fatal(err)
		}
		n = len(state)
	}
	b.SetBytes(int64(n))
}

func BenchmarkAvroDecodeState(b *testing.B) {
	state := mustState(b, orderSchema, orderWithItems(200))
	b.SetBytes(int64(len(state)))
	b.ReportAllocs()
	for b.Loop() {
		var o OrderState
		if err := orderSchema.Decode(state, &o); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAvroDecodeOlder measures the read of a snapshot of an Order of
// 200 items written with an older state schema: resolution and re-encoding
// in the current one, then the state's decoding into the struct.
func BenchmarkAvroDecodeOlder(b *testing.B) {
	old := snapshots.NewAvroCodec()
	if err := old.Register("Order", orderStateV0); err != nil {
		b.Fatal(err)
	}
	o := orderWithItems(200)
	v0 := OrderStateV0{OrderID: o.OrderID, CustomerEmail: o.CustomerEmail, Status: o.Status, TotalAmount: float32(o.TotalAmount)}
	for _, it := range o.Items {
		v0.Items = append(v0.Items, OrderItemV0{ProductID: it.ProductID, ProductName: it.ProductName, Quantity: it.Quantity, UnitPrice: float32(it.UnitPrice)})
	}
	s := orderSnapshot(b, o)
	s.State = mustState(b, orderSchemaV0, v0)
	enc := mustEncode(b, old, s)
	c := newOrderCodec(b)
	if err := c.RegisterWriter("Order", orderStateV0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := c.Decode(enc)
		if err != nil {
			b.Fatal(err)
		}
		var o OrderState
		if err := orderSchema.Decode(s.State, &o); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleAvroCodec() {
	codec := snapshots.NewAvroCodec()
	if err := codec.Register("Order", schemas.OrderState()); err != nil {
		fmt.Println(err)
		return
	}
	order := OrderState{
		OrderID:       uuid.MustParse("550e8400-e29b-41d4-a716-446655440000"),
		CustomerEmail: "ann@example.com",
		Items:         []OrderItem{{ProductName: "tea", Quantity: 2, UnitPrice: 3.5}},
		Status:        "placed",
		TotalAmount:   7,
	}
	schema := codec.Schema("Order")
	state, err := schema.Encode(order)
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := codec.Encode(snapshots.Snapshot{
		AggregateID:   order.OrderID,
		AggregateType: "Order",
		Version:       3,
		SchemaVersion: 1,
		CreatedAt:     time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Position:      log.Position{Partition: 0, Offset: 17},
		Save:          uuid.MustParse("6f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8"),
		State:         state,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fp, _ := codec.Fingerprint("Order")
	fmt.Printf("header % x, fingerprint %#016x\n", b[:2], fp)

	s, err := codec.Decode(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	var back OrderState
	if err := schema.Decode(s.State, &back); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s)
	fmt.Println(back.CustomerEmail, back.Items[0].ProductName, back.CustomerID == nil)
	fmt.Printf("%q\n", codec.StateFields("Order"))
	// Output:
	// header c3 01, fingerprint 0x56e6efb189607e5a
	// Order 550e8400-e29b-41d4-a716-446655440000 v3 (schema 1, at 0@17)
	// ann@example.com tea true
	// ["order_id" "customer_id" "customer_email" "items" "status" "total_amount"]
}
