package snapshots_test

// Tests over the SASL_SSL listener of `bash scripts/kafka.sh secure start`
// (see internal/securetest): TLS verified against the script's CA, SCRAM
// and PLAIN users made by the script.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/snaplog/snaplog/internal/securetest"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshots/snapshotstest"
)

// newSecureEnv is newEnv on the secure broker: fresh topic prefixes and the
// Account events topic, created over SCRAM-SHA-512; the topics are deleted
// when t ends.
func newSecureEnv(t testing.TB, b securetest.Broker, partitions int32) kafkaEnv {
	t.Helper()
	run := uuid.NewString()[:8]
	env := kafkaEnv{events: "test.secure." + run + ".events.", snaps: "test.secure." + run + ".snapshots.", partitions: partitions}
	adm := kadm.NewClient(b.Client(t, securetest.ScramSHA512))
	events := env.events + "Account"
	if _, err := adm.CreateTopic(ctxT(t), partitions, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("-1"), "retention.bytes": kadm.StringPtr("-1"),
	}, events); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, events, env.snaps+"Account"); err != nil {
			t.Logf("delete topics: %v", err)
		}
	})
	// A topic just created may not be in every metadata answer yet.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		td, err := adm.ListTopics(ctxT(t), events)
		if err == nil && td[events].Err == nil && len(td[events].Partitions) == int(partitions) {
			led := true
			for _, p := range td[events].Partitions {
				led = led && p.Leader >= 0
			}
			if led {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not visible with leaders 30s after its creation: %v", events, err)
		}
	}
	return env
}

// secureStore is env.store on the secure broker, authenticating with
// mechanism as user/password.
func (env kafkaEnv) secureStore(t testing.TB, b securetest.Broker, mechanism, user, password string) *snapshots.Kafka {
	t.Helper()
	s, err := snapshots.NewKafka(accountCodec(t),
		snapshots.KafkaClient(b.OptsAs(t, mechanism, user, password)...),
		snapshots.WithTopicPrefix(env.snaps),
		snapshots.WithEventsTopicPrefix(env.events),
		snapshots.WithReplicationFactor(1),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSecureKafkaPutGet: over SASL_SSL with SCRAM-SHA-256 and with PLAIN, a
// store creates its snapshot topic, puts a snapshot and gets it back, and a
// second store restores it from the topic.
func TestSecureKafkaPutGet(t *testing.T) {
	b := securetest.Get(t)
	for _, m := range []string{securetest.ScramSHA256, securetest.Plain} {
		t.Run(m, func(t *testing.T) {
			env := newSecureEnv(t, b, 3)
			s := env.secureStore(t, b, m, b.User, b.Password)
			h := snapshotstest.Harness{Type: "Account", Partitions: env.partitions, State: countState, Count: stateCount}
			id := uuid.New()
			for _, v := range []int64{3, 8} {
				if err := s.Put(ctxT(t), h.Snapshot(id, v)); err != nil {
					t.Fatalf("Put version %d: %v", v, err)
				}
			}
			got, err := s.Get(ctxT(t), "Account", id)
			if err != nil || got.Version != 8 || stateCount(got.State) != 8 {
				t.Fatalf("Get: %+v %v", got, err)
			}
			restored, err := env.secureStore(t, b, m, b.User, b.Password).Get(ctxT(t), "Account", id)
			if err != nil || restored.Version != 8 || stateCount(restored.State) != 8 {
				t.Fatalf("Get from a fresh store: %+v %v", restored, err)
			}
		})
	}
}

// TestSecureKafkaConformance: the snapshot store conformance suite over
// SASL_SSL with SCRAM-SHA-256.
func TestSecureKafkaConformance(t *testing.T) {
	b := securetest.Get(t)
	env := newSecureEnv(t, b, 3)
	s := env.secureStore(t, b, securetest.ScramSHA256, b.User, b.Password)
	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Harness {
		return snapshotstest.Harness{Store: s, Type: "Account", Partitions: env.partitions, State: countState, Count: stateCount}
	})
}

// TestSecureKafkaWrongPassword: a store with a wrong password fails
// EnsureTopic within 10 s with an authentication error that names the
// brokers and the mechanism.
func TestSecureKafkaWrongPassword(t *testing.T) {
	b := securetest.Get(t)
	for _, m := range []string{securetest.ScramSHA256, securetest.Plain} {
		t.Run(m, func(t *testing.T) {
			env := kafkaEnv{events: "test.secure.nope.events.", snaps: "test.secure.nope.snapshots.", partitions: 1}
			s := env.secureStore(t, b, m, b.User, b.Password+"-wrong")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err := s.EnsureTopic(ctx, "Account")
			took := time.Since(start)
			t.Logf("EnsureTopic after %v: %v", took.Round(time.Millisecond), err)
			if err == nil {
				t.Fatal("EnsureTopic with a wrong password: no error")
			}
			if took > 10*time.Second {
				t.Errorf("EnsureTopic with a wrong %s password took %v", m, took)
			}
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Errorf("error is not SASL_AUTHENTICATION_FAILED: %v", err)
			}
			if want := "brokers " + strings.Join(b.Brokers, ",") + " (SASL " + m + ", TLS)"; !strings.Contains(err.Error(), want) {
				t.Errorf("error does not say %q: %v", want, err)
			}
		})
	}
}
