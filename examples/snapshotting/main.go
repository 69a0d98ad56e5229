// Command snapshotting shows aggregate snapshots at work on the Order
// aggregate of package order, in six scenarios: automatic snapshots at a
// threshold, manual snapshots, background snapshots, a schema version change
// that makes a load ignore its snapshot, load times with and without a
// snapshot, and what a snapshot holds.
//
// It runs on the embedded default, the in-memory event log and snapshot
// store, and needs no broker:
//
//	go run ./examples/snapshotting
//
// It prints what each scenario did, in the layout of the Python library
// eventsource-py's snapshotting example, and exits with status 1 and a
// message if a step fails.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "snapshotting:", err)
		os.Exit(1)
	}
}

// backend gives each scenario a fresh event log and snapshot store, so that
// the scenarios run the same way on every backend.
type backend func(ctx context.Context) (aggregate.EventLog, snapshots.Store, error)

// memoryBackend is the embedded default: an in-memory log and store.
func memoryBackend(context.Context) (aggregate.EventLog, snapshots.Store, error) {
	events, err := log.NewMemory()
	if err != nil {
		return nil, nil, err
	}
	return events, snapshots.NewMemory(), nil
}

// scenario is one part of the program. It prints to p and returns the first
// error of its steps.
type scenario struct {
	title string
	run   func(ctx context.Context, p *printer, be backend) error
}

var scenarios = []scenario{
	{"BASIC SNAPSHOTTING EXAMPLE", basicSnapshotting},
	{"MANUAL SNAPSHOT EXAMPLE", manualSnapshot},
	{"BACKGROUND SNAPSHOT EXAMPLE", backgroundSnapshot},
	{"SCHEMA VERSIONING EXAMPLE", schemaVersioning},
	{"PERFORMANCE COMPARISON EXAMPLE", performanceComparison},
	{"SNAPSHOT INSPECTION EXAMPLE", snapshotInspection},
}

// run runs every scenario on the in-memory backend and writes their output
// to w.
func run(w io.Writer) error {
	return runOn(context.Background(), w, memoryBackend)
}

func runOn(ctx context.Context, w io.Writer, be backend) error {
	p := &printer{w: w}
	for _, s := range scenarios {
		p.header(s.title)
		if err := s.run(ctx, p, be); err != nil {
			return fmt.Errorf("%s: %w", strings.ToLower(s.title), err)
		}
		if p.err != nil {
			return p.err
		}
	}
	p.header("ALL EXAMPLES COMPLETED")
	return p.err
}

// printer writes lines and keeps the first write error, so that scenarios
// read as a list of prints and the error is checked once.
type printer struct {
	w   io.Writer
	err error
}

// line writes one line, formatted as by fmt.Sprintf.
func (p *printer) line(format string, args ...any) {
	if p.err != nil {
		return
	}
	if _, err := fmt.Fprintf(p.w, format+"\n", args...); err != nil {
		p.err = fmt.Errorf("write output: %w", err)
	}
}

var rule = strings.Repeat("=", 60)

func (p *printer) header(title string) {
	p.line("")
	p.line("%s", rule)
	p.line("%s", title)
	p.line("%s", rule)
}
