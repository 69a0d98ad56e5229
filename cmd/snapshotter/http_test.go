package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/snapshotter"
)

// TestProbes: /healthz is liveness (200 whatever the cluster does); /readyz
// is 503 with the reason while the cluster, or the PostgreSQL store's
// database, does not answer, naming its address, and while stopping.
func TestProbes(t *testing.T) {
	check, err := newBrokerCheck([]string{"127.0.0.1:1"}, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	s, err := snapshotter.New("probes", testTypes(t), snapshotter.KafkaClient(kgo.SeedBrokers("127.0.0.1:1")))
	if err != nil {
		t.Fatal(err)
	}
	stopping := false
	notReady := func(ctx context.Context) string {
		return readiness(ctx, func() bool { return stopping }, []*serverCheck{check}, s, time.Second)
	}
	srv := httptest.NewServer(newMux(notReady, newMetrics(testTypes(t), "e."), slog.New(slog.DiscardHandler)))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with the cluster away: %d %s", code, body)
	}
	start := time.Now()
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "kafka at 127.0.0.1:1 does not answer") {
		t.Fatalf("/readyz with the cluster away: %d %q", code, body)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("/readyz took %s to say the cluster does not answer", took)
	}

	// The PostgreSQL store's database is checked after the cluster.
	pc, err := parsePostgresURL("postgres://u@127.0.0.1:1/orders?connect_timeout=2&sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	pg := postgresConfig{Schema: "snaplog", Pool: pc}
	pool, err := pg.pool(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store, err := pg.store(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	dbCheck := newPostgresCheck(pg, store, time.Second)
	if why := readiness(t.Context(), func() bool { return false }, []*serverCheck{dbCheck}, s, time.Second); !strings.Contains(why, "PostgreSQL at 127.0.0.1:1/orders does not answer") {
		t.Fatalf("readiness with the database away: %q", why)
	}
	stopping = true
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stopping") {
		t.Fatalf("/readyz while stopping: %d %q", code, body)
	}
}
