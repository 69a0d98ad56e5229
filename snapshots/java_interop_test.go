package snapshots_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/linkedin/goavro/v2"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// TestJavaReadsSnapshots checks that the Apache Avro Java library reads what
// AvroCodec and EncodeCheckpoint write, with nothing but the .avsc files of
// package schemas: it writes Order snapshots (which goavro reads too, with
// the composed writer schema) and a checkpoint, each with
// its expected field values, and runs the Maven project interop/java on
// them (see SnapshotInteropTest there). The first run downloads Avro and
// JUnit from Maven Central into ~/.m2; later runs take seconds.
//
// Without mvn on the PATH the test fails in CI (CI set, and not "false" or
// "0") and is skipped elsewhere.
func TestJavaReadsSnapshots(t *testing.T) {
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("mvn is not on the PATH (%v): CI must install Maven and a JDK 17 for the Java interop test", err)
		}
		t.Skipf("mvn is not on the PATH (%v): install Maven and a JDK 17 to check that the Apache Avro Java library reads snaplog's snapshots", err)
	}
	root := interopRoot(t)
	dir := t.TempDir()

	c := newOrderCodec(t)
	noCustomer := orderWithItems(1)
	noCustomer.CustomerID = nil
	orders := []struct {
		name  string
		order OrderState
		save  uuid.UUID
	}{
		{"order-no-items", orderWithItems(0), orderSave},
		{"order-one-item-no-customer", noCustomer, uuid.MustParse("0f8fad5b-d9cb-469f-a165-70867728950e")},
		{"order-three-items-nil-save", orderWithItems(3), uuid.Nil},
	}
	for i, o := range orders {
		s := orderSnapshot(t, o.order)
		s.Version = int64(10 + i)
		s.Position = log.Position{Partition: int32(i), Offset: int64(1000*i + 7)}
		s.Save = o.save
		s.CreatedAt = createdAt.Add(time.Duration(i) * time.Hour)
		side := map[string]any{
			"expected": map[string]any{
				"aggregate_id":   s.AggregateID.String(),
				"aggregate_type": "Order",
				"version":        s.Version,
				"schema_version": s.SchemaVersion,
				"created_at":     s.CreatedAt.UnixMicro(),
				"position": map[string]any{
					"partition": s.Position.Partition,
					"offset":    s.Position.Offset,
					"save":      o.save.String(),
				},
				"state": interopOrderState(o.order),
			},
		}
		// The first is read with the composed schema file alone, the others
		// with the envelope and the state schema composed by the reader.
		if i == 0 {
			side["schema"] = "order_snapshot.avsc"
		} else {
			side["schema"], side["state_schema"] = "snapshot.avsc", "order_state.avsc"
		}
		value := mustEncode(t, c, s)
		goavroReads(t, c, value, side["expected"].(map[string]any))
		writeInteropValue(t, dir, o.name, value, side)
	}
	withUnsnapshotted := testCheckpoint
	withUnsnapshotted.Unsnapshotted = []uuid.UUID{uuid.MustParse("7d444840-9dc0-11d1-b245-5ffdce74fad2")}
	cp, err := snapshots.EncodeCheckpoint(withUnsnapshotted)
	if err != nil {
		t.Fatal(err)
	}
	writeInteropValue(t, dir, "checkpoint", cp, map[string]any{
		"schema": "checkpoint.avsc",
		"expected": map[string]any{
			"events_topic":     testCheckpoint.EventsTopic,
			"events_partition": testCheckpoint.EventsPartition,
			"offset":           testCheckpoint.Offset,
			"owner":            testCheckpoint.Owner,
			"unsnapshotted":    []any{"7d444840-9dc0-11d1-b245-5ffdce74fad2"},
			"written_at":       testCheckpoint.WrittenAt.UnixMicro(),
		},
	})
	values := len(orders) + 1

	reports := filepath.Join(root, "interop", "java", "target", "surefire-reports")
	if err := os.RemoveAll(reports); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mvn, "-B", "-q", "-f", filepath.Join("interop", "java", "pom.xml"), "test",
		"-Dsnaplog.snapshots="+dir, "-Dsnaplog.schemas="+filepath.Join(root, "schemas"))
	cmd.Dir = root
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		t.Fatalf("%s: %v after %s\n%s", cmd, err, time.Since(start).Round(time.Millisecond), out)
	}

	// mvn -q prints nothing on success: make sure the values were read.
	b, err := os.ReadFile(filepath.Join(reports, "TEST-snaplog.interop.SnapshotInteropTest.xml"))
	if err != nil {
		t.Fatalf("no Surefire report after a successful mvn test: %v\n%s", err, out)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
	}
	if err := xml.Unmarshal(b, &suite); err != nil {
		t.Fatal(err)
	}
	if suite.Tests != values || suite.Failures+suite.Errors+suite.Skipped != 0 {
		t.Fatalf("Surefire ran %d tests (%d failed, %d errors, %d skipped), want %d passed", suite.Tests, suite.Failures, suite.Errors, suite.Skipped, values)
	}
	t.Logf("Apache Avro (Java) read %d values in %s", values, time.Since(start).Round(time.Millisecond))
}

// goavroReads checks that goavro, an Avro implementation independent of
// hamba/avro, reads a snapshot's body with the composed writer schema alone
// and finds the expected values.
func goavroReads(t *testing.T, c *snapshots.AvroCodec, value []byte, expected map[string]any) {
	t.Helper()
	text, _ := c.WriterSchema("Order")
	codec, err := goavro.NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	native, rest, err := codec.NativeFromBinary(value[10:])
	if err != nil || len(rest) != 0 {
		t.Fatalf("goavro: %v, %d bytes left", err, len(rest))
	}
	// Compare as JSON values: goavro's unions are {"member": value}, its
	// timestamps time.Time.
	rec := native.(map[string]any)
	rec["created_at"] = rec["created_at"].(time.Time).UnixMicro()
	state := rec["state"].(map[string]any)
	if u, ok := state["customer_id"].(map[string]any); ok {
		state["customer_id"] = u["string"]
	}
	got, want := jsonValue(t, rec), jsonValue(t, expected)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("goavro reads\n %v\nwant %v", got, want)
	}
}

func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// interopOrderState is the state record of an Order as JSON values, built
// from the Go struct rather than from the codec.
func interopOrderState(o OrderState) map[string]any {
	var customer any
	if o.CustomerID != nil {
		customer = o.CustomerID.String()
	}
	items := []any{}
	for _, it := range o.Items {
		items = append(items, map[string]any{
			"product_id":   it.ProductID.String(),
			"product_name": it.ProductName,
			"quantity":     it.Quantity,
			"unit_price":   it.UnitPrice,
		})
	}
	return map[string]any{
		"order_id":       o.OrderID.String(),
		"customer_id":    customer,
		"customer_email": o.CustomerEmail,
		"items":          items,
		"status":         o.Status,
		"total_amount":   o.TotalAmount,
	}
}

// writeInteropValue writes a value as written to Kafka, NAME.avro, and its
// sidecar NAME.json.
func writeInteropValue(t *testing.T, dir, name string, value []byte, sidecar map[string]any) {
	t.Helper()
	side, err := json.MarshalIndent(sidecar, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".avro"), value, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), side, 0o644); err != nil {
		t.Fatal(err)
	}
}

// interopRoot finds the module root above the test's working directory.
func interopRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "interop", "java", "pom.xml")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no interop/java/pom.xml above the working directory")
		}
		dir = parent
	}
}
