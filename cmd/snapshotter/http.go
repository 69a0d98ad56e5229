package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

const (
	// checkEvery is how long /readyz reuses the outcome of its last ping
	// of the cluster, and of the database.
	checkEvery = 5 * time.Second
	// checkTimeout bounds one ping.
	checkTimeout = 3 * time.Second
)

// serverCheck pings a server for /readyz (the cluster, the PostgreSQL
// store's database), at most once every period: probes in between get the
// last outcome.
type serverCheck struct {
	ping  func(context.Context) error // an error says what does not answer
	close func()
	every time.Duration

	mu   sync.Mutex
	last time.Time
	err  error
}

// newBrokerCheck returns a check of the cluster at the seed brokers, with
// the connection options opts (TLS, SASL; the seed brokers too, when opts
// is empty). It does no I/O; Close closes its client.
func newBrokerCheck(brokers []string, opts []kgo.Opt, every time.Duration) (*serverCheck, error) {
	if len(opts) == 0 {
		opts = []kgo.Opt{kgo.SeedBrokers(brokers...)}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	ping := func(ctx context.Context) error {
		if err := cl.Ping(ctx); err != nil {
			return fmt.Errorf("kafka at %s does not answer: %w", strings.Join(brokers, ","), err)
		}
		return nil
	}
	return &serverCheck{ping: ping, close: cl.Close, every: every}, nil
}

// newPostgresCheck returns a check of the PostgreSQL store's database, of
// store on pg's pool: that it answers and its schema is migrated
// (snapshots.Postgres.Ping). It does no I/O; the caller closes the pool.
func newPostgresCheck(pg postgresConfig, store *snapshots.Postgres, every time.Duration) *serverCheck {
	ping := func(ctx context.Context) error {
		err := store.Ping(ctx)
		switch {
		case errors.Is(err, snapshots.ErrNotMigrated):
			return pg.migrateHint(err)
		case err != nil:
			return fmt.Errorf("PostgreSQL at %s does not answer: %w", pg.addr(), err)
		}
		return nil
	}
	return &serverCheck{ping: ping, close: func() {}, every: every}
}

// Check returns nil when the server answered the last ping, made within
// the last period or now.
func (c *serverCheck) Check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.last.IsZero() && time.Since(c.last) < c.every {
		return c.err
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	c.err = c.ping(ctx)
	c.last = time.Now()
	return c.err
}

func (c *serverCheck) Close() { c.close() }

// overdueAfter is how many checkpoint intervals a partition with events
// after its checkpoint may go without a new one before /readyz says so.
const overdueAfter = 3

// readiness says why the sidecar is not ready, or "" when it is: stopping,
// a server that does not answer (the cluster, the database: named),
// joining the group or restoring partitions, no partition assigned, or a
// partition whose events after its checkpoint have waited more than
// overdueAfter intervals. A partition with nothing after its checkpoint is
// idle, not late.
func readiness(ctx context.Context, stopping func() bool, checks []*serverCheck, s *snapshotter.Snapshotter, interval time.Duration) string {
	if stopping() {
		return "stopping"
	}
	for _, c := range checks {
		if err := c.Check(ctx); err != nil {
			return err.Error()
		}
	}
	if !s.Ready() {
		return "joining the group or restoring partitions (or an events topic was refused: see the log)"
	}
	st := s.Stats()
	if len(st.Partitions) == 0 {
		return "no partition assigned"
	}
	var late []string
	for _, p := range st.Partitions {
		if p.Checkpoint >= 0 && p.Checkpoint < p.Next && p.CheckpointAge > overdueAfter*interval {
			late = append(late, fmt.Sprintf("%s/%d (checkpoint %s old, %d records after it)", p.Topic, p.Partition, p.CheckpointAge.Round(time.Second), p.Next-p.Checkpoint))
		}
	}
	if len(late) > 0 {
		return fmt.Sprintf("checkpoints overdue by more than %d intervals of %s: %s", overdueAfter, interval, strings.Join(late, ", "))
	}
	return ""
}

// newMux returns the sidecar's HTTP handler:
//
//   - /healthz: 200 while the process serves HTTP (a liveness probe: it asks
//     no broker, so a broker outage does not restart every replica);
//   - /readyz: 200 when notReady returns "", else 503 with its reason;
//   - /metrics: the metrics of m in the Prometheus text format.
func newMux(notReady func(context.Context) string, m *metrics, logger *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := notReady(r.Context()); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}))
	return mux
}

// healthcheck asks the /healthz of the sidecar listening on addr (a
// -http-addr value) on this host, and returns 0 when it answers 200: a
// HEALTHCHECK for images that have no shell or curl.
func healthcheck(ctx context.Context, addr string, stderr io.Writer) int {
	host, port, _ := net.SplitHostPort(addr) // checked by parseConfig
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, checkTimeout+2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "snapshotter healthcheck: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "snapshotter healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "snapshotter healthcheck: %s: %s %s\n", url, resp.Status, body)
		return 1
	}
	return 0
}
