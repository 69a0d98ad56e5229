package schemas_test

import (
	"encoding/json"
	"io/fs"
	"testing"

	"github.com/snaplog/snaplog/schemas"
)

func TestFiles(t *testing.T) {
	names, err := fs.Glob(schemas.FS, "*.avsc")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"snapshot.avsc":       schemas.Snapshot(),
		"order_state.avsc":    schemas.OrderState(),
		"checkpoint.avsc":     schemas.Checkpoint(),
		"order_snapshot.avsc": schemas.OrderSnapshot(),
	}
	if len(names) != len(want) {
		t.Errorf("files %q", names)
	}
	for _, name := range names {
		text, err := schemas.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[name]; ok && w != text {
			t.Errorf("%s: Read and the accessor differ", name)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if v["type"] != "record" {
			t.Errorf("%s: type %v", name, v["type"])
		}
	}
	if _, err := schemas.Read("missing.avsc"); err == nil {
		t.Error("Read(missing.avsc): no error")
	}
}

// The envelope's state field has the placeholder type the constants name.
func TestPlaceholder(t *testing.T) {
	var env struct {
		Namespace string
		Fields    []struct {
			Name string
			Type json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(schemas.Snapshot()), &env); err != nil {
		t.Fatal(err)
	}
	for _, f := range env.Fields {
		if f.Name != schemas.StateField {
			continue
		}
		var p struct {
			Type, Name string
			Fields     []any
		}
		if err := json.Unmarshal(f.Type, &p); err != nil {
			t.Fatal(err)
		}
		if p.Type != "record" || env.Namespace+"."+p.Name != schemas.StatePlaceholder || len(p.Fields) != 0 {
			t.Errorf("state field type %s", f.Type)
		}
		return
	}
	t.Errorf("no field %q", schemas.StateField)
}
