package snapshots

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// CanonicalForm returns the Parsing Canonical Form of an Avro schema, as the
// Avro specification defines it: primitive schemas in their simple form
// ("int", never {"type":"int"}); full names for every named type, with no
// namespace attributes; only the attributes name, type, fields, symbols,
// items, values and size, in that order (doc, aliases, default, order,
// logicalType and every other attribute are dropped); each named type
// defined at its first occurrence and referred to by full name afterwards;
// integers without leading zeros; no whitespace.
//
// Two schemas with the same canonical form read and write the same bytes.
// Logical types are not part of it, so {"type":"long",
// "logicalType":"timestamp-micros"} and "long" have the same canonical form,
// as in the reference Java implementation (SchemaNormalization).
//
// The schema must be valid (hamba/avro parses it, defaults included).
// hamba/avro's own canonical form keeps logicalType, so its CRC-64
// fingerprints differ from Java's for schemas with logical types; this one
// does not.
func CanonicalForm(schemaJSON string) (string, error) {
	s, err := parseAvro(schemaJSON, "")
	if err != nil {
		return "", fmt.Errorf("snapshots: canonical form: %w", err)
	}
	return canonical(s), nil
}

// Fingerprint returns the CRC-64-AVRO (Rabin) fingerprint of the schema's
// Parsing Canonical Form: the fingerprint Avro single-object encoding puts
// in its header. It equals the reference Java implementation's
// SchemaNormalization.parsingFingerprint64 of the same schema (as an
// unsigned number).
func Fingerprint(schemaJSON string) (uint64, error) {
	s, err := parseAvro(schemaJSON, "")
	if err != nil {
		return 0, fmt.Errorf("snapshots: fingerprint: %w", err)
	}
	return rabin64([]byte(canonical(s))), nil
}

// rabinEmpty is the CRC-64-AVRO fingerprint of the empty string, and the
// polynomial of the table.
const rabinEmpty uint64 = 0xc15d213aa4d7a795

var rabinTable = func() (t [256]uint64) {
	for i := range t {
		fp := uint64(i)
		for range 8 {
			fp = (fp >> 1) ^ (rabinEmpty & -(fp & 1))
		}
		t[i] = fp
	}
	return t
}()

// rabin64 is the specification's 64-bit Rabin fingerprint.
func rabin64(b []byte) uint64 {
	fp := rabinEmpty
	for _, c := range b {
		fp = (fp >> 8) ^ rabinTable[byte(fp)^c]
	}
	return fp
}

// parseAvro parses a schema on its own, with names resolved in namespace:
// a cache of its own keeps schemas of the same name in one process apart.
func parseAvro(text, namespace string) (avro.Schema, error) {
	s, err := avro.ParseWithCache(text, namespace, &avro.SchemaCache{})
	if err != nil {
		return nil, err
	}
	raw, err := decodeJSON(text)
	if err != nil {
		return nil, err
	}
	defaults := make(map[string]any)
	jsonDefaults(raw, namespace, defaults)
	if err := checkSpec(s, defaults); err != nil {
		return nil, err
	}
	return s, nil
}

// jsonDefaults collects the field defaults of the records in a schema's
// JSON as written, by record full name and field name: hamba/avro converts
// defaults (2.5 becomes 2 for an int), so they are checked as written.
func jsonDefaults(v any, ns string, out map[string]any) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			jsonDefaults(e, ns, out)
		}
	case map[string]any:
		name, _ := v["name"].(string)
		if space, ok := v["namespace"].(string); ok && !strings.Contains(name, ".") {
			ns = space
		}
		full := name
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			ns = name[:i]
		} else if ns != "" {
			full = ns + "." + name
		}
		fields, _ := v["fields"].([]any)
		for _, f := range fields {
			fm, _ := f.(map[string]any)
			if def, ok := fm["default"]; ok {
				fname, _ := fm["name"].(string)
				out[full+"."+fname] = def
			}
			jsonDefaults(fm["type"], ns, out)
		}
		jsonDefaults(v["type"], ns, out)
		jsonDefaults(v["items"], ns, out)
		jsonDefaults(v["values"], ns, out)
	}
}

// checkSpec refuses what the Avro specification forbids and hamba/avro's
// parser lets through, so that no schema is registered that Java's parser
// (and so every Java reader) refuses: two union members of one type, a
// named type with a primitive type's name, a field default that is not a
// value of the field's type.
func checkSpec(root avro.Schema, defaults map[string]any) error {
	seen := make(map[avro.Schema]bool)
	var walk func(s avro.Schema, where string) error
	walk = func(s avro.Schema, where string) error {
		s = deref(s)
		if seen[s] {
			return nil
		}
		seen[s] = true
		if n, ok := s.(avro.NamedSchema); ok {
			switch avro.Type(n.Name()) {
			case avro.Null, avro.Boolean, avro.Int, avro.Long, avro.Float, avro.Double, avro.Bytes, avro.String:
				return fmt.Errorf("%s: a %s may not be named %q, a primitive type's name", where, s.Type(), n.Name())
			}
		}
		switch s := s.(type) {
		case *avro.RecordSchema:
			for _, f := range s.Fields() {
				at := s.FullName() + "." + f.Name()
				if err := walk(f.Type(), at); err != nil {
					return err
				}
				if def, ok := defaults[at]; ok && f.HasDefault() {
					if err := validDefault(f.Type(), def); err != nil {
						return fmt.Errorf("%s: invalid default: %w", at, err)
					}
				}
			}
		case *avro.ArraySchema:
			return walk(s.Items(), where+"[]")
		case *avro.MapSchema:
			return walk(s.Values(), where+"{}")
		case *avro.UnionSchema:
			members := make(map[string]bool)
			for _, t := range s.Types() {
				key := string(deref(t).Type())
				if n, ok := deref(t).(avro.NamedSchema); ok {
					key = n.FullName()
				}
				if members[key] {
					return fmt.Errorf("%s: union has two members of type %s", where, key)
				}
				members[key] = true
				if err := walk(t, where); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(root, "schema")
}

// validDefault checks a default as hamba/avro parsed it against its type,
// recursively: hamba/avro checks the top level only.
func validDefault(s avro.Schema, v any) error {
	s = deref(s)
	bad := func() error { return fmt.Errorf("%v is not a %s", v, s.Type()) }
	switch s := s.(type) {
	case *avro.ArraySchema:
		l, ok := v.([]any)
		if !ok {
			return bad()
		}
		for _, e := range l {
			if err := validDefault(s.Items(), e); err != nil {
				return err
			}
		}
		return nil
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		for _, e := range m {
			if err := validDefault(s.Values(), e); err != nil {
				return err
			}
		}
		return nil
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		for _, f := range s.Fields() {
			fv, ok := m[f.Name()]
			if !ok {
				if !f.HasDefault() {
					return fmt.Errorf("field %s missing", f.Name())
				}
				continue
			}
			if err := validDefault(f.Type(), fv); err != nil {
				return fmt.Errorf("%s: %w", f.Name(), err)
			}
		}
		return nil
	case *avro.UnionSchema:
		return validDefault(s.Types()[0], v)
	case *avro.EnumSchema:
		if str, ok := v.(string); !ok || !slices.Contains(s.Symbols(), str) {
			return bad()
		}
		return nil
	}
	switch s.Type() {
	case avro.Null:
		if v != nil {
			return bad()
		}
	case avro.Boolean:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case avro.Int, avro.Long:
		f, ok := number(v)
		if !ok || f != math.Trunc(f) || (s.Type() == avro.Int && (f < math.MinInt32 || f > math.MaxInt32)) {
			return bad()
		}
	case avro.Float, avro.Double:
		if _, ok := number(v); !ok {
			return bad()
		}
	case avro.String, avro.Bytes, avro.Fixed:
		switch v.(type) {
		case string, []byte, [16]byte:
		default:
			if s.Type() != avro.Fixed {
				return bad()
			}
		}
	}
	return nil
}

// number returns a numeric default as a float64.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// canonical writes the Parsing Canonical Form of a parsed schema.
func canonical(s avro.Schema) string {
	var b strings.Builder
	writeCanonical(&b, s, make(map[string]bool))
	return b.String()
}

func writeCanonical(b *strings.Builder, s avro.Schema, defined map[string]bool) {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if n, ok := s.(avro.NamedSchema); ok {
		if defined[n.FullName()] {
			b.WriteString(strconv.Quote(n.FullName()))
			return
		}
		defined[n.FullName()] = true
		b.WriteString(`{"name":` + strconv.Quote(n.FullName()) + `,"type":"` + string(s.Type()) + `"`)
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		b.WriteString(`,"fields":[`)
		for i, f := range s.Fields() {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"name":` + strconv.Quote(f.Name()) + `,"type":`)
			writeCanonical(b, f.Type(), defined)
			b.WriteByte('}')
		}
		b.WriteString("]}")
	case *avro.EnumSchema:
		b.WriteString(`,"symbols":[`)
		for i, sym := range s.Symbols() {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(sym))
		}
		b.WriteString("]}")
	case *avro.FixedSchema:
		b.WriteString(`,"size":` + strconv.Itoa(s.Size()) + "}")
	case *avro.ArraySchema:
		b.WriteString(`{"type":"array","items":`)
		writeCanonical(b, s.Items(), defined)
		b.WriteByte('}')
	case *avro.MapSchema:
		b.WriteString(`{"type":"map","values":`)
		writeCanonical(b, s.Values(), defined)
		b.WriteByte('}')
	case *avro.UnionSchema:
		b.WriteByte('[')
		for i, t := range s.Types() {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, t, defined)
		}
		b.WriteByte(']')
	default:
		b.WriteString(`"` + string(s.Type()) + `"`)
	}
}
