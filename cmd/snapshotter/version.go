package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildInfo is what the binary knows of its own build: the module version
// (or "(devel)" for a build from a checkout), the VCS revision and time
// when the build recorded them, and the Go version.
type buildInfo struct {
	Version, Revision, Time, GoVersion string
	Modified                           bool
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(unknown)", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func (b buildInfo) String() string {
	s := "snapshotter " + b.Version
	if b.Revision != "" {
		s += " " + b.Revision
		if b.Modified {
			s += "+modified"
		}
		if b.Time != "" {
			s += " " + b.Time
		}
	}
	return s + " " + b.GoVersion
}

// printVersion prints the build's version line.
func printVersion(stdout io.Writer) int {
	fmt.Fprintln(stdout, readBuildInfo())
	return exitOK
}
