package snapshots_test

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/snapshots"
)

// OrderItem and OrderState mirror schemas/order_state.avsc.
type OrderItem struct {
	ProductID   uuid.UUID `avro:"product_id"`
	ProductName string    `avro:"product_name"`
	Quantity    int       `avro:"quantity"`
	UnitPrice   float64   `avro:"unit_price"`
}

type OrderState struct {
	OrderID       uuid.UUID   `avro:"order_id"`
	CustomerID    *uuid.UUID  `avro:"customer_id"`
	CustomerEmail string      `avro:"customer_email"`
	Items         []OrderItem `avro:"items"`
	Status        string      `avro:"status"`
	TotalAmount   float64     `avro:"total_amount"`
}

type Status string

type Base struct {
	CreatedBy string
	Revision  uint16
}

type Kinds struct {
	Base
	Str      string
	Named    Status
	Flag     bool
	I        int
	I8       int8
	I16      int16
	I32      int32
	I64      int64
	U        uint
	U8       uint8
	U16      uint16
	U32      uint32
	U64      uint64
	F32      float32
	F64      float64
	Raw      []byte
	Hash     [4]byte
	At       time.Time
	ID       uuid.UUID
	NilID    uuid.UUID
	Ptr      *int32
	NilPtr   *string
	Any      any
	NilAny   any
	Ints     []int32
	NilInts  []int64
	Arr      [2]string
	Nested   OrderItem
	PtrItem  *OrderItem
	Counts   map[string]int64
	ByStatus map[Status]string
	NilMap   map[string]bool
	Renamed  string `avro:"other_name"`
	Skipped  string `avro:"-"`
	private  string //nolint:unused // must be ignored
	HTTPCode int
}

func TestMarshalKinds(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
	id := uuid.MustParse("550e8400-e29b-41d4-a716-446655440000")
	p := int32(7)
	k := Kinds{
		Base: Base{CreatedBy: "ann", Revision: 3},
		Str:  "s", Named: "paid", Flag: true,
		I: -1, I8: -8, I16: -16, I32: -32, I64: -64,
		U: 1, U8: 8, U16: 16, U32: 32, U64: 64,
		F32: 1.5, F64: 2.25,
		Raw: []byte{1, 2}, Hash: [4]byte{9, 8, 7, 6},
		At: at, ID: id, Ptr: &p,
		Any:      []int{1, 2},
		Ints:     []int32{1, 2},
		Arr:      [2]string{"a", "b"},
		Nested:   OrderItem{ProductID: id, ProductName: "n", Quantity: 2, UnitPrice: 0.5},
		Counts:   map[string]int64{"x": 1},
		ByStatus: map[Status]string{"paid": "yes"},
		Renamed:  "r", Skipped: "gone", private: "p", HTTPCode: 200,
	}
	got, err := snapshots.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	item := map[string]any{"product_id": id.String(), "product_name": "n", "quantity": int64(2), "unit_price": 0.5}
	want := map[string]any{
		"created_by": "ann", "revision": int32(3),
		"str": "s", "named": "paid", "flag": true,
		"i": int64(-1), "i8": int32(-8), "i16": int32(-16), "i32": int32(-32), "i64": int64(-64),
		"u": int64(1), "u8": int32(8), "u16": int32(16), "u32": int64(32), "u64": int64(64),
		"f32": float32(1.5), "f64": 2.25,
		"raw": []byte{1, 2}, "hash": []byte{9, 8, 7, 6},
		"at": at.UTC(), "id": id.String(), "nil_id": "00000000-0000-0000-0000-000000000000",
		"ptr": int32(7), "nil_ptr": nil,
		"any": []any{int64(1), int64(2)}, "nil_any": nil,
		"ints": []any{int32(1), int32(2)}, "nil_ints": []any{},
		"arr":        []any{"a", "b"},
		"nested":     item,
		"ptr_item":   nil,
		"counts":     map[string]any{"x": int64(1)},
		"by_status":  map[string]any{"paid": "yes"},
		"nil_map":    map[string]any{},
		"other_name": "r",
		"http_code":  int64(200),
	}
	if !reflect.DeepEqual(got, want) {
		for k := range want {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Errorf("%s: got %#v, want %#v", k, got[k], want[k])
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected field %s", k)
			}
		}
	}
	if loc := got["at"].(time.Time).Location(); loc != time.UTC {
		t.Errorf("time location %v, want UTC", loc)
	}

	// Marshal through a pointer gives the same, and so does Unmarshal back.
	viaPtr, err := snapshots.Marshal(&k)
	if err != nil || !reflect.DeepEqual(viaPtr, got) {
		t.Fatalf("Marshal(&k) = %v, %v", viaPtr, err)
	}
	var back Kinds
	if err := snapshots.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	k.Skipped, k.private = "", ""
	k.At = k.At.UTC()
	k.NilInts = []int64{}
	k.NilMap = map[string]bool{}
	k.Any = []any{int64(1), int64(2)}
	if !reflect.DeepEqual(back, k) {
		t.Errorf("Unmarshal(Marshal(k))\n got %+v\nwant %+v", back, k)
	}
}

func TestFieldNames(t *testing.T) {
	got, err := snapshots.FieldNames((*OrderState)(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"order_id", "customer_id", "customer_email", "items", "status", "total_amount"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FieldNames = %q, want %q", got, want)
	}
	got, _ = snapshots.FieldNames(Kinds{})
	if got[0] != "created_by" || got[1] != "revision" || got[2] != "str" || got[len(got)-1] != "http_code" {
		t.Errorf("FieldNames(Kinds) = %q", got)
	}
	if _, err := snapshots.FieldNames(3); err == nil {
		t.Error("FieldNames(3): no error")
	}
}

func TestSnakeCaseNames(t *testing.T) {
	type S struct {
		OrderID     int
		HTTPServer  int
		UnitPrice   int
		Items2      int
		A           int
		ID          int
		URLs        int
		Version2Tag int
		IDsByName   int
	}
	got, err := snapshots.FieldNames(S{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"order_id", "http_server", "unit_price", "items2", "a", "id", "urls", "version2_tag", "ids_by_name"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestUnmarshalConversions(t *testing.T) {
	type T struct {
		I8   int8
		I32  int32
		I64  int64
		U16  uint16
		U64  uint64
		F32  float32
		F64  float64
		ID   uuid.UUID
		P    *int
		S    []string
		M    map[string]float64
		B    []byte
		A    [2]byte
		When time.Time
	}
	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	id := uuid.New()
	rec := map[string]any{
		"i8": int32(-128), "i32": float64(12), "i64": int32(5), "u16": int64(65535), "u64": int64(7),
		"f32": float64(0.1), "f64": int64(1 << 52), "id": id.String(), "p": int64(4),
		"s": []any{"x", "y"}, "m": map[string]any{"k": float32(0.5)}, "b": []byte{1}, "a": []byte{2, 3},
		"when": at,
	}
	var got T
	if err := snapshots.Unmarshal(rec, &got); err != nil {
		t.Fatal(err)
	}
	four := 4
	want := T{I8: -128, I32: 12, I64: 5, U16: 65535, U64: 7, F32: 0.1, F64: 1 << 52, ID: id, P: &four,
		S: []string{"x", "y"}, M: map[string]float64{"k": 0.5}, B: []byte{1}, A: [2]byte{2, 3}, When: at}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	// Fields missing from the record are zeroed; unknown entries ignored.
	got.I8 = 9
	if err := snapshots.Unmarshal(map[string]any{"unknown": 1}, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, T{}) {
		t.Errorf("after empty record: %+v", got)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	good := func() map[string]any {
		m, err := snapshots.Marshal(OrderState{
			OrderID: uuid.New(),
			Items:   []OrderItem{{Quantity: 1}, {Quantity: 2}, {Quantity: 3}, {Quantity: 4}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	item := func(m map[string]any, i int) map[string]any { return m["items"].([]any)[i].(map[string]any) }
	tests := []struct {
		name   string
		change func(m map[string]any)
		want   string
	}{
		{"overflow", func(m map[string]any) { item(m, 3)["quantity"] = 1e20 },
			"snapshots: unmarshal OrderState.items[3].quantity: float64 1e+20 overflows int"},
		{"fraction", func(m map[string]any) { item(m, 1)["quantity"] = 1.5 },
			"snapshots: unmarshal OrderState.items[1].quantity: cannot set int from float64 1.5: not an integer"},
		{"string for number", func(m map[string]any) { item(m, 0)["unit_price"] = "1" },
			`snapshots: unmarshal OrderState.items[0].unit_price: cannot set float64 from string "1": not a number`},
		{"bad uuid", func(m map[string]any) { m["order_id"] = "nope" },
			`snapshots: unmarshal OrderState.order_id: cannot set uuid.UUID from string "nope"`},
		{"bad uuid pointer", func(m map[string]any) { m["customer_id"] = "x" },
			`snapshots: unmarshal OrderState.customer_id: cannot set uuid.UUID from string "x"`},
		{"null for string", func(m map[string]any) { m["status"] = nil },
			"snapshots: unmarshal OrderState.status: cannot set string from null"},
		{"record for list", func(m map[string]any) { m["items"] = map[string]any{} },
			"snapshots: unmarshal OrderState.items: cannot set []snapshots_test.OrderItem from map[string]interface {}"},
		{"list for record", func(m map[string]any) { m["items"].([]any)[2] = []any{} },
			"snapshots: unmarshal OrderState.items[2]: cannot set snapshots_test.OrderItem from []interface {}"},
		{"imprecise float", func(m map[string]any) { m["total_amount"] = int64(1<<53 + 1) },
			"snapshots: unmarshal OrderState.total_amount: cannot set float64 from int64 9007199254740993: not exactly representable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			tt.change(m)
			var o OrderState
			err := snapshots.Unmarshal(m, &o)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n got %v\nwant %s…", err, tt.want)
			}
		})
	}

	t.Run("arguments", func(t *testing.T) {
		var o OrderState
		for _, v := range []any{o, nil, (*OrderState)(nil), new(int)} {
			if err := snapshots.Unmarshal(map[string]any{}, v); err == nil {
				t.Errorf("Unmarshal into %T: no error", v)
			}
		}
		if err := snapshots.Unmarshal(nil, &o); err == nil {
			t.Error("Unmarshal(nil): no error")
		}
	})
}

func TestMarshalErrors(t *testing.T) {
	type Bad struct{ C chan int }
	type BadKey struct{ M map[int]string }
	type Dup struct {
		A string `avro:"x"`
		B string `avro:"x"`
	}
	type Embedded struct{ *OrderItem }
	type Big struct{ U uint64 }
	tests := []struct {
		v    any
		want string
	}{
		{Bad{}, "unsupported type chan int"},
		{BadKey{}, "map keys must be strings"},
		{Dup{}, `two fields named "x"`},
		{Embedded{}, "embedded pointers are not supported"},
		{Big{U: math.MaxUint64}, "snapshots: marshal Big.u: uint64 18446744073709551615 overflows int64"},
		{3, "not a struct"},
		{(*OrderState)(nil), "nil pointer"},
		{struct{ X any }{X: make(chan int)}, "unsupported type chan int"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%T", tt.v), func(t *testing.T) {
			_, err := snapshots.Marshal(tt.v)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNoAliasing(t *testing.T) {
	type T struct {
		B     []byte
		S     []string
		M     map[string]string
		A     any
		Inner []OrderItem
	}
	rec := map[string]any{
		"b":     []byte{1, 2},
		"s":     []any{"a"},
		"m":     map[string]any{"k": "v"},
		"a":     map[string]any{"deep": []any{[]byte{5}}},
		"inner": []any{map[string]any{"product_name": "p"}},
	}
	var v T
	if err := snapshots.Unmarshal(rec, &v); err != nil {
		t.Fatal(err)
	}
	// Changing the struct leaves the record alone...
	v.B[0] = 9
	v.S[0] = "changed"
	v.M["k"] = "changed"
	v.A.(map[string]any)["deep"].([]any)[0].([]byte)[0] = 9
	v.Inner[0].ProductName = "changed"
	want := map[string]any{
		"b":     []byte{1, 2},
		"s":     []any{"a"},
		"m":     map[string]any{"k": "v"},
		"a":     map[string]any{"deep": []any{[]byte{5}}},
		"inner": []any{map[string]any{"product_name": "p"}},
	}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("record changed through the struct: %v", rec)
	}
	// ...and Marshal does not share the struct's bytes either.
	m, err := snapshots.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	m["b"].([]byte)[0] = 0
	if v.B[0] != 9 {
		t.Error("Marshal shares byte slices with the struct")
	}
}

func TestRecursiveType(t *testing.T) {
	type Node struct {
		Name     string
		Children []Node
		Next     *Node
	}
	n := Node{Name: "a", Children: []Node{{Name: "b", Children: []Node{}}}, Next: &Node{Name: "c", Children: []Node{}}}
	m, err := snapshots.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	var back Node
	if err := snapshots.Unmarshal(m, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, n) {
		t.Errorf("got %+v, want %+v", back, n)
	}
}

func TestMarshalConcurrent(t *testing.T) {
	type Fresh struct {
		A []struct{ B map[string]*int }
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := snapshots.Marshal(Fresh{})
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func orderWithItems(n int) OrderState {
	cust := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	o := OrderState{
		OrderID:       uuid.MustParse("550e8400-e29b-41d4-a716-446655440000"),
		CustomerID:    &cust,
		CustomerEmail: "ann@example.com",
		Status:        "placed",
		Items:         make([]OrderItem, n),
	}
	for i := range o.Items {
		o.Items[i] = OrderItem{
			ProductID:   uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint(i))),
			ProductName: fmt.Sprintf("product %d", i),
			Quantity:    i%5 + 1,
			UnitPrice:   float64(i) + 0.99,
		}
		o.TotalAmount += float64(o.Items[i].Quantity) * o.Items[i].UnitPrice
	}
	return o
}

func BenchmarkMarshal(b *testing.B) {
	o := orderWithItems(200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := snapshots.Marshal(&o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	o := orderWithItems(200)
	m, err := snapshots.Marshal(&o)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var back OrderState
		if err := snapshots.Unmarshal(m, &back); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleFieldNames() {
	names, _ := snapshots.FieldNames(OrderState{})
	fmt.Printf("%q\n", names)
	// Output: ["order_id" "customer_id" "customer_email" "items" "status" "total_amount"]
}

func ExampleMarshal() {
	type Line struct {
		SKU      string `avro:"sku"`
		Quantity int32
	}
	rec, _ := snapshots.Marshal(Line{SKU: "A-1", Quantity: 2})
	fmt.Println(rec)

	var back Line
	err := snapshots.Unmarshal(map[string]any{"sku": "A-1", "quantity": int64(1 << 40)}, &back)
	fmt.Println(err)
	// Output:
	// map[quantity:2 sku:A-1]
	// snapshots: unmarshal Line.quantity: int64 1099511627776 overflows int32
}

type inner struct {
	X int
	Y string
}

type Outer struct {
	inner
	Z int32
}

func TestUnexportedEmbeddedStruct(t *testing.T) {
	in := Outer{inner: inner{X: 1, Y: "y"}, Z: 2}
	m, err := snapshots.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"x": int64(1), "y": "y", "z": int32(2)}; !reflect.DeepEqual(m, want) {
		t.Errorf("Marshal = %v, want %v", m, want)
	}
	var out Outer
	if err := snapshots.Unmarshal(m, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("Unmarshal = %+v, want %+v", out, in)
	}
}
