package aggregate

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/snapshots"
)

// Policy decides when a snapshot of an aggregate is due. A repository asks
// its policy after each save and after each load (WithSnapshotPolicy); the
// snapshotter asks its own after each save it applies
// (snapshotter.WithPolicy). The same values serve both.
//
// Every, When, MinInterval and AfterCostlyLoad make policies; AnyOf and
// AllOf combine them. A Policy of one's own implements Due; if it also has
// a method Validate() error, repositories and snapshotters call it at
// construction and refuse the policy when it fails.
type Policy interface {
	// Due reports whether a snapshot of the aggregate at c.Version is due.
	// It must be quick, deterministic and safe for concurrent use.
	Due(c PolicyContext) bool
}

// PolicyContext is what a Policy decides on: one save, or one load, of one
// aggregate.
type PolicyContext struct {
	AggregateType string
	AggregateID   uuid.UUID
	// Before is the aggregate's version before the save, Version after it
	// (after a load, both are the version loaded).
	Before, Version int64
	// Events are the events of the save, in version order (nil after a
	// load), and State the aggregate's state after them: a value of the
	// aggregate type's state type S.
	Events []Envelope
	State  any
	// Snapshot is the version of the aggregate's latest snapshot the writer
	// knows of (0 when none), SnapshotAt when it was taken (the zero time
	// when not known).
	Snapshot   int64
	SnapshotAt time.Time
	// Now is the writer's clock.
	Now time.Time
	// Load is set after a load: LoadEvents events were applied on top of
	// the snapshot (all of them without one), in LoadTook.
	Load       bool
	LoadEvents int64
	LoadTook   time.Duration
}

// Every is the count threshold, and the default policy: a snapshot is due
// when a save carries the version across a multiple of n (version/n
// increases) past the latest snapshot's (snapshots.Crossed). Saves of several
// events that step over a multiple count, so aggregates whose versions never
// land on one are snapshotted too (eventsource-py adopted this rule in
// 0.9.1; 0.5.0 snapshotted only at a version that is a multiple of n). n
// must be positive.
func Every(n int64) Policy {
	p := every{n: n}
	if n <= 0 {
		p.err = fmt.Errorf("Every: n must be positive, got %d", n)
	}
	return p
}

type every struct {
	n   int64
	err error
}

func (p every) Due(c PolicyContext) bool {
	return !c.Load && snapshots.Crossed(c.Before, c.Version, p.n) && snapshots.Crossed(c.Snapshot, c.Version, p.n)
}
func (p every) Validate() error { return p.err }
func (p every) String() string  { return fmt.Sprintf("every %d events", p.n) }

// When is a predicate over each event of a save and the state after the
// save: a snapshot is due when f returns true for one of the events (Akka
// Persistence's snapshotWhen). S is the aggregate's state type; a policy
// for another state type is never due, and is refused at construction by
// a repository of S.
func When[S any](f func(e Envelope, state S) bool) Policy {
	p := when[S]{f: f}
	if f == nil {
		p.err = errors.New("When: nil predicate")
	}
	return p
}

type when[S any] struct {
	f   func(Envelope, S) bool
	err error
}

func (p when[S]) Due(c PolicyContext) bool {
	s, ok := c.State.(S)
	if !ok || c.Load {
		return false
	}
	for _, e := range c.Events {
		if p.f(e, s) {
			return true
		}
	}
	return false
}
func (p when[S]) Validate() error { return p.err }
func (p when[S]) String() string  { return fmt.Sprintf("when a predicate on %T holds", *new(S)) }
func (p when[S]) stateType() any  { return *new(S) }

// MinInterval is a time: a snapshot is due at a save when the latest
// snapshot of the aggregate is at least d old, or not known. With AllOf it
// spaces out the snapshots of another policy: AllOf(Every(10),
// MinInterval(time.Minute)). d must be positive.
func MinInterval(d time.Duration) Policy {
	p := minInterval{d: d}
	if d <= 0 {
		p.err = fmt.Errorf("MinInterval: must be positive, got %s", d)
	}
	return p
}

type minInterval struct {
	d   time.Duration
	err error
}

func (p minInterval) Due(c PolicyContext) bool {
	return !c.Load && c.Version > c.Snapshot && (c.SnapshotAt.IsZero() || c.Now.Sub(c.SnapshotAt) >= p.d)
}
func (p minInterval) Validate() error { return p.err }
func (p minInterval) String() string  { return fmt.Sprintf("at least %s apart", p.d) }

// AfterCostlyLoad is load cost (Axon's snapshot trigger by load time): a
// snapshot is due after a load that applied more than events events on top
// of its snapshot, or took longer than took. A zero bound is not checked;
// at least one must be positive. Only repositories load, so only they can
// use it: the snapshotter refuses a policy that contains it.
func AfterCostlyLoad(events int64, took time.Duration) Policy {
	p := costlyLoad{events: events, took: took}
	if events < 0 || took < 0 || (events == 0 && took == 0) {
		p.err = fmt.Errorf("AfterCostlyLoad: want a positive event count or duration, got %d and %s", events, took)
	}
	return p
}

type costlyLoad struct {
	events int64
	took   time.Duration
	err    error
}

func (p costlyLoad) Due(c PolicyContext) bool {
	return c.Load && c.Version > c.Snapshot && ((p.events > 0 && c.LoadEvents > p.events) || (p.took > 0 && c.LoadTook > p.took))
}
func (p costlyLoad) Validate() error { return p.err }
func (p costlyLoad) loads() bool     { return true }
func (p costlyLoad) String() string {
	var parts []string
	if p.events > 0 {
		parts = append(parts, fmt.Sprintf("more than %d events", p.events))
	}
	if p.took > 0 {
		parts = append(parts, fmt.Sprintf("longer than %s", p.took))
	}
	return "after a load of " + strings.Join(parts, " or ")
}

// AnyOf is due when one of ps is.
func AnyOf(ps ...Policy) Policy { return combined{ps: ps, all: false} }

// AllOf is due when every one of ps is.
func AllOf(ps ...Policy) Policy { return combined{ps: ps, all: true} }

type combined struct {
	ps  []Policy
	all bool
}

func (p combined) Due(c PolicyContext) bool {
	for _, q := range p.ps {
		if q.Due(c) != p.all {
			return !p.all
		}
	}
	return p.all
}

func (p combined) name() string {
	if p.all {
		return "AllOf"
	}
	return "AnyOf"
}

func (p combined) Validate() error {
	if len(p.ps) == 0 {
		return fmt.Errorf("%s: no policies", p.name())
	}
	var errs []error
	for i, q := range p.ps {
		if err := validatePolicy(q); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", p.name(), i, err))
		}
	}
	return errors.Join(errs...)
}

func (p combined) loads() bool {
	for _, q := range p.ps {
		if PolicyLoads(q) {
			return true
		}
	}
	return false
}

func (p combined) String() string {
	parts := make([]string, len(p.ps))
	for i, q := range p.ps {
		parts[i] = fmt.Sprint(q)
	}
	sep := " or "
	if p.all {
		sep = " and "
	}
	return "(" + strings.Join(parts, sep) + ")"
}

// validatePolicy checks a policy as a repository or the snapshotter does at
// construction: not nil, and its Validate, if it has one, passes.
func validatePolicy(p Policy) error {
	if p == nil {
		return errors.New("nil policy")
	}
	if v, ok := p.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// ValidatePolicy reports every problem of a policy (a nil one, bad
// arguments to Every, When, MinInterval or AfterCostlyLoad, an empty AnyOf
// or AllOf, and a failing Validate method of one's own policy), or nil.
func ValidatePolicy(p Policy) error { return validatePolicy(p) }

// PolicyLoads reports whether a policy can be due after a load
// (AfterCostlyLoad, alone or combined), which only repositories evaluate.
func PolicyLoads(p Policy) bool {
	l, ok := p.(interface{ loads() bool })
	return ok && l.loads()
}

// policyStateTypes returns a value of the state type of each When in p.
func policyStateTypes(p Policy) []any {
	switch q := p.(type) {
	case interface{ stateType() any }:
		return []any{q.stateType()}
	case combined:
		var out []any
		for _, r := range q.ps {
			out = append(out, policyStateTypes(r)...)
		}
		return out
	}
	return nil
}

// checkPolicyFor checks that the When policies in p are for state type S.
func checkPolicyFor[S any](p Policy) error {
	for _, v := range policyStateTypes(p) {
		if _, ok := v.(S); !ok {
			return fmt.Errorf("a When policy for state %T, the aggregate's state is %T", v, *new(S))
		}
	}
	return nil
}
