package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testdata/kafkaload-20x.txt is the output of
//
//	SNAPLOG_KAFKA_BROKERS=127.0.0.1:9092 go test -run '^$' -bench 'BenchmarkKafkaLoad/Account' -benchtime 20x -benchmem ./aggregate/
//
// on the real broker.
func readSample(t *testing.T) *Run {
	t.Helper()
	f, err := os.Open("testdata/kafkaload-20x.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run, err := parse(f, "BenchmarkKafkaLoad/Account")
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestParseSample(t *testing.T) {
	run := readSample(t)
	if got, want := len(run.Points), 4; got != want {
		t.Fatalf("%d points, want %d", got, want)
	}
	for i, want := range []int{100, 1000, 10000, 100000} {
		if run.Points[i].Events != want {
			t.Errorf("point %d: events=%d, want %d", i, run.Points[i].Events, want)
		}
	}
	p := run.Points[2] // BenchmarkKafkaLoad/Account/events=10000-2
	if len(p.Replay) != 1 || p.Replay[0] != 38341173 || p.Snapshot[0] != 487213 || p.Fetch[0] != 496071 {
		t.Errorf("events=10000: replay %v, snapshot %v, fetch %v ns", p.Replay, p.Snapshot, p.Fetch)
	}
	if p.Speedup[0] != 78.69 || p.SnapshotPerFetch[0] != 0.9821 || p.Iters[0] != 20 {
		t.Errorf("events=10000: speedup %v, snapshot/fetch %v, iterations %v", p.Speedup, p.SnapshotPerFetch, p.Iters)
	}
	if run.Runs() != 1 {
		t.Errorf("%d runs, want 1", run.Runs())
	}
	if run.Config["cpu"] != "AMD EPYC" || run.Config["goos"] != "linux" || run.Config["pkg"] != "github.com/snaplog/snaplog/aggregate" {
		t.Errorf("config %v", run.Config)
	}
	if run.Elapsed != 21439*time.Millisecond {
		t.Errorf("elapsed %v, want the ok line's 21.439s", run.Elapsed)
	}
	if len(run.Lines) != 4 || !strings.HasPrefix(run.Lines[3], "BenchmarkKafkaLoad/Account/events=100000-2") {
		t.Errorf("result lines %q", run.Lines)
	}
}

// With -count, the runs of one history length are gathered in one point;
// other benchmarks' results are left out.
func TestParseCount(t *testing.T) {
	sample, err := os.ReadFile("testdata/kafkaload-20x.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := string(sample)
	lines := strings.Split(s, "\n")
	var second []string
	for _, l := range lines {
		if strings.HasPrefix(l, "BenchmarkKafkaLoad/Account/events=100-2") {
			// The same line with other figures, as a second run prints it.
			second = append(second, strings.Replace(strings.Replace(l, "2763901 replay-ns/load", "2000000 replay-ns/load", 1), "1.952 speedup", "1.500 speedup", 1))
		}
	}
	other := "BenchmarkKafkaLoad/Order/events=200-2 \t 20\t 300000 replay-ns/load\t 100000 snapshot-ns/load\t 3.0 speedup"
	in := s + strings.Join(second, "\n") + "\n" + other + "\n"
	run, err := parse(strings.NewReader(in), "BenchmarkKafkaLoad/Account")
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Points) != 4 {
		t.Fatalf("%d points, want the 4 of Account", len(run.Points))
	}
	p := run.Points[0]
	if len(p.Replay) != 2 || p.Replay[1] != 2000000 || median(p.Replay) != (2763901+2000000)/2.0 {
		t.Errorf("events=100: replay %v", p.Replay)
	}
	if got := cell(p.Speedup, 1, "×"); got != "1.73× (1.50–1.95)" {
		t.Errorf("speedup cell %q", got)
	}
	if run.Runs() != 1 { // the other lengths have one run
		t.Errorf("%d runs, want 1", run.Runs())
	}
}

// testdata/kafkaload-50x-count3.txt is the output of the command make
// bench-report runs (-benchtime 50x -count 3).
func TestParseCountSample(t *testing.T) {
	f, err := os.Open("testdata/kafkaload-50x-count3.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run, err := parse(f, "BenchmarkKafkaLoad/Account")
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Points) != 4 || run.Runs() != 3 {
		t.Fatalf("%d points of %d runs, want 4 of 3", len(run.Points), run.Runs())
	}
	p := run.Points[3] // events=100000: 358.6, 446.6 and 779.5 ms
	if p.Events != 100000 || median(p.Replay) != 446648418 || p.Iters[2] != 50 {
		t.Errorf("events=100000: replay %v, iterations %v", p.Replay, p.Iters)
	}
	if got := cell(p.Replay, nsPerMS, ""); got != "447 (359–780)" {
		t.Errorf("replay cell %q", got)
	}
	if !strings.Contains(summary(run), "Median of 3 runs of 50 loads") {
		t.Errorf("summary %q", summary(run))
	}
}

func TestParseFailures(t *testing.T) {
	sample, err := os.ReadFile("testdata/kafkaload-20x.txt")
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]string{
		"failed sub-benchmark": strings.Replace(string(sample), "PASS\n", "--- FAIL: BenchmarkKafkaLoad/Account/events=100000\n    kafka_bench_test.go:90: broken\nFAIL\n", 1),
		"build failure":        "FAIL\tgithub.com/snaplog/snaplog/aggregate [build failed]\n",
		"no results":           "goos: linux\nPASS\nok  \tgithub.com/snaplog/snaplog/aggregate\t0.01s\n",
		"missing metric":       "BenchmarkKafkaLoad/Account/events=100-2 \t 20\t 2763901 replay-ns/load\t 1416000 snapshot-ns/load\n",
	} {
		if _, err := parse(strings.NewReader(in), "BenchmarkKafkaLoad/Account"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestFormat(t *testing.T) {
	for x, want := range map[float64]string{
		0.48721: "0.487", 38.341173: "38.3", 476.948897: "477", 827.5: "828", 1083: "1,083", 1.952: "1.95", 0.9821: "0.982",
	} {
		if got := sig(x); got != want {
			t.Errorf("sig(%v) = %q, want %q", x, got, want)
		}
	}
	if got := thousands("100000"); got != "100,000" {
		t.Errorf("thousands: %q", got)
	}
}

func TestReport(t *testing.T) {
	run := readSample(t)
	meta := Meta{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Command: "go test -bench x", Machine: []string{"a machine"}, Plot: "load.png"}
	var md bytes.Buffer
	if err := writeMarkdown(&md, run, meta); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"2026-01-02 03:04 UTC",
		"```sh\ngo test -bench x\n```",
		"| 10,000 | 38.3 | 0.487 | 0.496 | 78.7× | 0.982 |",
		"| 100,000 | 477 | 0.576 | 0.390 | 828× | 1.48 |",
		"![Load time against history length, log-log](load.png)",
		"- a machine",
		run.Lines[0],
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}

	var img bytes.Buffer
	if err := writePlot(&img, run, "title"); err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(&img)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 1050 || cfg.Height != 690 {
		t.Errorf("plot is %d×%d pixels", cfg.Width, cfg.Height)
	}
}

func TestUpdateReadme(t *testing.T) {
	run := readSample(t)
	path := filepath.Join(t.TempDir(), "README.md")
	before := "# x\n\ntext\n\n" + readmeBegin + "\nold table\n" + readmeEnd + "\n\nmore\n"
	if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	meta := Meta{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)}
	for range 2 { // a second update replaces the first
		if err := updateReadme(path, run, meta, "docs/bench.md"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# x\n\ntext\n\n" + readmeBegin + "\nLast run, 2026-01-02 (one run of 20 loads of each kind per history length; machine and command in [docs/bench.md](docs/bench.md)):\n\n" +
		table(run) + "\n" + readmeEnd + "\n\nmore\n"
	if string(got) != want {
		t.Errorf("README:\n%s\nwant:\n%s", got, want)
	}
	if err := os.WriteFile(path, []byte("# no section\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateReadme(path, run, meta, "docs/bench.md"); err == nil {
		t.Error("no error without the section")
	}
}
