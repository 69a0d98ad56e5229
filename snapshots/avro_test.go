package snapshots_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
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
	state, err := snapshots.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return snapshots.Snapshot{
		AggregateID:   o.OrderID,
		AggregateType: "Order",
		Version:       42,
		SchemaVersion: 3,
		CreatedAt:     createdAt,
		Position:      log.Position{Partition: 2, Offset: 1234},
		Save:          orderSave,
		State:         state,
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
			var back OrderState
			if err := snapshots.Unmarshal(out.State, &back); err != nil {
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
	goFields, err := snapshots.FieldNames(OrderState{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(goFields, orderFields) {
		t.Errorf("OrderState fields %q, order_state.avsc %q", goFields, orderFields)
	}
	if got := c.StateFields("Order"); !reflect.DeepEqual(got, orderFields) {
		t.Errorf("StateFields = %q, want %q", got, orderFields)
	}
	var itemSchema map[string]any
	for _, f := range state["fields"].([]any) {
		if f.(map[string]any)["name"] == "items" {
			itemSchema = f.(map[string]any)["type"].(map[string]any)["items"].(map[string]any)
		}
	}
	goItem, _ := snapshots.FieldNames(OrderItem{})
	if itemFields := stateFieldNames(t, itemSchema); !reflect.DeepEqual(goItem, itemFields) {
		t.Errorf("OrderItem fields %q, schema %q", goItem, itemFields)
	}
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
		{"truncated in items", good[:len(good)-40], []string{"Order " + o.OrderID.String() + ": state.items[4].", "truncated"}},
		{"truncated last byte", good[:len(good)-1], []string{"state.total_amount: truncated"}},
		{"trailing bytes", append(append([]byte{}, good...), 0, 0), []string{"2 trailing bytes after the record"}},
		{"bad union index", rawOrder(fp, nil, func(b []byte) []byte { return appendLong(b, 5) }), []string{"state.customer_id: union index 5"}},
		{"huge items count", rawOrder(fp, appendLong(nil, math.MaxInt32), nil), []string{"state.items: block of 2147483647 items does not fit"}},
		{"negative items count", rawOrder(fp, appendLong(nil, -3), nil), []string{"state.items: "}},
		{"huge string", rawOrder(fp, nil, func(b []byte) []byte { return appendLong(appendLong(b, 0), 1<<40) }), []string{"state.customer_email: truncated: length 1099511627776"}},
		{"negative string length", rawOrder(fp, nil, func(b []byte) []byte { return appendLong(appendLong(b, 0), -1) }), []string{"state.customer_email: negative length -1"}},
		{"overlong varint", rawOrder(fp, nil, func(b []byte) []byte {
			return append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
		}), []string{"state.customer_id: varint overflows its type"}},
		{"not a uuid", rawOrder(fp, nil, func(b []byte) []byte {
			b = appendString(appendLong(b, 1), "not-a-uuid")
			b = appendLong(appendString(b, "a@b"), 0)                    // email, no items
			return append(appendString(b, "placed"), make([]byte, 8)...) // status, total
		}), []string{`state.customer_id: string "not-a-uuid" is not a uuid`}},
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
// Encode.
func encodeWith(t *testing.T, c *snapshots.AvroCodec, s snapshots.Snapshot) []byte {
	t.Helper()
	text, _ := c.WriterSchema("Order")
	codec, err := goavro.NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]any{}
	for k, v := range s.State {
		state[k] = v
	}
	if id, ok := state["customer_id"].(string); ok {
		state["customer_id"] = goavro.Union("string", id)
	}
	for i, it := range state["items"].([]any) {
		m := map[string]any{}
		for k, v := range it.(map[string]any) {
			m[k] = v
		}
		m["quantity"] = int32(m["quantity"].(int64))
		state["items"].([]any)[i] = m
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
	tests := []struct {
		name   string
		change func(s *snapshots.Snapshot)
		want   string
	}{
		{"missing field", func(s *snapshots.Snapshot) { delete(s.State, "status") },
			"snapshots: encode Order " + id + ": state.status: missing, and snaplog.example.OrderState gives no default"},
		{"missing field with default", func(s *snapshots.Snapshot) { delete(s.State, "customer_id") }, ""},
		{"unknown field", func(s *snapshots.Snapshot) { s.State["colour"] = "red" },
			"snapshots: encode Order " + id + `: state: snaplog.example.OrderState has no field "colour"`},
		{"wrong type", func(s *snapshots.Snapshot) { item(s, 1)["quantity"] = "two" },
			`snapshots: encode Order ` + id + `: state.items[1].quantity: string "two" where int is wanted: not a number`},
		{"overflow", func(s *snapshots.Snapshot) { item(s, 2)["quantity"] = int64(1 << 40) },
			"snapshots: encode Order " + id + ": state.items[2].quantity: int64 1099511627776 overflows int"},
		{"not a uuid", func(s *snapshots.Snapshot) { item(s, 0)["product_id"] = "123" },
			"snapshots: encode Order " + id + `: state.items[0].product_id: string "123" is not a uuid`},
		{"union mismatch", func(s *snapshots.Snapshot) { s.State["customer_id"] = 5 },
			"snapshots: encode Order " + id + ": state.customer_id: int 5 fits no member of union [null, string/uuid]"},
		{"nil array", func(s *snapshots.Snapshot) { s.State["items"] = nil },
			"snapshots: encode Order " + id + ": state.items: null where array<snaplog.example.OrderItem> is wanted"},
		{"struct instead of record", func(s *snapshots.Snapshot) { s.State["items"] = []OrderItem{{}} },
			"snapshots: encode Order " + id + ": state.items[0]: snapshots_test.OrderItem where snaplog.example.OrderItem is wanted"},
		{"uuid.UUID accepted", func(s *snapshots.Snapshot) { s.State["order_id"] = o.OrderID }, ""},
		{"schema version overflow", func(s *snapshots.Snapshot) { s.SchemaVersion = math.MaxInt32 + 1 },
			"snapshots: encode Order " + id + ": schema_version: int 2147483648 overflows int"},
		{"unregistered type", func(s *snapshots.Snapshot) { s.AggregateType = "Invoice" },
			"snapshots: encode Invoice " + id + ": aggregate type not registered (registered: Order (0x"},
		{"invalid snapshot", func(s *snapshots.Snapshot) { s.Version = 0 },
			"snapshots: invalid snapshot of Order " + id},
		{"time out of range", func(s *snapshots.Snapshot) { s.CreatedAt = time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC) },
			"snapshots: encode Order " + id + ": created_at: time 300000-01-01 00:00:00 +0000 UTC out of the range of a timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := orderSnapshot(t, o)
			tt.change(&s)
			_, err := c.Encode(s)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n got %v\nwant %s…", err, tt.want)
			}
		})
	}
	t.Run("state unchanged", func(t *testing.T) {
		s := orderSnapshot(t, o)
		before := snapshots.CloneRecord(s.State)
		mustEncode(t, c, s)
		if !reflect.DeepEqual(before, s.State) {
			t.Error("Encode changed the state")
		}
	})
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
	if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), `position.save: string "xxxx`) {
		t.Errorf("error %v", err)
	}
}

func item(s *snapshots.Snapshot, i int) map[string]any {
	return s.State["items"].([]any)[i].(map[string]any)
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

	bad := []struct {
		name, typ, schema, want string
	}{
		{"empty type", "", schemas.OrderState(), "empty aggregate type"},
		{"not JSON", "X", `{`, "state schema: schema is not valid JSON"},
		{"not a record", "X", `"string"`, "state schema: must be a record"},
		{"invalid schema", "X", `{"type":"record","name":"S","fields":[{"name":"a","type":"Nope"}]}`, `unknown type "Nope"`},
		{"name taken by the envelope", "X", `{"type":"record","name":"snaplog.LogPosition","fields":[]}`, "type snaplog.LogPosition is defined twice"},
		{"decimal", "X", `{"type":"record","name":"n.S","fields":[{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}}]}`,
			"n.S.d: logical type decimal of bytes/decimal is not supported"},
		{"bad default", "X", `{"type":"record","name":"n.S","fields":[{"name":"d","type":"int","default":"x"}]}`,
			"n.S.d: invalid default: a string is not a int"},
		{"bad nested default", "X", `{"type":"record","name":"n.S","fields":[{"name":"d","type":{"type":"array","items":"int"},"default":[1,2.5]}]}`,
			"n.S.d: invalid default [1]: 2.5 is not an integer"},
		{"bad uuid default", "X", `{"type":"record","name":"n.S","fields":[{"name":"d","type":{"type":"string","logicalType":"uuid"},"default":"x"}]}`,
			`n.S.d: invalid default: string "x" is not a uuid`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := snapshots.NewAvroCodec().Register(tt.typ, tt.schema)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// everythingSchema uses every Avro type and the logical types with a plain
// form.
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
	{"name":"defaulted","type":"int","default":7},
	{"name":"subs","type":{"type":"array","items":"Sub"},"default":[{"x":1}]},
	{"name":"bytes_default","type":"bytes","default":"\u00ff\u0001"}
]}`

func TestAvroEveryType(t *testing.T) {
	c := snapshots.NewAvroCodec()
	if err := c.Register("Everything", everythingSchema); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC)
	in := map[string]any{
		"b": true, "i": 5, "l": int32(-6), "f": 1.5, "d": float32(0.25),
		"raw": []byte{0, 1}, "s": "text", "e": "GREEN", "fx": []byte{1, 2, 3, 4},
		"arr": []int64{1, 2}, "m": map[string]any{"x": 1.5, "y": nil},
		"u": "RED", "u2": []byte{9, 9, 9, 9}, "u3": []any{int32(1)},
		"rec2":      map[string]any{"x": int32(3)},
		"ts_micros": ts, "ts_millis": ts, "day": ts,
		"tod_millis": 90 * time.Minute, "tod_micros": int64(12345),
		"id":    uuid.MustParse("550e8400-e29b-41d4-a716-446655440000"),
		"local": int64(99),
	}
	want := map[string]any{
		"b": true, "i": int32(5), "l": int64(-6), "f": float32(1.5), "d": 0.25,
		"raw": []byte{0, 1}, "s": "text", "e": "GREEN", "fx": []byte{1, 2, 3, 4},
		"arr": []any{int64(1), int64(2)}, "m": map[string]any{"x": 1.5, "y": nil},
		"u": "RED", "u2": []byte{9, 9, 9, 9}, "u3": []any{int32(1)},
		"rec":        nil,
		"rec2":       map[string]any{"x": int32(3), "y": "dflt"},
		"ts_micros":  ts.Truncate(time.Microsecond),
		"ts_millis":  ts.Truncate(time.Millisecond),
		"day":        time.Date(1969, 7, 20, 0, 0, 0, 0, time.UTC),
		"tod_millis": int32(90 * 60 * 1000), "tod_micros": int64(12345),
		"id":       "550e8400-e29b-41d4-a716-446655440000",
		"maybe_ts": nil, "local": int64(99), "defaulted": int32(7),
		"subs":          []any{map[string]any{"x": int32(1), "y": "dflt"}},
		"bytes_default": []byte{0xff, 0x01},
	}
	s := snapshots.Snapshot{AggregateID: uuid.New(), AggregateType: "Everything", Version: 1, SchemaVersion: 1, State: in}
	out, err := c.Decode(mustEncode(t, c, s))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if !reflect.DeepEqual(out.State[k], v) {
			t.Errorf("%s = %#v, want %#v", k, out.State[k], v)
		}
	}
	if len(out.State) != len(want) {
		t.Errorf("%d fields, want %d", len(out.State), len(want))
	}
	// Extremes of the time types survive a round trip.
	for _, at := range []time.Time{time.Unix(0, math.MinInt64).UTC(), time.UnixMicro(math.MinInt64).UTC(), time.UnixMicro(math.MaxInt64).UTC()} {
		in["ts_micros"], in["ts_millis"] = at, at.Truncate(time.Millisecond)
		out, err := c.Decode(mustEncode(t, c, s))
		if err != nil {
			t.Fatal(err)
		}
		if !out.State["ts_micros"].(time.Time).Equal(at.Truncate(time.Microsecond)) {
			t.Errorf("ts_micros %v, want %v", out.State["ts_micros"], at)
		}
	}
}

const listSchema = `{"type":"record","name":"Node","namespace":"test","fields":[
	{"name":"value","type":"int"},{"name":"next","type":["null","Node"]}]}`

const nullsSchema = `{"type":"record","name":"Nulls","namespace":"test","fields":[
	{"name":"nulls","type":{"type":"array","items":"null"}}]}`

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
	}
	_, err := c.Decode(list(5000))
	if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "nested deeper than 1000 levels") {
		t.Errorf("list of 5000: %v", err)
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
	if n := len(s.State["nulls"].([]any)); n != 105 {
		t.Errorf("%d nulls, want 105", n)
	}
	for _, b := range [][]byte{nulls(math.MaxInt32, 0), nulls(1<<15, 1<<15, 1, 0), nulls(math.MaxInt64, 0)} {
		_, err := c.Decode(b)
		if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "state.nulls: more than 65536 items that take no bytes") {
			t.Errorf("error %v", err)
		}
	}
	_, err = c.Decode(nulls(-1, 3, 0))
	if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "block size 3, 1 bytes left") {
		t.Errorf("bad block size: %v", err)
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
	v0.State = map[string]any{"order_id": v0.AggregateID, "customer_email": "a@b", "items": []any{}, "status": "new", "total_amount": 1}
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
				if _, err := c.Decode(bv0); err != nil {
					t.Error(err)
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

func BenchmarkAvroEncode(b *testing.B) {
	c := newOrderCodec(b)
	s := orderSnapshot(b, orderWithItems(200))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := c.Encode(s)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

func BenchmarkAvroDecode(b *testing.B) {
	c := newOrderCodec(b)
	enc := mustEncode(b, c, orderSnapshot(b, orderWithItems(200)))
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(enc); err != nil {
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
	state, err := snapshots.Marshal(order)
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
	if err := snapshots.Unmarshal(s.State, &back); err != nil {
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
