package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// ErrUnknownEvent is reported (through errors.Is) when an event type name or
// Go type is not registered.
var ErrUnknownEvent = errors.New("aggregate: unknown event type")

// ErrDuplicateEvent is reported (through errors.Is) when a name or a Go type
// is registered twice.
var ErrDuplicateEvent = errors.New("aggregate: event type already registered")

// UnknownEventError names an event type that a Registry does not know and
// lists the names it does know.
type UnknownEventError struct {
	Name  string   // the unknown name, or the Go type for an unregistered value
	Known []string // the registered names, sorted
}

func (e *UnknownEventError) Error() string {
	return fmt.Sprintf("aggregate: unknown event type %q (known: %s)", e.Name, strings.Join(e.Known, ", "))
}

// Is reports true for ErrUnknownEvent.
func (e *UnknownEventError) Is(target error) bool { return target == ErrUnknownEvent }

// PayloadCodec turns event values into payload bytes and back.
type PayloadCodec interface {
	// ContentType is the media type of the payloads, stored with each event.
	ContentType() string
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer to a registered event type.
	Unmarshal(data []byte, v any) error
}

// JSON is the default PayloadCodec: encoding/json, content type
// "application/json".
var JSON PayloadCodec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string                { return "application/json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Registry maps event type names to Go types. Names are what the log
// stores; Go types are what apply functions switch on. Registration is
// explicit: nothing registers itself.
//
// A Registry is safe for concurrent use.
type Registry struct {
	codec PayloadCodec

	mu     sync.RWMutex
	byName map[string]reflect.Type
	byType map[reflect.Type]string
}

// NewRegistry returns an empty registry whose payloads use codec, or JSON
// when codec is nil.
func NewRegistry(codec PayloadCodec) *Registry {
	if codec == nil {
		codec = JSON
	}
	return &Registry{codec: codec, byName: make(map[string]reflect.Type), byType: make(map[reflect.Type]string)}
}

// Register registers event type E under name. E is a value type (usually a
// struct); events are decoded as values of E.
func Register[E any](r *Registry, name string) error {
	var zero E
	return r.Register(name, zero)
}

// Register registers the Go type of prototype under name. It is an error to
// register an empty name, a nil or pointer prototype, a name that is taken
// or a Go type that already has a name.
func (r *Registry) Register(name string, prototype any) error {
	if name == "" {
		return errors.New("aggregate: register event: empty name")
	}
	if prototype == nil {
		return fmt.Errorf("aggregate: register event %q: nil prototype", name)
	}
	t := reflect.TypeOf(prototype)
	if t.Kind() == reflect.Pointer {
		return fmt.Errorf("aggregate: register event %q: prototype is a pointer (%s); register the value type %s", name, t, t.Elem())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if have, ok := r.byName[name]; ok {
		return fmt.Errorf("%w: name %q is taken by %s", ErrDuplicateEvent, name, have)
	}
	if have, ok := r.byType[t]; ok {
		return fmt.Errorf("%w: %s is registered as %q", ErrDuplicateEvent, t, have)
	}
	r.byName[name] = t
	r.byType[t] = name
	return nil
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// NameOf returns the name under which event's type (or, for a pointer, the
// type it points to) is registered.
func (r *Registry) NameOf(event any) (string, error) {
	if event == nil {
		return "", fmt.Errorf("%w: nil event", ErrUnknownEvent)
	}
	t := reflect.TypeOf(event)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	r.mu.RLock()
	name, ok := r.byType[t]
	r.mu.RUnlock()
	if !ok {
		return "", &UnknownEventError{Name: t.String(), Known: r.Names()}
	}
	return name, nil
}

// ContentType is the media type of the payloads Encode writes.
func (r *Registry) ContentType() string { return r.codec.ContentType() }

// Encode returns event's registered name and its payload.
func (r *Registry) Encode(event any) (name string, payload []byte, err error) {
	name, err = r.NameOf(event)
	if err != nil {
		return "", nil, err
	}
	payload, err = r.codec.Marshal(event)
	if err != nil {
		return "", nil, fmt.Errorf("aggregate: encode %s: %w", name, err)
	}
	return name, payload, nil
}

// Decode returns the event value that payload encodes for the type
// registered under name. contentType must be the codec's, or empty.
func (r *Registry) Decode(name, contentType string, payload []byte) (any, error) {
	r.mu.RLock()
	t, ok := r.byName[name]
	r.mu.RUnlock()
	if !ok {
		return nil, &UnknownEventError{Name: name, Known: r.Names()}
	}
	if contentType != "" && contentType != r.codec.ContentType() {
		return nil, fmt.Errorf("aggregate: decode %s: content type %q, registry decodes %q", name, contentType, r.codec.ContentType())
	}
	v := reflect.New(t)
	if err := r.codec.Unmarshal(payload, v.Interface()); err != nil {
		return nil, fmt.Errorf("aggregate: decode %s: %w", name, err)
	}
	return v.Elem().Interface(), nil
}
