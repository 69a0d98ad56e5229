package main

import (
	"context"
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

	"github.com/snaplog/snaplog/snapshotter"
)

const (
	// brokerCheckEvery is how long /readyz reuses the outcome of its last
	// broker ping.
	brokerCheckEvery = 5 * time.Second
	// brokerCheckTimeout bounds one ping.
	brokerCheckTimeout = 3 * time.Second
)

// brokerCheck pings the cluster for /readyz, at most once every
// brokerCheckEvery: probes in between get the last outcome.
type brokerCheck struct {
	cl      *kgo.Client
	brokers []string
	every   time.Duration

	mu   sync.Mutex
	last time.Time
	err  error
}

// newBrokerCheck returns a check of the cluster at the seed brokers, with
// the connection options opts (TLS, SASL; the seed brokers too, when opts
// is empty). It does no I/O; Close closes its client.
func newBrokerCheck(brokers []string, opts []kgo.Opt, every time.Duration) (*brokerCheck, error) {
	if len(opts) == 0 {
		opts = []kgo.Opt{kgo.SeedBrokers(brokers...)}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &brokerCheck{cl: cl, brokers: brokers, every: every}, nil
}

// Check returns nil when the cluster answered the last ping, made within
// the last period or now.
func (b *brokerCheck) Check(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && time.Since(b.last) < b.every {
		return b.err
	}
	ctx, cancel := context.WithTimeout(ctx, brokerCheckTimeout)
	defer cancel()
	b.err = b.cl.Ping(ctx)
	b.last = time.Now()
	return b.err
}

func (b *brokerCheck) Close() { b.cl.Close() }

// overdueAfter is how many checkpoint intervals a partition with events
// after its checkpoint may go without a new one before /readyz says so.
const overdueAfter = 3

// readiness says why the sidecar is not ready, or "" when it is: stopping,
// the cluster unreachable (named), joining the group or restoring
// partitions, no partition assigned, or a partition whose events after its
// checkpoint have waited more than overdueAfter intervals. A partition with
// nothing after its checkpoint is idle, not late.
func readiness(ctx context.Context, stopping func() bool, check *brokerCheck, s *snapshotter.Snapshotter, interval time.Duration) string {
	if stopping() {
		return "stopping"
	}
	if err := check.Check(ctx); err != nil {
		return fmt.Sprintf("kafka at %s does not answer: %v", strings.Join(check.brokers, ","), err)
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
	ctx, cancel := context.WithTimeout(ctx, brokerCheckTimeout+2*time.Second)
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
