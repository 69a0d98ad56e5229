package snapshots

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
// The schema must be valid: names well formed and defined before use,
// unions without nested unions or duplicate members. Defaults are not
// checked.
func CanonicalForm(schemaJSON string) (string, error) {
	s, err := parseSchema(schemaJSON)
	if err != nil {
		return "", fmt.Errorf("snapshots: canonical form: %w", err)
	}
	return s.canonical(), nil
}

// Fingerprint returns the CRC-64-AVRO (Rabin) fingerprint of the schema's
// Parsing Canonical Form: the fingerprint Avro single-object encoding puts
// in its header. It equals the reference Java implementation's
// SchemaNormalization.parsingFingerprint64 of the same schema (as an
// unsigned number).
func Fingerprint(schemaJSON string) (uint64, error) {
	s, err := parseSchema(schemaJSON)
	if err != nil {
		return 0, fmt.Errorf("snapshots: fingerprint: %w", err)
	}
	return rabin64([]byte(s.canonical())), nil
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

// kind is an Avro type.
type kind uint8

const (
	kindNull kind = iota
	kindBoolean
	kindInt
	kindLong
	kindFloat
	kindDouble
	kindBytes
	kindString
	kindRecord
	kindEnum
	kindArray
	kindMap
	kindFixed
	kindUnion
)

var kindNames = [...]string{
	kindNull: "null", kindBoolean: "boolean", kindInt: "int", kindLong: "long",
	kindFloat: "float", kindDouble: "double", kindBytes: "bytes", kindString: "string",
	kindRecord: "record", kindEnum: "enum", kindArray: "array", kindMap: "map",
	kindFixed: "fixed", kindUnion: "union",
}

func (k kind) String() string { return kindNames[k] }

var primitiveKinds = map[string]kind{
	"null": kindNull, "boolean": kindBoolean, "int": kindInt, "long": kindLong,
	"float": kindFloat, "double": kindDouble, "bytes": kindBytes, "string": kindString,
}

// logical is a logical type the codec gives a meaning to. Logical types
// not listed, or annotating a type they do not apply to, are ignored, as the
// specification asks.
type logical uint8

const (
	logicalNone logical = iota
	logicalUUID
	logicalDate
	logicalTimeMillis
	logicalTimeMicros
	logicalTimestampMillis
	logicalTimestampMicros
	// logicalUnsupported marks decimal and goavro's validated-string:
	// their values have no plain record form.
	logicalUnsupported
)

// logicalOf returns the meaning of logicalType lt on a type of kind k.
func logicalOf(k kind, lt string) logical {
	switch {
	case lt == "uuid" && k == kindString:
		return logicalUUID
	case lt == "date" && k == kindInt:
		return logicalDate
	case lt == "time-millis" && k == kindInt:
		return logicalTimeMillis
	case lt == "time-micros" && k == kindLong:
		return logicalTimeMicros
	case lt == "timestamp-millis" && k == kindLong:
		return logicalTimestampMillis
	case lt == "timestamp-micros" && k == kindLong:
		return logicalTimestampMicros
	case lt == "decimal" && (k == kindBytes || k == kindFixed),
		lt == "validated-string" && k == kindString:
		return logicalUnsupported
	}
	return logicalNone
}

// schema is a parsed Avro schema. Named types are shared: every reference
// to a name points to the one definition, so recursive types are cycles.
type schema struct {
	kind        kind
	logical     logical
	logicalName string // logicalType as written, for messages
	name        string // full name of a record, enum or fixed

	fields     []*field       // record
	fieldIndex map[string]int // record: field name -> index
	symbols    []string       // enum
	symbolSet  map[string]bool
	enumDef    string // enum: the default symbol, used by schema resolution
	hasEnumDef bool
	items      *schema   // array
	values     *schema   // map
	branches   []*schema // union
	size       int       // fixed

	// Set by prepare (avro.go) for schemas a codec uses.
	minSize   int    // fewest bytes a value takes in binary
	unionKey  string // how goavro names this type as a union member
	prepared  bool
	branchKey map[string]*schema // union: goavro member name -> branch
}

type field struct {
	name        string
	typ         *schema
	hasDefault  bool
	defaultJSON any // as decoded with json.Number
	def         any // the default in plain record form, set by prepare
}

// typeName names a schema in messages: its full name, or its type with
// its logical type.
func (s *schema) typeName() string {
	switch {
	case s.name != "":
		return s.name
	case s.kind == kindUnion:
		parts := make([]string, len(s.branches))
		for i, b := range s.branches {
			parts[i] = b.typeName()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case s.kind == kindArray:
		return "array<" + s.items.typeName() + ">"
	case s.kind == kindMap:
		return "map<" + s.values.typeName() + ">"
	case s.logical != logicalNone:
		return s.kind.String() + "/" + s.logicalName
	}
	return s.kind.String()
}

func decodeJSON(text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("schema is not valid JSON: text after the schema")
	}
	return v, nil
}

func parseSchema(text string) (*schema, error) {
	v, err := decodeJSON(text)
	if err != nil {
		return nil, err
	}
	return parseSchemaValue(v)
}

func parseSchemaValue(v any) (*schema, error) {
	p := parser{names: make(map[string]*schema)}
	return p.parse(v, "")
}

type parser struct {
	names map[string]*schema // full name -> definition
}

func (p *parser) parse(v any, ns string) (*schema, error) {
	switch v := v.(type) {
	case string:
		return p.ref(v, ns)
	case []any:
		return p.union(v, ns)
	case map[string]any:
		return p.object(v, ns)
	}
	return nil, fmt.Errorf("a schema is a string, an array or an object, not %s", jsonKind(v))
}

// ref resolves a type name: a primitive, or a named type defined earlier.
// A name without a dot is looked up in the enclosing namespace, then in the
// null namespace.
func (p *parser) ref(name, ns string) (*schema, error) {
	if k, ok := primitiveKinds[name]; ok {
		return &schema{kind: k}, nil
	}
	if !strings.Contains(name, ".") && ns != "" {
		if s, ok := p.names[ns+"."+name]; ok {
			if _, also := p.names[name]; also {
				// goavro and the specification would pick different ones.
				return nil, fmt.Errorf("type name %q is ambiguous: both %q and %q are defined", name, ns+"."+name, name)
			}
			return s, nil
		}
	}
	if s, ok := p.names[name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("unknown type %q", name)
}

func (p *parser) union(v []any, ns string) (*schema, error) {
	s := &schema{kind: kindUnion}
	seen := make(map[string]bool)
	for i, bv := range v {
		b, err := p.parse(bv, ns)
		if err != nil {
			return nil, fmt.Errorf("union member %d: %w", i, err)
		}
		if b.kind == kindUnion {
			return nil, fmt.Errorf("union member %d: a union cannot contain a union", i)
		}
		key := b.name
		if key == "" {
			key = b.kind.String()
		}
		if seen[key] {
			return nil, fmt.Errorf("union member %d: union has two members of type %s", i, key)
		}
		seen[key] = true
		s.branches = append(s.branches, b)
	}
	return s, nil
}

func (p *parser) object(m map[string]any, ns string) (*schema, error) {
	tv, ok := m["type"]
	if !ok {
		return nil, errors.New(`schema object has no "type"`)
	}
	t, ok := tv.(string)
	if !ok {
		return nil, fmt.Errorf(`"type" of a schema object must be a string, not %s`, jsonKind(tv))
	}
	lt, _ := m["logicalType"].(string)
	var s *schema
	switch t {
	case "record":
		return p.record(m, ns, lt)
	case "enum":
		s = &schema{kind: kindEnum}
		full, _, err := p.define(m, ns, s)
		if err != nil {
			return nil, err
		}
		syms, ok := m["symbols"].([]any)
		if !ok {
			return nil, fmt.Errorf("enum %s: symbols must be an array", full)
		}
		s.symbolSet = make(map[string]bool, len(syms))
		for _, sv := range syms {
			sym, ok := sv.(string)
			if !ok || !validName(sym) {
				return nil, fmt.Errorf("enum %s: invalid symbol %v", full, sv)
			}
			if s.symbolSet[sym] {
				return nil, fmt.Errorf("enum %s: duplicate symbol %q", full, sym)
			}
			s.symbolSet[sym] = true
			s.symbols = append(s.symbols, sym)
		}
		if d, ok := m["default"]; ok {
			sym, ok := d.(string)
			if !ok || !s.symbolSet[sym] {
				return nil, fmt.Errorf("enum %s: default %v is not one of its symbols", full, d)
			}
			s.enumDef, s.hasEnumDef = sym, true
		}
		return s, nil
	case "fixed":
		s = &schema{kind: kindFixed}
		full, _, err := p.define(m, ns, s)
		if err != nil {
			return nil, err
		}
		n, ok := m["size"].(json.Number)
		if !ok {
			return nil, fmt.Errorf("fixed %s: size must be a number", full)
		}
		size, err := n.Int64()
		if err != nil || size < 0 || size > 1<<31-1 {
			return nil, fmt.Errorf("fixed %s: invalid size %s", full, n)
		}
		s.size = int(size)
		s.logical, s.logicalName = logicalOf(kindFixed, lt), lt
		return s, nil
	case "array":
		iv, ok := m["items"]
		if !ok {
			return nil, errors.New(`array schema has no "items"`)
		}
		items, err := p.parse(iv, ns)
		if err != nil {
			return nil, fmt.Errorf("array items: %w", err)
		}
		return &schema{kind: kindArray, items: items}, nil
	case "map":
		vv, ok := m["values"]
		if !ok {
			return nil, errors.New(`map schema has no "values"`)
		}
		values, err := p.parse(vv, ns)
		if err != nil {
			return nil, fmt.Errorf("map values: %w", err)
		}
		return &schema{kind: kindMap, values: values}, nil
	}
	if k, ok := primitiveKinds[t]; ok {
		s = &schema{kind: k, logicalName: lt}
		s.logical = logicalOf(k, lt)
		return s, nil
	}
	// {"type": "SomeName"}: a reference with attributes.
	return p.ref(t, ns)
}

func (p *parser) record(m map[string]any, ns, lt string) (*schema, error) {
	s := &schema{kind: kindRecord, fieldIndex: make(map[string]int)}
	full, recNS, err := p.define(m, ns, s)
	if err != nil {
		return nil, err
	}
	s.logicalName = lt // ignored, kept for messages
	fv, ok := m["fields"].([]any)
	if !ok {
		return nil, fmt.Errorf("record %s: fields must be an array", full)
	}
	for i, f := range fv {
		fm, ok := f.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %s: field %d is not an object", full, i)
		}
		name, _ := fm["name"].(string)
		if !validName(name) {
			return nil, fmt.Errorf("record %s: field %d: invalid name %v", full, i, fm["name"])
		}
		if _, dup := s.fieldIndex[name]; dup {
			return nil, fmt.Errorf("record %s: duplicate field %q", full, name)
		}
		tv, ok := fm["type"]
		if !ok {
			return nil, fmt.Errorf("record %s: field %q has no type", full, name)
		}
		typ, err := p.parse(tv, recNS)
		if err != nil {
			return nil, fmt.Errorf("record %s: field %q: %w", full, name, err)
		}
		d, hasDefault := fm["default"]
		s.fieldIndex[name] = len(s.fields)
		s.fields = append(s.fields, &field{name: name, typ: typ, hasDefault: hasDefault, defaultJSON: d})
	}
	return s, nil
}

// define names a record, enum or fixed and registers it. It returns the full
// name and the namespace its members resolve names in.
func (p *parser) define(m map[string]any, ns string, s *schema) (full, space string, err error) {
	name, _ := m["name"].(string)
	if name == "" {
		return "", "", fmt.Errorf("%s schema has no name", m["type"])
	}
	switch {
	case strings.Contains(name, "."):
		full = name
	case m["namespace"] != nil:
		explicit, ok := m["namespace"].(string)
		if !ok {
			return "", "", fmt.Errorf("%s: namespace must be a string", name)
		}
		if explicit == "" && ns != "" {
			// The specification puts such a type in the null namespace;
			// goavro puts it in the enclosing one.
			return "", "", fmt.Errorf("%s: an empty namespace inside namespace %q is not supported", name, ns)
		}
		full = joinName(explicit, name)
	default:
		full = joinName(ns, name)
	}
	for _, part := range strings.Split(full, ".") {
		if !validName(part) {
			return "", "", fmt.Errorf("invalid name %q", full)
		}
	}
	if _, ok := primitiveKinds[full]; ok {
		return "", "", fmt.Errorf("name %q is a primitive type", full)
	}
	if _, dup := p.names[full]; dup {
		return "", "", fmt.Errorf("type %s is defined twice", full)
	}
	s.name = full
	p.names[full] = s
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		space = full[:i]
	}
	return full, space, nil
}

func joinName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "." + name
}

// validName reports whether s matches [A-Za-z_][A-Za-z0-9_]*.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// canonical returns the Parsing Canonical Form. Names and symbols are
// validated to [A-Za-z0-9_.], so they need no escaping.
func (s *schema) canonical() string {
	var b strings.Builder
	s.writeCanonical(&b, make(map[string]bool))
	return b.String()
}

func (s *schema) writeCanonical(b *strings.Builder, defined map[string]bool) {
	switch s.kind {
	case kindUnion:
		b.WriteByte('[')
		for i, br := range s.branches {
			if i > 0 {
				b.WriteByte(',')
			}
			br.writeCanonical(b, defined)
		}
		b.WriteByte(']')
	case kindArray:
		b.WriteString(`{"type":"array","items":`)
		s.items.writeCanonical(b, defined)
		b.WriteByte('}')
	case kindMap:
		b.WriteString(`{"type":"map","values":`)
		s.values.writeCanonical(b, defined)
		b.WriteByte('}')
	case kindRecord, kindEnum, kindFixed:
		if defined[s.name] {
			b.WriteString(`"` + s.name + `"`)
			return
		}
		defined[s.name] = true
		b.WriteString(`{"name":"` + s.name + `","type":"` + s.kind.String() + `"`)
		switch s.kind {
		case kindRecord:
			b.WriteString(`,"fields":[`)
			for i, f := range s.fields {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`{"name":"` + f.name + `","type":`)
				f.typ.writeCanonical(b, defined)
				b.WriteByte('}')
			}
			b.WriteByte(']')
		case kindEnum:
			b.WriteString(`,"symbols":[`)
			for i, sym := range s.symbols {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`"` + sym + `"`)
			}
			b.WriteByte(']')
		case kindFixed:
			fmt.Fprintf(b, `,"size":%d`, s.size)
		}
		b.WriteByte('}')
	default:
		b.WriteString(`"` + s.kind.String() + `"`)
	}
}
