package log_test

import (
	"testing"

	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

func TestMemoryConformance(t *testing.T) {
	for _, parts := range []int32{1, 3} {
		t.Run(map[int32]string{1: "1partition", 3: "3partitions"}[parts], func(t *testing.T) {
			logtest.Run(t, func(t *testing.T) logtest.Log {
				m, err := log.NewMemory(log.WithMemoryPartitions(parts))
				if err != nil {
					t.Fatal(err)
				}
				return m
			})
		})
	}
}

func TestNewMemoryRejectsBadPartitions(t *testing.T) {
	if _, err := log.NewMemory(log.WithMemoryPartitions(0)); err == nil {
		t.Fatal("NewMemory accepted 0 partitions")
	}
}
