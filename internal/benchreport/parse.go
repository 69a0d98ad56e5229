package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/perf/benchfmt"
)

// The metrics BenchmarkKafkaLoad reports for each history length, by the
// units it gives to b.ReportMetric.
const (
	unitReplay   = "replay-ns/load"   // a full replay of the events topic
	unitSnapshot = "snapshot-ns/load" // a load from a current snapshot
	unitFetch    = "fetch-ns"         // one bare franz-go fetch request
	unitSpeedup  = "speedup"          // replay / snapshot, in the same run
	unitSnapRate = "snapshot/fetch"   // snapshot / fetch, in the same run
)

// A Point is one history length of the benchmark, with every run's figure
// of each metric (several with -count).
type Point struct {
	Events int
	// Nanoseconds per load.
	Replay, Snapshot, Fetch []float64
	// Ratios the benchmark took within each run.
	Speedup, SnapshotPerFetch []float64
	// Iterations of each run (b.N).
	Iters []int
}

// A Run is the parsed output of one go test -bench invocation.
type Run struct {
	// Bench is the benchmark the points belong to, without its
	// events=N part and GOMAXPROCS suffix.
	Bench  string
	Points []Point // by history length, increasing
	// Config is the file configuration go test prints (goos, goarch, pkg,
	// cpu), as first seen.
	Config map[string]string
	// Elapsed is the time go test reports for the packages (the "ok" lines).
	Elapsed time.Duration
	// Lines are the result lines as read.
	Lines []string
}

// Runs returns how many runs the points hold (the least over the points).
func (r *Run) Runs() int {
	n := 0
	for i, p := range r.Points {
		if i == 0 || len(p.Replay) < n {
			n = len(p.Replay)
		}
	}
	return n
}

var (
	failLine = regexp.MustCompile(`^(--- FAIL|FAIL|panic:)`)
	okLine   = regexp.MustCompile(`^ok\s+\S+\s+([0-9.]+s)`)
)

// parse reads go test -bench output and returns the results of the
// benchmark named bench (such as "BenchmarkKafkaLoad/Account"), one point
// per events=N sub-benchmark. It fails when the output reports a failure,
// or when no result of bench carries the three load times.
func parse(in io.Reader, bench string) (*Run, error) {
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, err
	}
	run := &Run{Bench: bench, Config: map[string]string{}}
	var failures []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case failLine.MatchString(line):
			failures = append(failures, line)
		case okLine.MatchString(line):
			d, err := time.ParseDuration(okLine.FindStringSubmatch(line)[1])
			if err == nil {
				run.Elapsed += d
			}
		case strings.HasPrefix(line, "Benchmark"):
			run.Lines = append(run.Lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(failures) > 0 {
		return nil, fmt.Errorf("the benchmark run failed:\n%s", strings.Join(failures, "\n"))
	}

	points := map[int]*Point{}
	r := benchfmt.NewReader(bytes.NewReader(data), "go test output")
	for r.Scan() {
		res, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue // unit metadata, or a line benchfmt cannot read
		}
		for _, key := range []string{"goos", "goarch", "pkg", "cpu"} {
			if v := res.GetConfig(key); v != "" && run.Config[key] == "" {
				run.Config[key] = v
			}
		}
		name, events, ok := splitEvents(res.Name)
		if !ok || name != bench {
			continue
		}
		values := map[string]float64{}
		for _, v := range res.Values {
			if v.OrigUnit != "" {
				values[v.OrigUnit] = v.OrigValue
			} else {
				values[v.Unit] = v.Value
			}
		}
		replay, ok1 := values[unitReplay]
		snap, ok2 := values[unitSnapshot]
		fetch, ok3 := values[unitFetch]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("%s: want the metrics %s, %s and %s", res.Name, unitReplay, unitSnapshot, unitFetch)
		}
		p := points[events]
		if p == nil {
			p = &Point{Events: events}
			points[events] = p
		}
		p.Replay = append(p.Replay, replay)
		p.Snapshot = append(p.Snapshot, snap)
		p.Fetch = append(p.Fetch, fetch)
		p.Speedup = append(p.Speedup, ratio(values, unitSpeedup, replay, snap))
		p.SnapshotPerFetch = append(p.SnapshotPerFetch, ratio(values, unitSnapRate, snap, fetch))
		p.Iters = append(p.Iters, res.Iters)
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if len(points) == 0 {
		return nil, errors.New("no results of " + bench + "/events=N in the input")
	}
	for _, p := range points {
		run.Points = append(run.Points, *p)
	}
	slices.SortFunc(run.Points, func(a, b Point) int { return a.Events - b.Events })
	return run, nil
}

// ratio is the benchmark's own ratio in unit, or num/den without it.
func ratio(values map[string]float64, unit string, num, den float64) float64 {
	if v, ok := values[unit]; ok {
		return v
	}
	return num / den
}

// splitEvents splits a benchmark name as benchfmt reads it, without the
// Benchmark prefix (such as "KafkaLoad/Account/events=100-2"), into the
// full name without its events part and GOMAXPROCS suffix
// ("BenchmarkKafkaLoad/Account") and the events (100).
func splitEvents(n benchfmt.Name) (name string, events int, ok bool) {
	base, parts := n.Parts()
	name = "Benchmark" + string(base)
	found := false
	for _, p := range parts {
		s := string(p)
		if v, isEvents := strings.CutPrefix(s, "/events="); isEvents {
			e, err := strconv.Atoi(v)
			if err != nil {
				return "", 0, false
			}
			events, found = e, true
			continue
		}
		if strings.HasPrefix(s, "/") {
			name += s
		}
		// "-2" and other GOMAXPROCS suffixes are left out.
	}
	return name, events, found
}

// median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
