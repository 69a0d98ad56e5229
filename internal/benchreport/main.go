// Command benchreport turns the output of the Kafka load benchmark
// (BenchmarkKafkaLoad in package aggregate) into a Markdown report and a
// plot: for each history length, a full replay, a load from a current
// snapshot and a bare franz-go fetch of the same partition, measured side
// by side in one run.
//
// It reads go test -bench output on standard input (copying it to standard
// output as it comes, unless -echo=false), and writes
//
//   - -md (docs/bench.md): the table (median over the -count runs, with the
//     range), the command, the date and notes on the machine, and the
//     result lines as read;
//   - -png (docs/load.png): load time against history length on log-log
//     scales, one line per kind of load;
//   - with -readme, the table again, between the lines
//     "<!-- bench-report:begin -->" and "<!-- bench-report:end -->" of that
//     file.
//
// It writes nothing and exits 1 if the output reports a failure or holds no
// result of the benchmark. make bench-report runs it:
//
//	SNAPLOG_KAFKA_BROKERS=127.0.0.1:9092 go test -run '^$' -bench 'BenchmarkKafkaLoad/Account' -benchtime 50x -count 3 -benchmem ./aggregate/ |
//		go run ./internal/benchreport -md docs/bench.md -png docs/load.png
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// notes collects repeated -note flags.
type notes []string

func (n *notes) String() string     { return strings.Join(*n, "; ") }
func (n *notes) Set(s string) error { *n = append(*n, s); return nil }

func main() {
	bench := flag.String("bench", "BenchmarkKafkaLoad/Account", "the benchmark whose events=N sub-benchmarks to report")
	mdPath := flag.String("md", "docs/bench.md", "where to write the Markdown report")
	pngPath := flag.String("png", "docs/load.png", "where to write the plot")
	readme := flag.String("readme", "", "a Markdown file whose bench-report section gets the table")
	command := flag.String("command", "go test -run '^$' -bench 'BenchmarkKafkaLoad/Account' -benchmem ./aggregate/", "the command that made the input, for the report")
	echo := flag.Bool("echo", true, "copy the input to standard output")
	var extra notes
	flag.Var(&extra, "note", "a line for the report's notes on the machine (repeatable)")
	flag.Parse()

	started := time.Now()
	load := loadAverage()
	var in io.Reader = os.Stdin
	if *echo {
		in = io.TeeReader(os.Stdin, os.Stdout)
	}
	run, err := parse(in, *bench)
	if err != nil {
		fail(err)
	}

	relPlot, err := filepath.Rel(filepath.Dir(*mdPath), *pngPath)
	if err != nil {
		relPlot = *pngPath
	}
	meta := Meta{Date: started, Command: *command, Plot: filepath.ToSlash(relPlot)}
	meta.Machine = machineNotes(run, load)
	meta.Machine = append(meta.Machine, extra...)

	var md, png bytes.Buffer
	if err := writeMarkdown(&md, run, meta); err != nil {
		fail(err)
	}
	title := "Loading one Account aggregate from Kafka"
	if n := run.Runs(); n > 1 {
		title += fmt.Sprintf("\nmedian of %d runs, bars from the fastest run to the slowest", n)
	}
	if err := writePlot(&png, run, title); err != nil {
		fail(err)
	}
	for path, data := range map[string][]byte{*mdPath: md.Bytes(), *pngPath: png.Bytes()} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			fail(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			fail(err)
		}
	}
	written := []string{*mdPath, *pngPath}
	if *readme != "" {
		report, err := filepath.Rel(filepath.Dir(*readme), *mdPath)
		if err != nil {
			report = *mdPath
		}
		if err := updateReadme(*readme, run, meta, filepath.ToSlash(report)); err != nil {
			fail(err)
		}
		written = append(written, *readme)
	}
	fmt.Printf("benchreport: %d history lengths, %d runs; wrote %s\n", len(run.Points), run.Runs(), strings.Join(written, ", "))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchreport:", err)
	os.Exit(1)
}

// machineNotes describes the machine the benchmark ran on: what go test
// printed, and what this process sees of the same machine.
func machineNotes(run *Run, load string) []string {
	var out []string
	host := run.Config["goos"] + "/" + run.Config["goarch"]
	if cpu := run.Config["cpu"]; cpu != "" {
		host += ", " + cpu
	}
	host += fmt.Sprintf(", %d cores", runtime.NumCPU())
	if mem := memTotal(); mem != "" {
		host += ", " + mem
	}
	out = append(out, host+"; "+runtime.Version())
	if load != "" {
		out = append(out, "load average when the run started (1, 5, 15 min): "+load)
	}
	if run.Elapsed > 0 {
		out = append(out, "go test took "+run.Elapsed.Round(time.Second).String()+", broker topics set up included")
	}
	return out
}

// memTotal is the machine's memory from /proc/meminfo, or "".
func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return ""
			}
			return fmt.Sprintf("%.0f GiB", kb/(1<<20))
		}
	}
	return ""
}

// loadAverage is the first three fields of /proc/loadavg, or "".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], ", ")
}
