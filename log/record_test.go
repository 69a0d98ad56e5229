package log_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

// TestFromRecord: FromRecord is the one definition of an aggregate's
// events. A record it refuses is no aggregate's event, whatever its key
// resembles, and the error says why.
func TestFromRecord(t *testing.T) {
	id := uuid.New()
	good := func() *kgo.Record {
		e := logtest.Events("Order", id, 0, 1)[0]
		e.Save, e.SaveEvents = uuid.New(), 1
		return log.Record("t", e)
	}
	if _, err := log.FromRecord(good()); err != nil {
		t.Fatalf("a record Append writes: %v", err)
	}
	header := func(r *kgo.Record, key, value string) {
		for i := range r.Headers {
			if r.Headers[i].Key == key {
				r.Headers[i].Value = []byte(value)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*kgo.Record)
		want   string
	}{
		{"upper-case key", func(r *kgo.Record) { r.Key = []byte(strings.ToUpper(id.String())) }, "canonical form"},
		{"key without dashes", func(r *kgo.Record) { r.Key = []byte(strings.ReplaceAll(id.String(), "-", "")) }, "canonical form"},
		{"key in braces", func(r *kgo.Record) { r.Key = []byte("{" + id.String() + "}") }, "canonical form"},
		{"key that is no id", func(r *kgo.Record) { r.Key = []byte(log.PlacementKey) }, "not an aggregate id"},
		{"no save event count", func(r *kgo.Record) {
			r.Headers = slices.DeleteFunc(r.Headers, func(h kgo.RecordHeader) bool { return h.Key == log.HeaderSaveEvents })
		}, "missing headers " + log.HeaderSaveEvents},
		{"a version beyond its save", func(r *kgo.Record) { header(r, log.HeaderVersion, "2") }, "do not fit"},
		{"a version at its expected version", func(r *kgo.Record) { header(r, log.HeaderVersion, "0") }, "do not fit"},
		{"a save of no events", func(r *kgo.Record) { header(r, log.HeaderSaveEvents, "0") }, "do not fit"},
		{"a nil save id", func(r *kgo.Record) { header(r, log.HeaderSave, uuid.Nil.String()) }, "nil event or save id"},
		{"a repeated header", func(r *kgo.Record) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: log.HeaderExpected, Value: []byte("0")})
		}, "repeated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.change(r)
			_, err := log.FromRecord(r)
			if !errors.Is(err, log.ErrNotEvent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("FromRecord: %v, want ErrNotEvent saying %q", err, tc.want)
			}
		})
	}
}
