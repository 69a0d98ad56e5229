package kread

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// An unanswered request names the brokers and how the client
// authenticates.
func TestUnanswered(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.SASL(scram.Auth{User: "u", Pass: "p"}.AsSha512Mechanism()),
		kgo.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = Describe(ctx, cl, "t")
	if err == nil || !strings.Contains(err.Error(), "brokers 127.0.0.1:1 (SASL SCRAM-SHA-512)") {
		t.Fatalf("Describe at a closed port: %v", err)
	}
	if got := Unanswered(cl, context.Canceled); !errors.Is(got, context.Canceled) || got != context.Canceled {
		t.Errorf("a cancelled request: %v", got)
	}
}
