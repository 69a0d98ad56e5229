package consumer_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/consumer"
	"github.com/snaplog/snaplog/internal/kafkatest"
)

// Environment of a subscription child process (see TestMain).
const (
	childGroup  = "SNAPLOG_TEST_CONSUMER_CHILD_GROUP"
	childPrefix = "SNAPLOG_TEST_CONSUMER_CHILD_PREFIX"
)

// Group timeouts of the tests that stop or stall a member: the broker's
// minimum session timeout, a rebalance timeout a little longer.
const (
	sessionTimeout   = 6 * time.Second
	rebalanceTimeout = 8 * time.Second
)

// TestMain runs the test binary as a subscription process when a test
// starts it as a child: the lost-session test stops a real process.
func TestMain(m *testing.M) {
	if group := os.Getenv(childGroup); group != "" {
		os.Exit(runChild(group))
	}
	os.Exit(m.Run())
}

// runChild runs a subscription whose handler prints "start <partition>
// <offset>" when it starts an event and "end <partition> <offset>
// <cause>" when it returns, the cause being that of its context's end
// ("<nil>" while it has not ended). Events of partition 0 block until
// their context ends; those of partition 1 take 300 ms.
//
// A process resumed after a stop learns from the group that it lost its
// partitions one round trip to the broker later at best, while records it
// had already read can be handed to the handler at once. The child makes
// that delay visible: when it finds it was stopped for more than a
// second, its writes to the brokers wait 500 ms.
func runChild(group string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var out sync.Mutex
	print := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	handler := consumer.HandlerFunc(func(ctx context.Context, e consumer.Event) error {
		p, off := e.Position.Partition, e.Position.Offset
		print("start %d %d", p, off)
		d := 300 * time.Millisecond
		if p == 0 {
			d = time.Minute
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		print("end %d %d %v", p, off, context.Cause(ctx))
		return context.Cause(ctx)
	})
	var hold heldWrites
	go hold.watch()
	s, err := consumer.New(group, handler,
		consumer.KafkaClient(kgo.SeedBrokers(strings.Split(os.Getenv(kafkatest.EnvBrokers), ",")...), kgo.Dialer(hold.dial),
			kgo.SessionTimeout(sessionTimeout), kgo.RebalanceTimeout(rebalanceTimeout), kgo.HeartbeatInterval(250*time.Millisecond)),
		consumer.WithTopics(typ), consumer.WithTopicPrefix(os.Getenv(childPrefix)), consumer.WithLogger(logger))
	if err != nil {
		logger.Error("new", slog.Any("error", err))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := s.Run(ctx); err != nil {
		logger.Error("run", slog.Any("error", err))
		return 1
	}
	return 0
}

// heldWrites holds writes to the brokers for 500 ms after the process
// resumes from a stop.
type heldWrites struct{ until atomic.Int64 } // unix nanoseconds

func (h *heldWrites) watch() {
	last := time.Now()
	for now := range time.Tick(20 * time.Millisecond) {
		if now.Sub(last) > time.Second {
			h.until.Store(now.Add(500 * time.Millisecond).UnixNano())
		}
		last = now
	}
}

func (h *heldWrites) dial(ctx context.Context, network, host string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return &heldConn{Conn: c, h: h}, nil
}

type heldConn struct {
	net.Conn
	h *heldWrites
}

func (c *heldConn) Write(p []byte) (int, error) {
	if wait := time.Until(time.Unix(0, c.h.until.Load())); wait > 0 {
		time.Sleep(wait)
	}
	return c.Conn.Write(p)
}

// child is a subscription running in another process, with the lines it
// printed and logged.
type child struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	stdout []string
	stderr []string
}

func (e *env) startChild(t *testing.T) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childGroup+"="+e.group, childPrefix+"="+e.prefix,
		kafkatest.EnvBrokers+"="+strings.Join(e.brokers, ","))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, done: make(chan struct{})}
	var wg sync.WaitGroup
	read := func(r io.Reader, into *[]string) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.mu.Lock()
			*into = append(*into, sc.Text())
			c.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, r)
	}
	wg.Add(2)
	go read(stdout, &c.stdout)
	go read(stderr, &c.stderr)
	go func() {
		defer close(c.done)
		wg.Wait()
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-c.done
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, l := range c.stderr {
			t.Logf("child %d: %s", cmd.Process.Pid, l)
		}
	})
	return c
}

// lines returns the child's printed lines from the n-th on.
func (c *child) lines(from int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if from > len(c.stdout) {
		return nil
	}
	return append([]string(nil), c.stdout[from:]...)
}

func (c *child) logged(substr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.stderr {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func count(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestLostSessionStartsNoBufferedEvent: a member stopped (SIGSTOP) with an
// event of each of its two partitions in hand and more of them buffered,
// until its session expired and another member took both partitions and
// handled them. Resumed, it starts none of the buffered events, and its
// in-flight handler's context ends. The other member handled every event,
// those the stopped one had handled since its last commit included: the
// duplicates of a lost session.
func TestLostSessionStartsNoBufferedEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ids := spreadIDs(2, 1)
	for range 20 {
		for _, id := range ids {
			e.save(id, 1, false)
		}
	}
	all := e.winnersInOrder()
	last := map[int32]uuid.UUID{}
	for _, ev := range all {
		last[ev.Position.Partition] = ev.ID
	}

	zombie := e.startChild(t)
	waitFor(t, 60*time.Second, "the child to start events of both partitions", func() bool {
		l := zombie.lines(0)
		return count(l, "start 0 ") == 1 && count(l, "start 1 ") >= 3
	})
	// Stop it just after it started an event of partition 1: that event
	// is in hand, the following ones are buffered.
	n := count(zombie.lines(0), "start 1 ")
	waitFor(t, 10*time.Second, "the child's next event of partition 1", func() bool { return count(zombie.lines(0), "start 1 ") > n })
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()

	rec := newRecorder()
	r := run(t, e.subscribe(rec, consumer.KafkaClient(kgo.SessionTimeout(sessionTimeout), kgo.RebalanceTimeout(rebalanceTimeout))))
	waitFor(t, 60*time.Second, "the new member to handle every event", func() bool { return rec.seen(last[0]) && rec.seen(last[1]) })
	took := time.Since(stopped)

	mark := len(zombie.lines(0))
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the resumed child to learn it lost its partitions", func() bool {
		return zombie.logged("partitions lost") && count(zombie.lines(mark), "end 0 ") == 1
	})
	time.Sleep(time.Second) // time for any buffered event to start
	after := zombie.lines(mark)
	for _, l := range after {
		if strings.HasPrefix(l, "start ") {
			t.Errorf("the resumed member started an event of a partition it had lost: %q", l)
		}
		if strings.HasPrefix(l, "end 0 ") && strings.HasSuffix(l, " <nil>") {
			t.Errorf("the in-flight handler's context had not ended when it returned: %q", l)
		}
	}
	if err, _ := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Every event reached the new member once; those the stopped member
	// had handled but not committed reached both.
	got := rec.handled()
	seen := map[uuid.UUID]int{}
	for _, ev := range got {
		seen[ev.ID]++
	}
	for _, ev := range all {
		if seen[ev.ID] == 0 && ev.Position.Partition == 0 {
			t.Errorf("event %s never handled by the new member", ev.Position)
		}
	}
	before := zombie.lines(0)[:mark]
	t.Logf("new member took over %s after the stop and handled %d events; the stopped member had handled %d of partition 1 (those since its last commit were handled again); after resuming: %q",
		took.Round(time.Millisecond), len(got), count(before, "end 1 "), after)
}
