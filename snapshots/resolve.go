package snapshots

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Schema resolution, as the Avro specification defines it: a record
// written with one schema (the writer's) is read as another (the
// reader's). Single-object encoding names only the writer schema, so a
// codec that has changed its state schema must still know the ones older
// snapshots were written with, and read them as the current one.
//
// A resolver is built once for a pair of schemas, when the writer schema is
// registered; building it checks that every value the writer schema can
// produce can be read as the reader schema, and names the first place where
// one cannot. Applying it converts what goavro decoded with the writer schema
// (its native form, in which a union value names its member) to the plain
// record form of the reader schema, as fromNative does for a single schema.
//
// The rules:
//
//   - Records match by unqualified name. Reader fields take the writer
//     field of the same name, resolved; a reader field the writer lacks
//     takes its default; without a default the pair is incompatible. Writer
//     fields the reader lacks are dropped.
//   - Enums match by unqualified name. A writer symbol the reader lacks
//     becomes the reader's enum default; without one the pair is
//     incompatible.
//   - Fixed types match by unqualified name and size.
//   - Arrays and maps resolve item by item.
//   - Primitives match the same type, or a promotion: int to long, float or
//     double; long to float or double; float to double; string to bytes
//     and bytes to string. Logical types annotate: a value is converted to
//     the underlying type of the writer, promoted, then read with the
//     reader's logical type.
//   - A writer union is compatible when each of its members is compatible
//     with the reader schema; a value resolves as the member it was written
//     as. A reader union, for a writer schema that is not a union, takes its
//     first member of the same type (of the same full name, else the same
//     unqualified name, for named types), else the first member the writer
//     type promotes to.
//
// Where the specification signals an error only when a value needs it (a
// writer union member, or an enum symbol, the reader cannot read), the pair
// is refused when the resolver is built, as the Java library's
// SchemaCompatibility does: ["null","string"] cannot become "string".
// Values can still fail: a string that is not a uuid read as one, a long
// out of the range of time-micros.
//
// Aliases are not used: renaming a field or a named type makes a new one.
type resolver struct {
	op   resolveOp
	w, r *schema

	fields   []fieldResolver      // record: one per reader field, in reader order
	items    *resolver            // array items, map values
	branches map[string]*resolver // writer union: goavro member name -> resolver
	symbols  map[string]string    // enum: writer symbol -> reader symbol
}

type resolveOp uint8

const (
	// opSame: writer and reader read the same plain values.
	opSame resolveOp = iota
	opPrimitive
	opRecord
	opEnum
	opFixed
	opArray
	opMap
	opWriterUnion
)

type fieldResolver struct {
	name string    // reader field name
	from string    // writer field name; "" when the field takes its default
	res  *resolver // with from
	def  any       // without from: the default in plain form
}

type schemaPair struct{ w, r *schema }

type resolverBuilder struct {
	built   map[schemaPair]*resolver
	same    map[schemaPair]bool
	sameLog []schemaPair // pairs in the order isSame first met them
}

// newResolver checks that values of writer can be read as reader and
// returns the resolver that does it. Both schemas must have been prepared.
func newResolver(writer, reader *schema) (*resolver, error) {
	b := resolverBuilder{built: make(map[schemaPair]*resolver), same: make(map[schemaPair]bool)}
	return b.build(writer, reader)
}

func (b *resolverBuilder) build(w, r *schema) (*resolver, error) {
	key := schemaPair{w, r}
	if res, ok := b.built[key]; ok {
		return res, nil // complete, or being built higher up a recursive schema
	}
	if b.isSame(w, r) {
		res := &resolver{op: opSame, w: w, r: r}
		b.built[key] = res
		return res, nil
	}
	if w.kind == kindUnion {
		res := &resolver{op: opWriterUnion, w: w, r: r, branches: make(map[string]*resolver, len(w.branches))}
		b.built[key] = res
		for _, wb := range w.branches {
			var br *resolver
			var err error
			if r.kind == kindUnion {
				rb := matchBranch(wb, r)
				if rb == nil {
					return nil, fmt.Errorf("writer union member %s matches no member of the reader union %s", wb.typeName(), r.typeName())
				}
				br, err = b.build(wb, rb)
			} else {
				br, err = b.build(wb, r)
				if err != nil && !isPathError(err) {
					err = fmt.Errorf("writer union member %s: %w", wb.typeName(), err)
				}
			}
			if err != nil {
				return nil, err
			}
			res.branches[wb.unionKey] = br
		}
		return res, nil
	}
	if r.kind == kindUnion {
		rb := matchBranch(w, r)
		if rb == nil {
			return nil, fmt.Errorf("writer type %s matches no member of the reader union %s", w.typeName(), r.typeName())
		}
		res, err := b.build(w, rb)
		if err != nil {
			return nil, err
		}
		b.built[key] = res
		return res, nil
	}
	if w.kind != r.kind && !promotes(w.kind, r.kind) {
		return nil, fmt.Errorf("writer type %s cannot be read as %s", w.typeName(), r.typeName())
	}
	if (w.kind == kindRecord || w.kind == kindEnum || w.kind == kindFixed) && unqualified(w.name) != unqualified(r.name) {
		return nil, fmt.Errorf("writer %s %s cannot be read as %s %s: the names differ", w.kind, w.name, r.kind, r.name)
	}
	res := &resolver{w: w, r: r}
	b.built[key] = res
	switch w.kind {
	case kindRecord:
		res.op = opRecord
		for _, rf := range r.fields {
			fr := fieldResolver{name: rf.name}
			if i, ok := w.fieldIndex[rf.name]; ok {
				wf := w.fields[i]
				sub, err := b.build(wf.typ, rf.typ)
				if err != nil {
					return nil, atField(err, rf.name)
				}
				fr.from, fr.res = wf.name, sub
			} else if rf.hasDefault {
				fr.def = rf.typ.decodedDefault(rf.def)
			} else {
				return nil, atField(fmt.Errorf("the writer's %s has no such field and the reader's %s gives no default", w.name, r.name), rf.name)
			}
			res.fields = append(res.fields, fr)
		}
	case kindEnum:
		res.op = opEnum
		res.symbols = make(map[string]string, len(w.symbols))
		var missing []string
		for _, sym := range w.symbols {
			switch {
			case r.symbolSet[sym]:
				res.symbols[sym] = sym
			case r.hasEnumDef:
				res.symbols[sym] = r.enumDef
			default:
				missing = append(missing, sym)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("writer symbols %s of enum %s are not in the reader's enum %s, which gives no default", strings.Join(missing, ", "), w.name, r.name)
		}
	case kindFixed:
		if w.size != r.size {
			return nil, fmt.Errorf("writer fixed %s of size %d cannot be read as fixed %s of size %d", w.name, w.size, r.name, r.size)
		}
		res.op = opFixed
	case kindArray:
		res.op = opArray
		sub, err := b.build(w.items, r.items)
		if err != nil {
			return nil, at(err, "[]")
		}
		res.items = sub
	case kindMap:
		res.op = opMap
		sub, err := b.build(w.values, r.values)
		if err != nil {
			return nil, at(err, "[*]")
		}
		res.items = sub
	default:
		res.op = opPrimitive
	}
	return res, nil
}

// decodedDefault converts a default from the plain form defaultPlain gives,
// in which timestamps and dates are numbers, to the one Decode gives.
func (s *schema) decodedDefault(v any) any {
	switch s.kind {
	case kindInt:
		if d, ok := v.(int32); ok && s.logical == logicalDate {
			return time.Unix(int64(d)*86400, 0).UTC()
		}
	case kindLong:
		if n, ok := v.(int64); ok {
			switch s.logical {
			case logicalTimestampMicros:
				return time.UnixMicro(n).UTC()
			case logicalTimestampMillis:
				return time.UnixMilli(n).UTC()
			}
		}
	case kindArray:
		if a, ok := v.([]any); ok {
			out := make([]any, len(a))
			for i, e := range a {
				out[i] = s.items.decodedDefault(e)
			}
			return out
		}
	case kindMap:
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, e := range m {
				out[k] = s.values.decodedDefault(e)
			}
			return out
		}
	case kindRecord:
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for _, f := range s.fields {
				out[f.name] = f.typ.decodedDefault(m[f.name])
			}
			return out
		}
	case kindUnion:
		if v != nil && len(s.branches) > 0 {
			return s.branches[0].decodedDefault(v)
		}
	}
	return v
}

func isPathError(err error) bool {
	_, ok := err.(*pathError)
	return ok
}

// isSame reports whether the plain values of w are those of r, so that
// reading needs no conversion: the same types and logical types, named
// types of the same unqualified name, record fields of the same names in
// the same order, union members in the same order, every writer enum symbol
// in the reader's enum. Defaults and docs do not matter.
//
// A pair met again while it is being compared is assumed to be the same,
// which is right for recursive types. When the assumption fails, the
// answers that may have rested on it are forgotten.
func (b *resolverBuilder) isSame(w, r *schema) bool {
	key := schemaPair{w, r}
	if v, ok := b.same[key]; ok {
		return v
	}
	b.same[key] = true
	mark := len(b.sameLog)
	b.sameLog = append(b.sameLog, key)
	v := b.compareSame(w, r)
	if !v {
		// A false answer rests on no assumption; true ones met since may.
		for _, p := range b.sameLog[mark+1:] {
			if b.same[p] {
				delete(b.same, p)
			}
		}
		b.sameLog = b.sameLog[:mark+1]
	}
	b.same[key] = v
	return v
}

func (b *resolverBuilder) compareSame(w, r *schema) bool {
	if w.kind != r.kind || w.logical != r.logical {
		return false
	}
	if w.name != "" && unqualified(w.name) != unqualified(r.name) {
		return false
	}
	switch w.kind {
	case kindRecord:
		if len(w.fields) != len(r.fields) {
			return false
		}
		for i, wf := range w.fields {
			if rf := r.fields[i]; wf.name != rf.name || !b.isSame(wf.typ, rf.typ) {
				return false
			}
		}
	case kindEnum:
		for _, sym := range w.symbols {
			if !r.symbolSet[sym] {
				return false
			}
		}
	case kindFixed:
		return w.size == r.size
	case kindArray:
		return b.isSame(w.items, r.items)
	case kindMap:
		return b.isSame(w.values, r.values)
	case kindUnion:
		if len(w.branches) != len(r.branches) {
			return false
		}
		for i, wb := range w.branches {
			if !b.isSame(wb, r.branches[i]) {
				return false
			}
		}
	}
	return true
}

// matchBranch returns the member of the reader union u that a value of the
// writer type w (not a union) is read as, or nil.
func matchBranch(w *schema, u *schema) *schema {
	var sameShort *schema
	for _, rb := range u.branches {
		if rb.kind != w.kind {
			continue
		}
		switch w.kind {
		case kindRecord, kindEnum, kindFixed:
			if rb.name == w.name {
				return rb
			}
			if sameShort == nil && unqualified(rb.name) == unqualified(w.name) {
				sameShort = rb
			}
		default:
			return rb
		}
	}
	if sameShort != nil {
		return sameShort
	}
	for _, rb := range u.branches {
		if promotes(w.kind, rb.kind) {
			return rb
		}
	}
	return nil
}

// promotes reports whether the specification lets a value written as w be
// read as r, a different type.
func promotes(w, r kind) bool {
	switch w {
	case kindInt:
		return r == kindLong || r == kindFloat || r == kindDouble
	case kindLong:
		return r == kindFloat || r == kindDouble
	case kindFloat:
		return r == kindDouble
	case kindString:
		return r == kindBytes
	case kindBytes:
		return r == kindString
	}
	return false
}

func unqualified(name string) string {
	return name[strings.LastIndexByte(name, '.')+1:]
}

// resolve converts a value goavro decoded with the writer schema to the
// plain form of the reader schema. Like fromNative, it may reuse the
// slices and maps of v.
func (res *resolver) resolve(v any) (any, error) {
	switch res.op {
	case opSame:
		return res.w.fromNative(v)
	case opPrimitive:
		return res.primitive(v)
	case opRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("decoded %T for %s", v, res.w.typeName())
		}
		out := make(map[string]any, len(res.fields))
		for _, f := range res.fields {
			if f.from == "" {
				out[f.name] = cloneValue(f.def)
				continue
			}
			e, ok := m[f.from]
			if !ok {
				return nil, atField(errors.New("missing"), f.from)
			}
			x, err := f.res.resolve(e)
			if err != nil {
				return nil, atField(err, f.name)
			}
			out[f.name] = x
		}
		return out, nil
	case opEnum:
		sym, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("decoded %T for %s", v, res.w.typeName())
		}
		to, ok := res.symbols[sym]
		if !ok {
			return nil, fmt.Errorf("%q is not a symbol of enum %s", sym, res.w.name)
		}
		return to, nil
	case opFixed:
		b, ok := v.([]byte)
		if !ok {
			return nil, fmt.Errorf("decoded %T for %s", v, res.w.typeName())
		}
		return append([]byte{}, b...), nil
	case opArray:
		a, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("decoded %T for %s", v, res.w.typeName())
		}
		for i, e := range a {
			x, err := res.items.resolve(e)
			if err != nil {
				return nil, atIndex(err, i)
			}
			a[i] = x
		}
		return a, nil
	case opMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("decoded %T for %s", v, res.w.typeName())
		}
		for k, e := range m {
			x, err := res.items.resolve(e)
			if err != nil {
				return nil, atKey(err, k)
			}
			m[k] = x
		}
		return m, nil
	case opWriterUnion:
		if v == nil {
			br, ok := res.branches["null"]
			if !ok {
				return nil, fmt.Errorf("decoded null for %s", res.w.typeName())
			}
			return br.resolve(nil)
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("decoded %T for %s", v, res.w.typeName())
		}
		for k, e := range m {
			br, ok := res.branches[k]
			if !ok {
				return nil, fmt.Errorf("decoded member %q for %s", k, res.w.typeName())
			}
			return br.resolve(e)
		}
	}
	return nil, fmt.Errorf("cannot resolve %s as %s", res.w.typeName(), res.r.typeName())
}

// primitive converts a primitive value: to the writer type's underlying
// Avro value, then to the reader type, then to the reader's plain form.
func (res *resolver) primitive(v any) (any, error) {
	w, r := res.w, res.r
	raw, ok := rawValue(w, v)
	if !ok {
		return nil, fmt.Errorf("decoded %T for %s", v, w.typeName())
	}
	switch x := raw.(type) {
	case int32:
		switch r.kind {
		case kindLong:
			raw = int64(x)
		case kindFloat:
			raw = float32(x)
		case kindDouble:
			raw = float64(x)
		}
	case int64:
		switch r.kind {
		case kindFloat:
			raw = float32(x)
		case kindDouble:
			raw = float64(x)
		}
	case float32:
		if r.kind == kindDouble {
			raw = float64(x)
		}
	case string:
		if r.kind == kindBytes {
			raw = []byte(x)
		}
	case []byte:
		if r.kind == kindString {
			raw = string(x)
		} else {
			raw = append([]byte{}, x...) // goavro's bytes alias the input
		}
	}
	switch r.kind {
	case kindInt:
		if r.logical == logicalDate {
			return time.Unix(int64(raw.(int32))*86400, 0).UTC(), nil
		}
	case kindLong:
		n := raw.(int64)
		switch r.logical {
		case logicalTimestampMicros:
			return time.UnixMicro(n).UTC(), nil
		case logicalTimestampMillis:
			return time.UnixMilli(n).UTC(), nil
		case logicalTimeMicros:
			if n > maxMicrosDuration || n < -maxMicrosDuration {
				return nil, fmt.Errorf("time-micros %d out of range", n)
			}
		}
	case kindString:
		if r.logical == logicalUUID && !isUUID(raw.(string)) {
			return nil, fmt.Errorf("%s is not a uuid", describe(raw))
		}
	}
	return raw, nil
}

// rawValue returns the underlying Avro value of what goavro decoded for a
// primitive type: int32 for int, int64 for long, whatever their logical
// type.
func rawValue(s *schema, v any) (any, bool) {
	switch s.kind {
	case kindNull:
		return nil, v == nil
	case kindBoolean:
		_, ok := v.(bool)
		return v, ok
	case kindInt:
		switch x := v.(type) {
		case int32:
			return x, s.logical == logicalNone
		case time.Time:
			if s.logical != logicalDate {
				return nil, false
			}
			days := x.Unix() / 86400
			if x.Unix()%86400 < 0 {
				days--
			}
			return int32(days), days >= math.MinInt32 && days <= math.MaxInt32
		case time.Duration:
			return int32(x / time.Millisecond), s.logical == logicalTimeMillis
		}
	case kindLong:
		switch x := v.(type) {
		case int64:
			return x, s.logical == logicalNone
		case time.Time:
			var perSec int64
			switch s.logical {
			case logicalTimestampMicros:
				perSec = 1e6
			case logicalTimestampMillis:
				perSec = 1e3
			default:
				return nil, false
			}
			n, err := unixIn(x, perSec)
			return n, err == nil
		case time.Duration:
			return int64(x / time.Microsecond), s.logical == logicalTimeMicros
		}
	case kindFloat:
		_, ok := v.(float32)
		return v, ok
	case kindDouble:
		_, ok := v.(float64)
		return v, ok
	case kindString:
		_, ok := v.(string)
		return v, ok
	case kindBytes:
		_, ok := v.([]byte)
		return v, ok
	}
	return nil, false
}
