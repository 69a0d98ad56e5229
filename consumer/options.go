package consumer

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/log"
)

// Defaults of a Subscription's options.
const (
	DefaultTries          = 5
	DefaultBackoffBase    = 100 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second
	DefaultCommitInterval = time.Second
	// DefaultDeadLetterSuffix is appended to the group name to name the
	// dead-letter topic when WithDeadLetterTopic is not given.
	DefaultDeadLetterSuffix = ".dlq"
)

// Decoder turns an event's payload into a typed value.
// *aggregate.Registry is one.
type Decoder interface {
	Decode(eventType, contentType string, payload []byte) (any, error)
}

// Hooks are called synchronously from the goroutine that handles the
// partition; they must be fast and safe for concurrent use (partitions are
// handled concurrently). Nil hooks are skipped.
type Hooks struct {
	// Lag is called after each record is done (handled, skipped as a
	// conflict loser, or dead-lettered) with the partition's lag in
	// offsets: its last stable offset, as of the fetch that returned the
	// record, minus the offset after the record. Transaction markers take
	// offsets too, so a partition that is caught up reports 0, or 1 when
	// its last save was a multi-event one.
	Lag func(topic string, partition int32, lag int64)
	// Handled is called when the handler succeeded, with the duration of
	// the successful call.
	Handled func(topic string, partition int32, d time.Duration)
	// Failed is called for every failed handler call; attempt counts from
	// 1. A retry follows unless attempt is the last one allowed by
	// WithRetries, in which case the event is dead-lettered.
	Failed func(topic string, partition int32, offset int64, attempt int, err error)
	// DeadLettered is called once a record is stored in the dead-letter
	// topic, with the reason.
	DeadLettered func(topic string, partition int32, offset int64, err error)
}

type config struct {
	clientOpts     []kgo.Opt
	types          []string
	prefix         string
	decoder        Decoder
	tries          int
	backoffBase    time.Duration
	backoffMax     time.Duration
	dlq            string
	commitInterval time.Duration
	logger         *slog.Logger
	hooks          Hooks
	placements     map[string]int32 // declared with WithPlacement, by aggregate type
	errs           []error
}

// Option configures a Subscription.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// KafkaClient sets the franz-go options of the subscription's clients: seed
// brokers, TLS, SASL, group timeouts and the like. Required (at least
// kgo.SeedBrokers). The subscription sets its group, its topics,
// read_committed isolation, the cooperative-sticky balancer, offset
// commits and rebalance callbacks itself, after these options. A new group
// starts at the beginning of each partition unless these options say
// otherwise (kgo.ConsumeResetOffset).
func KafkaClient(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithTopics names the aggregate types whose events topics the subscription
// reads: topic prefix + type. Required, at least one.
func WithTopics(aggregateTypes ...string) Option {
	return optionFunc(func(c *config) {
		for _, t := range aggregateTypes {
			if t == "" {
				c.errs = append(c.errs, errors.New("WithTopics: empty aggregate type"))
				continue
			}
			c.types = append(c.types, t)
		}
	})
}

// WithTopicPrefix sets the prefix of events topic names, as given to the
// log with log.WithTopicPrefix. Default: log.DefaultTopicPrefix
// ("snaplog.events.").
func WithTopicPrefix(p string) Option {
	return optionFunc(func(c *config) { c.prefix = p })
}

// WithRegistry decodes every event's payload with d (usually the aggregate
// type's *aggregate.Registry) and hands the value to the handler in
// Event.Value. An event that d cannot decode, an unknown event type
// included, is poison: it goes to the dead-letter topic without reaching
// the handler. Default: no decoding; Event.Value is nil.
func WithRegistry(d Decoder) Option {
	return optionFunc(func(c *config) {
		if d == nil {
			c.errs = append(c.errs, errors.New("WithRegistry: nil registry"))
		}
		c.decoder = d
	})
}

// WithRetries sets how many times the handler is called for one event
// before the event is dead-lettered, and the backoff between calls: base
// after the first failure, doubling up to limit. Default: DefaultTries (5)
// calls, DefaultBackoffBase (100ms) doubling up to DefaultBackoffMax (5s).
// The same backoff paces retries of a failed dead-letter write.
func WithRetries(tries int, base, limit time.Duration) Option {
	return optionFunc(func(c *config) {
		if tries < 1 {
			c.errs = append(c.errs, fmt.Errorf("WithRetries: tries must be at least 1, got %d", tries))
		}
		if base <= 0 || limit < base {
			c.errs = append(c.errs, fmt.Errorf("WithRetries: need 0 < base <= max, got base %s, max %s", base, limit))
		}
		c.tries, c.backoffBase, c.backoffMax = tries, base, limit
	})
}

// WithDeadLetterTopic sets the topic that poison records go to. Run creates
// it when it is missing, with the broker's default partitions and
// replication, cleanup.policy=delete and unlimited retention. Default: the
// group name followed by DefaultDeadLetterSuffix (".dlq").
func WithDeadLetterTopic(name string) Option {
	return optionFunc(func(c *config) {
		if err := checkTopicName(name); err != nil {
			c.errs = append(c.errs, fmt.Errorf("WithDeadLetterTopic: %w", err))
		}
		c.dlq = name
	})
}

// WithCommitInterval sets how often the offsets of handled events are
// committed while partitions are being handled. Offsets are also committed
// when partitions are revoked and when Run returns. Default:
// DefaultCommitInterval (1s).
func WithCommitInterval(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithCommitInterval: must be positive, got %s", d))
		}
		c.commitInterval = d
	})
}

// WithLogger sets where the subscription logs assignments, restores,
// retries, dead letters and commit failures. Default: nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			c.errs = append(c.errs, errors.New("WithLogger: nil logger"))
		}
		c.logger = l
	})
}

// WithPlacement declares the partition count the aggregates of an events
// topic written before snaplog recorded placements were placed with, as
// log.WithPlacement does for the log; without it such a topic is refused.
// Default: none; each topic's placement is read from the topic.
func WithPlacement(aggregateType string, partitions int32) Option {
	return optionFunc(func(c *config) {
		if err := log.CheckDeclaredPlacement(aggregateType, partitions); err != nil {
			c.errs = append(c.errs, err)
		}
		if c.placements == nil {
			c.placements = make(map[string]int32)
		}
		c.placements[aggregateType] = partitions
	})
}

// WithHooks sets functions called as records are handled, for metrics.
// Default: none.
func WithHooks(h Hooks) Option {
	return optionFunc(func(c *config) { c.hooks = h })
}

func newConfig(group string, handler Handler, opts []Option) (config, error) {
	c := config{
		prefix:         log.DefaultTopicPrefix,
		tries:          DefaultTries,
		backoffBase:    DefaultBackoffBase,
		backoffMax:     DefaultBackoffMax,
		commitInterval: DefaultCommitInterval,
		logger:         slog.New(slog.DiscardHandler),
	}
	if group == "" {
		c.errs = append(c.errs, errors.New("empty group name"))
	}
	if handler == nil {
		c.errs = append(c.errs, errors.New("nil handler"))
	}
	for _, o := range opts {
		if o == nil {
			c.errs = append(c.errs, errors.New("nil option"))
			continue
		}
		o.apply(&c)
	}
	if len(c.clientOpts) == 0 {
		c.errs = append(c.errs, errors.New("KafkaClient: no client options (seed brokers are required)"))
	}
	if len(c.types) == 0 {
		c.errs = append(c.errs, errors.New("WithTopics: no aggregate types"))
	}
	for _, t := range c.types {
		if err := checkTopicName(c.prefix + t); err != nil {
			c.errs = append(c.errs, fmt.Errorf("WithTopics: %w", err))
		}
	}
	if c.dlq == "" && group != "" {
		c.dlq = group + DefaultDeadLetterSuffix
		if err := checkTopicName(c.dlq); err != nil {
			c.errs = append(c.errs, fmt.Errorf("default dead-letter topic from the group name: %w (set WithDeadLetterTopic)", err))
		}
	}
	return c, errors.Join(c.errs...)
}

// topics returns the names of the events topics the subscription reads.
func (c *config) topics() []string {
	out := make([]string, 0, len(c.types))
	seen := make(map[string]bool, len(c.types))
	for _, t := range c.types {
		if name := c.prefix + t; !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// declared returns the partition count declared with WithPlacement for an
// events topic, 0 for none.
func (c *config) declared(topic string) int32 {
	for typ, n := range c.placements {
		if c.prefix+typ == topic {
			return n
		}
	}
	return 0
}

// backoff returns the wait after the attempt-th consecutive failure.
func (c *config) backoff(attempt int) time.Duration {
	d := c.backoffBase
	for i := 1; i < attempt && d < c.backoffMax; i++ {
		d *= 2
	}
	return min(d, c.backoffMax)
}

// checkTopicName applies Kafka's rules for topic names.
func checkTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("empty topic name")
	case len(name) > 249:
		return fmt.Errorf("topic name %.40q... is %d characters long, more than Kafka's 249", name, len(name))
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("topic name %q: %q is not allowed (only ASCII letters, digits, '.', '_' and '-')", name, name[i:i+1])
	}
	return nil
}
