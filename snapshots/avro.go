package snapshots

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/snaplog/snaplog/schemas"
)

// avroAPI is the hamba/avro configuration of every snapshot and state
// encode and decode. The limits are a second line of defence: check bounds
// every length and count by the bytes actually present before hamba/avro
// allocates for them.
var avroAPI = avro.Config{
	TagKey:            "avro",
	MaxByteSliceSize:  maxBytes,
	MaxSliceAllocSize: maxItems,
}.Freeze()

const (
	headerLen = 10
	marker0   = 0xC3
	marker1   = 0x01

	// maxDepth bounds the nesting of records, arrays and maps in a decoded
	// record: it keeps a recursive schema from exhausting the stack.
	maxDepth = 1000
	// maxZeroSizeItems bounds the array and map items of a decoded record
	// whose encoding takes no bytes (null, records of nulls).
	maxZeroSizeItems = 1 << 16
	// maxBytes bounds one string or bytes value, maxItems the items of one
	// array.
	maxBytes = 64 << 20
	maxItems = 1 << 24
)

// StateSchema is an aggregate type's state schema, compiled: an Avro record
// that takes the place of the placeholder record snaplog.State in the
// snapshot envelope (schemas/snapshot.avsc). Encode and Decode turn states
// into the bytes of Snapshot.State and back with hamba/avro, guided by
// `avro:"name"` struct tags; the repository, the snapshotter and the Kafka
// store all compile an aggregate type's schema with ParseStateSchema, so
// they agree on its bytes, its names and its fingerprint.
//
// A StateSchema is immutable and safe for concurrent use.
type StateSchema struct {
	text   string // the state schema as given
	writer string // the composed full writer schema
	fp     uint64
	header [headerLen]byte
	state  avro.Schema // the state record within the writer schema
	shape  *shape
}

// ParseStateSchema compiles a state schema: the JSON text of an Avro record
// schema, such as schemas.OrderState(). Names in it resolve as if it had
// been written in the envelope, in the namespace snaplog, so a state schema
// should give its own namespace.
func ParseStateSchema(text string) (*StateSchema, error) {
	writer, err := composeWriterSchema(schemas.Snapshot(), text)
	if err != nil {
		return nil, err
	}
	root, err := parseAvro(writer, "")
	if err != nil {
		return nil, fmt.Errorf("state schema: %w", err)
	}
	rec, ok := root.(*avro.RecordSchema)
	if !ok {
		return nil, errors.New("envelope schema: not a record")
	}
	if err := checkEnvelope(rec); err != nil {
		return nil, err
	}
	s := &StateSchema{text: text, writer: writer, fp: rabin64([]byte(canonical(root)))}
	s.state = rec.Fields()[len(rec.Fields())-1].Type()
	if ref, ok := s.state.(*avro.RefSchema); ok {
		s.state = ref.Schema()
	}
	s.header[0], s.header[1] = marker0, marker1
	binary.LittleEndian.PutUint64(s.header[2:], s.fp)
	s.shape = compile(s.state)
	return s, nil
}

// Encode returns the Avro binary encoding of v in the schema.
func (s *StateSchema) Encode(v any) ([]byte, error) {
	b, err := avroAPI.Marshal(s.state, v)
	if err != nil {
		return nil, fmt.Errorf("snapshots: encode state %s: %w", s.Name(), err)
	}
	return b, nil
}

// Decode reads the Avro binary encoding of a state into v, a pointer: all
// of b, which must hold exactly one record (truncated bytes or trailing
// ones are an error wrapping ErrCorrupt, as is a value hamba/avro cannot
// read). Decode trusts b as far as a Store's State can be trusted: bytes
// from outside the process reach a Snapshot only through AvroCodec, which
// checks them against the writer schema first, so that no length or count
// in them makes hamba/avro allocate more than their size; hamba/avro's
// limits bound the rest.
func (s *StateSchema) Decode(b []byte, v any) error {
	r := readers.Get().(*avro.Reader)
	defer readers.Put(r)
	r.Reset(b)
	r.Error = nil
	r.ReadVal(s.state, v)
	err := r.Error
	if err == nil {
		if r.Peek(); r.Error == nil {
			err = errors.New("trailing bytes after the record")
		}
	} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errTruncated
	}
	r.Reset(nil)
	if err != nil {
		return fmt.Errorf("%w: decode state %s: %w", ErrCorrupt, s.Name(), err)
	}
	return nil
}

var readers = sync.Pool{New: func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(avroAPI)) }}

// DecodeGeneric reads a state into generic values, for tools that show
// states of any type: records and maps as map[string]any, arrays as []any,
// unions as their member's value (nil for null), and otherwise hamba/avro's
// generic values (int as int, long as int64, timestamps as time.Time, ...).
func (s *StateSchema) DecodeGeneric(b []byte) (map[string]any, error) {
	var m map[string]any
	if err := s.Decode(b, &m); err != nil {
		return nil, err
	}
	unwrapUnions(s.state, m)
	return m, nil
}

// unwrapUnions replaces, under v of schema s, hamba/avro's wrappers of named
// union members ({"ns.Name": value}) by their values.
func unwrapUnions(s avro.Schema, v any) any {
	switch s := deref(s).(type) {
	case *avro.RecordSchema:
		if m, ok := v.(map[string]any); ok {
			for _, f := range s.Fields() {
				if fv, ok := m[f.Name()]; ok {
					m[f.Name()] = unwrapUnions(f.Type(), fv)
				}
			}
		}
	case *avro.ArraySchema:
		if l, ok := v.([]any); ok {
			for i := range l {
				l[i] = unwrapUnions(s.Items(), l[i])
			}
		}
	case *avro.MapSchema:
		if m, ok := v.(map[string]any); ok {
			for k := range m {
				m[k] = unwrapUnions(s.Values(), m[k])
			}
		}
	case *avro.UnionSchema:
		// hamba/avro gives the value of a union with two members or more
		// besides null, or with a named one, as {member name: value}: a
		// named member's full name, or the type (with its logical type)
		// of another one.
		wrapped := len(s.Types()) > 2 || (len(s.Types()) == 2 && !s.Nullable())
		for _, t := range s.Types() {
			if _, named := deref(t).(avro.NamedSchema); named {
				wrapped = true
			}
		}
		m, ok := v.(map[string]any)
		if !wrapped || !ok || len(m) != 1 {
			for _, t := range s.Types() {
				if t.Type() != avro.Null {
					return unwrapUnions(t, v)
				}
			}
			return v
		}
		for _, t := range s.Types() {
			if inner, ok := m[memberName(t)]; ok {
				return unwrapUnions(t, inner)
			}
		}
	}
	return v
}

// memberName is the name hamba/avro gives a union member in a generic
// union value.
func memberName(s avro.Schema) string {
	s = deref(s)
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	name := string(s.Type())
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		name += "." + string(l.Logical().Type())
	}
	return name
}

// Name returns the full name of the state record.
func (s *StateSchema) Name() string { return s.state.(avro.NamedSchema).FullName() }

// Text returns the state schema as given to ParseStateSchema.
func (s *StateSchema) Text() string { return s.text }

// WriterSchema returns the JSON text of the full writer schema of snapshots
// with this state: the envelope with the state schema in place of the
// placeholder.
func (s *StateSchema) WriterSchema() string { return s.writer }

// Fingerprint returns the CRC-64-AVRO fingerprint of the full writer
// schema's Parsing Canonical Form: the one in the header of encoded
// snapshots.
func (s *StateSchema) Fingerprint() uint64 { return s.fp }

// Fields returns the names of the state record's fields, in schema order.
func (s *StateSchema) Fields() []string { return fieldNames(s.state) }

// ItemFields returns, for each field of the state record that holds
// records (directly, or as the items of an array, the values of a map or a
// member of a union), the names of those records' fields in schema order.
func (s *StateSchema) ItemFields() map[string][]string {
	out := make(map[string][]string)
	for _, f := range s.state.(*avro.RecordSchema).Fields() {
		t := deref(f.Type())
		for range 3 {
			switch x := t.(type) {
			case *avro.ArraySchema:
				t = deref(x.Items())
			case *avro.MapSchema:
				t = deref(x.Values())
			case *avro.UnionSchema:
				for _, m := range x.Types() {
					if m.Type() != avro.Null {
						t = deref(m)
						break
					}
				}
			}
		}
		if names := fieldNames(t); names != nil {
			out[f.Name()] = names
		}
	}
	return out
}

func fieldNames(s avro.Schema) []string {
	r, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil
	}
	names := make([]string, len(r.Fields()))
	for i, f := range r.Fields() {
		names[i] = f.Name()
	}
	return names
}

// AvroCodec encodes snapshots as Avro records and decodes them back.
//
// # Schemas
//
// The envelope is schemas/snapshot.avsc, record snaplog.Snapshot. The type
// of its last field, "state", is the placeholder record snaplog.State.
// Register builds an aggregate type's full writer schema by replacing that
// placeholder, as a JSON value, with the aggregate type's state schema,
// unchanged (see ParseStateSchema). Any Avro implementation reads what
// AvroCodec writes with that schema; schemas/order_snapshot.avsc is the
// example Order's.
//
// # Schema evolution
//
// An aggregate type has one current state schema, which Encode writes and
// Snapshot.State holds. Snapshots written with an earlier state schema carry
// that schema's fingerprint; registered as older writer schemas, they are
// read by hamba/avro's schema resolution (the Avro specification's rules:
// fields added with a default, fields removed, promotions such as int to
// long, enum symbols, unions) and re-encoded in the current schema. A
// snapshot whose fingerprint the codec does not know fails to decode with
// ErrCorrupt, as does one whose values cannot be resolved, so that a
// repository replays the aggregate's events instead.
//
// # Encoding
//
// A snapshot is written in Avro single-object encoding: the marker bytes
// 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO fingerprint of the
// Parsing Canonical Form of the full writer schema (see [Fingerprint]), then
// the record in Avro binary encoding. Since the state is the envelope's last
// field, the record is the envelope's fields followed by Snapshot.State as
// is. CreatedAt is stored in microseconds: Decode returns it truncated to
// the microsecond, in UTC.
//
// # Untrusted input
//
// Decode never panics and reads only what its input holds: before
// hamba/avro allocates anything, it walks the record against the writer
// schema and refuses, with an error wrapping ErrCorrupt, varints longer
// than their type allows, lengths and block counts that exceed the bytes
// left, invalid union, enum or boolean values, nesting deeper than 1000
// levels, more than 65536 array or map items that take no bytes at all, and
// trailing bytes. hamba/avro on its own would preallocate a slice for as
// many items as a 5-byte block count claims.
//
// An AvroCodec is safe for concurrent use, Register included.
type AvroCodec struct {
	mu     sync.RWMutex
	byType map[string]*StateSchema
	byFP   map[uint64]*writer
}

// writer is what the codec knows of one writer schema.
type writer struct {
	schema *StateSchema
	// types are the aggregate types it is the current schema of, older
	// maps those it is an older schema of to the resolution to their
	// current one. Replaced, never changed; guarded by AvroCodec.mu.
	types []string
	older map[string]avro.Schema
}

// NewAvroCodec returns a codec with the envelope of package schemas and no
// aggregate type registered.
func NewAvroCodec() *AvroCodec {
	return &AvroCodec{byType: make(map[string]*StateSchema), byFP: make(map[uint64]*writer)}
}

// Register sets the current state schema of an aggregate type, such as
// schemas.OrderState(), and the older state schemas its snapshots may have
// been written with (see RegisterWriter).
//
// Registering the same schema again for a type does nothing; registering a
// different one is an error. Several aggregate types may share a state
// schema.
func (c *AvroCodec) Register(aggregateType, stateSchema string, olderStateSchemas ...string) error {
	if aggregateType == "" {
		return errors.New("snapshots: register: empty aggregate type")
	}
	s, err := ParseStateSchema(stateSchema)
	if err != nil {
		return fmt.Errorf("snapshots: register %s: %w", aggregateType, err)
	}
	if err := c.register(aggregateType, s); err != nil {
		return err
	}
	for _, older := range olderStateSchemas {
		if err := c.RegisterWriter(aggregateType, older); err != nil {
			return err
		}
	}
	return nil
}

func (c *AvroCodec) register(aggregateType string, s *StateSchema) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byType == nil {
		c.byType, c.byFP = make(map[string]*StateSchema), make(map[uint64]*writer)
	}
	if cur, ok := c.byType[aggregateType]; ok {
		if cur.fp == s.fp {
			return nil
		}
		return fmt.Errorf("snapshots: register %s: already registered with another state schema (writer schema fingerprint %#016x, this one %#016x)",
			aggregateType, cur.fp, s.fp)
	}
	w := c.byFP[s.fp]
	if w == nil {
		w = &writer{schema: s}
		c.byFP[s.fp] = w
	}
	w.types = append(slices.Clip(w.types), aggregateType)
	c.byType[aggregateType] = w.schema
	return nil
}

// RegisterWriter adds an older state schema of an aggregate type: one its
// snapshots may have been written with before its current one. Single-object
// encoding names only the writer schema, by fingerprint, so the codec must
// know every older one it is to read. RegisterWriter checks, by the Avro
// specification's resolution rules, that every record written with it can
// be read as the type's current state schema, and returns an error saying
// what cannot be read otherwise. Decode then reads such snapshots and
// returns their state in the current schema.
//
// The aggregate type must have been registered. Registering its current
// schema, or an older one again, does nothing. Encode always writes the
// current schema.
func (c *AvroCodec) RegisterWriter(aggregateType, olderStateSchema string) error {
	if aggregateType == "" {
		return errors.New("snapshots: register writer: empty aggregate type")
	}
	cur := c.Schema(aggregateType)
	if cur == nil {
		return fmt.Errorf("snapshots: register writer %s: aggregate type not registered: Register its current state schema first", aggregateType)
	}
	s, err := ParseStateSchema(olderStateSchema)
	if err != nil {
		return fmt.Errorf("snapshots: register writer %s: %w", aggregateType, err)
	}
	if s.fp == cur.fp {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.byFP[s.fp]
	if w == nil {
		w = &writer{schema: s}
	}
	if _, ok := w.older[aggregateType]; ok {
		return nil
	}
	// Decode reads with the schema registered first under this
	// fingerprint, so resolve from that one.
	res, err := avro.NewSchemaCompatibility().Resolve(cur.state, w.schema.state)
	if err != nil {
		return fmt.Errorf("snapshots: register writer %s: snapshots written with %#016x cannot be read as %#016x: %w",
			aggregateType, s.fp, cur.fp, err)
	}
	older := make(map[string]avro.Schema, len(w.older)+1)
	maps.Copy(older, w.older)
	older[aggregateType] = res
	w.older = older
	c.byFP[s.fp] = w
	return nil
}

// Schema returns the current state schema of an aggregate type, or nil for
// a type not registered.
func (c *AvroCodec) Schema(aggregateType string) *StateSchema {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byType[aggregateType]
}

// Fingerprint returns the CRC-64-AVRO fingerprint of the aggregate type's
// full writer schema: the one in the header of its encoded snapshots.
func (c *AvroCodec) Fingerprint(aggregateType string) (uint64, bool) {
	if s := c.Schema(aggregateType); s != nil {
		return s.fp, true
	}
	return 0, false
}

// StateFields returns the names of the fields of the aggregate type's state
// record, in schema order, or nil for a type not registered.
func (c *AvroCodec) StateFields(aggregateType string) []string {
	if s := c.Schema(aggregateType); s != nil {
		return s.Fields()
	}
	return nil
}

// WriterSchema returns the JSON text of the aggregate type's full writer
// schema: the envelope with the state schema in place of the placeholder.
func (c *AvroCodec) WriterSchema(aggregateType string) (string, bool) {
	if s := c.Schema(aggregateType); s != nil {
		return s.writer, true
	}
	return "", false
}

// registered lists the registered aggregate types with their fingerprints,
// for messages.
func (c *AvroCodec) registered() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.byType) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(c.byType))
	for t, s := range c.byType {
		parts = append(parts, fmt.Sprintf("%s (%#016x)", t, s.fp))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// Encode returns the snapshot in Avro single-object encoding. The snapshot
// must be valid (see Snapshot.Validate), its aggregate type registered and
// its State an encoding of the type's current state schema.
func (c *AvroCodec) Encode(s Snapshot) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	w := c.Schema(s.AggregateType)
	if w == nil {
		return nil, fmt.Errorf("snapshots: encode %s %s: aggregate type not registered (registered: %s)",
			s.AggregateType, s.AggregateID, c.registered())
	}
	if err := w.check(s.State); err != nil {
		return nil, fmt.Errorf("snapshots: encode %s %s: state is not an encoding of %s: %w", s.AggregateType, s.AggregateID, w.Name(), err)
	}
	buf := make([]byte, 0, headerLen+100+len(s.AggregateType)+len(s.State))
	buf = append(buf, w.header[:]...)
	buf = appendString(buf, s.AggregateID.String())
	buf = appendString(buf, s.AggregateType)
	buf = binary.AppendVarint(buf, s.Version)
	buf = binary.AppendVarint(buf, int64(s.SchemaVersion))
	buf = binary.AppendVarint(buf, s.CreatedAt.UnixMicro())
	buf = binary.AppendVarint(buf, int64(s.Position.Partition))
	buf = binary.AppendVarint(buf, s.Position.Offset)
	buf = appendString(buf, s.Save.String())
	return append(buf, s.State...), nil
}

// appendString appends an Avro string: its length as a zig-zag varint (an
// Avro long is one), then its bytes.
func appendString(b []byte, s string) []byte {
	return append(binary.AppendVarint(b, int64(len(s))), s...)
}

// Decode reads a snapshot written by Encode, with any registered schema:
// the current state schema of its aggregate type, or an older one, whose
// state it resolves to the current schema. Every failure wraps ErrCorrupt
// and says what is wrong and where.
func (c *AvroCodec) Decode(b []byte) (Snapshot, error) {
	s, w, state, err := c.decode(b)
	if err != nil {
		return Snapshot{}, err
	}
	if slices.Contains(w.types, s.AggregateType) {
		s.State = bytes.Clone(state)
		return s, nil
	}
	var v any
	if err := avroAPI.Unmarshal(w.older[s.AggregateType], state, &v); err != nil {
		return Snapshot{}, corrupt(s.AggregateType, s.AggregateID.String(), fmt.Errorf("resolve state written with %#016x: %w", w.schema.fp, err))
	}
	cur := c.Schema(s.AggregateType)
	if s.State, err = avroAPI.Marshal(cur.state, v); err != nil {
		return Snapshot{}, corrupt(s.AggregateType, s.AggregateID.String(), fmt.Errorf("resolve state written with %#016x: %w", w.schema.fp, err))
	}
	return s, nil
}

// Head is what a snapshot's encoding says before its state: whose snapshot
// it is, of which version, taken with which state schema version.
type Head struct {
	AggregateID   uuid.UUID
	AggregateType string
	Version       int64
	SchemaVersion int
}

// DecodeHead checks b as Decode does (single-object header, a registered
// writer schema, a record that walks that schema to its end, an aggregate
// type the schema is registered for) and returns the aggregate id, type,
// version and schema version, without decoding or resolving the state: a view of a
// snapshot topic keeps no more of each record.
func (c *AvroCodec) DecodeHead(b []byte) (Head, error) {
	s, _, _, err := c.decode(b)
	if err != nil {
		return Head{}, err
	}
	return Head{AggregateID: s.AggregateID, AggregateType: s.AggregateType, Version: s.Version, SchemaVersion: s.SchemaVersion}, nil
}

// decode reads the header and the envelope's fields and checks the state's
// bytes against the writer's state schema; it returns the snapshot without
// its state, and the state's bytes.
func (c *AvroCodec) decode(b []byte) (Snapshot, *writer, []byte, error) {
	if len(b) < headerLen {
		return Snapshot{}, nil, nil, fmt.Errorf("%w: decode: %d bytes, shorter than the %d-byte single-object header", ErrCorrupt, len(b), headerLen)
	}
	if b[0] != marker0 || b[1] != marker1 {
		return Snapshot{}, nil, nil, fmt.Errorf("%w: decode: marker %#02x %#02x, want 0xc3 0x01 (Avro single-object encoding)", ErrCorrupt, b[0], b[1])
	}
	fp := binary.LittleEndian.Uint64(b[2:headerLen])
	c.mu.RLock()
	w := c.byFP[fp]
	if w != nil {
		w = &writer{schema: w.schema, types: w.types, older: w.older}
	}
	c.mu.RUnlock()
	if w == nil {
		return Snapshot{}, nil, nil, fmt.Errorf("%w: decode: unknown writer schema fingerprint %#016x (registered: %s)", ErrCorrupt, fp, c.registered())
	}
	r := reader{buf: b[headerLen:]}
	var s Snapshot
	id, err := r.str("aggregate_id")
	if err == nil {
		s.AggregateType, err = r.str("aggregate_type")
	}
	if err != nil {
		return Snapshot{}, nil, nil, corrupt(s.AggregateType, id, err)
	}
	fail := func(err error) (Snapshot, *writer, []byte, error) {
		return Snapshot{}, nil, nil, corrupt(s.AggregateType, id, err)
	}
	if !slices.Contains(w.types, s.AggregateType) && w.older[s.AggregateType] == nil {
		of := slices.Concat(w.types, slices.Sorted(maps.Keys(w.older)))
		return fail(fmt.Errorf("written with the schema of %s", strings.Join(of, ", ")))
	}
	if s.AggregateID, err = uuid.Parse(id); err != nil {
		return fail(fmt.Errorf("aggregate_id: %w", err))
	}
	var schemaVersion, partition int32
	var micros int64
	var save string
	if s.Version, err = r.field("version"); err == nil {
		if schemaVersion, err = r.intField("schema_version"); err == nil {
			if micros, err = r.field("created_at"); err == nil {
				if partition, err = r.intField("position.partition"); err == nil {
					if s.Position.Offset, err = r.field("position.offset"); err == nil {
						save, err = r.str("position.save")
					}
				}
			}
		}
	}
	if err != nil {
		return fail(err)
	}
	if s.Save, err = uuid.Parse(save); err != nil {
		return fail(fmt.Errorf("position.save: %w", err))
	}
	s.SchemaVersion, s.Position.Partition = int(schemaVersion), partition
	s.CreatedAt = time.UnixMicro(micros).UTC()
	state := r.buf
	if err := w.schema.check(state); err != nil {
		return fail(err)
	}
	s.State = []byte{}
	if err := s.Validate(); err != nil {
		return fail(err)
	}
	s.State = nil
	return s, w, state, nil
}

// corrupt wraps err in ErrCorrupt, naming the snapshot as far as it was read.
func corrupt(typ, id string, err error) error {
	who := strings.TrimSpace(printable(typ) + " " + printable(id))
	if who == "" {
		return fmt.Errorf("%w: decode: %w", ErrCorrupt, err)
	}
	return fmt.Errorf("%w: decode %s: %w", ErrCorrupt, who, err)
}

func printable(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	for _, r := range s {
		if r == utf8.RuneError || r <= ' ' || r == 0x7f {
			return strconv.Quote(s)
		}
	}
	return s
}

// composeWriterSchema returns the full writer schema: the envelope with the
// placeholder type of its state field replaced by the state schema.
func composeWriterSchema(envelope, state string) (string, error) {
	stateJSON, err := decodeJSON(state)
	if err != nil {
		return "", fmt.Errorf("state schema: %w", err)
	}
	if m, ok := stateJSON.(map[string]any); !ok || m["type"] != "record" {
		return "", errors.New("state schema: must be a record")
	}
	envJSON, err := decodeJSON(envelope)
	if err != nil {
		return "", fmt.Errorf("envelope schema: %w", err)
	}
	env, _ := envJSON.(map[string]any)
	fields, _ := env["fields"].([]any)
	var last map[string]any
	if len(fields) > 0 {
		last, _ = fields[len(fields)-1].(map[string]any)
	}
	placeholder, _ := last["type"].(map[string]any)
	if last["name"] != schemas.StateField || env["namespace"] != "snaplog" || placeholder["name"] != "State" {
		return "", fmt.Errorf("envelope schema: its last field must be %q of type %s", schemas.StateField, schemas.StatePlaceholder)
	}
	last["type"] = stateJSON
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(envJSON); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
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

// checkEnvelope checks the envelope fields Encode writes and decode reads,
// in their order.
func checkEnvelope(root *avro.RecordSchema) error {
	want := []struct {
		name string
		typ  avro.Type
	}{
		{"aggregate_id", avro.String}, {"aggregate_type", avro.String}, {"version", avro.Long},
		{"schema_version", avro.Int}, {"created_at", avro.Long}, {"position", avro.Record}, {schemas.StateField, avro.Record},
	}
	pos := []struct {
		name string
		typ  avro.Type
	}{{"partition", avro.Int}, {"offset", avro.Long}, {"save", avro.String}}
	fields := root.Fields()
	if len(fields) != len(want) {
		return fmt.Errorf("envelope schema: want a record of %d fields", len(want))
	}
	for i, w := range want {
		if fields[i].Name() != w.name || fields[i].Type().Type() != w.typ {
			return fmt.Errorf("envelope schema: field %d must be %s, a %s", i, w.name, w.typ)
		}
	}
	pf := fields[5].Type().(*avro.RecordSchema).Fields()
	if len(pf) != len(pos) {
		return errors.New("envelope schema: position must be a record of an int partition, a long offset and a save")
	}
	for i, w := range pos {
		if pf[i].Name() != w.name || pf[i].Type().Type() != w.typ {
			return errors.New("envelope schema: position must be a record of an int partition, a long offset and a save")
		}
	}
	return nil
}
