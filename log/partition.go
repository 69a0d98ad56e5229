package log

import "github.com/google/uuid"

// Key is the record key of an aggregate's events and snapshots: the
// aggregate id in its canonical 36-character text form, so that tools that
// do not know snaplog (kcat, Kafka UI, other languages) see a readable key.
func Key(aggregateID uuid.UUID) []byte {
	b := make([]byte, 36)
	encodeUUID(b, aggregateID)
	return b
}

func encodeUUID(dst []byte, id uuid.UUID) {
	const hex = "0123456789abcdef"
	j := 0
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j] = hex[c>>4]
		dst[j+1] = hex[c&0x0f]
		j += 2
	}
}

// Partition returns the partition, of n, that holds the aggregate with the
// given id. It is the Java client's default partitioner applied to [Key]:
// toPositive(murmur2(key)) % n, so every Kafka client that partitions by key
// the way Java does sends an aggregate's records to the same partition.
func Partition(aggregateID uuid.UUID, n int32) int32 {
	var b [36]byte
	encodeUUID(b[:], aggregateID)
	return PartitionKey(b[:], n)
}

// PartitionKey is Partition for an arbitrary key.
func PartitionKey(key []byte, n int32) int32 {
	if n <= 0 {
		return 0
	}
	return int32(Murmur2(key)&0x7fffffff) % n
}

// Murmur2 is the 32-bit murmur2 hash exactly as Apache Kafka's
// org.apache.kafka.common.utils.Utils.murmur2 computes it (seed 0x9747b28c).
func Murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	n4 := length / 4
	for i := 0; i < n4; i++ {
		i4 := i * 4
		k := uint32(data[i4]) | uint32(data[i4+1])<<8 | uint32(data[i4+2])<<16 | uint32(data[i4+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}
