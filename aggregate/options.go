package aggregate

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/snaplog/snaplog/snapshots"
)

// SnapshotMode says when a repository writes snapshots. The only values are
// SnapshotSync, SnapshotBackground and SnapshotManual; the zero value is
// SnapshotSync.
type SnapshotMode struct{ m uint8 }

var (
	// SnapshotSync writes a snapshot inside Save, after the events are
	// stored, when the save crosses the threshold. A failed write does not
	// fail the save: it is reported through Hooks.SnapshotFailed, the
	// logger and Stats.
	SnapshotSync = SnapshotMode{0}
	// SnapshotBackground captures the state inside Save and writes the
	// snapshot from a bounded pool of goroutines owned by the repository;
	// Save does not wait for it. See WithMaxPendingSnapshots.
	SnapshotBackground = SnapshotMode{1}
	// SnapshotManual writes snapshots only when CreateSnapshot is called.
	SnapshotManual = SnapshotMode{2}
)

func (m SnapshotMode) String() string {
	switch m {
	case SnapshotSync:
		return "sync"
	case SnapshotBackground:
		return "background"
	case SnapshotManual:
		return "manual"
	}
	return fmt.Sprintf("SnapshotMode(%d)", m.m)
}

// Default limits of background snapshots.
const (
	DefaultMaxPendingSnapshots  = 1024
	DefaultSnapshotConcurrency  = 2
	DefaultSnapshotWriteTimeout = 10 * time.Second
)

type config struct {
	store        snapshots.Store
	policy       Policy // nil: no automatic snapshots
	policyBy     string // the option that set it, for messages
	mode         SnapshotMode
	maxPending   int
	concurrency  int
	writeTimeout time.Duration
	logger       *slog.Logger
	hooks        Hooks
	now          func() time.Time
	errs         []error
}

// Option configures a Repository.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithSnapshotStore makes the repository load from and write snapshots to
// store. Default: no snapshots; every load replays the aggregate's events.
func WithSnapshotStore(store snapshots.Store) Option {
	return optionFunc(func(c *config) {
		if store == nil {
			c.errs = append(c.errs, errors.New("WithSnapshotStore: nil store"))
		}
		c.store = store
	})
}

// WithSnapshotThreshold makes Save snapshot an aggregate when the save
// carries its version across a multiple of n (version/n increases), once per
// save, at the version reached: WithSnapshotPolicy(Every(n)). n must be
// positive. Default: no automatic snapshots. Needs WithSnapshotStore.
func WithSnapshotThreshold(n int64) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithSnapshotThreshold: threshold must be positive, got %d", n))
		}
		c.policy, c.policyBy = Every(n), "WithSnapshotThreshold"
	})
}

// WithSnapshotPolicy makes the repository snapshot an aggregate when p says
// a snapshot is due: after each Save, and after each Load (for
// AfterCostlyLoad), at the version reached, in the repository's
// SnapshotMode. Default: no automatic snapshots. Needs WithSnapshotStore;
// a policy that fails its validation is refused with every problem named.
func WithSnapshotPolicy(p Policy) Option {
	return optionFunc(func(c *config) {
		if err := validatePolicy(p); err != nil {
			c.errs = append(c.errs, fmt.Errorf("WithSnapshotPolicy: %w", err))
		}
		c.policy, c.policyBy = p, "WithSnapshotPolicy"
	})
}

// WithSnapshotMode sets when snapshots are written. Default: SnapshotSync.
func WithSnapshotMode(m SnapshotMode) Option {
	return optionFunc(func(c *config) { c.mode = m })
}

// WithMaxPendingSnapshots bounds how many aggregates may have a background
// snapshot waiting to be written. Each aggregate has at most one: a newer
// snapshot of it replaces the waiting one. When the bound is reached a new
// snapshot is not queued; it is reported through Hooks.SnapshotFailed with
// ErrSnapshotBacklog and counted in Stats.SnapshotsDropped, and the
// aggregate is snapshotted again at its next threshold crossing.
// Default: DefaultMaxPendingSnapshots (1024).
func WithMaxPendingSnapshots(n int) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithMaxPendingSnapshots: must be positive, got %d", n))
		}
		c.maxPending = n
	})
}

// WithSnapshotConcurrency sets how many background snapshot writes may be in
// flight at once. Default: DefaultSnapshotConcurrency (2).
func WithSnapshotConcurrency(n int) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithSnapshotConcurrency: must be positive, got %d", n))
		}
		c.concurrency = n
	})
}

// WithSnapshotWriteTimeout bounds each background snapshot write.
// Default: DefaultSnapshotWriteTimeout (10s).
func WithSnapshotWriteTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("WithSnapshotWriteTimeout: must be positive, got %s", d))
		}
		c.writeTimeout = d
	})
}

// WithLogger sets where the repository logs snapshot failures and load
// fallbacks. Default: nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			c.errs = append(c.errs, errors.New("WithLogger: nil logger"))
		}
		c.logger = l
	})
}

// WithHooks sets functions called on snapshot events, for metrics. Default:
// none.
func WithHooks(h Hooks) Option {
	return optionFunc(func(c *config) { c.hooks = h })
}

// WithClock sets the clock used for event and snapshot times. Default:
// time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) {
		if now == nil {
			c.errs = append(c.errs, errors.New("WithClock: nil clock"))
		}
		c.now = now
	})
}

func newConfig(opts []Option) (config, error) {
	c := config{
		mode:         SnapshotSync,
		maxPending:   DefaultMaxPendingSnapshots,
		concurrency:  DefaultSnapshotConcurrency,
		writeTimeout: DefaultSnapshotWriteTimeout,
		logger:       slog.New(slog.DiscardHandler),
		now:          time.Now,
	}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.policy != nil && c.store == nil {
		c.errs = append(c.errs, fmt.Errorf("%s needs WithSnapshotStore", c.policyBy))
	}
	if c.mode == SnapshotBackground && c.store == nil {
		c.errs = append(c.errs, errors.New("SnapshotBackground needs WithSnapshotStore"))
	}
	return c, errors.Join(c.errs...)
}
