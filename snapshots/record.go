package snapshots

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/google/uuid"
)

// Marshal returns the record form of a struct (v is a struct or a non-nil
// pointer to one): the map Snapshot.State holds.
//
// Each exported field is a record field. Its name is the field's
// `avro:"name"` tag, or the Go name in snake_case (OrderID becomes order_id,
// UnitPrice unit_price); `avro:"-"` leaves the field out. A struct embedded
// by value without a tag has its fields promoted into the record, in place.
// Values become:
//
//	string, bool                          string, bool
//	int, int64, uint, uint32, uint64      int64 (uint64 above MaxInt64 is an error)
//	int32, int16, int8, uint16, uint8     int32
//	float32, float64                      float32, float64
//	[]byte, [N]byte                       []byte (a copy)
//	time.Time                             time.Time in UTC
//	uuid.UUID                             its string form (uuid.Nil too)
//	pointer                               nil, or the value it points to
//	interface                             nil, or its dynamic value
//	slice, array                          []any (a nil slice is an empty []any)
//	struct                                map[string]any, a nested record
//	map with string keys                  map[string]any (a nil map is empty)
//
// Named types convert by kind. Only nil pointers and interfaces become nil,
// so a field that may be null is a pointer. Types outside the table (chan,
// func, complex, maps with other keys) are an error naming the field.
func Marshal(v any) (map[string]any, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, fmt.Errorf("snapshots: marshal %s: nil pointer", rv.Type())
		}
		rv = rv.Elem()
	} else if rv.IsValid() && rv.Kind() == reflect.Struct {
		// An addressable copy lets values be read in place.
		c := reflect.New(rv.Type()).Elem()
		c.Set(rv)
		rv = c
	}
	if !rv.IsValid() || rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("snapshots: marshal: %T is not a struct or a pointer to one", v)
	}
	plan, err := planOf(rv.Type())
	if err != nil {
		return nil, fmt.Errorf("snapshots: marshal %s: %w", rv.Type(), err)
	}
	m, err := plan.marshal(rv)
	if err != nil {
		where, cause := splitPath(err, plan.typeName)
		return nil, fmt.Errorf("snapshots: marshal %s: %w", where, cause)
	}
	return m, nil
}

// Unmarshal sets the struct v points to from a record, the reverse of
// Marshal. Every field of the struct is set: from the record entry of the
// same name, or to its zero value when the record has none. Record entries
// without a field are ignored.
//
// Numbers convert to any numeric field they fit: an int32, int64 or
// integral float64 into any integer field, any number into a float field
// when exact (float64 into float32 rounds). An overflow or a fraction is
// an error. A string sets a uuid.UUID by parsing it. nil sets a pointer,
// slice, map or interface to nil and is an error for other fields.
// Unmarshal copies: the struct never shares slices, maps or byte slices
// with the record.
//
// Errors name the field, for example
// "snapshots: unmarshal OrderState.items[3].quantity: int64 3000000000 overflows int32".
func Unmarshal(rec map[string]any, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("snapshots: unmarshal: need a non-nil pointer to a struct, not %T", v)
	}
	rv = rv.Elem()
	plan, err := planOf(rv.Type())
	if err != nil {
		return fmt.Errorf("snapshots: unmarshal %s: %w", rv.Type(), err)
	}
	if rec == nil {
		return fmt.Errorf("snapshots: unmarshal %s: nil record", plan.typeName)
	}
	if err := plan.unmarshal(rec, rv); err != nil {
		where, cause := splitPath(err, plan.typeName)
		return fmt.Errorf("snapshots: unmarshal %s: %w", where, cause)
	}
	return nil
}

// FieldNames returns the names of the record fields Marshal makes from a
// struct type, in field order. v is a struct or a pointer to one; the
// pointer may be nil.
func FieldNames(v any) ([]string, error) {
	t := reflect.TypeOf(v)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("snapshots: field names: %T is not a struct or a pointer to one", v)
	}
	plan, err := planOf(t)
	if err != nil {
		return nil, fmt.Errorf("snapshots: field names of %s: %w", t, err)
	}
	names := make([]string, len(plan.fields))
	for i, f := range plan.fields {
		names[i] = f.name
	}
	return names, nil
}

// pathError is an error at a place inside a value. Levels add their part of
// the path while the error returns through them, so building a value that
// has no error costs nothing.
type pathError struct {
	segs []string // innermost first: ".quantity", "[3]", ".items"
	err  error
}

// pathEnds is how many levels a message shows at each end of a deep path.
const pathEnds = 12

func (e *pathError) Error() string { return e.path("") + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

func (e *pathError) path(root string) string {
	var b strings.Builder
	b.WriteString(root)
	for i := len(e.segs) - 1; i >= 0; i-- {
		// Keep the ends of a deep path.
		if n := len(e.segs); n > 2*pathEnds && i == n-1-pathEnds {
			fmt.Fprintf(&b, "…(%d more)…", n-2*pathEnds)
			i = pathEnds - 1
		}
		b.WriteString(e.segs[i])
	}
	p := b.String()
	if root == "" {
		p = strings.TrimPrefix(p, ".")
	}
	return p
}

func at(err error, seg string) error {
	if pe, ok := err.(*pathError); ok {
		pe.segs = append(pe.segs, seg)
		return pe
	}
	return &pathError{segs: []string{seg}, err: err}
}

func atField(err error, name string) error { return at(err, "."+name) }
func atIndex(err error, i int) error       { return at(err, "["+strconv.Itoa(i)+"]") }
func atKey(err error, k string) error      { return at(err, "["+strconv.Quote(k)+"]") }

// splitPath returns where err happened, under root, and its cause.
func splitPath(err error, root string) (string, error) {
	if pe, ok := err.(*pathError); ok {
		return pe.path(root), pe.err
	}
	return root, err
}

// describe names a value for messages: its type, and its value when short.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return "string " + strconv.Quote(v)
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprintf("%T %v", v, v)
	}
	return fmt.Sprintf("%T", v)
}

// A plan converts one Go type to and from its record form.
type plan struct {
	typeName  string // for error paths
	marshal   func(v reflect.Value) (map[string]any, error)
	unmarshal func(rec map[string]any, v reflect.Value) error
	fields    []fieldPlan
}

type fieldPlan struct {
	name  string
	index []int
	conv  *conv
}

// conv converts values of one Go type.
type conv struct {
	to   func(v reflect.Value) (any, error)
	from func(src any, v reflect.Value) error // v is settable
}

var (
	convs   sync.Map // reflect.Type -> *conv
	plans   sync.Map // reflect.Type -> *plan
	buildMu sync.Mutex

	timeType = reflect.TypeFor[time.Time]()
	uuidType = reflect.TypeFor[uuid.UUID]()
	anyType  = reflect.TypeFor[any]()
)

func planOf(t reflect.Type) (*plan, error) {
	if p, ok := plans.Load(t); ok {
		return p.(*plan), nil
	}
	if _, err := convOf(t); err != nil {
		return nil, err
	}
	p, _ := plans.Load(t)
	return p.(*plan), nil
}

func convOf(t reflect.Type) (*conv, error) {
	if c, ok := convs.Load(t); ok {
		return c.(*conv), nil
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	b := builder{convs: make(map[reflect.Type]*conv), plans: make(map[reflect.Type]*plan)}
	c, err := b.conv(t)
	if err != nil {
		return nil, err
	}
	// Publish only complete sets: a conversion may refer to others built
	// with it.
	for t, p := range b.plans {
		plans.Store(t, p)
	}
	for t, c := range b.convs {
		convs.Store(t, c)
	}
	return c, nil
}

// builder makes conversions for a type and the types it contains.
// Recursive types refer to a conv that is filled in before the builder
// publishes it.
type builder struct {
	convs map[reflect.Type]*conv
	plans map[reflect.Type]*plan
}

func (b *builder) conv(t reflect.Type) (*conv, error) {
	if c, ok := convs.Load(t); ok {
		return c.(*conv), nil
	}
	if c, ok := b.convs[t]; ok {
		return c, nil
	}
	c := &conv{}
	b.convs[t] = c
	switch {
	case t == timeType:
		c.to = func(v reflect.Value) (any, error) { return timeOf(v).UTC(), nil }
		c.from = func(src any, v reflect.Value) error {
			tm, ok := src.(time.Time)
			if !ok {
				return fmt.Errorf("cannot set time.Time from %s", describe(src))
			}
			*(*time.Time)(v.Addr().UnsafePointer()) = tm
			return nil
		}
		return c, nil
	case t == uuidType:
		c.to = func(v reflect.Value) (any, error) {
			if v.CanAddr() {
				return (*uuid.UUID)(v.Addr().UnsafePointer()).String(), nil
			}
			return v.Interface().(uuid.UUID).String(), nil
		}
		c.from = func(src any, v reflect.Value) error {
			var id uuid.UUID
			switch s := src.(type) {
			case string:
				var err error
				if id, err = uuid.Parse(s); err != nil {
					return fmt.Errorf("cannot set uuid.UUID from %s: %w", describe(src), err)
				}
			case uuid.UUID:
				id = s
			case []byte:
				if len(s) != len(id) {
					return fmt.Errorf("cannot set uuid.UUID from %d bytes", len(s))
				}
				copy(id[:], s)
			default:
				return fmt.Errorf("cannot set uuid.UUID from %s", describe(src))
			}
			*(*uuid.UUID)(v.Addr().UnsafePointer()) = id
			return nil
		}
		return c, nil
	}

	switch t.Kind() {
	case reflect.Bool:
		c.to = func(v reflect.Value) (any, error) { return v.Bool(), nil }
		c.from = func(src any, v reflect.Value) error {
			x, ok := src.(bool)
			if !ok {
				return fmt.Errorf("cannot set %s from %s", t, describe(src))
			}
			v.SetBool(x)
			return nil
		}
	case reflect.String:
		c.to = func(v reflect.Value) (any, error) { return v.String(), nil }
		c.from = func(src any, v reflect.Value) error {
			x, ok := src.(string)
			if !ok {
				return fmt.Errorf("cannot set %s from %s", t, describe(src))
			}
			v.SetString(x)
			return nil
		}
	case reflect.Int, reflect.Int64:
		c.to = func(v reflect.Value) (any, error) { return v.Int(), nil }
		c.from = intFrom(t)
	case reflect.Int32, reflect.Int16, reflect.Int8:
		c.to = func(v reflect.Value) (any, error) { return int32(v.Int()), nil }
		c.from = intFrom(t)
	case reflect.Uint16, reflect.Uint8:
		c.to = func(v reflect.Value) (any, error) { return int32(v.Uint()), nil }
		c.from = uintFrom(t)
	case reflect.Uint32, reflect.Uint, reflect.Uint64:
		c.to = func(v reflect.Value) (any, error) {
			x := v.Uint()
			if x > math.MaxInt64 {
				return nil, fmt.Errorf("%s %d overflows int64", t, x)
			}
			return int64(x), nil
		}
		c.from = uintFrom(t)
	case reflect.Float32:
		c.to = func(v reflect.Value) (any, error) { return float32(v.Float()), nil }
		c.from = floatFrom(t)
	case reflect.Float64:
		c.to = func(v reflect.Value) (any, error) { return v.Float(), nil }
		c.from = floatFrom(t)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			c.to = func(v reflect.Value) (any, error) { return append([]byte{}, v.Bytes()...), nil }
			c.from = func(src any, v reflect.Value) error {
				switch x := src.(type) {
				case nil:
					v.SetZero()
				case []byte:
					v.SetBytes(append([]byte{}, x...))
				default:
					return fmt.Errorf("cannot set %s from %s", t, describe(src))
				}
				return nil
			}
			break
		}
		elem, err := b.conv(t.Elem())
		if err != nil {
			return nil, err
		}
		c.to = sequenceTo(elem)
		c.from = func(src any, v reflect.Value) error {
			switch x := src.(type) {
			case nil:
				v.SetZero()
			case []any:
				s := reflect.MakeSlice(t, len(x), len(x))
				for i, e := range x {
					if err := elem.from(e, s.Index(i)); err != nil {
						return atIndex(err, i)
					}
				}
				v.Set(s)
			default:
				return fmt.Errorf("cannot set %s from %s", t, describe(src))
			}
			return nil
		}
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			c.to = func(v reflect.Value) (any, error) {
				out := make([]byte, v.Len())
				reflect.Copy(reflect.ValueOf(out), v)
				return out, nil
			}
			c.from = func(src any, v reflect.Value) error {
				x, ok := src.([]byte)
				if !ok || len(x) != t.Len() {
					return fmt.Errorf("cannot set %s from %s of length %d", t, describe(src), len(x))
				}
				reflect.Copy(v, reflect.ValueOf(x))
				return nil
			}
			break
		}
		elem, err := b.conv(t.Elem())
		if err != nil {
			return nil, err
		}
		c.to = sequenceTo(elem)
		c.from = func(src any, v reflect.Value) error {
			x, ok := src.([]any)
			if !ok {
				return fmt.Errorf("cannot set %s from %s", t, describe(src))
			}
			if len(x) != t.Len() {
				return fmt.Errorf("cannot set %s from %d items", t, len(x))
			}
			for i, e := range x {
				if err := elem.from(e, v.Index(i)); err != nil {
					return atIndex(err, i)
				}
			}
			return nil
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("unsupported type %s: map keys must be strings", t)
		}
		elem, err := b.conv(t.Elem())
		if err != nil {
			return nil, err
		}
		c.to = func(v reflect.Value) (any, error) {
			out := make(map[string]any, v.Len())
			it := v.MapRange()
			for it.Next() {
				k := it.Key().String()
				x, err := elem.to(it.Value())
				if err != nil {
					return nil, atKey(err, k)
				}
				out[k] = x
			}
			return out, nil
		}
		c.from = func(src any, v reflect.Value) error {
			switch x := src.(type) {
			case nil:
				v.SetZero()
			case map[string]any:
				m := reflect.MakeMapWithSize(t, len(x))
				for k, e := range x {
					ev := reflect.New(t.Elem()).Elem()
					if err := elem.from(e, ev); err != nil {
						return atKey(err, k)
					}
					m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
				}
				v.Set(m)
			default:
				return fmt.Errorf("cannot set %s from %s", t, describe(src))
			}
			return nil
		}
	case reflect.Pointer:
		elem, err := b.conv(t.Elem())
		if err != nil {
			return nil, err
		}
		c.to = func(v reflect.Value) (any, error) {
			if v.IsNil() {
				return nil, nil
			}
			return elem.to(v.Elem())
		}
		c.from = func(src any, v reflect.Value) error {
			if src == nil {
				v.SetZero()
				return nil
			}
			p := reflect.New(t.Elem())
			if err := elem.from(src, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}
	case reflect.Interface:
		c.to = func(v reflect.Value) (any, error) {
			if v.IsNil() {
				return nil, nil
			}
			e := v.Elem()
			ec, err := convOf(e.Type())
			if err != nil {
				return nil, err
			}
			return ec.to(e)
		}
		c.from = func(src any, v reflect.Value) error {
			if src == nil {
				v.SetZero()
				return nil
			}
			x := reflect.ValueOf(cloneValue(src))
			if !x.Type().AssignableTo(t) {
				return fmt.Errorf("cannot set %s from %s", t, describe(src))
			}
			v.Set(x)
			return nil
		}
	case reflect.Struct:
		p, err := b.plan(t)
		if err != nil {
			return nil, err
		}
		c.to = func(v reflect.Value) (any, error) { return p.marshal(v) }
		c.from = func(src any, v reflect.Value) error {
			x, ok := src.(map[string]any)
			if !ok {
				return fmt.Errorf("cannot set %s from %s", t, describe(src))
			}
			return p.unmarshal(x, v)
		}
	default:
		return nil, fmt.Errorf("unsupported type %s", t)
	}
	return c, nil
}

func (b *builder) plan(t reflect.Type) (*plan, error) {
	p := &plan{typeName: t.Name()}
	if p.typeName == "" {
		p.typeName = t.String()
	}
	b.plans[t] = p
	if err := b.collect(t, nil, &p.fields); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	seen := make(map[string]bool, len(p.fields))
	for _, f := range p.fields {
		if seen[f.name] {
			return nil, fmt.Errorf("%s: two fields named %q", t, f.name)
		}
		seen[f.name] = true
	}
	fields := p.fields
	p.marshal = func(v reflect.Value) (map[string]any, error) {
		out := make(map[string]any, len(fields))
		for i := range fields {
			f := &fields[i]
			x, err := f.conv.to(fieldOf(v, f.index))
			if err != nil {
				return nil, atField(err, f.name)
			}
			out[f.name] = x
		}
		return out, nil
	}
	p.unmarshal = func(rec map[string]any, v reflect.Value) error {
		for i := range fields {
			f := &fields[i]
			fv := fieldOf(v, f.index)
			src, ok := rec[f.name]
			if !ok {
				fv.SetZero()
				continue
			}
			if err := f.conv.from(src, fv); err != nil {
				return atField(err, f.name)
			}
		}
		return nil
	}
	return p, nil
}

// collect appends the record fields of struct type t, promoting the fields
// of structs embedded by value without a tag.
func (b *builder) collect(t reflect.Type, index []int, out *[]fieldPlan) error {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, tagged := sf.Tag.Lookup("avro")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		if sf.Anonymous && name == "" {
			ft := sf.Type
			if ft.Kind() == reflect.Struct && ft != timeType {
				if err := b.collect(ft, idx, out); err != nil {
					return err
				}
				continue
			}
			if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
				return fmt.Errorf("embedded field %s: embedded pointers are not supported; embed the struct or give the field an avro tag", sf.Name)
			}
		}
		if !sf.IsExported() {
			continue
		}
		if !tagged || name == "" {
			name = snakeCase(sf.Name)
		}
		c, err := b.conv(sf.Type)
		if err != nil {
			return fmt.Errorf("field %s: %w", sf.Name, err)
		}
		*out = append(*out, fieldPlan{name: name, index: idx, conv: c})
	}
	return nil
}

func fieldOf(v reflect.Value, index []int) reflect.Value {
	if len(index) == 1 {
		return v.Field(index[0])
	}
	for _, i := range index {
		v = v.Field(i)
	}
	return v
}

func timeOf(v reflect.Value) time.Time {
	if v.CanAddr() {
		return *(*time.Time)(v.Addr().UnsafePointer())
	}
	return v.Interface().(time.Time)
}

func intFrom(t reflect.Type) func(src any, v reflect.Value) error {
	return func(src any, v reflect.Value) error {
		x, err := toInt64(src)
		if err == errOverflow || err == nil && v.OverflowInt(x) {
			return fmt.Errorf("%s overflows %s", describe(src), t)
		}
		if err != nil {
			return fmt.Errorf("cannot set %s from %s: %w", t, describe(src), err)
		}
		v.SetInt(x)
		return nil
	}
}

func uintFrom(t reflect.Type) func(src any, v reflect.Value) error {
	return func(src any, v reflect.Value) error {
		x, err := toInt64(src)
		if err != nil {
			if u, ok := src.(uint64); ok {
				if v.OverflowUint(u) {
					return fmt.Errorf("%s overflows %s", describe(src), t)
				}
				v.SetUint(u)
				return nil
			}
			return fmt.Errorf("cannot set %s from %s: %w", t, describe(src), err)
		}
		if x < 0 || v.OverflowUint(uint64(x)) {
			return fmt.Errorf("%s overflows %s", describe(src), t)
		}
		v.SetUint(uint64(x))
		return nil
	}
}

func floatFrom(t reflect.Type) func(src any, v reflect.Value) error {
	return func(src any, v reflect.Value) error {
		x, err := toFloat64(src)
		if err != nil {
			return fmt.Errorf("cannot set %s from %s: %w", t, describe(src), err)
		}
		if t.Kind() == reflect.Float32 && !math.IsInf(x, 0) && math.Abs(x) > math.MaxFloat32 {
			return fmt.Errorf("%s overflows %s", describe(src), t)
		}
		v.SetFloat(x)
		return nil
	}
}

var (
	errNotNumber  = errors.New("not a number")
	errOverflow   = errors.New("out of range")
	errNotInteger = errors.New("not an integer")
	errPrecision  = errors.New("not exactly representable")
)

const (
	twoTo63Float = float64(1 << 63)
	twoTo53Int64 = int64(1) << 53
)

// toInt64 converts any Go number that holds an integer to int64.
func toInt64(src any) (int64, error) {
	switch x := src.(type) {
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, errOverflow
		}
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, errOverflow
		}
		return int64(x), nil
	case float32:
		return floatToInt64(float64(x))
	case float64:
		return floatToInt64(x)
	}
	return 0, errNotNumber
}

func floatToInt64(f float64) (int64, error) {
	if f != math.Trunc(f) || math.IsNaN(f) {
		return 0, errNotInteger
	}
	if f < -twoTo63Float || f >= twoTo63Float {
		return 0, errOverflow
	}
	return int64(f), nil
}

// toFloat64 converts any Go number to float64; integers must convert
// exactly.
func toFloat64(src any) (float64, error) {
	switch x := src.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	}
	i, err := toInt64(src)
	if err != nil {
		if u, ok := src.(uint64); ok && u <= 1<<53 {
			return float64(u), nil
		}
		if err == errOverflow {
			return 0, errPrecision
		}
		return 0, err
	}
	if i > twoTo53Int64 || i < -twoTo53Int64 {
		return 0, errPrecision
	}
	return float64(i), nil
}

// snakeCase converts a Go identifier: OrderID -> order_id,
// HTTPServer -> http_server, UnitPrice -> unit_price.
func snakeCase(s string) string {
	var b strings.Builder
	runes := []rune(s)
	for i, r := range runes {
		if unicode.IsUpper(r) {
			if i > 0 {
				prev := runes[i-1]
				// The last capital of an acronym starts a word, unless
				// only a plural s follows: HTTPServer, URLs.
				nextLower := i+1 < len(runes) && unicode.IsLower(runes[i+1]) &&
					!(runes[i+1] == 's' && (i+2 == len(runes) || !unicode.IsLower(runes[i+2])))
				if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
					b.WriteByte('_')
				}
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sequenceTo converts a slice or an array element by element into []any.
func sequenceTo(elem *conv) func(reflect.Value) (any, error) {
	return func(v reflect.Value) (any, error) {
		out := make([]any, v.Len())
		for i := range out {
			x, err := elem.to(v.Index(i))
			if err != nil {
				return nil, atIndex(err, i)
			}
			out[i] = x
		}
		return out, nil
	}
}
