package main

import (
	"context"
	"strings"
	"testing"

	"github.com/snaplog/snaplog/schemas"
)

// TestSchemaFileIsWhatTheCodeWrites: schemas/order_snapshot.avsc is the
// writer schema `snapshotter schema -type Order` prints, byte for byte, so
// the file a generic reader or a schema registry takes is the one the
// snapshots are written with. `go generate ./schemas/` rewrites it.
func TestSchemaFileIsWhatTheCodeWrites(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run(context.Background(), []string{"schema", "-type", "Order"}, getenv(nil), &stdout, &stderr, testTypes(t)); code != exitOK {
		t.Fatalf("schema: exit %d, stderr:\n%s", code, stderr.String())
	}
	if stdout.String() != schemas.OrderSnapshot() {
		t.Fatalf("schemas/order_snapshot.avsc is not what the code writes; run `go generate ./schemas/`. The code writes:\n%s", stdout.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"schema", "-type", "Nope"}, getenv(nil), &stdout, &stderr, testTypes(t)); code != exitUsage {
		t.Fatalf("schema of an unknown type: exit %d, stderr:\n%s", code, stderr.String())
	}
}
