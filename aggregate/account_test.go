package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// The test domain: an account whose state does not grow with its events.

type Opened struct {
	Owner string `json:"owner"`
}

type Deposited struct {
	Amount int64 `json:"amount"`
}

type Withdrawn struct {
	Amount int64 `json:"amount"`
}

type Account struct {
	Owner   string `avro:"owner"`
	Balance int64  `avro:"balance"`
	Ops     int64  `avro:"ops"`
}

func accountRegistry(t testing.TB) *aggregate.Registry {
	r := aggregate.NewRegistry(nil)
	for _, err := range []error{
		aggregate.Register[Opened](r, "Opened"),
		aggregate.Register[Deposited](r, "Deposited"),
		aggregate.Register[Withdrawn](r, "Withdrawn"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func applyAccount(s Account, e aggregate.Envelope) (Account, error) {
	switch ev := e.Event.(type) {
	case Opened:
		s.Owner = ev.Owner
	case Deposited:
		s.Balance += ev.Amount
	case Withdrawn:
		if ev.Amount > s.Balance {
			return s, fmt.Errorf("withdraw %d from balance %d", ev.Amount, s.Balance)
		}
		s.Balance -= ev.Amount
	default:
		return s, fmt.Errorf("unexpected event %T", e.Event)
	}
	s.Ops++
	return s, nil
}

const accountSchema = `{"type":"record","name":"Account","namespace":"snaplog.test","fields":[
	{"name":"owner","type":"string"},{"name":"balance","type":"long"},{"name":"ops","type":"long"}]}`

func accountType(t testing.TB, schemaVersion int) aggregate.Type[Account] {
	return aggregate.Type[Account]{
		Name:          "Account",
		SchemaVersion: schemaVersion,
		Events:        accountRegistry(t),
		Apply:         applyAccount,
		StateSchema:   accountSchema,
	}
}

var accountStateSchema = func() *snapshots.StateSchema {
	s, err := snapshots.ParseStateSchema(accountSchema)
	if err != nil {
		panic(err)
	}
	return s
}()

// accountState is a's snapshot state.
func accountState(t testing.TB, a Account) []byte {
	t.Helper()
	b, err := accountStateSchema.Encode(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stateIn decodes a snapshot's state.
func stateIn(t testing.TB, s snapshots.Snapshot) Account {
	t.Helper()
	var a Account
	if err := accountStateSchema.Decode(s.State, &a); err != nil {
		t.Fatalf("state of %s: %v", s, err)
	}
	return a
}

func newRepo(t testing.TB, l aggregate.EventLog, opts ...aggregate.Option) *aggregate.Repository[Account] {
	t.Helper()
	r, err := aggregate.NewRepository(l, accountType(t, 1), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newLog(t testing.TB) *log.Memory {
	l, err := log.NewMemory(log.WithMemoryPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// grow applies n deposits (opening the account first if it is new).
func grow(t testing.TB, a *aggregate.Root[Account], n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		var ev any = Deposited{Amount: a.Version() + 1}
		if a.Version() == 0 {
			ev = Opened{Owner: "ada"}
		}
		if err := a.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
}

// recordingStore wraps a store, records the versions Put, and can be made
// to fail or block.
type recordingStore struct {
	snapshots.Store

	mu      sync.Mutex
	puts    []int64
	putErr  error
	getErr  error
	getSnap *snapshots.Snapshot // returned by Get instead of the store's, when set
	gate    chan struct{}       // when non-nil, Put waits for a receive
	entered atomic.Int32        // Puts started
}

func newRecordingStore() *recordingStore { return &recordingStore{Store: snapshots.NewMemory()} }

func (s *recordingStore) Put(ctx context.Context, snap snapshots.Snapshot) error {
	s.entered.Add(1)
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.puts = append(s.puts, snap.Version)
	err := s.putErr
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Store.Put(ctx, snap)
}

func (s *recordingStore) Get(ctx context.Context, typ string, id uuid.UUID) (snapshots.Snapshot, error) {
	s.mu.Lock()
	err, snap := s.getErr, s.getSnap
	s.mu.Unlock()
	if err != nil {
		return snapshots.Snapshot{}, err
	}
	if snap != nil {
		return *snap, nil
	}
	return s.Store.Get(ctx, typ, id)
}

func (s *recordingStore) versions() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.puts...)
}

func bg() context.Context { return context.Background() }

func ctxT(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

var errBoom = errors.New("boom")
