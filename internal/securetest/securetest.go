// Package securetest gives snaplog's tests the SASL_SSL broker that
// `bash scripts/kafka.sh secure start` runs: its address, CA, user and
// password come from the environment variables `bash scripts/kafka.sh
// secure env` prints. Without them a test is skipped, or, in CI (CI set to
// anything but blank or false), fails: a test must never pass by skipping
// there.
package securetest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/snaplog/snaplog/kafkatest"
)

// The environment variables `bash scripts/kafka.sh secure env` prints.
const (
	EnvBrokers  = "SNAPLOG_KAFKA_SECURE_BROKERS"  // host:port,... of the SASL_SSL listener
	EnvCA       = "SNAPLOG_KAFKA_SECURE_CA"       // PEM file of the CA that signed the broker certificate
	EnvUser     = "SNAPLOG_KAFKA_SECURE_USER"     // a SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN user
	EnvPassword = "SNAPLOG_KAFKA_SECURE_PASSWORD" // its password
)

// HowToStart is what a test skipped (or failed, in CI) for want of the
// secure broker tells the reader to do.
const HowToStart = "start the SASL_SSL broker with `bash scripts/kafka.sh secure start`, then run " +
	"`set -a; eval \"$(bash scripts/kafka.sh secure env)\"; set +a; go test -run Secure ./log/ ./snapshots/` " +
	"(stop it with `bash scripts/kafka.sh secure stop`)"

// The SASL mechanisms the secure broker enables.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	Plain       = "PLAIN"
)

// Broker is the secure broker of the environment.
type Broker struct {
	Brokers  []string
	CA       string // path of the CA's PEM file
	User     string
	Password string
	TLS      *tls.Config // trusts the CA only; ServerName is left to franz-go (the dialed host)
}

// Get returns the secure broker named by the environment. If EnvBrokers is
// blank it skips t, or fails it in CI; if EnvBrokers is set but the CA,
// user or password is missing or the CA unreadable, it fails t.
func Get(t testing.TB) Broker {
	t.Helper()
	brokers := strings.TrimSpace(os.Getenv(EnvBrokers))
	if brokers == "" {
		msg := "no SASL_SSL Kafka broker: " + EnvBrokers + " is not set; " + HowToStart
		if kafkatest.InCI(os.Getenv("CI")) {
			t.Fatal("CI must run the secured-connection tests: " + msg)
		}
		t.Skip(msg)
	}
	b := Broker{CA: os.Getenv(EnvCA), User: os.Getenv(EnvUser), Password: os.Getenv(EnvPassword)}
	for _, s := range strings.Split(brokers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			b.Brokers = append(b.Brokers, s)
		}
	}
	for name, v := range map[string]string{EnvCA: b.CA, EnvUser: b.User, EnvPassword: b.Password} {
		if v == "" {
			t.Fatalf("%s is set but %s is not (`bash scripts/kafka.sh secure env` prints all of them)", EnvBrokers, name)
		}
	}
	pem, err := os.ReadFile(b.CA)
	if err != nil {
		t.Fatalf("%s: %v", EnvCA, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no PEM certificate in %s", EnvCA, b.CA)
	}
	b.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return b
}

// Mechanism returns the franz-go SASL mechanism named (ScramSHA256,
// ScramSHA512 or Plain) for user and password.
func Mechanism(t testing.TB, name, user, password string) sasl.Mechanism {
	t.Helper()
	switch name {
	case ScramSHA256:
		return scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
	case ScramSHA512:
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	case Plain:
		return plain.Auth{User: user, Pass: password}.AsMechanism()
	}
	t.Fatalf("unknown SASL mechanism %q", name)
	return nil
}

// Opts returns the franz-go options that connect to the broker over TLS
// and authenticate with the named mechanism as the environment's user.
func (b Broker) Opts(t testing.TB, mechanism string) []kgo.Opt {
	t.Helper()
	return b.OptsAs(t, mechanism, b.User, b.Password)
}

// OptsAs is Opts with another user or password.
func (b Broker) OptsAs(t testing.TB, mechanism, user, password string) []kgo.Opt {
	t.Helper()
	return []kgo.Opt{
		kgo.SeedBrokers(b.Brokers...),
		kgo.DialTLSConfig(b.TLS),
		kgo.SASL(Mechanism(t, mechanism, user, password)),
	}
}

// Client returns a client of the broker (closed when t ends) that
// authenticates with the named mechanism.
func (b Broker) Client(t testing.TB, mechanism string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(b.Opts(t, mechanism), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
