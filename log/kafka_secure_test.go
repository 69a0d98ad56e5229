package log_test

// Tests over the SASL_SSL listener of `bash scripts/kafka.sh secure start`
// (see internal/securetest): TLS verified against the script's CA, SCRAM
// and PLAIN users made by the script.

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/securetest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

// wrongPasswordBound is how soon a wrong password must be reported.
const wrongPasswordBound = 10 * time.Second

// newSecureKafka returns a log on the secure broker that authenticates
// with mechanism as user/password; the topics it made are deleted when t
// ends.
func newSecureKafka(t testing.TB, b securetest.Broker, mechanism, user, password string, opts ...log.KafkaOption) *log.Kafka {
	t.Helper()
	prefix := "test.secure." + uuid.NewString()[:8] + "."
	base := []log.KafkaOption{
		log.KafkaClient(b.OptsAs(t, mechanism, user, password)...),
		log.WithTopicPrefix(prefix),
		log.WithTopicPartitions(3),
		log.WithReplicationFactor(1),
	}
	k, err := log.NewKafka(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	if password == b.Password {
		deleteSecureTopicsOnCleanup(t, b, prefix)
	}
	return k
}

// deleteSecureTopicsOnCleanup deletes, when t ends, the secure broker's
// topics whose names start with prefix.
func deleteSecureTopicsOnCleanup(t testing.TB, b securetest.Broker, prefix string) {
	t.Helper()
	adm := kadm.NewClient(b.Client(t, securetest.ScramSHA512))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		td, err := adm.ListTopics(ctx)
		if err != nil {
			t.Logf("list topics to delete those of %s*: %v", prefix, err)
			return
		}
		var names []string
		for _, n := range td.Names() {
			if strings.HasPrefix(n, prefix) {
				names = append(names, n)
			}
		}
		if len(names) > 0 {
			if _, err := adm.DeleteTopics(ctx, names...); err != nil {
				t.Logf("delete topics %v: %v", names, err)
			}
		}
	})
}

// TestSecureKafkaConformance: the whole log conformance suite, transactions
// included, over SASL_SSL with SCRAM-SHA-512.
func TestSecureKafkaConformance(t *testing.T) {
	b := securetest.Get(t)
	k := newSecureKafka(t, b, securetest.ScramSHA512, b.User, b.Password)
	if err := k.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	logtest.Run(t, func(t *testing.T) logtest.Log { return k })
}

// TestSecureKafkaMechanisms: each mechanism the broker enables carries an
// append and a read back.
func TestSecureKafkaMechanisms(t *testing.T) {
	b := securetest.Get(t)
	for _, m := range []string{securetest.ScramSHA256, securetest.ScramSHA512, securetest.Plain} {
		t.Run(m, func(t *testing.T) {
			k := newSecureKafka(t, b, m, b.User, b.Password)
			id := uuid.New()
			if _, err := k.Append(ctxT(t), "Order", id, log.Expected{}, logtest.Events("Order", id, 0, 2)); err != nil {
				t.Fatal(err)
			}
			tail, err := k.Read(ctxT(t), "Order", id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(tail.Events) != 2 || tail.Events[1].AggregateVersion != 2 {
				t.Fatalf("read back %d events: %+v", len(tail.Events), tail.Events)
			}
		})
	}
}

// TestSecureKafkaWrongPassword: a wrong password fails Ping and EnsureTopic
// within wrongPasswordBound, with an authentication error that names the
// brokers and the mechanism, for example:
//
//	log: ping kafka: brokers 127.0.0.1:9094 (SASL SCRAM-SHA-512, TLS):
//	SASL_AUTHENTICATION_FAILED: SASL Authentication failed.: ...
func TestSecureKafkaWrongPassword(t *testing.T) {
	b := securetest.Get(t)
	for _, m := range []string{securetest.ScramSHA256, securetest.ScramSHA512, securetest.Plain} {
		t.Run(m, func(t *testing.T) {
			k := newSecureKafka(t, b, m, b.User, b.Password+"-wrong")
			for _, op := range []struct {
				name, prefix string
				call         func(context.Context) error
			}{
				{"Ping", "log: ping kafka", k.Ping},
				{"EnsureTopic", "log: describe topic " + k.Topic("Order"), func(ctx context.Context) error { return k.EnsureTopic(ctx, "Order") }},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), 2*wrongPasswordBound)
				start := time.Now()
				err := op.call(ctx)
				took := time.Since(start)
				cancel()
				t.Logf("%s after %v: %v", op.name, took.Round(time.Millisecond), err)
				if err == nil {
					t.Fatalf("%s with a wrong %s password: no error", op.name, m)
				}
				if took > wrongPasswordBound {
					t.Errorf("%s with a wrong %s password took %v (bound %v)", op.name, m, took, wrongPasswordBound)
				}
				msg := err.Error()
				if !errors.Is(err, kerr.SaslAuthenticationFailed) {
					t.Errorf("%s: error is not SASL_AUTHENTICATION_FAILED: %v", op.name, err)
				}
				if !strings.HasPrefix(msg, op.prefix) {
					t.Errorf("%s: error does not start with %q: %v", op.name, op.prefix, err)
				}
				if want := "brokers " + strings.Join(b.Brokers, ",") + " (SASL " + m + ", TLS)"; !strings.Contains(msg, want) {
					t.Errorf("%s: error does not say %q: %v", op.name, want, err)
				}
			}
		})
	}
}

// TestSecureKafkaVerifiesTheBroker: a client that does not trust the
// script's CA does not get past the TLS handshake.
func TestSecureKafkaVerifiesTheBroker(t *testing.T) {
	b := securetest.Get(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Brokers...), kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}),
		kgo.SASL(securetest.Mechanism(t, securetest.ScramSHA512, b.User, b.Password)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wrongPasswordBound)
	defer cancel()
	err = cl.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Ping without the CA: err = %v, want a certificate verification error", err)
	}
}
