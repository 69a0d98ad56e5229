package snapshotter_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/snapshotter"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestUnreachableClusterIsReported: a refused address is logged as "cannot
// connect to kafka" with the address, and a listener that is not Kafka (it
// accepts and never answers) as "kafka does not answer", each within
// seconds, not as "waiting for topics".
func TestUnreachableClusterIsReported(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	for _, tt := range []struct {
		addr, want string
		within     time.Duration
	}{
		{"127.0.0.1:1", "cannot connect to kafka", 8 * time.Second},
		{silent.Addr().String(), "kafka does not answer", 25 * time.Second},
	} {
		var logs syncBuffer
		s, err := snapshotter.New("diag", []snapshotter.Type{snapshotter.Register(accountType(t))},
			snapshotter.KafkaClient(kgo.SeedBrokers(tt.addr)), snapshotter.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		start := time.Now()
		for !strings.Contains(logs.String(), tt.want) && time.Since(start) < tt.within {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		<-done
		if out := logs.String(); !strings.Contains(out, tt.want) || !strings.Contains(out, "brokers="+tt.addr) {
			t.Errorf("%s: no %q naming the address within %s; log:\n%s", tt.addr, tt.want, tt.within, out)
		} else {
			t.Logf("%s: %q after %s", tt.addr, tt.want, time.Since(start).Round(time.Millisecond))
		}
	}
}
