package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/snaplog/snaplog/snapshotter"
)

// writerSchema returns the full Avro writer schema of t's snapshot records,
// the envelope with t's current state schema, as indented JSON ending in a
// newline: the text of schemas/<type>_snapshot.avsc.
func writerSchema(t snapshotter.Type) ([]byte, error) {
	c, err := codecOf(t)
	if err != nil {
		return nil, err
	}
	text, ok := c.WriterSchema(t.Name())
	if !ok {
		return nil, fmt.Errorf("aggregate type %s has no writer schema", t.Name())
	}
	var out bytes.Buffer
	if err := json.Indent(&out, []byte(text), "", "  "); err != nil {
		return nil, fmt.Errorf("aggregate type %s: writer schema: %w", t.Name(), err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// printSchema prints t's writer schema: what a generic Avro reader or a
// schema registry needs to read the values of t's snapshot topic.
func printSchema(t snapshotter.Type, stdout, stderr io.Writer) int {
	b, err := writerSchema(t)
	if err != nil {
		fmt.Fprintln(stderr, "snapshotter schema:", err)
		return exitError
	}
	if _, err := stdout.Write(b); err != nil {
		fmt.Fprintln(stderr, "snapshotter schema:", err)
		return exitError
	}
	return exitOK
}
