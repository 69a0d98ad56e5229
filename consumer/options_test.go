package consumer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/consumer"
)

var _ consumer.Decoder = (*aggregate.Registry)(nil)

func TestNewValidatesOptions(t *testing.T) {
	h := consumer.HandlerFunc(func(context.Context, consumer.Event) error { return nil })
	ok := []consumer.Option{consumer.KafkaClient(kgo.SeedBrokers("127.0.0.1:9092")), consumer.WithTopics("Account")}
	for _, tc := range []struct {
		name    string
		group   string
		handler consumer.Handler
		opts    []consumer.Option
		want    []string // parts of the error; none for a valid configuration
	}{
		{name: "valid", group: "g", handler: h, opts: ok},
		{name: "valid with every option", group: "g", handler: h, opts: append(ok,
			consumer.WithTopicPrefix("test.events."), consumer.WithRegistry(aggregate.NewRegistry(nil)),
			consumer.WithRetries(1, time.Millisecond, time.Millisecond), consumer.WithDeadLetterTopic("poison"),
			consumer.WithCommitInterval(time.Minute), consumer.WithHooks(consumer.Hooks{}))},
		{name: "nothing", want: []string{"empty group name", "nil handler", "KafkaClient", "WithTopics: no aggregate types"}},
		{name: "every problem at once", group: "g", handler: h, opts: []consumer.Option{
			consumer.WithTopics(""), consumer.WithRegistry(nil), consumer.WithRetries(0, 0, -1),
			consumer.WithDeadLetterTopic("bad topic"), consumer.WithCommitInterval(0), consumer.WithLogger(nil), nil,
		}, want: []string{"KafkaClient", "WithTopics: empty aggregate type", "WithRegistry", "tries must be at least 1",
			"need 0 < base <= max", `WithDeadLetterTopic: topic name "bad topic"`, "WithCommitInterval", "WithLogger", "nil option"}},
		{name: "topic name from prefix", group: "g", handler: h, opts: append(ok, consumer.WithTopicPrefix("a/b.")),
			want: []string{`WithTopics: topic name "a/b.Account": "/" is not allowed`}},
		{name: "group unfit for the default dead-letter topic", group: "my group", handler: h, opts: ok,
			want: []string{"default dead-letter topic", "set WithDeadLetterTopic"}},
		{name: "explicit dead-letter topic for such a group", group: "my group", handler: h,
			opts: append(ok, consumer.WithDeadLetterTopic("my-group.dlq"))},
		{name: "backoff max below base", group: "g", handler: h,
			opts: append(ok, consumer.WithRetries(3, time.Second, time.Millisecond)), want: []string{"need 0 < base <= max"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := consumer.New(tc.group, tc.handler, tc.opts...)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				s.Close()
				return
			}
			if err == nil {
				t.Fatal("New: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestDeadLetterTopicDefault(t *testing.T) {
	h := consumer.HandlerFunc(func(context.Context, consumer.Event) error { return nil })
	s, err := consumer.New("projections.orders", h, consumer.KafkaClient(kgo.SeedBrokers("x:1")), consumer.WithTopics("Order"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.DeadLetterTopic(); got != "projections.orders.dlq" {
		t.Errorf("DeadLetterTopic() = %q", got)
	}
}
