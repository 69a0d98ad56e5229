package aggregate_test

import (
	"os"
	"testing"
)

// TestMain runs the test binary as a fresh process of
// BenchmarkStoreFreshProcess when the benchmark starts it as a child
// (envStoreChild holds the child's configuration), and runs the tests and
// benchmarks otherwise.
func TestMain(m *testing.M) {
	if cfg := os.Getenv(envStoreChild); cfg != "" {
		os.Exit(runStoreChild(cfg))
	}
	os.Exit(m.Run())
}
