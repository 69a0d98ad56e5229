package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// brokerCheckEvery is how long /healthz reuses the outcome of its last
	// broker ping.
	brokerCheckEvery = 5 * time.Second
	// brokerCheckTimeout bounds one ping.
	brokerCheckTimeout = 3 * time.Second
)

// brokerCheck pings the cluster for /healthz, at most once every
// brokerCheckEvery: probes in between get the last outcome.
type brokerCheck struct {
	cl    *kgo.Client
	every time.Duration

	mu   sync.Mutex
	last time.Time
	err  error
}

// newBrokerCheck returns a check of the cluster at the seed brokers. It
// does no I/O; Close closes its client.
func newBrokerCheck(brokers []string, every time.Duration) (*brokerCheck, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	return &brokerCheck{cl: cl, every: every}, nil
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

// newMux returns the sidecar's HTTP handler:
//
//   - /healthz: 200 while the broker answers (see brokerCheck), else 503;
//   - /readyz: 200 while ready reports true, else 503;
//   - /metrics: the metrics of m in the Prometheus text format.
func newMux(check *brokerCheck, ready func() bool, m *metrics, logger *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := check.Check(r.Context()); err != nil {
			http.Error(w, fmt.Sprintf("kafka: %v", err), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready() {
			http.Error(w, "not ready: joining the group, restoring partitions, or stopping", http.StatusServiceUnavailable)
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
