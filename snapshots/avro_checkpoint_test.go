package snapshots_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

var testCheckpoint = snapshots.Checkpoint{
	EventsTopic:     "orders.events",
	EventsPartition: 5,
	Offset:          123456,
	Owner:           "snapshotter-orders",
	WrittenAt:       createdAt,
}

func TestCheckpointRoundTrip(t *testing.T) {
	tests := map[string]snapshots.Checkpoint{
		"typical":          testCheckpoint,
		"zero offset":      {EventsTopic: "e", EventsPartition: 0, Offset: 0, Owner: "o", WrittenAt: time.Unix(0, 0)},
		"zero time":        {EventsTopic: "e", Owner: "o"},
		"no owner":         {EventsTopic: "e", EventsPartition: 1, Offset: 2, WrittenAt: createdAt},
		"extremes":         {EventsTopic: strings.Repeat("t", 249), EventsPartition: math.MaxInt32, Offset: math.MaxInt64, Owner: "ø", WrittenAt: time.UnixMicro(math.MaxInt64)},
		"before the epoch": {EventsTopic: "e", Owner: "o", WrittenAt: time.Date(1900, 1, 1, 0, 0, 0, 999, time.UTC)},
		"unsnapshotted": {EventsTopic: "e", Owner: "o", WrittenAt: createdAt,
			Unsnapshotted: []uuid.UUID{uuid.MustParse("7d444840-9dc0-11d1-b245-5ffdce74fad2"), uuid.MustParse("00000000-0000-0000-0000-000000000001")}},
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := snapshots.EncodeCheckpoint(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := snapshots.DecodeCheckpoint(b)
			if err != nil {
				t.Fatal(err)
			}
			want := in
			want.WrittenAt = in.WrittenAt.Truncate(time.Microsecond).UTC()
			if !reflect.DeepEqual(out, want) {
				t.Errorf("got %+v\nwant %+v", out, want)
			}
		})
	}
}

// What EncodeCheckpoint writes is checkpoint.avsc in single-object encoding:
// the header has the specification's fingerprint of the file, and goavro
// reads the body with the file alone.
func TestCheckpointSchemaFileAgrees(t *testing.T) {
	b, err := snapshots.EncodeCheckpoint(testCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0xC3 || b[1] != 0x01 {
		t.Fatalf("marker % x", b[:2])
	}
	const pcf = `{"name":"snaplog.Checkpoint","type":"record","fields":[{"name":"events_topic","type":"string"},` +
		`{"name":"events_partition","type":"int"},{"name":"offset","type":"long"},{"name":"owner","type":"string"},` +
		`{"name":"unsnapshotted","type":{"type":"array","items":"string"}},{"name":"written_at","type":"long"}]}`
	if got, err := snapshots.CanonicalForm(schemas.Checkpoint()); err != nil || got != pcf {
		t.Fatalf("canonical form %s, %v", got, err)
	}
	plain, err := goavro.NewCodec(pcf)
	if err != nil {
		t.Fatal(err)
	}
	if fp := binary.LittleEndian.Uint64(b[2:10]); fp != plain.Rabin || fp != mustFingerprint(t, schemas.Checkpoint()) {
		t.Errorf("header fingerprint %#016x, want %#016x", fp, plain.Rabin)
	}
	codec, err := goavro.NewCodec(schemas.Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	native, rest, err := codec.NativeFromBinary(b[10:])
	if err != nil || len(rest) != 0 {
		t.Fatalf("goavro: %v, %d bytes left", err, len(rest))
	}
	rec := native.(map[string]any)
	want := map[string]any{
		"events_topic": "orders.events", "events_partition": int32(5), "offset": int64(123456),
		"owner": "snapshotter-orders", "written_at": createdAt.Truncate(time.Microsecond).UTC(),
	}
	if len(rec) != len(want)+1 || len(rec["unsnapshotted"].([]any)) != 0 {
		t.Errorf("fields %v", rec)
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %#v, want %#v", k, rec[k], v)
		}
	}
}

func TestCheckpointEncodeErrors(t *testing.T) {
	_, err := snapshots.EncodeCheckpoint(snapshots.Checkpoint{EventsPartition: -1, Offset: -2})
	for _, w := range []string{"snapshots: encode checkpoint /-1@-2 by : ", "empty events topic", "events partition -1 is negative", "offset -2 is negative"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
}

// A time out of the range of a timestamp-micros is refused rather than
// written as another time.
func TestCheckpointEncodeRefusesTimeOutOfRange(t *testing.T) {
	c := testCheckpoint
	c.WrittenAt = time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := snapshots.EncodeCheckpoint(c)
	if err == nil {
		back, derr := snapshots.DecodeCheckpoint(b)
		t.Fatalf("time out of range written without an error; it reads back as %v, %v", back.WrittenAt, derr)
	}
	if !strings.Contains(err.Error(), "written at: 300000-01-01 00:00:00 +0000 UTC is out of the range") {
		t.Errorf("time out of range: %v", err)
	}
}

func TestCheckpointDecodeErrors(t *testing.T) {
	good, err := snapshots.EncodeCheckpoint(testCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := mustEncode(t, newOrderCodec(t), orderSnapshot(t, orderWithItems(1)))
	header := append([]byte{}, good[:10]...)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "0 bytes, shorter than the 10-byte single-object header"},
		{"wrong marker", append([]byte{0xC3, 0x00}, good[2:]...), "marker 0xc3 0x00"},
		{"a snapshot", snapshot, "writer schema fingerprint 0x56e6efb189607e5a, want 0x"},
		{"header only", header, "events_topic: truncated"},
		{"truncated", good[:len(good)-1], "written_at: truncated"},
		{"trailing bytes", append(append([]byte{}, good...), 0), "1 trailing bytes after the record"},
		{"huge topic", appendLong(append([]byte{}, header...), 1<<50), "events_topic: length 1125899906842624 with 0 bytes left"},
		{"negative offset", append(appendString(appendLong(appendLong(appendString(append([]byte{}, header...), "t"), 0), -1), "o"), 0, 0),
			"offset -1 is negative"},
		{"empty topic", append(appendString(appendLong(appendLong(appendString(append([]byte{}, header...), ""), 0), 1), "o"), 0, 0),
			"empty events topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := snapshots.DecodeCheckpoint(tt.b)
			if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want ErrCorrupt containing %q", err, tt.want)
			}
		})
	}
	for n := range len(good) {
		if _, err := snapshots.DecodeCheckpoint(good[:n]); !errors.Is(err, snapshots.ErrCorrupt) {
			t.Fatalf("DecodeCheckpoint(good[:%d]) = %v", n, err)
		}
	}
	// A checkpoint is not a snapshot either.
	if _, err := newOrderCodec(t).Decode(good); !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), "unknown writer schema fingerprint") {
		t.Errorf("Decode(checkpoint) = %v", err)
	}
}

func TestIsCheckpointKey(t *testing.T) {
	for key, want := range map[string]bool{
		snapshots.CheckpointKey: true,
		"":                      false,
		"snaplog.checkpoint ":   false,
		"Order/550e8400-e29b-41d4-a716-446655440000": false,
		"snaplog.Checkpoint":                         false,
	} {
		if got := snapshots.IsCheckpointKey([]byte(key)); got != want {
			t.Errorf("IsCheckpointKey(%q) = %v", key, got)
		}
	}
	if snapshots.IsCheckpointKey(nil) {
		t.Error("IsCheckpointKey(nil)")
	}
}

// FuzzDecodeCheckpoint checks that DecodeCheckpoint never panics and either
// refuses its input with ErrCorrupt or returns a checkpoint that encodes and
// decodes back to itself.
func FuzzDecodeCheckpoint(f *testing.F) {
	for _, c := range []snapshots.Checkpoint{testCheckpoint, {EventsTopic: "e", Owner: "o"}} {
		b, err := snapshots.EncodeCheckpoint(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append(append([]byte{}, b...), 0))
		flipped := append([]byte{}, b...)
		flipped[len(b)*2/3] ^= 0x41
		f.Add(flipped)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := snapshots.DecodeCheckpoint(b)
		if err != nil {
			if !errors.Is(err, snapshots.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		again, err := snapshots.EncodeCheckpoint(c)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", c, err)
		}
		c2, err := snapshots.DecodeCheckpoint(again)
		if err != nil {
			t.Fatalf("re-encoded checkpoint does not decode: %v", err)
		}
		if !reflect.DeepEqual(c2, c) {
			t.Fatalf("checkpoint changed: %+v, then %+v", c, c2)
		}
		if !bytes.Equal(again[:10], b[:10]) {
			t.Fatalf("header changed")
		}
	})
}

func ExampleEncodeCheckpoint() {
	b, err := snapshots.EncodeCheckpoint(snapshots.Checkpoint{
		EventsTopic:     "orders.events",
		EventsPartition: 3,
		Offset:          1200,
		Owner:           "snapshotter-1",
		WrittenAt:       time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("header % x\n", b[:10])
	c, err := snapshots.DecodeCheckpoint(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c, c.WrittenAt)
	fmt.Println(snapshots.IsCheckpointKey([]byte(snapshots.CheckpointKey)))
	// Output:
	// header c3 01 2f e5 63 a5 34 c2 f9 d9
	// checkpoint orders.events/3@1200 by snapshotter-1 2025-01-02 03:04:05 +0000 UTC
	// true
}

// An Order snapshot's header has the fingerprint of
// schemas/order_snapshot.avsc, and goavro reads its body with that file
// alone: a generic reader needs nothing composed at run time.
func TestOrderSnapshotSchemaFileAgrees(t *testing.T) {
	c := newOrderCodec(t)
	o := orderWithItems(3)
	s := orderSnapshot(t, o)
	b := mustEncode(t, c, s)
	if fp := binary.LittleEndian.Uint64(b[2:10]); fp != mustFingerprint(t, schemas.OrderSnapshot()) {
		t.Fatalf("header fingerprint %#016x, want that of order_snapshot.avsc %#016x", fp, mustFingerprint(t, schemas.OrderSnapshot()))
	}
	codec, err := goavro.NewCodec(schemas.OrderSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	native, rest, err := codec.NativeFromBinary(b[10:])
	if err != nil || len(rest) != 0 {
		t.Fatalf("goavro: %v, %d bytes left", err, len(rest))
	}
	rec := native.(map[string]any)
	if rec["aggregate_id"] != s.AggregateID.String() || rec["aggregate_type"] != "Order" || rec["version"] != s.Version {
		t.Fatalf("envelope %v", rec)
	}
	state := rec["state"].(map[string]any)
	if state["order_id"] != o.OrderID.String() || len(state["items"].([]any)) != 3 {
		t.Fatalf("state %v", state)
	}
}
