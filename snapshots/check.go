package snapshots

import (
	"errors"
	"fmt"
	"math"

	"github.com/hamba/avro/v2"
)

// check walks b against the state schema and reports the first thing that
// makes it other than exactly one encoding of a record of that schema. It
// allocates nothing for the values, so hamba/avro decodes only bytes that
// bound every allocation it makes.
func (s *StateSchema) check(b []byte) error { return s.shape.check(b) }

// shape is a schema compiled for check: its kind, the fewest bytes its
// values take, and its parts.
type shape struct {
	kind  avro.Type
	min   int
	size  int      // fixed: its size; enum: its symbol count; union: its member count
	parts []*shape // record: its fields' types; array: its items; map: its values; union: its members
	names []string // record: its fields' names
}

// compile compiles a schema for check; a recursive schema compiles to a
// cyclic shape.
func compile(root avro.Schema) *shape {
	done := make(map[avro.Schema]*shape)
	var build func(s avro.Schema) *shape
	build = func(s avro.Schema) *shape {
		s = deref(s)
		if sh, ok := done[s]; ok {
			return sh
		}
		sh := &shape{kind: s.Type()}
		done[s] = sh
		switch s := s.(type) {
		case *avro.RecordSchema:
			for _, f := range s.Fields() {
				sh.parts = append(sh.parts, build(f.Type()))
				sh.names = append(sh.names, f.Name())
			}
		case *avro.ArraySchema:
			sh.parts = []*shape{build(s.Items())}
		case *avro.MapSchema:
			sh.parts = []*shape{build(s.Values())}
		case *avro.UnionSchema:
			for _, t := range s.Types() {
				sh.parts = append(sh.parts, build(t))
			}
			sh.size = len(s.Types())
		case *avro.EnumSchema:
			sh.size = len(s.Symbols())
		case *avro.FixedSchema:
			sh.size = s.Size()
		}
		return sh
	}
	sh := build(root)
	// Minimum sizes, with the copies made for record fields; a record met
	// again while its size is computed counts as 0, which only loosens the
	// bounds check applies.
	sizes := make(map[avro.Schema]int)
	busy := make(map[avro.Schema]bool)
	var size func(s avro.Schema) int
	size = func(s avro.Schema) int {
		s = deref(s)
		if n, ok := sizes[s]; ok {
			return n
		}
		if busy[s] {
			return 0
		}
		busy[s] = true
		n := 1 // a varint, a block count, a union index
		switch s := s.(type) {
		case *avro.RecordSchema:
			n = 0
			for _, f := range s.Fields() {
				n += size(f.Type())
			}
		case *avro.ArraySchema:
			size(s.Items())
		case *avro.MapSchema:
			size(s.Values())
		case *avro.UnionSchema:
			for _, t := range s.Types() {
				size(t)
			}
		case *avro.FixedSchema:
			n = s.Size()
		default:
			switch s.Type() {
			case avro.Null:
				n = 0
			case avro.Float:
				n = 4
			case avro.Double:
				n = 8
			}
		}
		sizes[s] = n
		return n
	}
	size(root)
	for s, c := range done {
		c.min = sizes[s]
	}
	return sh
}

func (sh *shape) check(b []byte) error {
	c := checker{reader: reader{buf: b}, zero: maxZeroSizeItems}
	if err := c.walk(sh, 1); err != nil {
		return err
	}
	if len(c.buf) > 0 {
		return fmt.Errorf("%d trailing bytes after the record", len(c.buf))
	}
	return nil
}

// reader reads Avro primitives from a byte slice.
type reader struct{ buf []byte }

var errTruncated = errors.New("truncated")

func (r *reader) varint(maxBytes int) (uint64, error) {
	var x uint64
	for i := 0; i < maxBytes; i++ {
		if i == len(r.buf) {
			return 0, errTruncated
		}
		c := r.buf[i]
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if i == 9 && c > 1 {
				break
			}
			r.buf = r.buf[i+1:]
			return x, nil
		}
	}
	return 0, fmt.Errorf("varint longer than %d bytes", maxBytes)
}

func (r *reader) long() (int64, error) {
	if len(r.buf) > 0 && r.buf[0] < 0x80 { // one byte: most lengths and counts
		u := uint64(r.buf[0])
		r.buf = r.buf[1:]
		return int64(u>>1) ^ -int64(u&1), nil
	}
	u, err := r.varint(10)
	return int64(u>>1) ^ -int64(u&1), err
}

func (r *reader) int() (int32, error) {
	if len(r.buf) > 0 && r.buf[0] < 0x80 {
		u := uint32(r.buf[0])
		r.buf = r.buf[1:]
		return int32(u>>1) ^ -int32(u&1), nil
	}
	u, err := r.varint(5)
	if err == nil && u > math.MaxUint32 {
		err = errors.New("int out of range")
	}
	return int32(uint32(u)>>1) ^ -int32(uint32(u)&1), err
}

func (r *reader) skip(n int64) error {
	if n < 0 || n > int64(len(r.buf)) {
		return fmt.Errorf("length %d with %d bytes left", n, len(r.buf))
	}
	r.buf = r.buf[n:]
	return nil
}

// field reads a long field, naming it in an error.
func (r *reader) field(name string) (int64, error) {
	v, err := r.long()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

func (r *reader) intField(name string) (int32, error) {
	v, err := r.int()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// str reads a string field, naming it in an error.
func (r *reader) str(name string) (string, error) {
	n, err := r.long()
	if err == nil && (n < 0 || n > int64(len(r.buf))) {
		err = fmt.Errorf("length %d with %d bytes left", n, len(r.buf))
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s, nil
}

type checker struct {
	reader
	zero int // array and map items of no bytes still allowed
}

func (c *checker) walk(s *shape, depth int) error {
	var err error
	switch s.kind {
	case avro.Record:
		if depth > maxDepth {
			return fmt.Errorf("nested deeper than %d", maxDepth)
		}
		for i, f := range s.parts {
			var err error
			switch f.kind { // the common leaves without a call
			case avro.String, avro.Bytes:
				var n int64
				if n, err = c.long(); err == nil {
					err = c.skip(n)
				}
			case avro.Int:
				_, err = c.int()
			case avro.Long:
				_, err = c.long()
			case avro.Double:
				err = c.skip(8)
			default:
				err = c.walk(f, depth+1)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", s.names[i], err)
			}
		}
	case avro.Array:
		err = c.blocks(s.parts[0], false, depth)
	case avro.Map:
		err = c.blocks(s.parts[0], true, depth)
	case avro.Union:
		var i int64
		if i, err = c.long(); err != nil {
			return err
		}
		if i < 0 || i >= int64(s.size) {
			return fmt.Errorf("union index %d of %d members", i, s.size)
		}
		return c.walk(s.parts[i], depth)
	case avro.Enum:
		var i int32
		if i, err = c.int(); err == nil && (i < 0 || int(i) >= s.size) {
			err = fmt.Errorf("enum index %d of %d symbols", i, s.size)
		}
	case avro.Fixed:
		err = c.skip(int64(s.size))
	case avro.Null:
	case avro.Boolean:
		if len(c.buf) == 0 {
			return errTruncated
		}
		if c.buf[0] > 1 {
			return fmt.Errorf("boolean byte %#02x", c.buf[0])
		}
		c.buf = c.buf[1:]
	case avro.Int:
		_, err = c.int()
	case avro.Long:
		_, err = c.long()
	case avro.Float:
		err = c.skip(4)
	case avro.Double:
		err = c.skip(8)
	case avro.String, avro.Bytes:
		var n int64
		if n, err = c.long(); err == nil {
			err = c.skip(n)
		}
	default:
		err = fmt.Errorf("unknown type %s", s.kind)
	}
	return err
}

func (c *checker) blocks(item *shape, isMap bool, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	size := item.min
	if isMap {
		size++ // the key's length
	}
	for k := 0; ; {
		n, err := c.long()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if n < 0 {
			if n == math.MinInt64 {
				return fmt.Errorf("block count %d", n)
			}
			n = -n
			bytes, err := c.long()
			if err != nil {
				return err
			}
			if bytes < 0 || bytes > int64(len(c.buf)) {
				return fmt.Errorf("block of %d bytes with %d bytes left", bytes, len(c.buf))
			}
		}
		if size > 0 && n > int64(len(c.buf)/size) {
			return fmt.Errorf("block of %d items with %d bytes left", n, len(c.buf))
		}
		if size == 0 {
			if n > int64(c.zero) {
				return fmt.Errorf("more than %d items that take no bytes", maxZeroSizeItems)
			}
			c.zero -= int(n)
		}
		for range n {
			if isMap {
				if _, err := c.str("key"); err != nil {
					return fmt.Errorf("[%d]: %w", k, err)
				}
			}
			if err := c.walk(item, depth+1); err != nil {
				return fmt.Errorf("[%d]: %w", k, err)
			}
			k++
		}
	}
}

func deref(s avro.Schema) avro.Schema {
	if ref, ok := s.(*avro.RefSchema); ok {
		return ref.Schema()
	}
	return s
}
