package log_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
)

// The vectors of Apache Kafka's UtilsTest.testMurmur2.
func TestMurmur2KafkaVectors(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want int32
	}{
		{[]byte("21"), -973932308},
		{[]byte("foobar"), -790332482},
		{[]byte("a-little-bit-long-string"), -985981536},
		{[]byte("a-little-bit-longer-string"), -1486304829},
		{[]byte("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971},
		{[]byte{'a', 'b', 'c'}, 479470107},
	} {
		t.Run(string(tc.in), func(t *testing.T) {
			if got := log.Murmur2(tc.in); got != tc.want {
				t.Fatalf("Murmur2(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestKeyIsCanonicalUUIDText(t *testing.T) {
	id := uuid.New()
	if got := string(log.Key(id)); got != id.String() {
		t.Fatalf("Key = %q, want %q", got, id.String())
	}
	if log.Partition(id, 12) != log.PartitionKey([]byte(id.String()), 12) {
		t.Fatal("Partition and PartitionKey disagree")
	}
}

func TestPartitionInRange(t *testing.T) {
	for i := 0; i < 1000; i++ {
		p := log.Partition(uuid.New(), 7)
		if p < 0 || p >= 7 {
			t.Fatalf("partition %d out of range", p)
		}
	}
}
