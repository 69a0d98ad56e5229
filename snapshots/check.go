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
func (s *StateSchema) check(b []byte) error { return checkAgainst(s.state, s.min, b) }

// checkAgainst checks b against schema, with min its minSizes.
func checkAgainst(schema avro.Schema, min map[avro.Schema]int, b []byte) error {
	c := checker{reader: reader{buf: b}, min: min, zero: maxZeroSizeItems}
	if err := c.walk(schema, 1); err != nil {
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
	u, err := r.varint(10)
	return int64(u>>1) ^ -int64(u&1), err
}

func (r *reader) int() (int32, error) {
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
	min  map[avro.Schema]int
	zero int // array and map items of no bytes still allowed
}

func (c *checker) walk(s avro.Schema, depth int) error {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		if depth > maxDepth {
			return fmt.Errorf("nested deeper than %d", maxDepth)
		}
		for _, f := range s.Fields() {
			if err := c.walk(f.Type(), depth+1); err != nil {
				return fmt.Errorf("%s: %w", f.Name(), err)
			}
		}
		return nil
	case *avro.ArraySchema:
		return c.blocks(s.Items(), false, depth)
	case *avro.MapSchema:
		return c.blocks(s.Values(), true, depth)
	case *avro.UnionSchema:
		i, err := c.long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(s.Types())) {
			return fmt.Errorf("union index %d of %d members", i, len(s.Types()))
		}
		return c.walk(s.Types()[i], depth)
	case *avro.EnumSchema:
		i, err := c.int()
		if err != nil {
			return err
		}
		if i < 0 || int(i) >= len(s.Symbols()) {
			return fmt.Errorf("enum index %d of %d symbols", i, len(s.Symbols()))
		}
		return nil
	case *avro.FixedSchema:
		return c.skip(int64(s.Size()))
	}
	var err error
	switch s.Type() {
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
		err = fmt.Errorf("unknown type %s", s.Type())
	}
	return err
}

func (c *checker) blocks(item avro.Schema, isMap bool, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	size := c.min[deref(item)]
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

// minSizes returns the fewest bytes a value of each type under root takes.
// A record met again while its size is being computed counts as 0, which
// only loosens the bounds check applies.
func minSizes(root avro.Schema) map[avro.Schema]int {
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
		n := 1
		switch s := s.(type) {
		case *avro.RecordSchema:
			busy[s] = true
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
	return sizes
}
