package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/snapshots"
)

// Parts of the expected output that change from run to run. Each line of
// testdata/expected.txt is turned into a regular expression: its literal
// text quoted, and each variable part replaced by the pattern of what the
// program may print there. Every other character, and so every version,
// count and name, must match exactly.
var variableParts = []struct {
	sample  string // how the part appears in expected.txt
	pattern string // what the program may print
}{
	// Ids.
	{`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`, uuidPattern},
	// eventsource-py's documented output elides product ids; the program
	// prints them.
	{`'\.\.\.'`, `'` + uuidPattern + `'`},
	// Python's str(datetime) omits a zero fraction.
	{`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00`, `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00`},
	// Load times.
	{`\d+\.\d\dms`, `\d+\.\d\dms`},
	// The improvement is negative when loads from the snapshot are slower.
	{`\d+\.\d%`, `-?\d+\.\d%`},
}

const uuidPattern = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`

var variableRE = func() *regexp.Regexp {
	alts := make([]string, len(variableParts))
	for i, v := range variableParts {
		alts[i] = "(" + v.sample + ")"
	}
	return regexp.MustCompile(strings.Join(alts, "|"))
}()

// linePattern returns the regular expression that a line of output must
// match where expected.txt has want.
func linePattern(want string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, m := range variableRE.FindAllStringSubmatchIndex(want, -1) {
		b.WriteString(regexp.QuoteMeta(want[last:m[0]]))
		for i := range variableParts {
			if m[2+2*i] >= 0 {
				b.WriteString("(?:" + variableParts[i].pattern + ")")
				break
			}
		}
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(want[last:]))
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

func TestOutput(t *testing.T) {
	raw, err := os.ReadFile("testdata/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, out.String())
	}
	want, got := lines(string(raw)), lines(out.String())
	for i := range max(len(want), len(got)) {
		switch {
		case i >= len(got):
			t.Errorf("line %d: missing, want %q", i+1, want[i])
		case i >= len(want):
			t.Errorf("line %d: unexpected %q", i+1, got[i])
		case !linePattern(want[i]).MatchString(got[i]):
			t.Errorf("line %d:\n got %q\nwant %q", i+1, got[i], want[i])
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}

	// The snapshot inspected is of the order whose state it holds.
	aggID := valueAfter(got, "  Aggregate ID: ")
	if orderID := valueAfter(got, "  order_id: "); aggID == "" || aggID != orderID {
		t.Errorf("inspection: aggregate id %q, state order_id %q", aggID, orderID)
	}
}

// valueAfter returns the rest of the first line that starts with prefix.
func valueAfter(lines []string, prefix string) string {
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	return ""
}

func TestLinePattern(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		match     bool
	}{
		{"Snapshot version: 5", "Snapshot version: 5", true},
		{"Snapshot version: 5", "Snapshot version: 6", false},
		{"Average load time: 15.23ms", "Average load time: 0.31ms", true},
		{"Average load time: 15.23ms", "Average load time: 0.3ms", false},
		{"Performance improvement: 90.5%", "Performance improvement: -3.0%", true},
		{"  Aggregate ID: 550e8400-e29b-41d4-a716-446655440000", "  Aggregate ID: 5f4f3970-84ef-4f3c-b396-b2d48625a2fd", true},
		{"  Aggregate ID: 550e8400-e29b-41d4-a716-446655440000", "  Aggregate ID: None", false},
		{"  Created At: 2024-01-15 10:30:45.123456+00:00", "  Created At: 2026-11-26 14:47:39+00:00", true},
		{"  Created At: 2024-01-15 10:30:45.123456+00:00", "  Created At: 2026-11-26 14:47:39.4963+00:00", false},
		{"    [0]: {'product_id': '...', 'product_name': 'Premium Widget', ...}",
			"    [0]: {'product_id': '66f6b532-af48-4f13-b4aa-43a3b96e0054', 'product_name': 'Premium Widget', ...}", true},
		{"    [0]: {'product_id': '...', 'product_name': 'Premium Widget', ...}",
			"    [0]: {'product_id': '66f6b532-af48-4f13-b4aa-43a3b96e0054', 'product_name': 'Basic Widget', ...}", false},
	} {
		if m := linePattern(tc.want).MatchString(tc.got); m != tc.match {
			t.Errorf("pattern of %q matches %q: %v, want %v", tc.want, tc.got, m, tc.match)
		}
	}
}

func TestFailingBackend(t *testing.T) {
	errDown := errors.New("backend down")
	down := func(context.Context) (aggregate.EventLog, snapshots.Store, error) { return nil, nil, errDown }
	var out bytes.Buffer
	if err := runOn(context.Background(), &out, down); !errors.Is(err, errDown) {
		t.Fatalf("runOn = %v, want %v", err, errDown)
	}
}

type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteError(t *testing.T) {
	if err := run(failingWriter{}); !errors.Is(err, errWrite) {
		t.Fatalf("run = %v, want %v", err, errWrite)
	}
}

func TestPyFloat(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0.0"},
		{10, "10.0"},
		{99.99, "99.99"},
		{1.0 / 3, "0.3333333333333333"},
		{-2.5, "-2.5"},
		{1e16, "1e+16"},
		{1.5e-05, "1.5e-05"},
		{0.0001, "0.0001"},
	} {
		if got := pyFloat(tc.in); got != tc.want {
			t.Errorf("pyFloat(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPyTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 1, 15, 10, 30, 45, 123456789, time.UTC), "2024-01-15 10:30:45.123456+00:00"},
		{time.Date(2024, 1, 15, 10, 30, 45, 1000, time.UTC), "2024-01-15 10:30:45.000001+00:00"},
		{time.Date(2024, 1, 15, 10, 30, 45, 999, time.UTC), "2024-01-15 10:30:45+00:00"},
		{time.Date(2024, 1, 15, 11, 30, 45, 0, time.FixedZone("CET", 3600)), "2024-01-15 10:30:45+00:00"},
	} {
		if got := pyTime(tc.in); got != tc.want {
			t.Errorf("pyTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPyRepr(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{nil, "None"},
		{true, "True"},
		{"it's", `"it's"`},
		{`a'b"c`, `'a\'b"c'`},
		{int32(2), "2"},
		{[]any{"a", 0.0}, "['a', 0.0]"},
		{map[string]any{"b": int64(1), "a": "x"}, "{'a': 'x', 'b': 1}"},
	} {
		if got := pyRepr(tc.in); got != tc.want {
			t.Errorf("pyRepr(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	rec := map[string]any{"product_name": "W", "product_id": "p", "quantity": int32(1)}
	if got, want := pyDict(rec, []string{"product_id", "product_name", "quantity"}, 2), "{'product_id': 'p', 'product_name': 'W', ...}"; got != want {
		t.Errorf("pyDict = %q, want %q", got, want)
	}
}
