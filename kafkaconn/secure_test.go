package kafkaconn_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/internal/securetest"
	"github.com/snaplog/snaplog/kafkaconn"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

// TestSecureBroker: the options of a Config reach the SASL_SSL broker of
// scripts/kafka.sh secure with each mechanism it has, the password given
// inline or in a file.
func TestSecureBroker(t *testing.T) {
	b := securetest.Get(t)
	passFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(passFile, []byte(b.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []kafkaconn.SASL{
		{Mechanism: kafkaconn.ScramSHA512, Username: b.User, PasswordFile: passFile},
		{Mechanism: kafkaconn.ScramSHA256, Username: b.User, Password: b.Password},
		{Mechanism: kafkaconn.Plain, Username: b.User, Password: b.Password},
	} {
		t.Run(s.Mechanism, func(t *testing.T) {
			opts, err := kafkaconn.Config{Brokers: b.Brokers, TLS: kafkaconn.TLS{CAFile: b.CA}, SASL: s}.Opts()
			if err != nil {
				t.Fatal(err)
			}
			k, err := log.NewKafka(log.KafkaClient(opts...), log.WithTopicPrefix("test.conn."+uuid.NewString()[:8]+"."),
				log.WithTopicPartitions(1), log.WithReplicationFactor(1))
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			id, typ := uuid.New(), logtest.Type()
			if _, err := k.Append(ctx, typ, id, log.Expected{}, logtest.Events(typ, id, 0, 2)); err != nil {
				t.Fatal(err)
			}
			if tail, err := k.Read(ctx, typ, id, 0); err != nil || len(tail.Events) != 2 {
				t.Fatalf("read back %d events: %v", len(tail.Events), err)
			}
		})
	}
}
