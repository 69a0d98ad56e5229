package snapshots

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/linkedin/goavro/v2"
	"github.com/snaplog/snaplog/schemas"
)

// AvroCodec encodes snapshots as Avro records and decodes them back. The
// state of a snapshot is written as a nested Avro record, with the schema
// registered for its aggregate type.
//
// # Schemas
//
// The envelope is schemas/snapshot.avsc, record snaplog.Snapshot. The type
// of its field "state" is the placeholder record snaplog.State. Register
// builds an aggregate type's full writer schema by replacing that
// placeholder, as a JSON value, with the aggregate type's state schema,
// unchanged; names in the state schema resolve as if it had been written
// there, so a state schema should give its own namespace. Any Avro
// implementation can rebuild the writer schema from the .avsc files the same
// way (see package schemas) and read what AvroCodec writes.
//
// # Schema evolution
//
// An aggregate type has one current state schema, given to Register, which
// Encode writes. Snapshots written with an earlier state schema carry that
// schema's fingerprint; RegisterWriter makes the codec read them, resolving
// each record to the current schema by the Avro specification's rules
// (fields added with a default, fields removed, promotions such as int to
// long, enum symbols, unions; see RegisterWriter). A snapshot whose
// fingerprint the codec does not know fails to decode with ErrCorrupt, as
// does one whose values cannot be resolved, so that a repository replays
// the aggregate's events instead.
//
// # Encoding
//
// A snapshot is written in Avro single-object encoding: the marker bytes
// 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO fingerprint of the Parsing
// Canonical Form of the full writer schema (see [Fingerprint]), then the
// record in Avro binary encoding. Decode finds the writer schema by that
// fingerprint. CreatedAt is stored in microseconds: Decode returns it
// truncated to the microsecond, in UTC.
//
// # State values
//
// Encode takes Snapshot.State in the plain form Marshal makes and converts
// each value to what the schema asks for: Go integers of any size to int or
// long when they fit, integral floats too; numbers to float and double when
// exact (float64 to float rounds); uuid.UUID or a 36-character string to a
// string with logicalType uuid; time.Time to timestamp-micros,
// timestamp-millis and date; time.Duration or an integer to time-millis and
// time-micros. A union takes nil as null, or the value in the first member
// it fits best. A record field missing from the map gets its default; a
// field without default, or a key the record does not have, is an error.
//
// Decode gives the plain form back: int as int32, long as int64, float as
// float32, double as float64, bytes and fixed as []byte, string and enum as
// string, timestamps and date as time.Time in UTC, time-millis as int32
// milliseconds, time-micros as int64 microseconds, records and maps as
// map[string]any, arrays as []any, a union as its value (nil for null).
// Logical types decimal and goavro's validated-string have no plain form:
// Register refuses schemas that use them.
//
// # Untrusted input
//
// Decode never panics and reads only what its input holds: before the
// record reaches goavro, Decode walks it against the writer schema and
// refuses, with an error wrapping ErrCorrupt, varints longer than their
// type allows, lengths and block counts that exceed the bytes left, invalid
// union, enum or boolean values, nesting deeper than 1000 levels, more than
// 65536 array or map items that take no bytes at all, and trailing bytes.
// goavro on its own would preallocate a slice for up to 2^31 items from a
// 5-byte block count (its MaxBlockCount); AvroCodec leaves goavro's
// package variables alone, since they are shared by everything in the
// process that uses goavro.
//
// An AvroCodec is safe for concurrent use, Register and RegisterWriter
// included.
type AvroCodec struct {
	mu     sync.RWMutex
	byType map[string]*writer
	byFP   map[uint64]*writer
}

// writer is a compiled full writer schema. Everything but types is
// immutable once registered.
type writer struct {
	text        string
	fingerprint uint64
	header      [headerLen]byte
	codec       *goavro.Codec
	root        *schema
	state       *schema
	types       []string     // aggregate types registered with it; guarded by AvroCodec.mu
	sizeHint    atomic.Int64 // largest encoding so far

	// older maps the aggregate types that registered this schema as an
	// older writer schema (RegisterWriter) to the resolution to their
	// current one. Guarded by AvroCodec.mu; replaced, never changed.
	older map[string]*resolver
}

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
)

// NewAvroCodec returns a codec with the envelope of package schemas and no
// aggregate type registered.
func NewAvroCodec() *AvroCodec {
	return &AvroCodec{byType: make(map[string]*writer), byFP: make(map[uint64]*writer)}
}

// Register sets the state schema of an aggregate type: the JSON text of an
// Avro record schema, such as schemas.OrderState(). It composes and compiles
// the full writer schema and checks the defaults it declares.
//
// Registering the same schema again for a type does nothing; registering a
// different one is an error. Several aggregate types may share a state
// schema.
func (c *AvroCodec) Register(aggregateType, stateSchema string) error {
	if aggregateType == "" {
		return errors.New("snapshots: register: empty aggregate type")
	}
	w, err := compileWriter(schemas.Snapshot(), stateSchema)
	if err != nil {
		return fmt.Errorf("snapshots: register %s: %w", aggregateType, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byType == nil {
		c.byType, c.byFP = make(map[string]*writer), make(map[uint64]*writer)
	}
	if cur, ok := c.byType[aggregateType]; ok {
		if cur.fingerprint == w.fingerprint {
			return nil
		}
		return fmt.Errorf("snapshots: register %s: already registered with another state schema (writer schema fingerprint %#016x, this one %#016x)",
			aggregateType, cur.fingerprint, w.fingerprint)
	}
	if same, ok := c.byFP[w.fingerprint]; ok {
		w = same
	} else {
		c.byFP[w.fingerprint] = w
	}
	w.types = append(slices.Clip(w.types), aggregateType)
	c.byType[aggregateType] = w
	return nil
}

// RegisterWriter adds an older state schema of an aggregate type: one its
// snapshots may have been written with before the schema given to Register.
// Single-object encoding names only the writer schema, by fingerprint, so
// the codec must know every older one it is to read. RegisterWriter
// composes the full writer schema as Register does and checks, by the Avro
// specification's schema resolution rules, that every record written with
// it can be read as the type's current state schema; if not, it returns an
// error that names the first field that cannot be read, and why. Decode
// then reads such snapshots and returns their state in the current schema:
// fields added since with their defaults, fields removed since dropped,
// ints promoted to longs, and so on.
//
// The aggregate type must have been registered. Registering its current
// schema, or an older one again, does nothing. Encode always writes the
// current schema.
func (c *AvroCodec) RegisterWriter(aggregateType, olderStateSchema string) error {
	if aggregateType == "" {
		return errors.New("snapshots: register writer: empty aggregate type")
	}
	cur := c.writer(aggregateType)
	if cur == nil {
		return fmt.Errorf("snapshots: register writer %s: aggregate type not registered: Register its current state schema first", aggregateType)
	}
	w, err := compileWriter(schemas.Snapshot(), olderStateSchema)
	if err != nil {
		return fmt.Errorf("snapshots: register writer %s: %w", aggregateType, err)
	}
	if w.fingerprint == cur.fingerprint {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if same, ok := c.byFP[w.fingerprint]; ok {
		// Decode reads with the schema registered first under this
		// fingerprint, so resolve from that one.
		w = same
	}
	if _, ok := w.older[aggregateType]; ok {
		return nil
	}
	res, err := newResolver(w.root, cur.root)
	if err != nil {
		where, cause := splitPath(err, "")
		if where != "" {
			where += ": "
		}
		return fmt.Errorf("snapshots: register writer %s: snapshots written with %#016x cannot be read as %#016x: %s%w",
			aggregateType, w.fingerprint, cur.fingerprint, where, cause)
	}
	older := make(map[string]*resolver, len(w.older)+1)
	maps.Copy(older, w.older)
	older[aggregateType] = res
	w.older = older
	c.byFP[w.fingerprint] = w
	return nil
}

// Fingerprint returns the CRC-64-AVRO fingerprint of the aggregate type's
// full writer schema: the one in the header of its encoded snapshots.
func (c *AvroCodec) Fingerprint(aggregateType string) (uint64, bool) {
	w := c.writer(aggregateType)
	if w == nil {
		return 0, false
	}
	return w.fingerprint, true
}

// StateFields returns the names of the fields of the aggregate type's state
// record, in schema order, or nil for a type not registered.
func (c *AvroCodec) StateFields(aggregateType string) []string {
	w := c.writer(aggregateType)
	if w == nil {
		return nil
	}
	names := make([]string, len(w.state.fields))
	for i, f := range w.state.fields {
		names[i] = f.name
	}
	return names
}

// WriterSchema returns the JSON text of the aggregate type's full writer
// schema: the envelope with the state schema in place of the placeholder.
func (c *AvroCodec) WriterSchema(aggregateType string) (string, bool) {
	w := c.writer(aggregateType)
	if w == nil {
		return "", false
	}
	return w.text, true
}

func (c *AvroCodec) writer(aggregateType string) *writer {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byType[aggregateType]
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
	for t, w := range c.byType {
		parts = append(parts, fmt.Sprintf("%s (%#016x)", t, w.fingerprint))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// Encode returns the snapshot in Avro single-object encoding. The snapshot
// must be valid (see Snapshot.Validate) and its aggregate type registered.
func (c *AvroCodec) Encode(s Snapshot) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	w := c.writer(s.AggregateType)
	if w == nil {
		return nil, fmt.Errorf("snapshots: encode %s %s: aggregate type not registered (registered: %s)",
			s.AggregateType, s.AggregateID, c.registered())
	}
	rec := map[string]any{
		"aggregate_id":   s.AggregateID.String(),
		"aggregate_type": s.AggregateType,
		"version":        s.Version,
		"schema_version": s.SchemaVersion,
		"created_at":     s.CreatedAt,
		"position":       map[string]any{"partition": s.Position.Partition, "offset": s.Position.Offset, "save": s.Save.String()},
		"state":          s.State,
	}
	native, err := w.root.toNative(rec)
	if err != nil {
		// Errors come from a field of the envelope, so where is not empty.
		where, cause := splitPath(err, "")
		return nil, fmt.Errorf("snapshots: encode %s %s: %s: %w", s.AggregateType, s.AggregateID, where, cause)
	}
	buf := make([]byte, headerLen, max(w.sizeHint.Load(), 256))
	copy(buf, w.header[:])
	buf, err = binaryFromNative(w.codec, buf, native)
	if err != nil {
		return nil, fmt.Errorf("snapshots: encode %s %s: %w", s.AggregateType, s.AggregateID, err)
	}
	if n := int64(len(buf)); n > w.sizeHint.Load() {
		w.sizeHint.Store(n)
	}
	return buf, nil
}

// Decode reads a snapshot written by Encode, with any registered schema:
// the current state schema of its aggregate type, or an older one given to
// RegisterWriter, whose records it resolves to the current schema. Every
// failure wraps ErrCorrupt and says what is wrong and where.
func (c *AvroCodec) Decode(b []byte) (Snapshot, error) {
	h, w, types, older, err := c.head(b)
	if err != nil {
		return Snapshot{}, err
	}
	body, typ, id := b[headerLen:], h.AggregateType, h.id
	native, rest, err := nativeFromBinary(w.codec, body)
	if err != nil {
		return Snapshot{}, corrupt(typ, id, err)
	}
	if len(rest) > 0 {
		return Snapshot{}, corrupt(typ, id, fmt.Errorf("%d trailing bytes after the record", len(rest)))
	}
	var plain any
	if slices.Contains(types, typ) {
		plain, err = w.root.fromNative(native)
	} else if res := older[typ]; res != nil {
		plain, err = res.resolve(native)
	} else {
		of := slices.Concat(types, slices.Sorted(maps.Keys(older)))
		return Snapshot{}, corrupt(typ, id, fmt.Errorf("written with the schema of %s", strings.Join(of, ", ")))
	}
	if err != nil {
		return Snapshot{}, corrupt(typ, id, err)
	}
	s, err := snapshotFrom(plain)
	if err != nil {
		return Snapshot{}, corrupt(typ, id, err)
	}
	if err := s.Validate(); err != nil {
		return Snapshot{}, corrupt(typ, id, err)
	}
	return s, nil
}

// Head is what a snapshot's encoding says before its state: whose snapshot
// it is and of which version.
type Head struct {
	AggregateID   uuid.UUID
	AggregateType string
	Version       int64

	id string // AggregateID as written
}

// DecodeHead checks b as Decode does (single-object header, a registered
// writer schema, a record that walks that schema to its end, an aggregate
// type the schema is registered for) and returns the aggregate id, type
// and version, without decoding the state: a view of a snapshot topic keeps
// no more of each record, and decoding every state on a restore cost about
// three quarters of its time.
func (c *AvroCodec) DecodeHead(b []byte) (Head, error) {
	h, _, types, older, err := c.head(b)
	if err != nil {
		return Head{}, err
	}
	if !slices.Contains(types, h.AggregateType) && older[h.AggregateType] == nil {
		of := slices.Concat(types, slices.Sorted(maps.Keys(older)))
		return Head{}, corrupt(h.AggregateType, h.id, fmt.Errorf("written with the schema of %s", strings.Join(of, ", ")))
	}
	if h.AggregateID, err = uuid.Parse(h.id); err != nil {
		return Head{}, corrupt(h.AggregateType, h.id, fmt.Errorf("aggregate_id: %w", err))
	}
	if h.Version <= 0 {
		return Head{}, corrupt(h.AggregateType, h.id, fmt.Errorf("version %d is not positive", h.Version))
	}
	return h, nil
}

// head checks the single-object header and walks the record, before
// goavro allocates anything for it.
func (c *AvroCodec) head(b []byte) (Head, *writer, []string, map[string]*resolver, error) {
	if len(b) < headerLen {
		return Head{}, nil, nil, nil, fmt.Errorf("%w: decode: %d bytes, shorter than the %d-byte single-object header", ErrCorrupt, len(b), headerLen)
	}
	if b[0] != marker0 || b[1] != marker1 {
		return Head{}, nil, nil, nil, fmt.Errorf("%w: decode: marker %#02x %#02x, want 0xc3 0x01 (Avro single-object encoding)", ErrCorrupt, b[0], b[1])
	}
	fp := binary.LittleEndian.Uint64(b[2:headerLen])
	c.mu.RLock()
	w := c.byFP[fp]
	var types []string
	var older map[string]*resolver
	if w != nil {
		types, older = w.types, w.older
	}
	c.mu.RUnlock()
	if w == nil {
		return Head{}, nil, nil, nil, fmt.Errorf("%w: decode: unknown writer schema fingerprint %#016x (registered: %s)", ErrCorrupt, fp, c.registered())
	}
	r := reader{buf: b[headerLen:], zero: maxZeroSizeItems}
	var h Head
	for _, f := range w.root.fields {
		start := r.buf
		if err := r.walk(f.typ, 1); err != nil {
			return Head{}, nil, nil, nil, corrupt(h.AggregateType, h.id, atField(err, f.name))
		}
		switch f.name {
		case "aggregate_id":
			h.id = stringAt(start)
		case "aggregate_type":
			h.AggregateType = stringAt(start)
		case "version":
			v := reader{buf: start}
			h.Version, _ = v.long()
		}
	}
	if len(r.buf) > 0 {
		return Head{}, nil, nil, nil, corrupt(h.AggregateType, h.id, fmt.Errorf("%d trailing bytes after the record", len(r.buf)))
	}
	return h, w, types, older, nil
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

// stringAt reads the string a walked string field starts with.
func stringAt(b []byte) string {
	r := reader{buf: b}
	n, err := r.long()
	if err != nil || n < 0 || n > int64(len(r.buf)) {
		return ""
	}
	return string(r.buf[:n])
}

func snapshotFrom(plain any) (Snapshot, error) {
	rec, ok := plain.(map[string]any)
	if !ok {
		return Snapshot{}, fmt.Errorf("record is %T", plain)
	}
	var s Snapshot
	var err error
	idText, ok1 := rec["aggregate_id"].(string)
	if s.AggregateID, err = uuid.Parse(idText); err != nil {
		return Snapshot{}, fmt.Errorf("aggregate_id: %w", err)
	}
	var ok2, ok3, ok4, ok5, ok6, ok7, ok8, ok9 bool
	var schemaVersion int32
	var pos map[string]any
	s.AggregateType, ok2 = rec["aggregate_type"].(string)
	s.Version, ok3 = rec["version"].(int64)
	schemaVersion, ok4 = rec["schema_version"].(int32)
	s.SchemaVersion = int(schemaVersion)
	s.CreatedAt, ok5 = rec["created_at"].(time.Time)
	s.State, ok6 = rec["state"].(map[string]any)
	if pos, ok7 = rec["position"].(map[string]any); ok7 {
		s.Position.Partition, ok7 = pos["partition"].(int32)
		s.Position.Offset, ok8 = pos["offset"].(int64)
		var saveText string
		if saveText, ok9 = pos["save"].(string); ok9 {
			if s.Save, err = uuid.Parse(saveText); err != nil {
				return Snapshot{}, fmt.Errorf("position.save: %w", err)
			}
		}
	}
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8 && ok9) {
		return Snapshot{}, errors.New("envelope fields of unexpected types")
	}
	return s, nil
}

func binaryFromNative(c *goavro.Codec, buf []byte, native any) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("goavro: panic: %v", p)
		}
	}()
	out, err = c.BinaryFromNative(buf, native)
	if err != nil {
		return nil, fmt.Errorf("goavro: %w", err)
	}
	return out, nil
}

func nativeFromBinary(c *goavro.Codec, b []byte) (native any, rest []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("goavro: panic: %v", p)
		}
	}()
	native, rest, err = c.NativeFromBinary(b)
	if err != nil {
		return nil, nil, fmt.Errorf("goavro: %w", err)
	}
	return native, rest, nil
}

// composeWriterSchema returns the full writer schema: the envelope with the
// placeholder type of its state field replaced by the state schema.
func composeWriterSchema(envelope, state string) (string, error) {
	stateJSON, err := decodeJSON(state)
	if err != nil {
		return "", fmt.Errorf("state schema: %w", err)
	}
	envJSON, err := decodeJSON(envelope)
	if err != nil {
		return "", fmt.Errorf("envelope schema: %w", err)
	}
	env, err := parseSchemaValue(envJSON)
	if err != nil {
		return "", fmt.Errorf("envelope schema: %w", err)
	}
	i, ok := env.fieldIndex[schemas.StateField]
	if env.kind != kindRecord || !ok || env.fields[i].typ.name != schemas.StatePlaceholder {
		return "", fmt.Errorf("envelope schema: no field %q of type %s", schemas.StateField, schemas.StatePlaceholder)
	}
	// The envelope parsed, so these assertions hold.
	envJSON.(map[string]any)["fields"].([]any)[i].(map[string]any)["type"] = stateJSON
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(envJSON); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

func compileWriter(envelope, state string) (*writer, error) {
	text, err := composeWriterSchema(envelope, state)
	if err != nil {
		return nil, err
	}
	root, err := parseSchema(text)
	if err != nil {
		return nil, fmt.Errorf("writer schema: %w", err)
	}
	if err := checkEnvelope(root); err != nil {
		return nil, err
	}
	w, err := compileSchema(text, root)
	if err != nil {
		return nil, fmt.Errorf("writer schema: %w", err)
	}
	w.state = root.fields[root.fieldIndex[schemas.StateField]].typ
	return w, nil
}

// compileSchema prepares a parsed schema and compiles it with goavro.
func compileSchema(text string, root *schema) (*writer, error) {
	if err := prepare(root); err != nil {
		return nil, err
	}
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return nil, fmt.Errorf("goavro: %w", err)
	}
	w := &writer{
		text:        text,
		fingerprint: rabin64([]byte(root.canonical())),
		codec:       codec,
		root:        root,
	}
	w.header[0], w.header[1] = marker0, marker1
	binary.LittleEndian.PutUint64(w.header[2:], w.fingerprint)
	return w, nil
}

// checkEnvelope checks the envelope fields the codec fills and reads.
func checkEnvelope(root *schema) error {
	want := []struct {
		name    string
		kind    kind
		logical logical
	}{
		{"aggregate_id", kindString, logicalUUID},
		{"aggregate_type", kindString, logicalNone},
		{"version", kindLong, logicalNone},
		{"schema_version", kindInt, logicalNone},
		{"created_at", kindLong, logicalTimestampMicros},
		{"position", kindRecord, logicalNone},
		{schemas.StateField, kindRecord, logicalNone},
	}
	if root.kind != kindRecord || len(root.fields) != len(want) {
		return fmt.Errorf("envelope schema: want a record of %d fields", len(want))
	}
	for _, w := range want {
		i, ok := root.fieldIndex[w.name]
		if !ok || root.fields[i].typ.kind != w.kind || root.fields[i].typ.logical != w.logical {
			if w.name == schemas.StateField {
				return errors.New("state schema: must be a record")
			}
			return fmt.Errorf("envelope schema: field %s must be a %s", w.name, w.kind)
		}
	}
	pos := root.fields[root.fieldIndex["position"]].typ
	pi, ok1 := pos.fieldIndex["partition"]
	oi, ok2 := pos.fieldIndex["offset"]
	si, ok3 := pos.fieldIndex["save"]
	if !ok1 || !ok2 || !ok3 || len(pos.fields) != 3 || pos.fields[pi].typ.kind != kindInt || pos.fields[oi].typ.kind != kindLong ||
		pos.fields[si].typ.kind != kindString || pos.fields[si].typ.logical != logicalUUID {
		return errors.New("envelope schema: position must be a record of an int partition, a long offset and a uuid save")
	}
	return nil
}

// prepare readies a parsed schema for encoding and decoding: union member
// names as goavro knows them, smallest encoded sizes, and defaults in plain
// form. It refuses logical types without a plain form.
func prepare(root *schema) error {
	var visit func(s *schema) error
	visit = func(s *schema) error {
		if s.prepared {
			return nil
		}
		s.prepared = true
		s.unionKey = s.kind.String()
		switch {
		case s.logical == logicalUnsupported:
			return fmt.Errorf("logical type %s of %s is not supported", s.logicalName, s.typeName())
		case s.name != "":
			s.unionKey = s.name
		case s.logical != logicalNone && s.logical != logicalUUID:
			// goavro gives these their own member names; it treats uuid
			// as a plain string.
			s.unionKey = s.kind.String() + "." + s.logicalName
		}
		switch s.kind {
		case kindRecord:
			for _, f := range s.fields {
				if err := visit(f.typ); err != nil {
					return fmt.Errorf("%s.%s: %w", s.name, f.name, err)
				}
			}
			for _, f := range s.fields {
				if !f.hasDefault {
					continue
				}
				def, err := f.typ.defaultPlain(f.defaultJSON)
				if err == nil {
					_, err = f.typ.toNative(def)
				}
				if err != nil {
					where, cause := splitPath(err, "")
					if where != "" {
						where = " " + where
					}
					return fmt.Errorf("%s.%s: invalid default%s: %w", s.name, f.name, where, cause)
				}
				f.def = def
			}
		case kindArray:
			return visit(s.items)
		case kindMap:
			return visit(s.values)
		case kindUnion:
			s.branchKey = make(map[string]*schema, len(s.branches))
			for _, b := range s.branches {
				if err := visit(b); err != nil {
					return err
				}
				s.branchKey[b.unionKey] = b
			}
		}
		return nil
	}
	if err := visit(root); err != nil {
		return err
	}
	computeMinSize(root, make(map[*schema]bool))
	return nil
}

// computeMinSize sets the fewest bytes a value of each type takes. A
// record met again while its size is being computed counts as 0, which
// only loosens the bounds Decode checks.
func computeMinSize(s *schema, busy map[*schema]bool) int {
	if s.kind == kindRecord && busy[s] {
		return s.minSize // 0 while being computed
	}
	switch s.kind {
	case kindNull:
		s.minSize = 0
	case kindFloat:
		s.minSize = 4
	case kindDouble:
		s.minSize = 8
	case kindFixed:
		s.minSize = s.size
	case kindArray:
		computeMinSize(s.items, busy)
		s.minSize = 1
	case kindMap:
		computeMinSize(s.values, busy)
		s.minSize = 1
	case kindUnion:
		least := math.MaxInt
		for _, b := range s.branches {
			least = min(least, computeMinSize(b, busy))
		}
		if least == math.MaxInt {
			least = 0
		}
		s.minSize = 1 + least
	case kindRecord:
		busy[s] = true
		n := 0
		for _, f := range s.fields {
			n += computeMinSize(f.typ, busy)
		}
		s.minSize = n
	default: // boolean, int, long, bytes, string, enum
		s.minSize = 1
	}
	return s.minSize
}

// reader walks Avro binary data against a schema without building values.
type reader struct {
	buf  []byte
	zero int // items of no size still allowed
}

var errTruncated = errors.New("truncated")

func (r *reader) varint(maxBytes int, lastMax byte) (uint64, error) {
	var x uint64
	for i, b := range r.buf {
		if i == maxBytes-1 && b > lastMax {
			return 0, errors.New("varint overflows its type")
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			r.buf = r.buf[i+1:]
			return x, nil
		}
	}
	return 0, errTruncated
}

func (r *reader) long() (int64, error) {
	x, err := r.varint(10, 1)
	return int64(x>>1) ^ -int64(x&1), err
}

func (r *reader) int() (int32, error) {
	x, err := r.varint(5, 0x0f)
	return int32(x>>1) ^ -int32(x&1), err
}

func (r *reader) skip(n int64) error {
	if n < 0 {
		return fmt.Errorf("negative length %d", n)
	}
	if n > int64(len(r.buf)) {
		return fmt.Errorf("%w: length %d, %d bytes left", errTruncated, n, len(r.buf))
	}
	r.buf = r.buf[n:]
	return nil
}

// maxMicrosDuration is the largest time-micros value time.Duration holds.
const maxMicrosDuration = math.MaxInt64 / int64(time.Microsecond)

func (r *reader) walk(s *schema, depth int) error {
	switch s.kind {
	case kindNull:
		return nil
	case kindBoolean:
		if len(r.buf) == 0 {
			return errTruncated
		}
		if r.buf[0] > 1 {
			return fmt.Errorf("boolean byte %#02x", r.buf[0])
		}
		r.buf = r.buf[1:]
		return nil
	case kindInt:
		_, err := r.int()
		return err
	case kindLong:
		v, err := r.long()
		if err == nil && s.logical == logicalTimeMicros && (v > maxMicrosDuration || v < -maxMicrosDuration) {
			return fmt.Errorf("time-micros %d out of range", v)
		}
		return err
	case kindFloat:
		return r.skip(4)
	case kindDouble:
		return r.skip(8)
	case kindBytes, kindString:
		n, err := r.long()
		if err != nil {
			return err
		}
		return r.skip(n)
	case kindFixed:
		return r.skip(int64(s.size))
	case kindEnum:
		i, err := r.int()
		if err != nil {
			return err
		}
		if i < 0 || int(i) >= len(s.symbols) {
			return fmt.Errorf("enum index %d, %s has %d symbols", i, s.name, len(s.symbols))
		}
		return nil
	}
	if s.kind == kindUnion {
		i, err := r.long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(s.branches)) {
			return fmt.Errorf("union index %d, %s has %d members", i, s.typeName(), len(s.branches))
		}
		return r.walk(s.branches[i], depth)
	}
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	switch s.kind {
	case kindRecord:
		for _, f := range s.fields {
			if err := r.walk(f.typ, depth+1); err != nil {
				return atField(err, f.name)
			}
		}
		return nil
	case kindArray:
		return r.blocks(s.items, false, depth)
	case kindMap:
		return r.blocks(s.values, true, depth)
	}
	return fmt.Errorf("unknown type %s", s.kind)
}

// blocks walks the blocks of an array or a map.
func (r *reader) blocks(item *schema, isMap bool, depth int) error {
	itemMin := item.minSize
	if isMap {
		itemMin++ // the key's length
	}
	n := 0
	for {
		count, err := r.long()
		if err != nil {
			return err
		}
		if count == 0 {
			return nil
		}
		size := int64(-1)
		if count < 0 {
			if count == math.MinInt64 {
				return fmt.Errorf("block count %d", count)
			}
			count = -count
			if size, err = r.long(); err != nil {
				return err
			}
			if size < 0 || size > int64(len(r.buf)) {
				return fmt.Errorf("block size %d, %d bytes left", size, len(r.buf))
			}
		}
		if itemMin > 0 {
			if count > int64(len(r.buf)/itemMin) {
				return fmt.Errorf("block of %d items does not fit in the %d bytes left", count, len(r.buf))
			}
		} else {
			if count > int64(r.zero) {
				return fmt.Errorf("more than %d items that take no bytes", maxZeroSizeItems)
			}
			r.zero -= int(count)
		}
		start := len(r.buf)
		for range count {
			if isMap {
				klen, err := r.long()
				if err != nil {
					return atIndex(err, n)
				}
				key := r.buf
				if err := r.skip(klen); err != nil {
					return atIndex(err, n)
				}
				if err := r.walk(item, depth+1); err != nil {
					return atKey(err, string(key[:klen]))
				}
			} else if err := r.walk(item, depth+1); err != nil {
				return atIndex(err, n)
			}
			n++
		}
		if size >= 0 && int64(start-len(r.buf)) != size {
			return fmt.Errorf("block size %d, its items take %d bytes", size, start-len(r.buf))
		}
	}
}

// fromNative converts what goavro decoded to the plain record form, in
// place where goavro allocated the value. Byte slices are copied: goavro's
// alias the input.
func (s *schema) fromNative(v any) (any, error) {
	switch s.kind {
	case kindBytes, kindFixed:
		b, ok := v.([]byte)
		if !ok {
			return nil, fmt.Errorf("decoded %T for %s", v, s.typeName())
		}
		return append([]byte{}, b...), nil
	case kindString:
		if s.logical == logicalUUID {
			if str, ok := v.(string); !ok || !isUUID(str) {
				return nil, fmt.Errorf("%s is not a uuid", describe(v))
			}
		}
		return v, nil
	case kindInt:
		switch s.logical {
		case logicalTimeMillis:
			d, ok := v.(time.Duration)
			if !ok {
				return nil, fmt.Errorf("decoded %T for %s", v, s.typeName())
			}
			return int32(d / time.Millisecond), nil
		case logicalDate:
			t, ok := v.(time.Time)
			if !ok {
				return nil, fmt.Errorf("decoded %T for %s", v, s.typeName())
			}
			return t.UTC(), nil
		}
		return v, nil
	case kindLong:
		switch s.logical {
		case logicalTimeMicros:
			d, ok := v.(time.Duration)
			if !ok {
				return nil, fmt.Errorf("decoded %T for %s", v, s.typeName())
			}
			return int64(d / time.Microsecond), nil
		case logicalTimestampMillis, logicalTimestampMicros:
			t, ok := v.(time.Time)
			if !ok {
				return nil, fmt.Errorf("decoded %T for %s", v, s.typeName())
			}
			return t.UTC(), nil
		}
		return v, nil
	case kindArray:
		a, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("decoded %T for %s", v, s.typeName())
		}
		for i, e := range a {
			x, err := s.items.fromNative(e)
			if err != nil {
				return nil, atIndex(err, i)
			}
			a[i] = x
		}
		return a, nil
	case kindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("decoded %T for %s", v, s.typeName())
		}
		for k, e := range m {
			x, err := s.values.fromNative(e)
			if err != nil {
				return nil, atKey(err, k)
			}
			m[k] = x
		}
		return m, nil
	case kindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("decoded %T for %s", v, s.typeName())
		}
		for _, f := range s.fields {
			e, ok := m[f.name]
			if !ok {
				return nil, atField(errors.New("missing"), f.name)
			}
			x, err := f.typ.fromNative(e)
			if err != nil {
				return nil, atField(err, f.name)
			}
			m[f.name] = x
		}
		return m, nil
	case kindUnion:
		if v == nil {
			return nil, nil
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("decoded %T for %s", v, s.typeName())
		}
		for k, e := range m {
			b, ok := s.branchKey[k]
			if !ok {
				return nil, fmt.Errorf("decoded member %q for %s", k, s.typeName())
			}
			return b.fromNative(e)
		}
	}
	return v, nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// toNative converts a plain value to the native form goavro encodes for
// this schema. It builds new maps and slices and leaves v unchanged.
func (s *schema) toNative(v any) (any, error) {
	switch s.kind {
	case kindNull:
		if v != nil {
			return nil, s.mismatch(v)
		}
		return nil, nil
	case kindBoolean:
		if _, ok := v.(bool); !ok {
			return nil, s.mismatch(v)
		}
		return v, nil
	case kindInt:
		switch s.logical {
		case logicalDate:
			if t, ok := v.(time.Time); ok {
				days := t.Unix() / 86400
				if t.Unix()%86400 < 0 {
					days--
				}
				if days < math.MinInt32 || days > math.MaxInt32 {
					return nil, fmt.Errorf("%s out of the range of date", t)
				}
				return int32(days), nil
			}
		case logicalTimeMillis:
			if d, ok := v.(time.Duration); ok {
				v = int64(d / time.Millisecond)
			}
		}
		if _, ok := v.(int32); ok {
			return v, nil
		}
		i, err := toInt64(v)
		if err != nil {
			return nil, s.convError(v, err)
		}
		if i < math.MinInt32 || i > math.MaxInt32 {
			return nil, fmt.Errorf("%s overflows int", describe(v))
		}
		return int32(i), nil
	case kindLong:
		switch s.logical {
		case logicalTimestampMicros, logicalTimestampMillis:
			if t, ok := v.(time.Time); ok {
				perSec := int64(1e6)
				if s.logical == logicalTimestampMillis {
					perSec = 1e3
				}
				return unixIn(t, perSec)
			}
		case logicalTimeMicros:
			if d, ok := v.(time.Duration); ok {
				v = int64(d / time.Microsecond)
			}
		}
		if _, ok := v.(int64); ok {
			return v, nil
		}
		i, err := toInt64(v)
		if err != nil {
			return nil, s.convError(v, err)
		}
		return i, nil
	case kindFloat:
		if _, ok := v.(float32); ok {
			return v, nil
		}
		f, err := toFloat64(v)
		if err != nil {
			return nil, s.convError(v, err)
		}
		if math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s overflows float", describe(v))
		}
		return float32(f), nil
	case kindDouble:
		if _, ok := v.(float64); ok {
			return v, nil
		}
		f, err := toFloat64(v)
		if err != nil {
			return nil, s.convError(v, err)
		}
		return f, nil
	case kindBytes:
		if _, ok := v.([]byte); !ok {
			return nil, s.mismatch(v)
		}
		return v, nil
	case kindFixed:
		b, ok := v.([]byte)
		if !ok {
			return nil, s.mismatch(v)
		}
		if len(b) != s.size {
			return nil, fmt.Errorf("%d bytes for %s of size %d", len(b), s.name, s.size)
		}
		return v, nil
	case kindString:
		switch x := v.(type) {
		case string:
			if s.logical == logicalUUID && !isUUID(x) {
				return nil, fmt.Errorf("%s is not a uuid", describe(v))
			}
			return v, nil
		case uuid.UUID:
			return x.String(), nil
		}
		return nil, s.mismatch(v)
	case kindEnum:
		x, ok := v.(string)
		if !ok {
			return nil, s.mismatch(v)
		}
		if !s.symbolSet[x] {
			return nil, fmt.Errorf("%q is not a symbol of enum %s", x, s.name)
		}
		return v, nil
	case kindArray:
		return s.arrayToNative(v)
	case kindMap:
		return s.mapToNative(v)
	case kindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, s.mismatch(v)
		}
		out := make(map[string]any, len(s.fields))
		found := 0
		for _, f := range s.fields {
			x, ok := m[f.name]
			if ok {
				found++
			} else if f.hasDefault {
				x = f.def
			} else {
				return nil, atField(fmt.Errorf("missing, and %s gives no default", s.name), f.name)
			}
			nx, err := f.typ.toNative(x)
			if err != nil {
				return nil, atField(err, f.name)
			}
			out[f.name] = nx
		}
		if found < len(m) {
			var extra []string
			for k := range m {
				if _, ok := s.fieldIndex[k]; !ok {
					extra = append(extra, strconv.Quote(k))
				}
			}
			slices.Sort(extra)
			return nil, fmt.Errorf("%s has no field %s", s.name, strings.Join(extra, ", "))
		}
		return out, nil
	case kindUnion:
		b := s.pick(v)
		if b == nil {
			return nil, fmt.Errorf("%s fits no member of union %s", describe(v), s.typeName())
		}
		if b.kind == kindNull {
			return nil, nil
		}
		x, err := b.toNative(v)
		if err != nil {
			return nil, err
		}
		return map[string]any{b.unionKey: x}, nil
	}
	return nil, fmt.Errorf("unknown type %s", s.kind)
}

func (s *schema) arrayToNative(v any) (any, error) {
	if a, ok := v.([]any); ok {
		out := make([]any, len(a))
		for i, e := range a {
			x, err := s.items.toNative(e)
			if err != nil {
				return nil, atIndex(err, i)
			}
			out[i] = x
		}
		return out, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array || isBytes(v) {
		return nil, s.mismatch(v)
	}
	out := make([]any, rv.Len())
	for i := range out {
		x, err := s.items.toNative(rv.Index(i).Interface())
		if err != nil {
			return nil, atIndex(err, i)
		}
		out[i] = x
	}
	return out, nil
}

func (s *schema) mapToNative(v any) (any, error) {
	if m, ok := v.(map[string]any); ok {
		out := make(map[string]any, len(m))
		for k, e := range m {
			x, err := s.values.toNative(e)
			if err != nil {
				return nil, atKey(err, k)
			}
			out[k] = x
		}
		return out, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, s.mismatch(v)
	}
	out := make(map[string]any, rv.Len())
	it := rv.MapRange()
	for it.Next() {
		k := it.Key().String()
		x, err := s.values.toNative(it.Value().Interface())
		if err != nil {
			return nil, atKey(err, k)
		}
		out[k] = x
	}
	return out, nil
}

func isBytes(v any) bool { _, ok := v.([]byte); return ok }

func (s *schema) mismatch(v any) error {
	return fmt.Errorf("%s where %s is wanted", describe(v), s.typeName())
}

func (s *schema) convError(v any, err error) error {
	return fmt.Errorf("%s where %s is wanted: %w", describe(v), s.typeName(), err)
}

// pick chooses the union member for a plain value: null for nil, else the
// first member the value fits in its natural form, else the first it
// converts to.
func (s *schema) pick(v any) *schema {
	var best *schema
	bestScore := 0
	for _, b := range s.branches {
		if v == nil {
			if b.kind == kindNull {
				return b
			}
			continue
		}
		if sc := b.fit(v); sc > bestScore {
			best, bestScore = b, sc
			if sc == 2 {
				break
			}
		}
	}
	return best
}

// fit reports how a non-nil plain value fits a (non-union) type: 2 in its
// natural form, 1 after a conversion, 0 not at all.
func (s *schema) fit(v any) int {
	switch s.kind {
	case kindBoolean:
		if _, ok := v.(bool); ok {
			return 2
		}
	case kindInt:
		switch x := v.(type) {
		case time.Time:
			if s.logical == logicalDate {
				return 2
			}
		case time.Duration:
			if s.logical == logicalTimeMillis {
				return 2
			}
		case int32, int16, int8, uint16, uint8:
			return 2
		case int, int64, uint32, uint, uint64:
			if i, err := toInt64(x); err == nil && i >= math.MinInt32 && i <= math.MaxInt32 {
				return 1
			}
		}
	case kindLong:
		switch v.(type) {
		case time.Time:
			if s.logical == logicalTimestampMicros || s.logical == logicalTimestampMillis {
				return 2
			}
		case time.Duration:
			if s.logical == logicalTimeMicros {
				return 2
			}
		case int64, int:
			return 2
		case int32, int16, int8, uint32, uint16, uint8:
			return 1
		case uint, uint64:
			if _, err := toInt64(v); err == nil {
				return 1
			}
		}
	case kindFloat, kindDouble:
		switch v.(type) {
		case float32:
			if s.kind == kindFloat {
				return 2
			}
			return 1
		case float64:
			if s.kind == kindDouble {
				return 2
			}
			return 1
		}
		if _, err := toFloat64(v); err == nil {
			return 1
		}
	case kindBytes:
		if isBytes(v) {
			return 2
		}
	case kindFixed:
		if b, ok := v.([]byte); ok && len(b) == s.size {
			return 2
		}
	case kindString:
		switch x := v.(type) {
		case string:
			if s.logical != logicalUUID || isUUID(x) {
				return 2
			}
		case uuid.UUID:
			return 2
		}
	case kindEnum:
		if x, ok := v.(string); ok && s.symbolSet[x] {
			return 2
		}
	case kindArray:
		if _, ok := v.([]any); ok {
			return 2
		}
		if k := reflect.ValueOf(v).Kind(); (k == reflect.Slice || k == reflect.Array) && !isBytes(v) {
			return 1
		}
	case kindMap:
		if k := reflect.ValueOf(v).Kind(); k == reflect.Map {
			return 1
		}
	case kindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		found := 0
		for _, f := range s.fields {
			if _, ok := m[f.name]; ok {
				found++
			} else if !f.hasDefault {
				return 0
			}
		}
		if found == len(m) {
			return 2
		}
	}
	return 0
}

// unixIn returns t as a count of 1/perSec seconds since the Unix epoch,
// rounded down, or an error if that overflows int64.
func unixIn(t time.Time, perSec int64) (int64, error) {
	sec, sub := t.Unix(), int64(t.Nanosecond())/(int64(time.Second)/perSec)
	if limit := math.MaxInt64/perSec - 1; sec > -limit && sec < limit {
		return sec*perSec + sub, nil
	}
	n := new(big.Int).Mul(big.NewInt(sec), big.NewInt(perSec))
	n.Add(n, big.NewInt(sub))
	if !n.IsInt64() {
		return 0, fmt.Errorf("time %s out of the range of a timestamp", t)
	}
	return n.Int64(), nil
}

// defaultPlain converts a field default, as JSON, to the plain form.
// Defaults of unions are of the first member.
func (s *schema) defaultPlain(j any) (any, error) {
	bad := func() error { return fmt.Errorf("%s is not a %s", jsonKind(j), s.typeName()) }
	switch s.kind {
	case kindNull:
		if j != nil {
			return nil, bad()
		}
		return nil, nil
	case kindBoolean:
		if _, ok := j.(bool); !ok {
			return nil, bad()
		}
		return j, nil
	case kindInt, kindLong:
		n, ok := j.(json.Number)
		if !ok {
			return nil, bad()
		}
		i, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("%s is not an integer", n)
		}
		if s.kind == kindInt {
			if i < math.MinInt32 || i > math.MaxInt32 {
				return nil, fmt.Errorf("%s overflows int", n)
			}
			return int32(i), nil
		}
		return i, nil
	case kindFloat, kindDouble:
		n, ok := j.(json.Number)
		if !ok {
			return nil, bad()
		}
		f, err := n.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if s.kind == kindFloat {
			return float32(f), nil
		}
		return f, nil
	case kindBytes, kindFixed:
		str, ok := j.(string)
		if !ok {
			return nil, bad()
		}
		b := make([]byte, 0, len(str))
		for _, r := range str {
			if r > 0xff {
				return nil, fmt.Errorf("bytes default has character %U above U+00FF", r)
			}
			b = append(b, byte(r))
		}
		return b, nil
	case kindString, kindEnum:
		if _, ok := j.(string); !ok {
			return nil, bad()
		}
		return j, nil
	case kindArray:
		a, ok := j.([]any)
		if !ok {
			return nil, bad()
		}
		out := make([]any, len(a))
		for i, e := range a {
			x, err := s.items.defaultPlain(e)
			if err != nil {
				return nil, atIndex(err, i)
			}
			out[i] = x
		}
		return out, nil
	case kindMap:
		m, ok := j.(map[string]any)
		if !ok {
			return nil, bad()
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			x, err := s.values.defaultPlain(e)
			if err != nil {
				return nil, atKey(err, k)
			}
			out[k] = x
		}
		return out, nil
	case kindRecord:
		m, ok := j.(map[string]any)
		if !ok {
			return nil, bad()
		}
		out := make(map[string]any, len(s.fields))
		for _, f := range s.fields {
			e, ok := m[f.name]
			if !ok {
				if !f.hasDefault {
					return nil, atField(errors.New("missing"), f.name)
				}
				e = f.defaultJSON
			}
			x, err := f.typ.defaultPlain(e)
			if err != nil {
				return nil, atField(err, f.name)
			}
			out[f.name] = x
		}
		return out, nil
	case kindUnion:
		if len(s.branches) == 0 {
			return nil, errors.New("empty union has no default")
		}
		return s.branches[0].defaultPlain(j)
	}
	return nil, bad()
}
